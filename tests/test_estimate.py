"""``estimate``: the JSON contract, precision paths, feasibility checks, and the physics end to end."""

from __future__ import annotations

import pytest

from pdroof.errors import PdroofError
from pdroof.estimate import estimate
from pdroof.precision import Precision, default_activations, plan


def test_json_contract(cli_json):
    d = cli_json("estimate", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--batch", "4", "--prompt", "1024")
    assert {"seconds", "flops", "bytes", "bound", "ops"} <= set(d["prefill"])
    assert {"step_seconds", "tokens_per_second", "bound", "ops"} <= set(d["decode"])
    assert {"weights_bytes", "kv_bytes_per_token", "max_batch"} <= set(d["memory"])
    assert d["inputs"]["weights"] == "bf16" and d["inputs"]["tp"] == 1 and d["inputs"]["batch"] == 4
    assert d["decode"]["tokens_per_second"] == pytest.approx(4 / d["decode"]["step_seconds"])
    assert sum(op["seconds"] for op in d["prefill"]["ops"]) == pytest.approx(d["prefill"]["seconds"])
    for op in d["prefill"]["ops"] + d["decode"]["ops"]:
        assert op["bound"] in ("compute", "memory", "link", "latency")
    assert d["prefill"]["bound"] == "compute" and d["decode"]["bound"] == "memory"


def test_table_and_csv_render(cli):
    code, out, _ = cli("estimate", "-m", "qwen3-32b", "--hardware", "h200-sxm", "--weights", "fp8", "--kv", "fp8")
    assert code == 0 and "prefill" in out and "largest batch" in out
    code, out, _ = cli("estimate", "-m", "qwen3-32b", "--hardware", "h200-sxm", "-f", "csv")
    assert code == 0 and out.splitlines()[0].startswith("stage,name,kind,seconds")


def test_activations_follow_weights(catalog):
    h100, a100 = catalog.get("accelerator", "h100-sxm"), catalog.get("accelerator", "a100-sxm-80g")
    assert default_activations(h100, "fp8") == "fp8"  # W8A8 on Hopper
    assert default_activations(h100, "int4") == "bf16"  # weight-only
    assert default_activations(a100, "fp8") == "bf16"  # no fp8 tensor cores: weight-only


def test_no_executable_path_is_infeasible(catalog, cli):
    a100 = catalog.get("accelerator", "a100-sxm-80g")
    with pytest.raises(PdroofError, match="no executable path for fp8 activations"):
        plan(a100, "fp8", "fp8")
    code, _, err = cli("estimate", "-m", "llama-3.1-8b", "--hardware", "ascend-910b", "--kv", "fp8")
    assert code == 1 and err.startswith("Error: infeasible: no executable path for fp8 KV cache on ascend-910b")


def test_tp_limits(catalog):
    m, acc, rt = (catalog.get("model", "llama-3.1-8b"), catalog.get("accelerator", "h100-sxm"),
                  catalog.get("runtime", "engine"))
    with pytest.raises(PdroofError, match="exceeds the scale-up domain"):
        estimate(m, acc, rt, Precision("bf16", "bf16", "bf16"), tp=16)
    with pytest.raises(PdroofError, match="does not divide"):
        estimate(m, acc, rt, Precision("bf16", "bf16", "bf16"), tp=3)


def _run(catalog, model="llama-3.1-70b", hw="h100-sxm", rt="engine", p=("bf16", "bf16", "bf16"), **kw):
    return estimate(catalog.get("model", model), catalog.get("accelerator", hw), catalog.get("runtime", rt),
                    Precision(*p), **kw)


def test_tp_splits_weights_and_speeds_decode(catalog):
    one, four = _run(catalog, tp=1, batch=8), _run(catalog, tp=4, batch=8)
    assert four["memory"]["weights_bytes"] == pytest.approx(one["memory"]["weights_bytes"] / 4, rel=1e-6)
    assert four["decode"]["step_seconds"] < one["decode"]["step_seconds"]
    assert any(op["name"] == "tp_comm" and op["bound"] == "link" for op in four["decode"]["ops"])
    assert one["memory"]["max_batch"] == 0 and not one["memory"]["fits"]  # 141 GB of weights on 80 GB


def test_fp8_and_int4_weights(catalog):
    bf16 = _run(catalog, "qwen3-32b", p=("bf16", "bf16", "bf16"), batch=8, prompt=4096)
    fp8 = _run(catalog, "qwen3-32b", p=("fp8", "fp8", "bf16"), batch=8, prompt=4096)
    int4 = _run(catalog, "qwen3-32b", p=("int4", "bf16", "bf16"), batch=8, prompt=4096)
    assert fp8["decode"]["step_seconds"] < bf16["decode"]["step_seconds"]
    assert int4["decode"]["step_seconds"] < bf16["decode"]["step_seconds"]
    assert int4["prefill"]["seconds"] > fp8["prefill"]["seconds"]  # W4A16 pays dequantisation at bf16 peak


def test_prefix_reduces_prefill(catalog):
    cold = _run(catalog, "llama-3.1-8b", prompt=8192)
    warm = _run(catalog, "llama-3.1-8b", prompt=2048, prefix=6144, context=8192)
    assert warm["prefill"]["seconds"] < cold["prefill"]["seconds"] / 3


def test_moe_decode_reads_few_experts_at_batch_1(catalog):
    one = _run(catalog, "mixtral-8x7b", batch=1)
    many = _run(catalog, "mixtral-8x7b", batch=64)
    b1 = next(o for o in one["decode"]["ops"] if o["name"] == "experts")["bytes"]
    b64 = next(o for o in many["decode"]["ops"] if o["name"] == "experts")["bytes"]
    assert b64 / b1 == pytest.approx(4.0, rel=0.05)  # 2 of 8 experts at batch 1, all 8 at batch 64


def test_mla_kv_is_not_split_by_tp(catalog):
    d = _run(catalog, "deepseek-v3", hw="h200-sxm", p=("fp8", "fp8", "fp8"), tp=8, batch=1, prompt=1024)
    assert d["memory"]["kv_bytes_per_token"] == 35_136


def test_bad_numbers_are_errors(cli):
    code, _, err = cli("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", "--batch", "0")
    assert code == 1 and "--batch must be at least 1" in err
    code, _, err = cli("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", "--batch", "many")
    assert code == 2 and "Traceback" not in err


@pytest.mark.parametrize("args", [
    ("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", "--weights", "fp7"),
    ("transfer", "-m", "llama-3.1-8b", "--link", "roce-400", "--kv", "fp7"),
    ("rank", "--kv", "fp7"),
    ("plan", "-m", "llama-3.1-8b", "--prefill", "h100-sxm", "--decode", "h200-sxm", "--prefill-kv", "fp7"),
])
def test_unknown_format_is_one_error_line(cli, args):
    code, _, err = cli(*args)
    assert code == 1 and "unknown format 'fp7'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_expert_parallelism_splits_experts_and_adds_all_to_all(catalog):
    one = _run(catalog, "deepseek-v3", hw="h200-sxm", p=("fp8", "fp8", "fp8"), tp=8, batch=16, prompt=1024)
    with pytest.raises(PdroofError, match="exceed the scale-up domain"):
        _run(catalog, "deepseek-v3", hw="h200-sxm", p=("fp8", "fp8", "fp8"), tp=8, ep=2)
    ep8 = _run(catalog, "qwen3-235b-a22b", hw="h200-sxm", p=("fp8", "fp8", "fp8"), tp=1, ep=8, batch=16, prompt=1024)
    tp1 = _run(catalog, "qwen3-235b-a22b", hw="h200-sxm", p=("fp8", "fp8", "fp8"), tp=1, batch=16, prompt=1024)
    assert ep8["memory"]["weights_bytes"] < tp1["memory"]["weights_bytes"] / 4
    assert any(op["name"] == "ep_comm" for op in ep8["decode"]["ops"])
    assert not any(op["name"] == "ep_comm" for op in one["decode"]["ops"])


@pytest.mark.parametrize("hw,w", [("h20", "bf16"), ("h100-sxm", "int4"), ("h20", "int4"), ("l40s", "fp8")])
def test_batch_one_decode_streams_weights(catalog, hw, w):
    """A batch-1 decode step is bound by weight streaming on every accelerator and format: the
    small-GEMM term never turns a GEMV compute-bound."""
    a = catalog.get("accelerator", hw)
    d = estimate(catalog.get("model", "llama-3.1-8b"), a, catalog.get("runtime", "engine"), plan(a, w), batch=1)
    assert all(op["bound"] == "memory" for op in d["decode"]["ops"] if op["kind"] == "gemm")
