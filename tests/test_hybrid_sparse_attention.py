"""Hybrid linear attention (Qwen3.5's Gated DeltaNet), DeepSeek Sparse Attention (GLM-5), and the
numbers dense, GQA and MLA models gave before either existed."""

from __future__ import annotations

import pytest

# Pinned before hybrid and sparse layers were added (commit 69b5f3d): the same command must give the
# same numbers to rounding. (model, estimate arguments) -> prefill s, decode step s, KV B/token/device,
# KV B/sequence, max batch.
PINNED = [
    (("deepseek-v3", "--hardware", "h200-sxm", "--tp", "8", "--weights", "fp8", "--kv", "fp8", "--batch", "8",
      "--prompt", "4096"),
     (1.139272191652981, 0.01255405211667516, 35136.0, 143917056.0, 396)),
    (("deepseek-v3", "--hardware", "h200-sxm", "--tp", "8", "--ep", "2", "--weights", "fp8", "--kv", "bf16",
      "--batch", "32", "--prompt", "16384"),
     (20.31637701353431, 0.030389345590888416, 70272.0, 1151336448.0, 170)),
    (("llama-3.1-70b", "--hardware", "h100-sxm", "--tp", "4", "--weights", "fp8", "--kv", "fp8", "--batch", "8",
      "--prompt", "4096"),
     (1.6929330904795405, 0.0105300522419531, 40960.0, 167772160.0, 367)),
    (("llama-3.1-70b", "--hardware", "h100-sxm", "--tp", "2", "--weights", "bf16", "--kv", "bf16", "--batch", "1",
      "--prompt", "32768", "--prefix", "8192"),
     (5.230129605718689, 0.03092994197808735, 163840.0, 6710886400.0, 1)),
    (("gpt-oss-120b", "--hardware", "h100-sxm", "--weights", "fp8", "--kv", "fp8", "--batch", "16", "--prompt",
      "8192"),
     (3.18879426977066, 0.02019917945095391, 18432.0, 153354240.0, 0)),
]

# (model, transfer arguments) -> bytes, receiver bytes, messages, seconds
PINNED_TRANSFER = [
    (("llama-3.1-70b",), (3276800000.0, 3276800000.0, 160, 0.08936216216216215)),
    (("gpt-oss-120b", "--page-tokens", "16"), (373358592.0, 373358592.0, 22788, 0.12403077275675674)),
    (("deepseek-v3", "--tp", "8", "--dst-tp", "4"), (702720000.0, 702720000.0, 61, 0.019297432432432433)),
]


@pytest.mark.parametrize("args,expected", PINNED, ids=lambda v: " ".join(v) if isinstance(v[0], str) else "")
def test_existing_models_give_the_numbers_they_gave(cli_json, args, expected):
    d = cli_json("estimate", "-m", *args)
    prefill, step, per_token, per_seq, max_batch = expected
    assert d["prefill"]["seconds"] == pytest.approx(prefill, rel=1e-12)
    assert d["decode"]["step_seconds"] == pytest.approx(step, rel=1e-12)
    assert d["memory"]["kv_bytes_per_token"] == per_token
    assert d["memory"]["kv_sequence_bytes"] == pytest.approx(per_seq, rel=1e-12)
    assert d["memory"]["max_batch"] == max_batch


@pytest.mark.parametrize("args,expected", PINNED_TRANSFER, ids=lambda v: " ".join(v) if isinstance(v[0], str) else "")
def test_existing_transfers_are_unchanged(cli_json, args, expected):
    d = cli_json("transfer", "-m", args[0], "--link", "ib-ndr-400", "--tokens", "10000", *args[1:])
    nbytes, received, messages, seconds = expected
    assert d["bytes"] == pytest.approx(nbytes, rel=1e-12)
    assert d["receiver_bytes"] == pytest.approx(received, rel=1e-12)
    assert d["messages"] == messages
    assert d["seconds"] == pytest.approx(seconds, rel=1e-12)
