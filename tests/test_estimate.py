"""``estimate``: the JSON contract, precision paths, feasibility checks, and the physics end to end."""

from __future__ import annotations

import pytest

from pdroof.cost.precision import Precision, default_activations, infeasible_reason, plan
from pdroof.serving.estimate import estimate
from pdroof.spec.errors import PdroofError


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
    assert code == 1 and "--batch must be from 1 to 1,000,000, not 0" in err
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
    fp8 = ("fp8", "fp8", "fp8")
    one = _run(catalog, "deepseek-v3", hw="h200-sxm", p=fp8, tp=8, batch=16, prompt=1024)
    ep8 = _run(catalog, "qwen3-235b-a22b", hw="h200-sxm", p=fp8, tp=1, dp=8, moe_ep=8, batch=16, prompt=1024)
    tp1 = _run(catalog, "qwen3-235b-a22b", hw="h200-sxm", p=fp8, tp=1, batch=16, prompt=1024)
    assert ep8["memory"]["weights_bytes"] < tp1["memory"]["weights_bytes"] / 4
    assert any(op["name"] == "ep_comm" for op in ep8["decode"]["ops"])
    assert not any(op["name"] == "ep_comm" for op in one["decode"]["ops"])
    assert ep8["inputs"]["moe_tp"] == 1 and ep8["inputs"]["devices"] == 8 and ep8["inputs"]["nodes"] == 1


def test_the_experts_split_must_cover_the_instance(catalog):
    with pytest.raises(PdroofError, match=r"moe_tp 2 × moe_ep 2 must equal"):
        _run(catalog, "deepseek-v3", hw="h200-sxm", p=("fp8", "fp8", "fp8"), tp=2, dp=4, moe_tp=2, moe_ep=2)
    with pytest.raises(PdroofError, match="does not divide the 256 experts"):
        _run(catalog, "deepseek-v3", hw="h200-sxm", p=("fp8", "fp8", "fp8"), tp=1, dp=6, moe_ep=6)
    dense = _run(catalog, "llama-3.1-70b", tp=1, dp=2, moe_ep=2, batch=2)  # a dense model ignores the experts' split
    assert dense["inputs"]["moe_ep"] == 1 and dense["inputs"]["devices"] == 2


def test_bad_split_flags_are_named(cli):
    for args, flag in ((("--dp", "0"), "--dp"), (("--moe-ep", "0"), "--moe-ep"), (("--moe-tp", "0"), "--moe-tp"),
                       (("--ep", "0"), "--ep")):
        code, _, err = cli("estimate", "-m", "deepseek-v3", "--hardware", "h200-sxm", *args)
        assert code in (1, 2) and flag in err and "at least 1" in err and len(err.strip().splitlines()) <= 3, err


def test_dp_attention_replicas_share_the_instances_batch(catalog):
    """--batch counts the instance's sequences: each of the dp replicas holds its share and its own
    KV, so the instance admits dp times a replica's batch and decodes batch tokens a step."""
    fp8 = ("fp8", "fp8", "fp8")
    dp8 = _run(catalog, "deepseek-v3", hw="h200-sxm", p=fp8, tp=1, dp=8, moe_ep=8, batch=64, prompt=1024)
    dp8_8 = _run(catalog, "deepseek-v3", hw="h200-sxm", p=fp8, tp=1, dp=8, moe_ep=8, batch=8, prompt=1024)
    assert dp8["decode"]["tokens_per_second"] == pytest.approx(64 / dp8["decode"]["step_seconds"])
    assert dp8["memory"]["max_batch"] % 8 == 0
    # a replica's attention sees its 8 sequences: far less than 8x the one-sequence replicas' step
    assert dp8["decode"]["step_seconds"] < 3 * dp8_8["decode"]["step_seconds"]


def test_dp_attention_without_expert_parallelism_gathers_the_tokens(catalog):
    """gpt-oss under DP4 with its experts split four ways (moe_tp 4): the replicas gather their
    tokens around the experts (a collective, where TP4 alone has only its all-reduces)."""
    fp4 = ("fp4", "fp8", "fp8")
    dp4 = _run(catalog, "gpt-oss-120b", hw="b200", p=fp4, tp=1, dp=4, batch=64, prompt=1024)
    tp4 = _run(catalog, "gpt-oss-120b", hw="b200", p=fp4, tp=4, batch=64, prompt=1024)
    assert dp4["inputs"]["moe_tp"] == 4 and dp4["inputs"]["moe_ep"] == 1
    comm = {op["name"]: op["seconds"] for op in dp4["decode"]["ops"]}
    assert comm.get("ep_comm", 0) > 0 and "ep_comm" not in {op["name"] for op in tp4["decode"]["ops"]}
    experts = {r["inputs"]["tp"]: r for r in (dp4, tp4)}
    assert experts[1]["memory"]["weights_bytes"] > experts[4]["memory"]["weights_bytes"]  # attention replicated


