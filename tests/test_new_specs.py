"""Kimi K2.5, MiniMax-M2.5, B300 and GB300: counts against the published figures and the configs,
and ``estimate`` end to end on the new accelerators."""

from __future__ import annotations

import pytest

from pdroof.cost.architecture import params_active, shape_of

NEW_MODELS = ("kimi-k2.5", "minimax-m2.5")
NEW_ACCELERATORS = ("b300", "gb300")

# The publisher's figures, and the tolerance each is checked at. Model cards round hard: Kimi K2.5's
# README says "1T" total / "32B" activated (computed 1.026T / 32.86B, 2.6% / 2.7% over), MiniMax-M2's
# "230B" total / "10B" active (computed 228.7B / 10.42B without the input embedding, 0.6% / 4.2%).
CARD = {
    #               total    active  rel tol total, active
    "kimi-k2.5": (1.0e12, 32e9, 0.03, 0.03),
    "minimax-m2.5": (230e9, 10e9, 0.01, 0.05),
}

# The config.json numbers (text_config for Kimi K2.5), as published.
KIMI = dict(layers=61, hidden=7168, heads=64, q_lora=1536, kv_lora=512, nope=128, rope=64, v=128,
            dense_ffn=18432, first_dense=1, experts=384, topk=8, shared=1, expert_ffn=2048, vocab=163840)
MINIMAX = dict(layers=62, hidden=3072, heads=48, kv_heads=8, head_dim=128, experts=256, topk=8,
               expert_ffn=1536, vocab=200064)


def _kimi_by_hand(c: dict) -> tuple[int, int]:
    """Total and active parameters of a DeepSeek-V3-style MLA MoE, tallied from the config."""
    h = c["hidden"]
    q = h * c["q_lora"] + c["q_lora"] + c["q_lora"] * c["heads"] * (c["nope"] + c["rope"])
    kv = h * (c["kv_lora"] + c["rope"]) + c["kv_lora"] + c["kv_lora"] * c["heads"] * (c["nope"] + c["v"])
    attn = q + kv + c["heads"] * c["v"] * h + 2 * h  # + o_proj and the two RMSNorms
    expert = 3 * h * c["expert_ffn"]
    moe = (c["experts"] + c["shared"]) * expert + c["experts"] * h + c["experts"]  # router + correction bias
    moe_layers = c["layers"] - c["first_dense"]
    total = (c["layers"] * attn + c["first_dense"] * 3 * h * c["dense_ffn"] + moe_layers * moe
             + 2 * c["vocab"] * h + h)
    return total, total - moe_layers * (c["experts"] - c["topk"]) * expert


def _minimax_by_hand(c: dict) -> tuple[int, int]:
    """Total parameters and active parameters without the input embedding, from the config (per-head
    q/k norm as the schema counts it)."""
    h, d = c["hidden"], c["head_dim"]
    attn = 2 * h * c["heads"] * d + 2 * h * c["kv_heads"] * d + 2 * d + 2 * h
    expert = 3 * h * c["expert_ffn"]
    moe = c["experts"] * expert + c["experts"] * h + c["experts"]
    total = c["layers"] * (attn + moe) + 2 * c["vocab"] * h + h
    return total, total - c["layers"] * (c["experts"] - c["topk"]) * expert - c["vocab"] * h


@pytest.mark.parametrize("model_id", NEW_MODELS)
def test_params_match_the_model_card(catalog, model_id):
    total, active, tol_total, tol_active = CARD[model_id]
    m = catalog.get("model", model_id)
    s = shape_of(m)
    assert s.params_total == pytest.approx(total, rel=tol_total)
    assert params_active(m, s) == pytest.approx(active, rel=tol_active)


def test_params_match_a_tally_of_the_config(catalog):
    for model_id, by_hand in (("kimi-k2.5", _kimi_by_hand(KIMI)), ("minimax-m2.5", _minimax_by_hand(MINIMAX))):
        m = catalog.get("model", model_id)
        s = shape_of(m)
        assert (s.params_total, params_active(m, s)) == by_hand, model_id
    assert _kimi_by_hand(KIMI) == (1_026_408_232_448, 32_861_500_928)
    assert _minimax_by_hand(MINIMAX) == (228_689_336_320, 10_415_527_936)


