"""Hybrid linear attention (Qwen3.5's Gated DeltaNet), DeepSeek Sparse Attention (GLM-5), and the
numbers dense, GQA and MLA models gave before either existed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdroof.cost.architecture import params_active, shape_of, summary
from pdroof.cost.numeric import evaluate
from pdroof.cost.precision import Precision
from pdroof.serving.stage import stage_inputs
from pdroof.spec.errors import PdroofError
from pdroof.spec.kinds import MODEL
from pdroof.spec.schema import validate
from pdroof.spec.yamlio import read_yaml

# Pinned before hybrid and sparse layers were added (commit 69b5f3d): the same command must give the
# same numbers to rounding. (model, estimate arguments) -> prefill s, decode step s, KV B/token/device,
# KV B/sequence, max batch. The MoE models' prefill and EP decode were re-pinned when the experts'
# grouped-GEMM efficiency came to depend on the width of a device's expert slice and the dispatch
# to travel in the experts' input format (both changes of the MoE terms, not of attention). The max
# batches on H100 and H200 (TensorRT-LLM there) were re-pinned when its KV pool became 90% of the
# memory the weights and activations leave, rather than all but 5% of the device. Every prefill was
# re-pinned when estimate came to take its prompts in the passes the engine's 8,192-token budget
# takes them in (``stage.prefill_passes``: 4, 32, 4, 4 and 16 passes here; 1-3% longer).
# The TP cases were re-pinned when the all-reduce took two regimes, the engine's own kernel up to
# its switch size (at ``allreduce_link``, fitted up to the switch) and NCCL's above
# (``allreduce_large``): prefills 2-11% shorter, decode steps within 1%; the TP2 and TP4 ones again
# when the all-reduce took the factors measured at its own party count (``allreduce_parties``):
# prefills 3% and 1% longer (NCCL without NVLS at four and two H100s), decode steps within 0.4%.
PINNED = [
    (("deepseek-v3", "--hardware", "h200-sxm", "--tp", "8", "--weights", "fp8", "--kv", "fp8", "--batch", "8",
      "--prompt", "4096"),
     (1.775974032878449, 0.012589021345323019, 35136.0, 143917056.0, 404)),
    (("deepseek-v3", "--hardware", "h200-sxm", "--tp", "8", "--ep", "2", "--weights", "fp8", "--kv", "bf16",
      "--batch", "32", "--prompt", "16384"),
     (28.145839624500265, 0.030350373850026913, 70272.0, 1151336448.0, 164)),
    (("llama-3.1-70b", "--hardware", "h100-sxm", "--tp", "4", "--weights", "fp8", "--kv", "fp8", "--batch", "8",
      "--prompt", "4096"),
     (1.575693125213918, 0.010568765897674942, 40960.0, 167772160.0, 353)),
    (("llama-3.1-70b", "--hardware", "h100-sxm", "--tp", "2", "--weights", "bf16", "--kv", "bf16", "--batch", "1",
      "--prompt", "32768", "--prefix", "8192"),
     (5.342414180610197, 0.03082675465489117, 163840.0, 6710886400.0, 1)),
    (("gpt-oss-120b", "--hardware", "h100-sxm", "--weights", "fp8", "--kv", "fp8", "--batch", "16", "--prompt",
      "8192"),
     (2.5172081757480593, 0.020199179450953907, 18432.0, 153354240.0, 0)),
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


# --------------------------------------------------------------------------- the configs, by hand

MODELS = Path(__file__).resolve().parent.parent / "models"

# Qwen3.5-397B-A17B's text_config, and GLM-5's config.json, as published
QWEN = dict(layers=60, interval=4, hidden=4096, heads=32, kv_heads=2, head_dim=256, lin_k_heads=16, lin_v_heads=64,
            lin_k_dim=128, lin_v_dim=128, conv=4, experts=512, topk=10, expert_ffn=1024, shared_ffn=1024,
            vocab=248320)
GLM = dict(layers=78, dense=3, hidden=6144, heads=64, q_lora=2048, kv_lora=512, nope=192, rope=64, v=256,
           dense_ffn=12288, experts=256, topk=8, expert_ffn=2048, vocab=154880, index_heads=32, index_dim=128,
           index_topk=2048)


def _qwen_by_hand(c: dict) -> tuple[int, int]:
    """Total and active parameters of Qwen3.5-MoE, from the config and transformers' module shapes."""
    h, d = c["hidden"], c["head_dim"]
    full_layers = c["layers"] // c["interval"]
    linear_layers = c["layers"] - full_layers
    # Qwen3_5MoeAttention: q_proj (queries and output gate), k_proj, v_proj, o_proj, q_norm, k_norm
    attn = h * 2 * c["heads"] * d + 2 * h * c["kv_heads"] * d + c["heads"] * d * h + 2 * d
    # Qwen3_5MoeGatedDeltaNet: in_proj_qkv, in_proj_z, in_proj_b, in_proj_a, conv1d, dt_bias, A_log, norm, out_proj
    key, value = c["lin_k_heads"] * c["lin_k_dim"], c["lin_v_heads"] * c["lin_v_dim"]
    conv = 2 * key + value
    gdn = (h * conv + h * value + 2 * h * c["lin_v_heads"] + conv * c["conv"] + 2 * c["lin_v_heads"] + c["lin_v_dim"]
           + value * h)
    expert = 3 * h * c["expert_ffn"]
    # experts, the shared expert and its sigmoid gate, the router
    moe = c["experts"] * expert + 3 * h * c["shared_ffn"] + h + c["experts"] * h
    total = (full_layers * attn + linear_layers * gdn + c["layers"] * (moe + 2 * h) + 2 * c["vocab"] * h + h)
    return total, total - c["layers"] * (c["experts"] - c["topk"]) * expert


