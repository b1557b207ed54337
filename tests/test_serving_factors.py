"""The factors serving runs can determine, and the values a base profile gives them."""

from __future__ import annotations

import pytest

from pdroof.calibration.serving_factors import base_value, factors_for
from pdroof.cost.runtime import resolve
from pdroof.spec.catalog import Catalog


@pytest.fixture(scope="module")
def cat():
    return Catalog()


def _names(factors):
    return [f.name for f in factors]


def test_a_dense_model_gets_no_expert_factors_and_an_mla_model_its_latent_attention(cat):
    acc = cat.get("accelerator", "h100-sxm")
    vllm = cat.get("runtime", "vllm")
    dense = _names(factors_for(acc, [cat.get("model", "llama-3.1-8b")], {"bf16"}, {"bf16"}, vllm))
    assert {"weights.bf16", "compute.bf16", "attention_decode", "request_latency_us"} <= set(dense)
    assert not any(n.startswith("moe_") for n in dense) and "attention_decode_mla" not in dense
    moe = _names(factors_for(acc, [cat.get("model", "deepseek-v3")], {"fp8"}, {"fp8"}, vllm))
    assert {"moe_weights.fp8", "moe_compute.fp8", "attention_decode_mla"} <= set(moe)
    assert "attention_decode" not in moe


def test_every_factor_starts_inside_its_bounds_and_says_which_runs_determine_it(cat):
    acc = cat.get("accelerator", "h100-sxm")
    for rt_id in ("vllm", "trtllm", "sglang"):
        rt = cat.get("runtime", rt_id)
        for f in factors_for(acc, [cat.get("model", "deepseek-v3")], {"fp8"}, {"fp8"}, rt):
            assert f.lo <= base_value(f, rt, acc) <= f.hi, (rt_id, f.name)
            assert f.needs and f.metric in (0, 1)


def test_latencies_are_read_in_microseconds_and_expert_factors_fall_back_to_the_dense_ones(cat):
    acc = cat.get("accelerator", "h100-sxm")
    model = [cat.get("model", "deepseek-v3")]
    vllm = cat.get("runtime", "vllm")
    by_name = {f.name: f for f in factors_for(acc, model, {"fp8"}, {"fp8"}, vllm)}
    assert base_value(by_name["step_latency_us"], vllm, acc) == pytest.approx(vllm.structure.step_latency_s * 1e6)
    assert base_value(by_name["moe_weights.fp8"], vllm, acc) == resolve(vllm, acc).moe_weights["fp8"]  # its own
    plain = cat.get("runtime", "pytorch")  # no expert factors: the dense one stands for them, as cost.inputs reads it
    by_name = {f.name: f for f in factors_for(acc, model, {"fp8"}, {"fp8"}, plain)}
    assert base_value(by_name["moe_weights.fp8"], plain, acc) == base_value(by_name["weights.fp8"], plain, acc)


def test_the_memory_reserve_is_fitted_as_the_engine_keeps_it_from_what_it_keeps_on_the_device(cat):
    """SGLang keeps an amount (13 GiB on an H100, 25.5 on a B200): the fit moves that amount, from the
    one that holds on the device; vLLM keeps a share of the device: the fit moves the share;
    TensorRT-LLM a share of what the weights leave: the fit moves that share."""
    model = [cat.get("model", "qwen3-32b")]
    for rt_id, acc_id, name, start in (("sglang", "h100-sxm", "memory_reserve_gib", 13.0),
                                       ("sglang", "b200", "memory_reserve_gib", 25.5),
                                       ("vllm", "h100-sxm", "memory_reserve_fraction", 0.1),
                                       ("trtllm", "h100-sxm", "memory_reserve_free_fraction", 0.1)):
        rt, acc = cat.get("runtime", rt_id), cat.get("accelerator", acc_id)
        reserve = [f for f in factors_for(acc, model, {"bf16"}, {"bf16"}, rt) if f.name.startswith("memory_reserve")]
        assert [f.name for f in reserve] == [name]
        assert base_value(reserve[0], rt, acc) == pytest.approx(start)
        assert reserve[0].lo < start < reserve[0].hi