def test_kv_bytes_per_token_from_the_config(catalog):
    # MLA caches the latent and the decoupled rope key: (kv_lora_rank + qk_rope_head_dim) per layer
    kimi = (KIMI["kv_lora"] + KIMI["rope"]) * KIMI["layers"]
    # GQA caches K and V for every KV head, in all 62 layers (attn_type_list all full attention)
    minimax = 2 * MINIMAX["kv_heads"] * MINIMAX["head_dim"] * MINIMAX["layers"]
    for model_id, elements in (("kimi-k2.5", kimi), ("minimax-m2.5", minimax)):
        s = shape_of(catalog.get("model", model_id))
        assert s.kv_bytes_per_token("bf16") == 2 * elements, model_id
        assert s.kv_bytes_per_token("fp8") == elements, model_id
    assert (2 * kimi, 2 * minimax) == (70_272, 253_952)


def test_models_are_what_the_configs_say(catalog):
    kimi, minimax = catalog.get("model", "kimi-k2.5"), catalog.get("model", "minimax-m2.5")
    assert kimi.attention.kind == "mla" and kimi.max_context == 262_144 and kimi.moe.dense_layers == 1
    assert minimax.attention.kind == "gqa" and minimax.attention.sliding_window is None
    assert minimax.max_context == 196_608 and not minimax.active_params_count_embedding


@pytest.mark.parametrize("acc_id,fp4,fp8,int8,domain,nic", [
    ("b300", 15_000, 4_500, 153.5, 8, 800),
    ("gb300", 15_000, 5_000, 165, 72, 800),
])
def test_blackwell_ultra_numbers(catalog, acc_id, fp4, fp8, int8, domain, nic):
    a = catalog.get("accelerator", acc_id)
    peaks = a.dense_flops_per_s
    assert (peaks.fp4, peaks.fp8, peaks.int8) == pytest.approx((fp4 * 1e12, fp8 * 1e12, int8 * 1e12))
    assert peaks.int8 < peaks.fp8 / 25  # Blackwell Ultra's cut INT8, unlike B200/GB200
    assert "int8" not in a.precision_paths.activations
    assert a.memory.bandwidth_bytes_per_s == 8e12 and a.memory.capacity_gib_bytes == 288 * 2**30
    assert a.memory.capacity_bytes < a.memory.capacity_gib_bytes  # what nvidia-smi reports
    assert a.scale_up.kind == "nvlink5" and a.scale_up.bandwidth_bytes_per_s == 900e9
    assert a.scale_up.domain_size == domain and a.scale_out_bytes_per_s == nic * 1e9 / 8
    assert a.price_usd_per_hour is None or a.provenance["price_usd_per_hour"]["source"]
    for path, prov in a.provenance.items():  # every sourced number names its source and its basis
        assert prov.get("source") and prov.get("basis"), path


@pytest.mark.parametrize("acc_id", NEW_ACCELERATORS)
@pytest.mark.parametrize("model_id,tp,kv_per_device", [
    ("kimi-k2.5", 8, 35_136),  # FP8 MLA latent, not split by TP
    ("minimax-m2.5", 4, 126_976 // 4),  # FP8 K/V, 8 KV heads over 4 devices
])
def test_estimate_runs(cli_json, acc_id, model_id, tp, kv_per_device):
    d = cli_json("estimate", "-m", model_id, "--hardware", acc_id, "--tp", str(tp), "--weights", "fp8",
                 "--kv", "fp8", "--batch", "8", "--prompt", "4096")
    assert (d["inputs"]["model"], d["inputs"]["hardware"], d["inputs"]["tp"]) == (model_id, acc_id, tp)
    assert d["prefill"]["seconds"] > 0 and d["decode"]["tokens_per_second"] > 0
    assert d["memory"]["fits"] and d["memory"]["max_batch"] >= 8
    assert d["memory"]["kv_bytes_per_token"] == kv_per_device


def test_every_price_names_its_source_and_date(catalog):
    """A price is a public on-demand listing: its source is named and it is dated (or says it is not)."""
    import re

    priced = [a for a in catalog.all("accelerator") if a.price_usd_per_hour]
    assert len(priced) >= 12
    for a in priced:
        where = a.provenance["price_usd_per_hour"]
        text = f"{where.get('source', '')} {where.get('note', '')}"
        assert where.get("source") and re.search(r"20[12]\d|undated|no date", text), a.id