def _glm_by_hand(c: dict) -> tuple[int, int]:
    """Total parameters and active parameters without the input embedding of GLM-5, from the config."""
    h, H = c["hidden"], c["heads"]
    q = h * c["q_lora"] + c["q_lora"] + c["q_lora"] * H * (c["nope"] + c["rope"])
    kv = h * (c["kv_lora"] + c["rope"]) + c["kv_lora"] + c["kv_lora"] * H * (c["nope"] + c["v"])
    indexer = c["q_lora"] * c["index_heads"] * c["index_dim"] + h * c["index_dim"] + 2 * c["index_dim"] + h * c[
        "index_heads"]
    attn = q + kv + H * c["v"] * h + indexer + 2 * h
    expert = 3 * h * c["expert_ffn"]
    moe = (c["experts"] + 1) * expert + c["experts"] * h + c["experts"]  # + shared, router, correction bias
    moe_layers = c["layers"] - c["dense"]
    total = (c["layers"] * attn + c["dense"] * 3 * h * c["dense_ffn"] + moe_layers * moe + 2 * c["vocab"] * h + h)
    return total, total - moe_layers * (c["experts"] - c["topk"]) * expert - c["vocab"] * h


def test_params_from_the_configs_by_hand(catalog):
    for model_id, by_hand in (("qwen3.5-397b-a17b", _qwen_by_hand(QWEN)), ("glm-5", _glm_by_hand(GLM)),
                              ("glm-5.1", _glm_by_hand(GLM))):
        m = catalog.get("model", model_id)
        s = shape_of(m)
        assert (s.params_total, params_active(m, s)) == by_hand, model_id
    assert _qwen_by_hand(QWEN) == (396_346_350_336, 17_349_040_896)  # card: 397B (with the vision encoder), 17B
    assert _glm_by_hand(GLM) == (743_911_218_432, 40_833_146_112)  # card: 744B, 40B


