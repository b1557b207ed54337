"""Derived model quantities against the figures published for each model."""

from __future__ import annotations

import pytest

from pdroof.cost.architecture import params_active, shape_of, summary

# id: (total params, active params, bf16 KV bytes per token); tolerance 0.1% on params.
EXPECTED = {
    "llama-3.1-8b": (8.03e9, 8.03e9, 131_072),
    "llama-3.1-70b": (70.55e9, 70.55e9, 327_680),
    "qwen3-32b": (32.76e9, 32.76e9, 262_144),
    "deepseek-v3": (671.0e9, 37.55e9, 70_272),
    "kimi-k2.5": (1026.4e9, 32.86e9, 70_272),
    "minimax-m2.5": (228.69e9, 10.42e9, 253_952),
    "qwen3-235b-a22b": (235.1e9, 22.19e9, 192_512),
    "mixtral-8x7b": (46.70e9, 12.88e9, 131_072),
    "gpt-oss-120b": (116.83e9, 5.13e9, 36_864),
    "llama-3.1-405b": (405.85e9, 405.85e9, 516_096),
    "qwen2.5-7b": (7.62e9, 7.62e9, 57_344),
    "qwen2.5-72b": (72.71e9, 72.71e9, 327_680),
    "qwen3-8b": (8.19e9, 8.19e9, 147_456),
    "qwen3.5-397b-a17b": (396.35e9, 17.35e9, 30_720),  # K/V of the 15 full-attention layers only
    "glm-5": (743.91e9, 40.83e9, 100_152),  # MLA latent + the indexer's FP8 key (132 B) x 78 layers
    "glm-5.1": (743.91e9, 40.83e9, 100_152),
}


@pytest.mark.parametrize("model_id", sorted(EXPECTED))
def test_published_numbers(catalog, model_id):
    total, active, kv = EXPECTED[model_id]
    m = catalog.get("model", model_id)
    s = shape_of(m)
    assert s.params_total == pytest.approx(total, rel=1e-3)
    assert params_active(m, s) == pytest.approx(active, rel=2e-3)
    assert s.kv_bytes_per_token("bf16") == kv
    assert s.kv_bytes_per_token("fp8") == (kv + s.index_key_bytes_per_token) / 2  # a DSA indexer key stays FP8


def test_exact_counts_match_reference_tallies(catalog):
    # computed_total in ../shared/reference/specs_models.yaml, to the parameter
    exact = {"llama-3.1-8b": 8_030_261_248, "qwen3-32b": 32_762_123_264, "deepseek-v3": 671_026_419_200,
             "qwen3-235b-a22b": 235_093_634_560, "gpt-oss-120b": 116_829_156_672,
             "llama-3.1-405b": 405_853_388_800, "qwen2.5-7b": 7_615_616_512, "qwen2.5-72b": 72_706_203_648,
             "qwen3-8b": 8_190_735_360, "llama-3.1-70b": 70_553_706_496}
    for model_id, n in exact.items():
        assert shape_of(catalog.get("model", model_id)).params_total == n, model_id


def test_gpt_oss_sliding_layers_cap_at_window(catalog):
    m = catalog.get("model", "gpt-oss-120b")
    s = shape_of(m)
    assert (s.sliding_layers, s.sliding_window_tokens) == (18, 128)
    short = s.kv_bytes_per_sequence("bf16", 100)
    long = s.kv_bytes_per_sequence("bf16", 10_000)
    assert short == 100 * 36_864 * 2  # below the window every layer grows
    assert long == 10_000 * 36_864 + 18 * 2048 * 128  # sliding layers hold at most 128 tokens
    assert summary(m, ("bf16",))["kv_bytes_sliding_max"]["bf16"] == 18 * 2048 * 128


def test_models_show_json_contract(cli_json):
    d = cli_json("models", "show", "deepseek-v3")
    assert d["id"] == "deepseek-v3"
    assert d["params_total"] == pytest.approx(671.0e9, rel=1e-3)
    assert d["params_active"] == pytest.approx(37.5e9, rel=5e-3)
    assert d["kv_bytes_per_token"]["bf16"] == 70_272 and d["kv_bytes_per_token"]["fp8"] == 35_136


def test_truncated_stack(catalog):
    m = catalog.get("model", "deepseek-v3")
    s = shape_of(m, layers=2)
    assert (s.dense_layers, s.moe_layers) == (2, 0)


def test_every_shipped_model_has_a_published_check(catalog):
    assert {m.id for m in catalog.all("model")} == set(EXPECTED)


def test_kv_projections_replicate_beyond_kv_heads(catalog):
    """Review D12: Qwen3-235B has 4 KV heads; at TP8 each rank holds Q and O over 8 but K and V
    over 4: 9.44 M attention-projection parameters per rank per layer (8.91 M when all split)."""
    from pdroof.cost.inputs import model_inputs
    from pdroof.cost.numeric import evaluate

    m = model_inputs(catalog.get("model", "qwen3-235b-a22b"))
    s = shape_of(catalog.get("model", "qwen3-235b-a22b"))
    assert s.kv_projection_params == 2 * 4096 * 4 * 128
    per_rank = (m["attn_params"] - m["kv_proj_params"]) / 8 + m["kv_proj_params"] / 4
    assert per_rank == pytest.approx(9.44e6, rel=2e-3)
    inputs = {**m, "tp": 8, "dp": 1, "moe_tp": 8, "moe_ep": 1, "weight_bytes": 1.0, "act_bytes": 2.0, "kv_bytes": 1.0, "hbm_bytes": 1e11,
              "mem_reserve": 0.1, "chunk_tokens": 1.0, "max_sequences": float("inf"), "mem_reserve_bytes": 0.0, "mem_reserve_free": 0.0, "batch": 1.0, "context_tokens": 1.0}
    only_attn = {**inputs, "dense_layers": 0, "moe_layers": 0, "embed_params": 0}
    assert evaluate("memory", only_attn)["weights_bytes"] == pytest.approx(m["layers"] * per_rank)