def test_an_instance_wider_than_a_node_crosses_the_scale_out_network(catalog):
    fp8 = ("fp8", "fp8", "fp8")
    node = _run(catalog, "deepseek-v3", hw="h200-sxm", p=fp8, tp=1, dp=8, moe_ep=8, batch=64, prompt=1024)
    two = _run(catalog, "deepseek-v3", hw="h200-sxm", p=fp8, tp=1, dp=16, moe_ep=16, batch=128, prompt=1024)
    assert two["inputs"]["nodes"] == 2 and two["inputs"]["devices"] == 16

    def comm(r):
        return next(op for op in r["prefill"]["ops"] if op["name"] == "ep_comm")

    # the same bytes per device (64 tokens a replica) take longer over the NIC than over NVLink
    assert comm(two)["seconds"] > 2 * comm(node)["seconds"]
    assert two["memory"]["weights_bytes"] < node["memory"]["weights_bytes"]


@pytest.mark.parametrize("hw,w", [("h20", "bf16"), ("h100-sxm", "int4"), ("h20", "int4"), ("l40s", "fp8")])
def test_batch_one_decode_streams_weights(catalog, hw, w):
    """A batch-1 decode step is bound by weight streaming on every accelerator and format: the
    small-GEMM term never turns a GEMV compute-bound."""
    a = catalog.get("accelerator", hw)
    d = estimate(catalog.get("model", "llama-3.1-8b"), a, catalog.get("runtime", "engine"), plan(a, w), batch=1)
    assert all(op["bound"] == "memory" for op in d["decode"]["ops"] if op["kind"] == "gemm")


def _decode(catalog, hw, weights, tp=1, batch=1, model="llama-3.1-70b"):
    a = catalog.get("accelerator", hw)
    return estimate(catalog.get("model", model), a, catalog.get("runtime", "engine"), plan(a, weights, kv="fp8"),
                    tp=tp, batch=batch, prompt=2048)


@pytest.mark.parametrize("hw", ["h100-sxm", "h200-sxm"])
def test_int8_takes_fp8s_measured_factors_on_hopper(catalog, hw):
    """Review D2: INT8 W8A8 runs on the same Hopper tensor path as FP8: without a measurement of
    its own it takes FP8's (never the plain roofline and the copy efficiency), and says so."""
    fp8, int8 = _decode(catalog, hw, "fp8", tp=2, batch=32), _decode(catalog, hw, "int8", tp=2, batch=32)
    assert int8["decode"]["step_seconds"] == pytest.approx(fp8["decode"]["step_seconds"], rel=1e-12)
    assert int8["prefill"]["seconds"] == pytest.approx(fp8["prefill"]["seconds"], rel=1e-12)
    origin = int8["inputs"]["efficiency_origin"]
    assert "as fp8" in origin["weights.int8"] and "as fp8" in origin["gemm_half_rows.int8"]


@pytest.mark.parametrize("batch", [256, 1024])
def test_weight_only_int4_computes_no_faster_than_bf16(catalog, batch):
    """Review D2: W4A16 runs bf16 MMA plus a dequantisation: where its GEMMs are compute-bound its
    compute is at least the bf16 GEMM's (it was 2x faster with M½ = 0). At small batches its M½ is
    capped so that one-row GEMMs stay weight-bound, as Marlin-class kernels keep them
    (test_weight_only_small_batch_speed_up_as_marlin_measures)."""
    def ffn_compute(w):
        d = _decode(catalog, "h200-sxm", w, tp=2, batch=batch)
        return next(op["compute_seconds"] for op in d["decode"]["ops"] if op["name"] == "ffn")

    assert ffn_compute("int4") >= ffn_compute("bf16")


def test_unprofiled_siblings_never_beat_profiled_silicon(catalog):
    """Review D2: an H20 (4.0 TB/s) must not decode faster than an H200 (4.8 TB/s): it takes the
    Hopper entries' weight-streaming efficiency, not the copy efficiency."""
    for batch in (1, 32):
        h20 = _decode(catalog, "h20", "fp8", tp=2, batch=batch)["decode"]["step_seconds"]
        h200 = _decode(catalog, "h200-sxm", "fp8", tp=2, batch=batch)["decode"]["step_seconds"]
        assert h20 > h200, batch
    origin = _decode(catalog, "h20", "fp8")["inputs"]["efficiency_origin"]
    assert "same family" in origin["weights.fp8"]