def test_glm_with_its_mtp_layer_is_the_published_checkpoint(catalog):
    """GLM-5.1's checkpoint holds 753,864,139,008 parameters: the 78 layers and one MTP layer (a MoE
    decoder layer with its indexer, eh_proj 2h -> h, enorm, hnorm and shared_head.norm)."""
    s = shape_of(catalog.get("model", "glm-5.1"))
    h = GLM["hidden"]
    mtp = (s.attention_params + s.routed_experts * s.expert_params + s.shared_expert_params + s.router_params
           + 2 * h * h + 3 * h)
    assert s.params_total + mtp == 753_864_139_008


def test_kv_per_token_and_state_per_sequence_by_hand(catalog):
    q = QWEN
    full_layers = q["layers"] // q["interval"]
    kv_qwen = full_layers * 2 * q["kv_heads"] * q["head_dim"] * 2  # BF16 K and V, full layers only
    conv = 2 * q["lin_k_heads"] * q["lin_k_dim"] + q["lin_v_heads"] * q["lin_v_dim"]
    state = (q["layers"] - full_layers) * (q["lin_v_heads"] * q["lin_k_dim"] * q["lin_v_dim"] * 4  # fp32 matrices
                                           + conv * (q["conv"] - 1) * 2)  # bf16 convolution window
    s = shape_of(catalog.get("model", "qwen3.5-397b-a17b"))
    assert (s.kv_bytes_per_token("bf16"), s.kv_bytes_per_token("fp8")) == (kv_qwen, kv_qwen / 2) == (30_720, 15_360)
    assert s.state_bytes_per_sequence == state == 192_061_440  # 183.2 MiB whatever the length
    assert s.kv_bytes_per_sequence("bf16", 1000) == 1000 * kv_qwen + state

    g = GLM
    index_key = g["index_dim"] * 1 + 4 * (g["index_dim"] // 128)  # FP8 key and one fp32 scale per 128: 132 B
    kv_glm = g["layers"] * ((g["kv_lora"] + g["rope"]) * 2 + index_key)
    s = shape_of(catalog.get("model", "glm-5"))
    assert s.kv_bytes_per_token("bf16") == kv_glm == 100_152
    assert s.kv_bytes_per_token("fp8") == g["layers"] * (g["kv_lora"] + g["rope"] + index_key) == 55_224
    assert s.state_bytes_per_sequence == 0


def test_models_show_names_the_new_layers(cli_json):
    q = cli_json("models", "show", "qwen3.5-397b-a17b")
    assert (q["full_attention_layers"], q["linear_attention_layers"]) == (15, 45)
    assert q["state_bytes_per_sequence"] == 192_061_440 and q["kv_bytes_per_token"]["bf16"] == 30_720
    g = cli_json("models", "show", "glm-5")
    assert (g["sparse_attention_layers"], g["topk_tokens"], g["index_key_bytes_per_token"]) == (78, 2048, 78 * 132)


def _model(model_id: str, drop: tuple[str, ...]):
    """A shipped model spec without some of its attention blocks (a counterfactual to compare against)."""
    data = read_yaml(MODELS / f"{model_id}.yaml")
    data["attention"] = {k: v for k, v in data["attention"].items() if k not in drop}
    return validate(MODEL, data, f"{model_id} (edited)")


def _inputs(catalog, model, tp=8, acc="h200-sxm", kv="fp8"):
    m = catalog.get("model", model) if isinstance(model, str) else model
    base, _ = stage_inputs(m, catalog.get("accelerator", acc), catalog.get("runtime", "trtllm"),
                           Precision("fp8", "fp8", kv), tp)
    return base


def test_the_state_is_charged_per_sequence_in_memory(catalog):
    s = shape_of(catalog.get("model", "qwen3.5-397b-a17b"))
    for tp in (1, 8):
        base = _inputs(catalog, "qwen3.5-397b-a17b", tp)
        for tokens in (1.0, 4096.0, 131072.0):
            mem = evaluate("memory", {**base, "batch": 1.0, "context_tokens": tokens})
            want = tokens * 15_360 / min(tp, 2) + s.state_bytes_per_sequence / min(tp, 16)
            assert float(mem["kv_sequence_bytes"]) == pytest.approx(want, rel=1e-12)


def test_estimate_runs_for_the_new_models(cli_json):
    for model_id, per_token in (("qwen3.5-397b-a17b", 15_360 / 2), ("glm-5", 55_224), ("glm-5.1", 55_224)):
        d = cli_json("estimate", "-m", model_id, "--hardware", "h200-sxm", "--tp", "8", "--weights", "fp8",
                     "--kv", "fp8", "--batch", "8", "--prompt", "8192")
        assert d["prefill"]["seconds"] > 0 and d["decode"]["tokens_per_second"] > 0
        assert d["memory"]["kv_bytes_per_token"] == per_token and d["memory"]["fits"]


# --------------------------------------------------------------------------- linear attention

def _decode(base, L, batch=32.0):
    return evaluate("decode", {**base, "batch": batch, "new_tokens": 1.0, "prefix_tokens": 0.0,
                               "context_tokens": float(L)})


def test_linear_layers_decode_cost_does_not_depend_on_context(catalog):
    base = {**_inputs(catalog, "qwen3.5-397b-a17b"), "full_layers": 0.0}  # the 45 linear layers alone
    short, long = _decode(base, 1024), _decode(base, 1_000_000)
    for key in ("attention_seconds", "attention_bytes", "attention_flops"):
        assert float(long[key]) == float(short[key]), key
    # each step reads and writes every sequence's state once: 2 x 4,268,032 B per layer, 1/8 per device
    assert float(short["attention_bytes"]) >= 45 * 32 * 2 * 4_268_032 / 8


def test_hybrid_decode_is_nearly_flat_in_context_against_full_attention(catalog):
    """Qwen3.5 with its 45 Gated DeltaNet layers against the same model with all 60 layers full
    attention: its KV read grows with context at exactly 15/60 the rate, and a step at 128K costs
    far less more than at 4K."""
    hybrid = _inputs(catalog, "qwen3.5-397b-a17b")
    full = _inputs(catalog, _model("qwen3.5-397b-a17b", drop=("linear_attention",)))
    assert (full["full_layers"], full["linear_layers"]) == (60, 0)
    grow = {name: float(_decode(b, 131072)["attention_bytes"] - _decode(b, 4096)["attention_bytes"])
            for name, b in (("hybrid", hybrid), ("full", full))}
    assert grow["hybrid"] == pytest.approx(grow["full"] * 15 / 60, rel=1e-12)
    step = {name: (float(_decode(b, 4096)["seconds"]), float(_decode(b, 131072)["seconds"]))
            for name, b in (("hybrid", hybrid), ("full", full))}
    hybrid_rise, full_rise = (long / short - 1 for short, long in step.values())
    assert hybrid_rise < 0.3 * full_rise
    assert step["hybrid"][1] < step["full"][1] / 2  # at 128K the hybrid step is less than half


def test_linear_layers_prefill_is_linear_in_the_prompt(catalog):
    base = {**_inputs(catalog, "qwen3.5-397b-a17b"), "full_layers": 0.0, "batch": 1.0, "prefix_tokens": 0.0}
    flops = [float(evaluate("prefill", {**base, "new_tokens": n, "context_tokens": n})["attention_flops"])
             for n in (8192.0, 16384.0)]
    assert flops[1] == pytest.approx(2 * flops[0], rel=1e-12)
    # chunked delta rule, per token per layer: H·(6·dk·dv + C·(6·dk + 4·dv) + C²/3) + 2·K·conv, over 8 devices
    per_token = 64 * (6 * 128 * 128 + 64 * (6 * 128 + 4 * 128) + 64 * 64 / 3) + 2 * 4 * 12288
    assert flops[0] == pytest.approx(45 * 8192 * per_token / 8, rel=1e-12)


def test_the_transfer_moves_the_state(cli_json):
    d = cli_json("transfer", "-m", "qwen3.5-397b-a17b", "--link", "ib-ndr-400", "--tokens", "10000", "--kv", "bf16",
                 "--page-tokens", "16")
    assert d["bytes"] == pytest.approx(10000 * 30_720 + 192_061_440, rel=1e-12)
    assert d["messages"] == 2 * 15 * 625 + 2 * 45  # K and V pages of the full layers, two state tensors per linear
    g = cli_json("transfer", "-m", "glm-5", "--link", "ib-ndr-400", "--tokens", "10000", "--kv", "bf16")
    assert g["bytes"] == pytest.approx(10000 * 100_152, rel=1e-12)  # latent and indexer keys
    assert g["messages"] == 78 * 2  # per layer: the latent and the indexer keys


# --------------------------------------------------------------------------- DeepSeek sparse attention

def test_dsa_decode_reads_at_most_topk_tokens_of_latent(catalog):
    base = _inputs(catalog, "glm-5")
    real = {L: float(_decode(base, L)["attention_bytes"]) for L in (1024, 2048, 4096, 131072)}
    # the indexer reads every cached key (132 B) and moves an fp32 score (written, read back) per token ...
    indexer = {L: 78 * (132 + 8) * 32 * L for L in real}
    # ... and the rest, the latent the attention reads, is flat beyond index_topk = 2048
    latent = {L: real[L] - indexer[L] for L in real}
    assert latent[1024] < latent[2048]
    assert latent[2048] == pytest.approx(latent[4096], rel=1e-12) and latent[4096] == pytest.approx(latent[131072],
                                                                                                   rel=1e-12)
    # against DeepSeek-V3 (dense MLA, same latent), the step's KV read at 128K is a small fraction
    dense = _inputs(catalog, "deepseek-v3")
    assert real[131072] / 78 < 0.3 * float(_decode(dense, 131072)["attention_bytes"]) / 61


def test_dsa_prefill_scores_capped_pairs_and_every_pair_in_the_indexer(catalog):
    base = _inputs(catalog, "glm-5", tp=1)
    S, p, k = 3000, 500, 2048
    out = evaluate("prefill", {**base, "batch": 1.0, "new_tokens": float(S), "prefix_tokens": float(p),
                               "context_tokens": float(S + p)})
    attended = sum(min(k, p + i) for i in range(1, S + 1))
    scored = sum(p + i for i in range(1, S + 1))
    per_pair = 2 * 64 * (576 + 512)  # MQA-mode MLA: 576-wide q·k and 512-wide p·v per head
    index_pair = 2 * 32 * (128 + 1)  # 32 heads of 128, and the weighted sum over heads
    assert float(out["attention_flops"]) == pytest.approx(78 * (per_pair * attended + index_pair * scored),
                                                          rel=1e-12)


def test_schema_refuses_what_is_not_modelled():
    data = read_yaml(MODELS / "qwen3.5-397b-a17b.yaml")
    bad = {**data, "attention": {**data["attention"], "linear_attention": {
        **data["attention"]["linear_attention"], "value_heads": 40}}}
    with pytest.raises(PdroofError, match="not divisible by key_heads"):
        validate(MODEL, bad, "x")
    both = {**data, "attention": {**data["attention"], "sliding_window": {"window_tokens": 128,
                                                                           "pattern": ["sliding", "full"]}}}
    with pytest.raises(PdroofError, match="cannot be combined"):
        validate(MODEL, both, "x")
    gqa_dsa = {**data, "attention": {k: v for k, v in data["attention"].items() if k != "linear_attention"}}
    gqa_dsa["attention"]["sparse_attention"] = {"index_heads": 32, "index_head_dim": 128, "topk_tokens": 2048}
    with pytest.raises(PdroofError, match="needs kind mla"):
        validate(MODEL, gqa_dsa, "x")


def test_summary_keeps_its_contract_for_old_models(catalog):
    d = summary(catalog.get("model", "llama-3.1-70b"), ("bf16",))
    assert not {"linear_attention_layers", "sparse_attention_layers", "state_bytes_per_sequence"} & set(d)
