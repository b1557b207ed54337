"""``pdroof.serving.stage.prefill_passes``: a prefill job in the passes its replica's budget takes
it in (prompts that fit sharing ⌈g·S/K⌉ passes, a longer prompt alone in ⌈S/K⌉ chunks)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdroof.cost.numeric import evaluate
from pdroof.cost.parallelism import Parallelism
from pdroof.cost.precision import Precision
from pdroof.serving.stage import prefill_passes, stage_inputs


def _inputs(catalog, model, runtime="engine", acc="h100-sxm", weights="bf16", tp=1, dp=1):
    p = Precision(weights, weights, weights)
    inputs, _ = stage_inputs(catalog.get("model", model), catalog.get("accelerator", acc),
                             catalog.get("runtime", runtime), p, tp, Parallelism(tp, dp) if dp > 1 else None)
    return inputs


def _one_pass(inputs, prompts, S, P, outputs=("seconds", "flops", "bytes")):
    return evaluate("prefill", {**inputs, "batch": prompts, "new_tokens": S, "prefix_tokens": P,
                                "context_tokens": P + S}, outputs)


@pytest.mark.parametrize("prompts, S, P", [(1, 8192, 0), (4, 2048, 0), (1, 100, 5000)])
def test_a_prompt_within_the_budget_is_one_pass(catalog, prompts, S, P):
    inputs = _inputs(catalog, "llama-3.1-8b")
    assert inputs["replica_chunk_tokens"] == 8192
    got, one = prefill_passes(inputs, prompts, S, P, ("seconds", "flops", "bytes")), _one_pass(inputs, prompts, S, P)
    assert got.pop("passes") == 1
    for k in got:
        assert got[k] == pytest.approx(float(one[k]), rel=1e-12), k


def test_prompts_beyond_the_budget_together_go_whole_in_as_many_passes_as_it_takes(catalog):
    """Eight 4,096-token prompts under an 8,192-token budget: four passes of two whole prompts (no
    chunk of one at a prefix); every output of the equations adds up over them."""
    inputs = _inputs(catalog, "llama-3.1-8b")
    got = prefill_passes(inputs, 8.0, 4096.0, 0.0, None)
    two = evaluate("prefill", {**inputs, "batch": 2.0, "new_tokens": 4096.0, "prefix_tokens": 0.0,
                               "context_tokens": 4096.0})
    assert got.pop("passes") == 4 and set(got) == set(two)
    for k in got:
        assert got[k] == pytest.approx(4 * float(two[k]), rel=1e-12), k


@settings(max_examples=60, deadline=None)
@given(S=st.integers(1, 120_000), P=st.integers(0, 8_000), model=st.sampled_from(["llama-3.1-8b", "deepseek-v3"]))
def test_a_longer_prompts_chunks_do_its_work_and_read_the_weights_again(catalog, S, P, model):
    """n = ⌈S/K⌉ passes of S/n tokens at the chunks' mean prefix: their FLOPs (GEMMs linear in the
    tokens, causal attention pairs S·P + S(S+1)/2) are the whole prompt's, each pass's logits aside; each pass reads the weights
    again, so the bytes and the time are no less than one pass's."""
    weights, acc, tp = ("bf16", "h100-sxm", 1) if model == "llama-3.1-8b" else ("fp8", "h200-sxm", 8)
    inputs = _inputs(catalog, model, acc=acc, weights=weights, tp=tp)
    K = inputs["replica_chunk_tokens"]
    got, whole = prefill_passes(inputs, 1.0, S, P, ("seconds", "flops", "bytes")), _one_pass(inputs, 1.0, S, P)
    n = max(1, -(-S // int(K)))
    # ... but for each pass's logits of its last position (2·hidden·vocab, parts in 10^5 of a prompt's)
    logits = 2.0 * inputs["hidden"] * inputs["vocab"] / inputs["tp"]
    assert got["flops"] - (n - 1) * logits == pytest.approx(float(whole["flops"]), rel=1e-9)
    assert got["bytes"] >= float(whole["bytes"]) * (1 - 1e-12)
    assert got["seconds"] >= float(whole["seconds"]) * (1 - 1e-12)
    # every pass streams the weights and pays its latencies: no pass is shorter than one token's
    assert got["seconds"] >= n * float(_one_pass(inputs, 1.0, 1, 0, ("seconds",))["seconds"]) * (1 - 1e-12)


def test_sglangs_dp_attention_replica_takes_its_share_of_the_chunk(catalog):
    """SGLang at DP8 on a B200: 16384 // 8 = 2048 tokens a replica's pass, so an 8,192-token prompt
    takes four passes (the chunks at prefixes 0, 2048, 4096 and 6144 summed, to within the mean
    prefix's linearisation); TensorRT-LLM's replica takes it in one."""
    sg = _inputs(catalog, "deepseek-v3", "sglang", "b200", "fp8", tp=1, dp=8)
    trt = _inputs(catalog, "deepseek-v3", "trtllm", "b200", "fp8", tp=1, dp=8)
    assert (sg["replica_chunk_tokens"], trt["replica_chunk_tokens"]) == (2048, 8192)
    chunks = sum(float(_one_pass(sg, 1.0, 2048, p, ("seconds",))["seconds"]) for p in (0, 2048, 4096, 6144))
    got = float(prefill_passes(sg, 1.0, 8192)["seconds"])
    assert got == pytest.approx(chunks, rel=0.01)
    assert got > float(_one_pass(sg, 1.0, 8192, 0, ("seconds",))["seconds"])
    assert float(prefill_passes(trt, 1.0, 8192)["seconds"]) == pytest.approx(
        float(_one_pass(trt, 1.0, 8192, 0, ("seconds",))["seconds"]), rel=1e-12)
    # arrays: a row per prompt length, each in its own number of passes
    S = np.array([1024.0, 2048.0, 2049.0, 8192.0])
    rows = prefill_passes(sg, 1.0, S)["seconds"]
    assert rows.shape == (4,) and np.all(np.diff(rows) > 0)
    assert prefill_passes(sg, 1.0, S)["passes"].tolist() == [1, 1, 2, 4]
    by_prefix = prefill_passes(sg, 1.0, 1000.0, np.array([0.0, 100.0, 5000.0]))
    assert by_prefix["passes"].shape == by_prefix["seconds"].shape == (3,)
    assert rows[2] > 2 * float(_one_pass(sg, 1.0, 1024.5, 0, ("seconds",))["seconds"])