def test_no_factor_falls_back_to_the_optimistic_bound(catalog):
    """Review D2: for every accelerator and executable weight format, η_W is never the copy
    efficiency and M½ is never 0 where the runtime knows a value for any silicon."""
    rt = catalog.get("runtime", "engine")
    from pdroof.cost.inputs import gemv_ridge_rows
    from pdroof.serving.stage import stage_inputs

    best = max(v for e in rt.profiles.values() for v in e.weights.values())
    assert best < min(e.memory for e in rt.profiles.values() if e.memory)  # below every copy efficiency
    for a in catalog.all("accelerator"):
        for w in a.precision_paths.weights:
            p = Precision(w, default_activations(a, w), a.precision_paths.kv[0])
            if infeasible_reason(a, p):
                continue
            inputs, _ = stage_inputs(catalog.get("model", "llama-3.1-8b"), a, rt, p, 1)
            assert inputs["eff_weights"] <= best, (a.id, w)  # never above the best measured weight streaming
            # the small-GEMM penalty the model uses: only the GEMV ridge may lower it
            assert inputs["gemm_half_rows"] >= min(107.0, gemv_ridge_rows(inputs) - 1) - 1e-9, (a.id, w)


def _tp_comm(d):
    return next((op["seconds"] for op in d["decode"]["ops"] if op["name"] == "tp_comm"), 0.0)


def test_ring_all_reduce_pays_every_hop(catalog):
    """Review D4: a ring all-reduce has 2(t−1) dependent steps of one hop each, and NVLink 5
    is no slower per hop than NVLink 4: a B200 all-reduce is not slower than an H100's."""
    h100 = _decode(catalog, "h100-sxm", "fp8", tp=8, batch=32)
    b200 = _decode(catalog, "b200", "fp8", tp=8, batch=32)
    assert _tp_comm(b200) <= _tp_comm(h100)
    m = catalog.get("model", "llama-3.1-70b")
    a = catalog.get("accelerator", "h100-sxm")
    eff = h100["inputs"]["efficiency"]["eff_link"]
    bytes_ = 32 * m.hidden_size * 2
    per_call = 2 * 7 * (a.scale_up.latency_s + bytes_ / (8 * a.scale_up.bandwidth_bytes_per_s * eff))
    assert _tp_comm(h100) == pytest.approx(2 * m.layers * per_call, rel=1e-9)


def test_full_mesh_tp2_runs_over_one_link(catalog):
    """Review D5: MI300X's xGMI is a full mesh: TP2 collectives get one 64 GB/s link of the
    7-link 448 GB/s aggregate (prefill at 8K tokens: +58% against the aggregate)."""
    from pdroof.cost.inputs import collective_bandwidth

    mi = catalog.get("accelerator", "mi300x")
    assert collective_bandwidth(mi, 2) == pytest.approx(64e9)
    assert collective_bandwidth(mi, 4) == pytest.approx(192e9)
    assert collective_bandwidth(mi, 8) == pytest.approx(448e9)
    assert collective_bandwidth(catalog.get("accelerator", "h100-sxm"), 2) == pytest.approx(450e9)  # a switch
    d = estimate(catalog.get("model", "llama-3.1-70b"), mi, catalog.get("runtime", "engine"),
                 plan(mi, "fp8", kv="fp8"), tp=2, prompt=8192)
    assert d["prefill"]["seconds"] > 0.9  # 0.617 s with the aggregate


@pytest.mark.parametrize("kw", [{"prompt": 200_000}, {"prompt": 1000, "prefix": 131_000}, {"context": 140_000}])
def test_beyond_the_models_context_is_refused(catalog, kw):
    """Review D7: estimate refuses what the model cannot hold, as plan does."""
    a = catalog.get("accelerator", "h100-sxm")
    with pytest.raises(PdroofError, match="maximum context of 131,072"):
        estimate(catalog.get("model", "llama-3.1-8b"), a, catalog.get("runtime", "engine"), plan(a), **kw)


def test_seventy_b_fp8_fits_one_h100(catalog):
    """Review D1: with 79.2 GiB visible, Llama-3.1-70B in FP8 with FP8 KV fits one H100 with
    room for a few sequences at 2K context (it was refused with decimal GB)."""
    d = _decode(catalog, "h100-sxm", "fp8")
    assert d["memory"]["fits"] and d["memory"]["max_batch"] >= 3


def test_expert_all_to_all_spans_the_whole_group(catalog):
    """An EP all-to-all among tp·ep devices of a full mesh uses their tp·ep − 1 links, whatever
    the TP group's own collectives get (review of the D5 change: TP1 × EP8 on MI300X had been
    given one link)."""
    m, mi, rt = catalog.get("model", "qwen3-235b-a22b"), catalog.get("accelerator", "mi300x"), \
        catalog.get("runtime", "engine")
    from pdroof.cost.parallelism import Parallelism
    from pdroof.serving.stage import stage_inputs

    base, _ = stage_inputs(m, mi, rt, plan(mi, "fp8", kv="fp8"), 1, Parallelism(1, 8, moe_ep=8))
    assert base["ep_link_bytes_per_s"] == pytest.approx(448e9) and base["link_bytes_per_s"] == pytest.approx(64e9)
    d = estimate(m, mi, rt, plan(mi, "fp8", kv="fp8"), tp=1, dp=8, moe_ep=8, batch=64)
    ep_comm = next(op["seconds"] for op in d["decode"]["ops"] if op["name"] == "ep_comm")
    assert ep_comm < 8e-3  # 14.5 ms over one 64 GB/s link, times the busiest group's excess (2.2 at EP8)


def test_weight_only_small_batch_speed_up_as_marlin_measures(catalog):
    """W4A16 kernels deliver close to the ideal 4x over FP16 up to batches of 16-32 (Marlin,
    IST-DASLab/marlin README, on Ampere; Hopper's compute/bandwidth ratio is higher, so less).
    With bf16's uncapped M½ of 107 rows the model gave 1.8x at batch 16 on an H100; the GEMV cap
    keeps it between 2.5x and 4x there, and never above 4x."""
    def ffn(w, batch):
        d = _decode(catalog, "h100-sxm", w, batch=batch, model="llama-3.1-8b")
        return next(op["seconds"] for op in d["decode"]["ops"] if op["name"] == "ffn")

    for batch in (1, 16):
        speed_up = ffn("bf16", batch) / ffn("int4", batch)
        assert 2.5 <= speed_up <= 4.0, (batch, speed_up)


def test_assumed_spec_values_yield_to_the_familys_measurements(catalog):
    """An H800 (the H100's die) had taken its spec's assumed GEMM efficiency (0.803, a MAMF
    figure of another stack) over the engine's measured Hopper value, and prefilled faster than
    the H100 it copies; an H20 had an assumed decode-attention efficiency above the H200's."""
    m, rt = catalog.get("model", "llama-3.1-8b"), catalog.get("runtime", "engine")

    def prefill(hw):
        a = catalog.get("accelerator", hw)
        return estimate(m, a, rt, plan(a), prompt=8192)

    assert prefill("h800")["prefill"]["seconds"] >= prefill("h100-sxm")["prefill"]["seconds"]
    h20 = prefill("h20")["inputs"]
    assert h20["efficiency"]["eff_attn_decode"] <= 0.873 and "same family" in h20["efficiency_origin"]["attention_decode"]


def test_default_runtime_is_the_engine_best_supported_on_the_accelerator(cli, cli_json):
    """``engine`` (the default) runs TensorRT-LLM's profile on an H100, with the same numbers as
    asking for it; an explicit runtime is kept; the header and the JSON say which ran."""
    args = ("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", "--weights", "fp8")
    default, trtllm = cli_json(*args), cli_json(*args, "--runtime", "trtllm")
    assert default["inputs"]["runtime"] == "trtllm" and default == trtllm
    assert cli_json(*args, "--runtime", "pytorch")["inputs"]["runtime"] == "pytorch"
    agg = cli_json(*args, "--serving", "aggregated")
    assert agg["inputs"]["runtime"] == "trtllm"
    for extra in ((), ("--serving", "aggregated")):
        code, out, err = cli(*args, *extra)
        assert code == 0 and "llama-3.1-8b on h100-sxm · runtime trtllm" in out, err


@pytest.mark.parametrize("waves", ["nan", "inf"])
def test_waves_of_no_finite_number_are_a_usage_mistake(cli, waves):
    code, _, err = cli("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", "--serving", "aggregated",
                       "--waves", waves)
    assert code == 2 and "--waves" in err and len(err.strip().splitlines()) == 1


def test_a_prefill_beyond_the_budget_is_estimated_in_its_passes(cli_json, cli):
    """estimate takes the prompts in the passes the replica's token budget takes them in, as predict,
    rank, plan and check do: SGLang's DP8 replica on a B200 an 8,192-token prompt in four (its
    16,384-token chunk divided among eight), TensorRT-LLM's in one; the table says how many."""
    args = ("estimate", "-m", "deepseek-v3", "--hardware", "b200", "--weights", "fp8", "--kv", "fp8", "--tp", "1",
            "--dp", "8", "--moe-tp", "8", "--prompt", "8192")
    sg = cli_json(*args, "--runtime", "sglang")["prefill"]
    trt = cli_json(*args, "--runtime", "trtllm")["prefill"]
    assert (sg["passes"], trt["passes"]) == (4, 1)
    assert sum(op["seconds"] for op in sg["ops"]) == pytest.approx(sg["seconds"])
    code, out, _ = cli(*args, "--runtime", "sglang")
    assert code == 0 and "8192 tokens in 4 passes" in out
