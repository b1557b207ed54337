"""``rank``: a small grid by hand, the pool-sizing rule, monotone in link bandwidth, feasibility,
exports, and the aggregated steady state."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from pdroof.cost.precision import Precision
from pdroof.cost.queueing import max_utilisation
from pdroof.cost.runtime import runtimes_for
from pdroof.serving.estimate import aggregated, estimate
from pdroof.serving.rank import COLUMNS, rank
from pdroof.serving.space import BATCHES, Candidates
from pdroof.serving.workload import PRESETS, Workload

from .conftest import REPO

W = Workload("test", prompt_tokens=2048, output_tokens=256, ttft_s=2.0, tpot_s=0.05)


def _cands(catalog, accs=("h100-sxm", "h200-sxm"), paths=("roce-400",), tiers=("hbm",), model="llama-3.1-8b",
           workload=W, runtime=None, **kw):
    return Candidates(catalog.get("model", model), [catalog.get("accelerator", a) for a in accs],
                      [catalog.get("path", p) for p in paths], [catalog.get("tier", t) for t in tiers],
                      runtime or catalog.get("runtime", "engine"), workload, **kw)


def test_small_grid_by_hand(catalog):
    """Two accelerators, bf16 only, TP 1: every number of the top row recomputed by hand from
    estimate() and the capacity formulas."""
    c = _cands(catalog, weights=("bf16",), kv=("bf16",), tp=(1,))
    rk = rank(c, "cost", top=0)
    dis = [r for r in rk.rows if r["mode"] == "disaggregated"]
    assert len(dis) == 4  # 2 prefill × 2 decode accelerators, one wire format, one path
    assert len([r for r in rk.rows if r["mode"] == "aggregated"]) == 2
    costs = [r["usd_per_million_tokens"] for r in rk.rows]
    assert costs == sorted(costs)
    r = dis[0]
    m, rt = catalog.get("model", "llama-3.1-8b"), catalog.get("runtime", "engine")
    pa, da = catalog.get("accelerator", r["prefill_hw"]), catalog.get("accelerator", r["decode_hw"])
    p = Precision("bf16", "bf16", "bf16")
    t_p = estimate(m, pa, rt, p, prompt=2048)["prefill"]["seconds"]
    b = r["decode_batch"]
    t_d = estimate(m, da, rt, p, batch=b, prompt=2048, context=2048 + 128)["decode"]["step_seconds"]
    assert r["tpot_s"] == pytest.approx(t_d, rel=1e-9) and t_d <= W.tpot_s
    # the next batch the search tries would break TPOT or memory
    nxt = int(BATCHES[BATCHES > b][0])
    over = estimate(m, da, rt, p, batch=nxt, prompt=2048, context=2048 + 128)
    assert over["decode"]["step_seconds"] > W.tpot_s or over["memory"]["max_batch"] < nxt
    # the p90 TTFT target (the default statistic): the M/D/1 utilisation whose p90 wait fits
    st = catalog.get("runtime", "engine").structure  # a disaggregated request's own time outside the passes
    wait = W.ttft_s - t_p - r["exposed_transfer_s"] - r["convert_s"] - st.request_latency_s - st.disaggregation_latency_s
    c_p = float(max_utilisation(wait / t_p * (1 - 2e-4), "p90")) / t_p  # sized a hair inside the budget
    assert r["ttft_s"] == pytest.approx(W.ttft_s, rel=1e-3) and r["ttft_stat"] == "p90"
    c_d = b / (256 * t_d)
    assert r["prefill_capacity"] == pytest.approx(c_p, rel=1e-9)
    assert r["decode_capacity"] == pytest.approx(c_d, rel=1e-9)
    usd = (pa.price_usd_per_hour / c_p + da.price_usd_per_hour / c_d) / (3600 * 256) * 1e6
    assert r["usd_per_million_tokens"] == pytest.approx(usd, rel=1e-9)
    assert r["tokens_per_s_per_device"] == pytest.approx(256 / (1 / c_p + 1 / c_d), rel=1e-9)
    assert r["prefill_device_share"] == pytest.approx((1 / c_p) / (1 / c_p + 1 / c_d), rel=1e-9)


def test_pool_sizing_rule(catalog):
    w = Workload("rate", 2048, 256, ttft_s=2.0, tpot_s=0.05, rate_per_s=37.0)
    c = _cands(catalog, weights=("bf16",), kv=("bf16",), tp=(1,), workload=w, devices=64)
    for r in rank(c, "cost", top=0).rows:
        if r["mode"] != "disaggregated":
            continue
        n_p = math.ceil(37.0 / min(r["prefill_capacity"], r["link_capacity"]))
        n_d = math.ceil(37.0 / r["decode_capacity"])
        assert r["devices_for_rate"] == r["devices"] == n_p + n_d  # N_P·C_P ≥ R and N_D·C_D ≥ R, whole
        assert (r["prefill_instances"], r["decode_instances"], r["requests_per_s"]) == (n_p, n_d, 37.0)
        # within 64 devices: the best whole split, found by trying every one
        c_p = min(r["prefill_capacity"], r["link_capacity"], r["hold_capacity"])
        best = max(min(k * c_p, (64 - k) * r["decode_capacity"]) for k in range(1, 64))
        assert r["max_rate_for_devices"] == pytest.approx(best, rel=1e-9)
        assert r["max_rate_for_devices"] <= 64 / (1 / c_p + 1 / r["decode_capacity"])  # never the fractional more


def test_more_link_bandwidth_never_worse(catalog):
    base = catalog.get("path", "tcp-100g")
    w = Workload("long", 32_000, 128, ttft_s=10.0, tpot_s=0.05)
    rows = {}
    for scale in (1.0, 4.0):
        from pdroof.spec.schema import Record

        path = Record({**base.to_dict(), "bandwidth_bytes_per_s": base.bandwidth_bytes_per_s * scale})
        c = Candidates(catalog.get("model", "llama-3.1-8b"), [catalog.get("accelerator", "h100-sxm"),
                                                              catalog.get("accelerator", "mi300x")],
                       [path], [catalog.get("tier", "hbm")], catalog.get("runtime", "engine"), w,
                       weights=("bf16",), kv=("bf16",), tp=(1,))
        rows[scale] = {(r["prefill_hw"], r["decode_hw"]): r for r in rank(c, "cost", top=0).rows
                       if r["mode"] == "disaggregated"}
    assert rows[1.0]
    for key, slow in rows[1.0].items():
        fast = rows[4.0][key]
        # both sized to the TTFT target (a hair inside it): equal there to the sizing's precision
        assert fast["ttft_unloaded_s"] <= slow["ttft_unloaded_s"] and fast["ttft_s"] <= slow["ttft_s"] * (1 + 1e-5)
        assert fast["tokens_per_s_per_device"] >= slow["tokens_per_s_per_device"]
        assert fast["usd_per_million_tokens"] <= slow["usd_per_million_tokens"]


def test_no_executable_format_never_feasible(catalog):
    c = _cands(catalog, accs=("h100-sxm", "ascend-910b", "a100-sxm-80g"), paths=("roce-400", "tcp-100g"),
               kv=("fp8",))
    rk = rank(c, "cost", top=0)
    assert rk.rows
    for r in rk.rows:
        assert r["decode_hw"] != "ascend-910b"  # no fp8 KV path on the 910B
        assert r["prefill_hw"] != "ascend-910b"  # it cannot write an fp8 wire format either
        if r["prefill_hw"] == "a100-sxm-80g":
            assert not r["prefill_precision"].endswith("/fp8")  # no fp8 activations on Ampere


def test_cross_vendor_pairs_use_network_paths(catalog):
    c = _cands(catalog, accs=("h100-sxm", "mi300x"), paths=("nvlink4", "xgmi", "roce-400", "tcp-100g"))
    for r in rank(c, "cost", top=0).rows:
        if r["mode"] == "disaggregated" and r["prefill_hw"] != r["decode_hw"]:
            assert r["path"] in ("roce-400", "tcp-100g")


def test_json_and_csv_round_trip(cli):
    args = ("rank", "--accelerators", "h100-sxm,h200-sxm", "--workload", "summarization", "--top", "5")
    code, out, err = cli(*args, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["meta"]["model"] == "llama-3.1-70b" and len(doc["results"]) == 5
    assert list(doc["results"][0]) == [k for k, _ in COLUMNS]
    code, out, err = cli(*args, "--format", "csv")
    back = list(csv.DictReader(io.StringIO(out)))
    assert len(back) == 5
    for j, c in zip(doc["results"], back, strict=True):
        for k, v in j.items():
            if isinstance(v, float):
                assert float(c[k]) == v
            elif v is None:
                assert c[k] == ""
            else:
                assert c[k] == str(v)


def test_files_are_written_atomically(cli, tmp_path, monkeypatch):
    out = tmp_path / "r.csv"
    code, _, err = cli("rank", "--accelerators", "h100-sxm", "--top", "3", "-f", "csv", "-o", str(out))
    assert code == 0 and out.read_text().startswith("rank,")
    import pdroof.output.render as render

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(render.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        render.write_atomic(tmp_path / "x.csv", "data")
    assert not (tmp_path / "x.csv").exists() and len(list(tmp_path.iterdir())) == 1


def test_default_rank_and_infeasible_listing(cli):
    code, out, err = cli("rank", "--top", "3", "--show-infeasible")
    assert code == 0, err
    assert "configurations" in out and "feasible" in out and "excluded" in out


def test_pareto_rows_are_non_dominated(cli_json):
    doc = cli_json("rank", "--accelerators", "h100-sxm,h200-sxm,mi300x", "--pareto", "--top", "0")
    rows = doc["results"]
    assert rows
    for a in rows:
        for b in rows:
            t_a, t_b = a["ttft_unloaded_s"], b["ttft_unloaded_s"]
            dominated = (b["tokens_per_s_per_device"] >= a["tokens_per_s_per_device"] and t_b <= t_a
                         and b["tpot_s"] <= a["tpot_s"] and b != a and (
                             b["tokens_per_s_per_device"] > a["tokens_per_s_per_device"] or t_b < t_a
                             or b["tpot_s"] < a["tpot_s"]))
            assert not dominated


@pytest.mark.parametrize("seed", range(6))
def test_pareto_mask_is_the_brute_force_front(seed):
    """The front of random points with many ties and a NaN, against every pair compared; the
    anchors' pre-filter changes nothing."""
    from pdroof.serving.evaluate import PARETO_AXES, pareto_mask

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    cols = {name: rng.integers(0, 12, n).astype(float) for name, _ in PARETO_AXES}
    cols[PARETO_AXES[2][0]][rng.integers(0, n)] = np.nan  # an unknown ranks last on its axis
    pts = np.stack([-cols[k] if big else cols[k] for k, big in PARETO_AXES], axis=1)
    pts = np.where(np.isnan(pts), np.inf, pts)
    dominated = np.array([(np.all(pts <= p, axis=1) & np.any(pts < p, axis=1)).any() for p in pts])
    assert np.array_equal(pareto_mask(cols), ~dominated)


def test_aggregated_steady_state_by_hand(catalog):
    """A step carries C decodes plus C·S/O prefill tokens with weights read once: with few
    prefill tokens (all GEMMs weight-bound) running both in one pass saves one weight stream."""
    m, acc, rt = catalog.get("model", "llama-3.1-8b"), catalog.get("accelerator", "h100-sxm"), \
        catalog.get("runtime", "engine")
    p = Precision("bf16", "bf16", "bf16")
    C, S, O = 8, 16, 16  # noqa: E741 - the paper's names
    agg = aggregated(m, acc, rt, p, concurrency=C, prompt=S, output=O, arrivals="poisson")["aggregated"]
    assert agg["tokens_per_second"] == pytest.approx(C / agg["tpot_seconds"])  # Little: C in flight, O tokens each
    # TTFT: one step carrying a whole prompt with the C decodes
    dec = estimate(m, acc, rt, p, batch=C, prompt=S, context=S + O // 2)["decode"]["step_seconds"]
    pre = estimate(m, acc, rt, p, batch=1, prompt=S)["prefill"]["seconds"]
    est = estimate(m, acc, rt, p, batch=C, prompt=S)
    from pdroof.cost.architecture import shape_of

    streamed = est["memory"]["weights_bytes"] - shape_of(m).embedding_params * 2  # the lookup table is not streamed
    weights_s = streamed / (acc.memory.bandwidth_bytes_per_s * 0.78)  # engine η_W bf16 on h100-sxm
    fixed = m.layers * 15e-6 + 500e-6  # engine layer latency and step latency
    saving = dec + pre - agg["ttft_seconds"]
    assert saving == pytest.approx(weights_s + fixed, rel=0.01)


def test_aggregated_cli_json(cli_json):
    d = cli_json("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", "--serving", "aggregated",
                 "--concurrency", "64", "--prompt", "1000", "--output", "1000", "--weights", "fp8")
    a = d["aggregated"]
    assert {"tpot_seconds", "ttft_seconds", "tokens_per_second", "requests_per_second"} <= set(a)
    assert a["arrivals"] == "closed" and a["tokens_per_second"] == pytest.approx(1000 * a["requests_per_second"])
    mean = cli_json("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", "--serving", "aggregated",
                    "--concurrency", "64", "--prompt", "1000", "--output", "1000", "--weights", "fp8",
                    "--ttft-stat", "mean", "--waves", "1000")["aggregated"]
    # Little's law over the 64 clients: each cycle is a TTFT and 999 more tokens
    cycle = mean["ttft_mean_seconds"] + 999 * mean["tpot_seconds"]
    assert 64 / cycle == pytest.approx(mean["requests_per_second"], rel=0.02)


def test_prefill_heavy_prefers_more_prefill_devices(catalog):
    long = Workload("long", 32_000, 64, ttft_s=10.0, tpot_s=0.05)
    chatty = Workload("chat", 256, 1024, ttft_s=10.0, tpot_s=0.05)
    share = {}
    for w in (long, chatty):
        rk = rank(_cands(catalog, workload=w, weights=("bf16",), kv=("bf16",), tp=(1,)), "cost", top=0)
        share[w.id] = next(r for r in rk.rows if r["mode"] == "disaggregated")["prefill_device_share"]
    assert share["long"] > 0.5 > share["chat"]


def test_bad_rank_options(cli):
    code, _, err = cli("rank", "--tp", "two")
    assert code == 1 and "--tp takes comma-separated integers" in err
    code, _, err = cli("rank", "--workload", "nonsense")
    assert code == 1 and "unknown workload" in err
    code, _, err = cli("rank", "--prefix-hit", "1.5")
    assert code == 1 and "--prefix-hit" in err
    code, _, err = cli("rank", "--format", "xlsx")
    assert code == 1 and "needs -o" in err


def test_numpy_free_rows(catalog):
    rk = rank(_cands(catalog), "throughput", top=3)
    for r in rk.rows:
        assert all(not isinstance(v, np.generic) for v in r.values())


def test_xlsx_export(cli, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    out = tmp_path / "r.xlsx"
    code, _, err = cli("rank", "--accelerators", "h100-sxm,h200-sxm", "--top", "4", "-f", "xlsx", "-o", str(out))
    assert code == 0, err
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["results", "inputs"]
    rows = list(wb["results"].values)
    assert rows[0][:3] == ("rank", "mode", "prefill_hw") and len(rows) == 5
    inputs = {r[0]: r[1] for r in wb["inputs"].values}
    assert inputs["model"] == "llama-3.1-70b" and inputs["workload.prompt_tokens"] == 1024


def test_plot(cli, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "front.png"
    code, _, err = cli("rank", "--accelerators", "h100-sxm,mi300x", "--top", "3", "--plot", str(out))
    assert code == 0, err
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_producer_that_cannot_write_the_consumer_format_converts(catalog):
    """The 910B has no fp8 KV path: its bf16 KV is converted for an fp8 decode pool."""
    c = _cands(catalog, accs=("ascend-910b", "h200-sxm"), paths=("roce-400", "tcp-100g"), model="qwen3-8b",
               prefill_ids=frozenset({"ascend-910b"}), decode_ids=frozenset({"h200-sxm"}))
    rows = [r for r in rank(c, "throughput", top=0).rows if r["mode"] == "disaggregated" and r["kv_format"] == "fp8"]
    assert rows
    for r in rows:
        assert r["prefill_kv"] in ("bf16", "fp16", "int8") and r["kv_placement"] in ("producer", "transport", "consumer")


def test_a_kv_tier_never_holds_weights(catalog):
    """70B in bf16 does not fit one A100: a host-DRAM tier for KV does not change that."""
    c = _cands(catalog, accs=("a100-sxm-80g",), paths=("roce-400",), tiers=("hbm", "host-dram"),
               model="llama-3.1-70b", weights=("bf16",), tp=(1,))
    rk = rank(c, "cost", top=0)
    assert rk.rows == []
    assert any("do not fit" in reason for reason in rk.results.infeasible)


@pytest.mark.parametrize("prune", [True, False])
def test_every_configuration_is_accounted_for(catalog, prune):
    """feasible + dominated + infeasible + filtered = enumerated; pruning skips only configurations
    that would have been evaluated, and never one that could rank first."""
    from pdroof.serving.evaluate import run

    c = _cands(catalog, accs=("h100-sxm", "mi300x", "ascend-910b"), paths=("nvlink4", "roce-400", "tcp-100g"),
               tiers=("hbm", "host-dram"), model="llama-3.1-70b", prefill_ids=frozenset({"h100-sxm", "ascend-910b"}))
    r, _ = run(c, prune=prune)
    assert r.feasible + r.dominated + sum(r.infeasible.values()) + r.filtered == r.total
    full, _ = run(c, prune=False)
    assert r.feasible <= full.feasible <= r.feasible + r.dominated
    best = np.nanmin(full.columns["usd_per_million_tokens"][full.columns["feasible"]])
    assert np.nanmin(r.columns["usd_per_million_tokens"][r.columns["feasible"]]) == best


@pytest.mark.parametrize("hw", ["h100-sxm", "h200-sxm"])
def test_int8_never_beats_measured_fp8_on_hopper(catalog, hw):
    """Review D2: INT8 W8A8 stays executable on Hopper, but without measurements of its own it
    ties FP8 at best, and ties go to the measured format."""
    c = _cands(catalog, accs=(hw,), paths=("nvlink4",), model="llama-3.1-70b", workload=PRESETS["chat"])
    rows = rank(c, "cost", top=0).rows
    best_fp8 = min(r["usd_per_million_tokens"] for r in rows if "int8" not in (r["decode_weights"], r["prefill_precision"]))
    for r in rows:
        if "int8" in (r["decode_weights"], r["prefill_precision"] or ""):
            assert r["usd_per_million_tokens"] >= best_fp8 * (1 - 1e-12)
    assert "int8" not in (rows[0]["decode_weights"], rows[0]["prefill_precision"])


def test_rank_excludes_prompts_beyond_the_context(catalog):
    """Review D7: rank recommended Qwen3-32B (40,960 positions) for 200K-token agent tasks."""
    c = _cands(catalog, accs=("h200-sxm", "b200"), paths=("nvlink4", "nvlink5"), model="qwen3-32b",
               workload=PRESETS["agent-task"])
    rk = rank(c, "cost", top=0)
    assert not rk.rows and rk.results.feasible == 0
    assert any("exceeds qwen3-32b's maximum context of 40,960" in k for k in rk.results.infeasible)
    assert sum(rk.results.infeasible.values()) == rk.results.total


def test_decode_ingress_is_a_capacity(catalog):
    """Review D6: a decode instance takes in every request's KV through its own NICs, shared by
    the prefill instances that feed it: for code completion (1.5K in, 10 out) one B200's 400G
    NIC admits 147 req/s, far below what its batch would serve (1,539 req/s before)."""
    w = PRESETS["code-completion"]
    rows = {}
    for path in ("ib-ndr-400", "nvlink5"):
        c = _cands(catalog, accs=("b200",), paths=(path,), model="llama-3.1-70b", workload=w,
                   weights=("fp8",), kv=("fp8",), tp=(1,), devices=8)  # NVLink: pools within one node
        rows[path] = next(r for r in rank(c, "cost", top=0).rows if r["mode"] == "disaggregated")
    ib, nvl = rows["ib-ndr-400"], rows["nvlink5"]
    assert ib["decode_capacity"] == pytest.approx(ib["ingress_capacity"]) == pytest.approx(147.0, rel=0.01)
    assert nvl["decode_capacity"] > 5 * ib["decode_capacity"]
    assert nvl["usd_per_million_tokens"] < ib["usd_per_million_tokens"]


def test_aggregated_ttft_queues_like_the_prefill_pool(catalog):
    """Review D3: the aggregated baseline had no queueing (TTFT = one unloaded step, slots at
    100%): its prompts now queue for the engine's prefill work, each served in the step time it
    adds (Δ), at the instance's request rate: TTFT = unloaded + W(λΔ)·Δ, by hand."""
    from pdroof.cost.numeric import evaluate
    from pdroof.cost.queueing import wait
    from pdroof.serving.estimate import aggregated
    from pdroof.serving.stage import stage_inputs

    w = PRESETS["summarization"]
    c = _cands(catalog, accs=("h100-sxm",), model="llama-3.1-8b", workload=w, weights=("fp8",), kv=("fp8",), tp=(1,))
    agg = [r for r in rank(c, "cost", top=0).rows if r["mode"] == "aggregated"]
    assert agg
    for r in agg:
        assert r["ttft_unloaded_s"] < r["ttft_s"] <= w.ttft_s and (r["ttft_stat"], r["tpot_stat"]) == ("p90", "p99")
    m, a, rt = catalog.get("model", "llama-3.1-8b"), catalog.get("accelerator", "h100-sxm"), \
        catalog.get("runtime", "engine")
    p = Precision("fp8", "fp8", "fp8")
    C = agg[0]["decode_batch"]
    got = aggregated(m, a, rt, p, concurrency=C, prompt=w.prompt_tokens, output=w.output_tokens,
                     arrivals="poisson")["aggregated"]
    base, _ = stage_inputs(m, a, rt, p, 1)
    step = {**base, "batch": C, "new_tokens": w.new_tokens, "prefix_tokens": 0, "context_tokens": w.mean_context}
    mean = float(evaluate("mixed", {**step, "prefill_prompts": C / w.output_tokens})["seconds"])
    delta = float(evaluate("mixed", {**step, "prefill_prompts": C / w.output_tokens + 1})["seconds"]) - mean
    rho = C / (w.output_tokens * mean) * delta
    assert got["ttft_p90_seconds"] == pytest.approx(got["ttft_seconds"] + float(wait(rho, "p90")) * delta, rel=1e-9)
    assert got["ttft_p90_seconds"] == pytest.approx(agg[0]["ttft_s"], rel=1e-9)


def test_ranking_does_not_depend_on_the_block_size(catalog, monkeypatch):
    """Equal rows come out in one order (the enumeration's) however the grid is split into blocks,
    and each block keeps every row tied with its last kept one."""
    from pdroof.serving import evaluate

    c = _cands(catalog, accs=("h100-sxm", "h200-sxm", "b200"), paths=("nvlink4", "nvlink5", "roce-400", "ib-ndr-400"),
               tiers=("hbm", "host-dram"), model="llama-3.1-70b", workload=PRESETS["chat"])
    big = rank(c, "cost", top=40).rows
    monkeypatch.setattr(evaluate, "BLOCK", 500)
    small = rank(c, "cost", top=40).rows
    assert len(big) == 40
    assert small == big


def test_handoff_is_shared_only_by_decode_rows_that_see_the_same_one(catalog):
    """The block computes a handoff once per decode handoff class: recomputed per configuration,
    every handoff column is the same."""
    from pdroof.cost.inputs import model_inputs
    from pdroof.serving import evaluate
    from pdroof.serving.choices import combos, handoff_classes, pair_links
    from pdroof.serving.columns import handoff_columns
    from pdroof.serving.space import decode_stage, prefill_stage

    c = _cands(catalog, accs=("h100-sxm", "mi300x"), paths=("roce-400", "nvlink4"), tiers=("hbm", "host-dram"),
               model="llama-3.1-70b", workload=PRESETS["chat"])
    pre, dec = prefill_stage(c), decode_stage(c)
    links = pair_links(c)
    wires = ["bf16", "fp8"]
    cb = combos(c, links, wires, sorted(set(dec.labels["kv"])))
    p_rows, d_rows = np.flatnonzero(pre.feasible), np.flatnonzero(dec.feasible)
    assert len(handoff_classes(dec, d_rows, cb.formats)[1]) < len(d_rows)  # classes do group rows
    prices = powers = np.ones(len(c.accelerators))
    mi = model_inputs(c.model)
    cols, _ = evaluate.disaggregated_block(c, pre, dec, links, wires, cb, p_rows, d_rows, prices, powers, mi)
    pr, dr = cols["prefill_row"], cols["decode_row"]
    acc = (np.asarray(pre.labels["acc"])[pr], np.asarray(dec.labels["acc"])[dr])
    direct = handoff_columns(c, pre, dec, links, wires, pr, dr, cols["wire"], cols["path"], *acc, mi)
    for key, values in direct.items():
        np.testing.assert_array_equal(cols[key], values, err_msg=key)


def test_a_heterogeneous_row_names_both_engines(cli, catalog):
    """The default runtime resolves per accelerator: an H100 prefill pool runs TensorRT-LLM, an
    MI300X decode pool whatever engine it is best supported by (never TensorRT-LLM); every row
    says which: the compact table's title per accelerator, the wide table as prefill→decode."""
    from pdroof.cost.runtime import engine_id

    amd = engine_id(catalog, catalog.get("accelerator", "mi300x"))
    args = ("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm,mi300x", "--prefill-hw", "h100-sxm",
            "--decode-hw", "mi300x", "--top", "3")
    code, out, err = cli(*args, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["meta"]["runtime"] == "engine"
    assert doc["meta"]["runtimes"] == {"h100-sxm": "trtllm", "mi300x": amd} and amd != "trtllm"
    pair = [r for r in doc["results"] if r["mode"] == "disaggregated"]
    assert pair and all((r["prefill_runtime"], r["decode_runtime"]) == ("trtllm", amd) for r in pair)
    code, out, err = cli(*args)
    words = " ".join(out.split())  # the title wraps to the table's width
    assert code == 0 and f"engines h100-sxm trtllm, mi300x {amd}" in words and "runtime engine per accelerator" in words
    code, out, err = cli(*args, "--wide")
    assert code == 0 and f"trtllm→{amd}" in " ".join(out.split())


def test_an_explicit_runtime_runs_on_every_accelerator(cli_json):
    doc = cli_json("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm,mi300x", "--runtime", "vllm",
                   "--top", "20")
    assert set(doc["meta"]["runtimes"].values()) == {"vllm"}
    assert {r["decode_runtime"] for r in doc["results"]} == {"vllm"}
    assert {r["prefill_runtime"] for r in doc["results"]} <= {"vllm", None}


def test_each_accelerator_is_evaluated_under_its_own_runtime(catalog, tmp_path):
    """Stage tables and the aggregated baseline (its chunked prefill) use the runtime of each row's
    accelerator: the H100 rows of a mixed ranking are those of a ranking under its runtime alone."""
    f = tmp_path / "small-chunks.yaml"
    f.write_text((REPO / "hardware" / "runtimes" / "engine.yaml").read_text()
                 .replace("id: engine", "id: small-chunks").replace("chunk_tokens: 8192", "chunk_tokens: 512"))
    small = catalog.get("runtime", str(f))
    assert small.structure.chunk_tokens == 512
    mixed = _cands(catalog, accs=("h100-sxm", "mi300x"), weights=("bf16",), kv=("bf16",), tp=(1,),
                   runtimes={"h100-sxm": small})
    alone = _cands(catalog, accs=("h100-sxm",), weights=("bf16",), kv=("bf16",), tp=(1,), runtime=small)
    key = ("mode", "prefill_hw", "decode_hw")
    rows = {tuple(r[k] for k in key): r for r in rank(mixed, "cost", top=0).rows}
    for r in rank(alone, "cost", top=0).rows:
        m = rows[tuple(r[k] for k in key)]
        assert m["decode_runtime"] == "small-chunks"
        for col in ("ttft_unloaded_s", "tpot_s", "usd_per_million_tokens"):
            assert m[col] == pytest.approx(r[col], rel=1e-9), (r["mode"], col)
    agg = {r["decode_hw"]: r for r in rank(mixed, "cost", top=0).rows if r["mode"] == "aggregated"}
    assert agg["mi300x"]["decode_runtime"] == "engine"


def test_aggregated_rows_admit_what_the_runtime_reserves(catalog):
    """A runtime that reserves a sequence's whole length at admission (TensorRT-LLM) holds fewer
    sequences than one that grows KV as it goes: rank's aggregated batch stays within what
    estimate says memory admits under that runtime (it used to size by the mean context)."""
    from pdroof.serving.estimate import aggregated

    rt = catalog.get("runtime", "trtllm")
    assert rt.structure.kv_reservation == "full"
    w = Workload("long-out", 512, 4096, ttft_s=1e3, tpot_s=1.0)
    c = _cands(catalog, accs=("h100-sxm",), model="llama-3.1-70b", workload=w, runtime=rt, weights=("fp8",),
               kv=("fp8",), tp=(8,))
    agg = [r for r in rank(c, "cost", top=0).rows if r["mode"] == "aggregated"]
    assert agg
    est = aggregated(catalog.get("model", "llama-3.1-70b"), catalog.get("accelerator", "h100-sxm"), rt,
                     Precision("fp8", "fp8", "fp8"), tp=8, concurrency=1, prompt=512, output=4096)["aggregated"]
    assert max(r["decode_batch"] for r in agg) <= est["max_concurrency"]


def test_moe_models_rank_expert_parallel_and_dp_attention_deployments(catalog):
    """DeepSeek-V3 in FP8 on H100/H200: the ranking lists instances whose experts are expert-
    parallel (TP with EP, or DP attention over one-device replicas), each row saying its split, its
    devices per instance, and per-instance batch and capacity (dp replicas' worth)."""
    c = _cands(catalog, model="deepseek-v3", weights=("fp8",), kv=("fp8",))
    rk = rank(c, "cost", top=0)
    ep = [r for r in rk.rows if (r["decode_moe_ep"] or 1) > 1]
    assert ep, "no expert-parallel deployment ranked"
    for r in ep:
        assert r["decode_devices"] == r["decode_tp"] * r["decode_dp"]
        assert r["decode_dp"] == 1 or r["decode_moe_ep"] == r["decode_devices"]
        assert r["decode_batch"] % r["decode_dp"] == 0
    dp = next(r for r in ep if r["decode_dp"] > 1)
    assert dp["decode_tp"] == 1 and dp["decode_weights"] == "fp8"
    # dense models are enumerated as before: TP only
    dense = rank(_cands(catalog), "cost", top=0)
    assert all(r["decode_dp"] == 1 and r["decode_moe_ep"] == 1 for r in dense.rows)


def test_dp_and_moe_ep_filters(catalog, cli_json):
    only = rank(_cands(catalog, model="deepseek-v3", weights=("fp8",), kv=("fp8",), dp=(8,)), "cost", top=0)
    assert only.rows and all(r["decode_dp"] == 8 for r in only.rows if r["decode_hw"])
    assert all(r["prefill_dp"] in (None, 8) for r in only.rows)
    none = rank(_cands(catalog, model="deepseek-v3", weights=("fp8",), kv=("fp8",), moe_ep=(1,)), "cost", top=0)
    assert all(r["decode_moe_ep"] == 1 for r in none.rows)
    out = cli_json("rank", "-m", "deepseek-v3", "--accelerators", "h200-sxm", "--weights", "fp8", "--dp", "16",
                   "--top", "3")
    rows = [r for r in out["results"] if r["mode"] == "disaggregated"]
    assert rows and all(r["decode_tp"] * r["decode_dp"] == 16 for r in rows)  # two nodes of eight


def test_bad_parallel_degrees_are_one_error(cli):
    for flag in ("--dp", "--moe-ep"):
        code, _, err = cli("rank", "-m", "deepseek-v3", flag, "two")
        assert code == 1 and f"{flag} takes comma-separated integers" in err
        for bad in ("0", "8,5000"):
            code, _, err = cli("rank", "-m", "deepseek-v3", flag, bad)
            assert code == 1 and f"{flag} degrees must be from 1 to 4,096, not {bad!r}" in err


def test_rows_the_objective_cannot_price_rank_by_output_per_device(catalog):
    """H800 and the MetaX C600 have no price: by cost their rows come after priced ones, ordered
    among themselves by output tokens per device, not by enumeration order."""
    rows = rank(_cands(catalog, accs=("h800", "metax-c600", "h100-sxm")), "cost", top=0).rows
    priced = [r["usd_per_million_tokens"] is not None for r in rows]
    assert priced == sorted(priced, reverse=True)  # every priced row first
    rows = rank(_cands(catalog, accs=("h800", "metax-c600")), "cost", top=0).rows
    unpriced = [r["tokens_per_s_per_device"] for r in rows]
    assert unpriced and all(r["usd_per_million_tokens"] is None for r in rows)
    assert unpriced == sorted(unpriced, reverse=True)


def test_the_studys_production_question_sizes_pools_as_the_study_did(cli_json):
    """GLM-5.1, 64K in (90% prefix hits) / 512 out at 1.8 req/s, TTFT 5 s and TPOT 30 ms, prefill on
    MetaX C600 and decode on H20: five C600 TP8 instances carry the prompts (one holds 0.44 req/s at
    the p90 target); one H20 instance of eight carries the decode, so the fewest devices hold 5:1, and
    the study's own decode shape (DP16, the experts over all sixteen) 2.5:1 (the study ran 2:1)."""
    out = cli_json("rank", "-m", "glm-5.1", "--prompt", "65536", "--output", "512", "--prefix-hit", "0.9", "--ttft",
                   "5000", "--tpot", "30", "--prefill-hw", "metax-c600", "--decode-hw", "h20", "--rate", "1.8",
                   "--top", "0")
    rows = [r for r in out["results"] if r["mode"] == "disaggregated"]
    best = rows[0]
    assert (best["prefill_hw"], best["decode_hw"]) == ("metax-c600", "h20")
    for r in rows:
        prefill, decode = r["prefill_devices"], r["decode_devices"]
        assert prefill == r["prefill_instances"] * r["prefill_tp"] * r["prefill_dp"]
        assert decode == r["decode_instances"] * r["decode_tp"] * r["decode_dp"]
        assert prefill + decode == r["devices_for_rate"] == r["devices"]
    assert (best["prefill_instances"], best["prefill_tp"], best["decode_devices"]) == (5, 8, 8)
    study = next(r for r in rows if r["decode_dp"] == 16 and r["decode_moe_ep"] == 16 and r["prefill_tp"] == 8)
    assert study["prefill_devices"] / study["decode_devices"] == 2.5


def test_a_scale_up_kv_path_joins_only_instances_that_fit_one_domain(catalog, cli):
    """NVLink between a TP8 prefill instance and a TP8 decode instance of H100 (sixteen devices, a
    domain of eight) is not a path: such rows are excluded and counted, and the network path that
    NVLink would have dominated for small instances is still ranked."""
    c = _cands(catalog, accs=("h100-sxm",), paths=("nvlink4", "roce-400"), model="llama-3.1-70b", tp=(8,))
    rk = rank(c, "cost", top=0)
    assert rk.rows and all(r["path"] != "nvlink4" for r in rk.rows if r["mode"] == "disaggregated")
    assert rk.results.infeasible["a KV path inside one node or scale-up domain between pools that do not fit it"] > 0
    code, out, err = cli("plan", "--model", "llama-3.1-8b", "--prefill", "h100-sxm", "--decode", "h100-sxm",
                         "--prefill-tp", "8", "--decode-tp", "2", "--link", "nvlink4", "--format", "json")
    assert "stays inside 8 devices (one node or scale-up domain); the two pools take 10" in out
    # a rate sizes whole pools: they, not one pair, must fit the node a host-staged path stays in
    c = _cands(catalog, accs=("h100-sxm",), paths=("pcie5-host-staged", "roce-400"), model="llama-3.1-8b", tp=(1,),
               workload=Workload("test", prompt_tokens=2048, output_tokens=256, ttft_s=2.0, tpot_s=0.05,
                                 rate_per_s=50.0))
    for r in rank(c, "cost", top=0).rows:
        if r["mode"] == "disaggregated" and r["path"] == "pcie5-host-staged":
            assert r["devices_for_rate"] <= 8


def test_a_ranking_with_no_row_exits_1_naming_the_binding_target(cli):
    code, out, err = cli("rank", "--ttft", "1")
    assert code == 1 and not out.strip() and err.startswith("Error: no configuration meets TTFT p90 ≤ 1 ms")
    assert "(binding: misses TTFT" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("rank", "--tpot", "1", "--format", "json")
    assert code == 1 and "(binding: decode: misses TPOT 1 ms" in err


def test_top_zero_keeps_every_row_and_mode_filters(cli_json):
    everything = cli_json("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm,h200-sxm", "--top", "0")["results"]
    assert len(everything) > 150  # it stopped at 150 before
    agg = cli_json("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm,h200-sxm", "--mode", "agg", "--top", "0")
    assert agg["results"] and all(r["mode"] == "aggregated" for r in agg["results"])
    assert len(agg["results"]) == sum(r["mode"] == "aggregated" for r in everything)


def test_prices_override_the_catalogue_and_bad_ones_are_one_error(cli, cli_json):
    base = cli_json("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm", "--top", "1")["results"][0]
    cheap = cli_json("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm", "--price", "h100-sxm=1.0",
                     "--top", "1")["results"][0]
    assert cheap["usd_per_million_tokens"] < base["usd_per_million_tokens"]
    for bad, says in (("h100-sxm=-1", "positive price"), ("h100-sxm", "ACC=USD_PER_HOUR"),
                      ("h999=2", "not a candidate accelerator")):
        code, _, err = cli("rank", "-m", "llama-3.1-8b", "--accelerators", "h100-sxm", "--price", bad)
        assert code == 1 and says in err
    code, _, err = cli("rank", "--top", "-1")
    assert code == 1 and "must not be negative" in err


def test_version(cli):
    from pdroof import __version__

    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"pdroof {__version__}"


def test_the_default_table_takes_a_line_a_row_at_100_columns(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = cli("rank", "--top", "5")
    body = [ln for ln in out.splitlines() if ln.startswith("│")]
    ranks = [ln.split("│")[1].strip() for ln in body]
    assert code == 0 and all(ranks) and all(len(ln) <= 100 for ln in out.splitlines())  # one line a row
    shown = [int(x) for r in ranks for x in (range(int(r.split("–")[0]), int(r.split("–")[-1]) + 1))]
    assert shown == [1, 2, 3, 4, 5]  # folded rows keep their ranks as a range
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = cli("rank", "--top", "2", "--wide")
    assert code == 0 and "binds" in out and "P share" in out
    code, out, _ = cli("rank", "--top", "2", "--columns", "rank,decode_hw,tpot_s,binding")
    header = next(ln for ln in out.splitlines() if ln.startswith("┃"))
    assert code == 0 and "decode_hw" in header and "binds" in header and "prefill" not in header
    code, _, err = cli("rank", "--columns", "rank,nonsense")
    assert code == 1 and "unknown column 'nonsense'" in err


def test_xlsx_inputs_cannot_carry_formulas(cli, tmp_path):
    """A workload's text lands in the inputs sheet: text that a spreadsheet would evaluate
    (=, +, -, @ first) is stored as text, never a formula."""
    openpyxl = pytest.importorskip("openpyxl")
    w = tmp_path / "w.yaml"
    w.write_text('id: sneaky\ndescription: "=HYPERLINK(\\"http://x\\")"\nprompt_tokens: 512\noutput_tokens: 64\n')
    out = tmp_path / "r.xlsx"
    code, _, err = cli("rank", "-w", str(w), "--accelerators", "h100-sxm", "--top", "2", "-f", "xlsx", "-o", str(out))
    assert code == 0, err
    ws = openpyxl.load_workbook(out)["inputs"]
    cell = next(row[1] for row in ws.iter_rows() if row[0].value == "workload.description")
    assert cell.value.startswith("=HYPERLINK") and cell.data_type == "s"


def test_a_modes_pareto_front_is_its_own(catalog):
    """--mode agg --pareto: the aggregated rows' own front (it was the joint front, filtered, and
    could come out empty)."""
    c = _cands(catalog, model="llama-3.1-70b")
    rows = rank(c, "cost", top=0, pareto=True, mode="aggregated").rows
    assert rows and all(r["mode"] == "aggregated" for r in rows)


def test_a_front_listed_whole_is_the_front_of_every_row(catalog, monkeypatch):
    """--pareto --top 0 keeps each block's front, rows alike on its axes included, not every row (it
    kept all 400,000 of the default grid's and took 7 s): the same rows, in the same order, as the
    front of every feasible configuration, over blocks much smaller than the grid; and --top N lists
    its first N (the blocks kept one row of each alike outcome, so rows went missing beyond the 50
    best of each)."""
    from pdroof.serving import evaluate
    from pdroof.serving.evaluate import PARETO_AXES, pareto_mask

    monkeypatch.setattr(evaluate, "BLOCK", 2000)
    c = _cands(catalog, accs=("h100-sxm", "h200-sxm", "mi300x"))
    every = rank(c, "cost", top=0, prune=False).rows
    front = pareto_mask({k: np.array([r[k] for r in every], dtype=float) for k, _ in PARETO_AXES})
    listed = rank(c, "cost", top=0, pareto=True).rows
    assert len(every) > 10 * len(listed) > 0
    assert [{**r, "rank": None} for r in listed] == [{**r, "rank": None} for r, f in zip(every, front, strict=True) if f]
    first = rank(c, "cost", top=20, pareto=True).rows
    assert [{**r, "rank": None} for r in first] == [{**r, "rank": None} for r in listed[:20]]


def test_int8_experts_are_costed_as_fp8s_on_the_same_silicon(catalog):
    """No expert kernel was measured in int8: it takes fp8's (same tensor path), width penalty
    included, not the dense GEMMs' factor (which made it eight times cheaper)."""
    out = {}
    for w in ("fp8", "int8"):
        d = estimate(catalog.get("model", "deepseek-v3"), catalog.get("accelerator", "h200-sxm"),
                     catalog.get("runtime", "trtllm"), Precision(w, w, "fp8"), tp=8, batch=4, prompt=8192)
        out[w] = next(op["seconds"] for op in d["prefill"]["ops"] if op["name"] == "experts")
    assert out["int8"] == pytest.approx(out["fp8"], rel=1e-9)


def test_rows_without_a_price_are_announced_and_overrides_recorded(cli, cli_json):
    code, out, _ = cli("rank", "-m", "llama-3.1-8b", "--accelerators", "h800,h100-sxm", "--prefill-hw", "h800",
                       "--top", "2")
    words = " ".join(out.split())
    assert code == 0 and "rows have no usd per million tokens (no price for h800)" in words
    meta = cli_json("rank", "-m", "llama-3.1-8b", "--accelerators", "h20", "--price", "h20=1.5", "--top", "1")["meta"]
    assert meta["price_overrides"] == {"h20": 1.5} and meta["prices"]["h20"] == 1.5


def test_rows_alike_in_every_number_fold_in_the_table_not_in_the_export(cli, cli_json):
    """Rows that differ only in an axis that changes no number (here the KV path, the transfer hidden
    behind prefill; or a KV format of the same width) fold into one table row listing both."""
    from pdroof.cli.rank_table import COMPACT, _join, fold

    rows = [{"rank": 1, "path_short": "nvlink5", "decode_short": "1× b200 fp4/bf16", "tpot_s": 0.02},
            {"rank": 2, "path_short": "ib-ndr-400", "decode_short": "1× b200 fp4/bf16", "tpot_s": 0.02},
            {"rank": 3, "path_short": "ib-ndr-400", "decode_short": "1× b200 fp4/fp16", "tpot_s": 0.02},
            {"rank": 4, "path_short": "ib-ndr-400", "decode_short": "1× b200 fp4/fp16", "tpot_s": 0.03}]
    cols = [c for c in COMPACT if c.key in ("rank", "path_short", "decode_short", "tpot_s")]
    out = fold(rows, cols)
    assert [r["rank"] for r in out] == ["1–2", 3, 4]  # one axis a group: the third differs in another
    assert out[0]["path_short"] == "nvlink5|ib-ndr-400" and out[0]["decode_short"] == "1× b200 fp4/bf16"
    assert _join("1× b200 DP8·EP fp4, bf16", "1× b200 DP8·EP fp4, fp16") == "1× b200 DP8·EP fp4, bf16|fp16"
    # an alternative listed already is not listed again (read "fp4/bf16|fp16|fp16")
    assert _join("1× b300 TP2 fp4/bf16|fp16", "1× b300 TP2 fp4/fp16") == "1× b300 TP2 fp4/bf16|fp16"
    # rows alike in every shown cell (they differ in the wire format, which the compact table leaves
    # out) fold into the range too: two lines never read alike
    same = [{**rows[1], "rank": 5, "wire_format": "bf16"}, {**rows[1], "rank": 6, "wire_format": "fp8"},
            {**rows[2], "rank": 7}]
    out = fold(same, cols)
    assert [r["rank"] for r in out] == ["5–7"] and out[0]["_unshown"]
    assert out[0]["decode_short"] == "1× b200 fp4/bf16|fp16"
    args = ("rank", "-m", "deepseek-v3", "--accelerators", "h200-sxm,b200", "--top", "5")
    code, text, _ = cli(*args)
    assert code == 0 and "|" in text and "alternatives joined by |" in " ".join(text.split())
    assert len(cli_json(*args)["results"]) == 5


def test_devices_counts_whole_instances_and_the_emitted_deployment_passes_check(cli, cli_json, tmp_path):
    """What rank claims for N devices is buildable: whole instances within N, and the row written as a
    deployment passes check at the rate it claims (fractional pools claimed more than any build holds)."""
    args = ("rank", "-m", "llama-3.1-70b", "--accelerators", "h100-sxm", "--devices", "16", "--top", "3")
    rows = cli_json(*args)["results"]
    for r in rows:
        assert r["devices"] <= 16 and r["max_rate_for_devices"] == r["requests_per_s"] > 0
        if r["prefill_hw"]:  # never more than pools of fractional instances would carry
            c_p = min(r["prefill_capacity"], r["link_capacity"], r["hold_capacity"])
            fractional = 16 / (r["prefill_tp"] * r["prefill_dp"] / c_p + r["decode_tp"] * r["decode_dp"]
                               / r["decode_capacity"])
            assert r["requests_per_s"] <= fractional * (1 + 1e-9)
        used = sum(r[f"{s}_instances"] * r[f"{s}_tp"] * r[f"{s}_dp"] for s in ("prefill", "decode") if r[f"{s}_hw"])
        assert used == r["devices"] == (r["prefill_devices"] or 0) + r["decode_devices"]
    for pick, extra in ((1, ()), (2, ()), (1, ("--mode", "agg")), (1, ("--rate", "30"))):
        path = tmp_path / f"d{pick}{len(extra)}.yaml"
        code, _, err = cli(*args, *extra, "--pick", str(pick), "--emit-deployment", str(path))
        assert code == 0 and path.exists(), err
        code, out, err = cli("check", str(path))
        assert code == 0, out + err
    code, _, err = cli(*args, "--pick", "9", "--emit-deployment", str(tmp_path / "x.yaml"))
    assert code == 1 and "--pick 9" in err and not (tmp_path / "x.yaml").exists()


def test_an_aggregated_deployment_is_checked_at_its_load(cli, tmp_path):
    doc = ("mode: aggregated\nmodel: llama-3.1-8b\nworkload: {preset: chat, rate_per_s: RATE}\n"
           "targets: {ttft_p90_ms: 2000, tpot_p99_ms: 40}\n"
           "pool: {accelerator: h100-sxm, instances: 1, tp: 1, weights: fp8, kv: fp8}\n")
    path = tmp_path / "agg.yaml"
    path.write_text(doc.replace("RATE", "5"))
    code, out, _ = cli("check", str(path))
    assert code == 0 and "TPOT p99 at that load" in out
    path.write_text(doc.replace("RATE", "500"))
    code, out, _ = cli("check", str(path))
    assert code == 1 and "inf" not in out and "request rate the KV memory admits" in out
    path.write_text(doc.replace("RATE", "5") + "kv_path: roce-400\n")
    code, _, err = cli("check", str(path))
    assert code == 2 and "kv_path" in err


def test_an_inventory_is_never_over_committed(cli_json, cli):
    """The study's everyday question: prefill on what is available, decode on what is bandwidth-strong.
    Either pool may use either type; a type's devices are counted once across both pools."""
    stock = {"h100-sxm": 16, "mi300x": 8}
    args = ("rank", "--inventory", "h100-sxm=16,mi300x=8", "--objective", "rate", "--top", "0")
    rows = cli_json(*args)["results"]
    assert rows
    for r in rows:
        used: dict[str, int] = {}
        for side in ("prefill", "decode"):
            if r[f"{side}_hw"]:
                used[r[f"{side}_hw"]] = used.get(r[f"{side}_hw"], 0) + r[f"{side}_devices"]
        assert all(n <= stock[hw] for hw, n in used.items()), r
        assert r["requests_per_s"] == r["max_rate_for_devices"] > 0
    rates = [r["max_rate_for_devices"] for r in rows]
    assert rates == sorted(rates, reverse=True)  # ranked by the rate each sustains
    assert any(r["prefill_hw"] and r["prefill_hw"] != r["decode_hw"] for r in rows)  # mixed pairs too
    code, _, err = cli("rank", "--inventory", "h100-sxm=16", "--devices", "8")
    assert code == 1 and "--inventory" in err
    code, _, err = cli("rank", "--inventory", "h100-sxm=0")
    assert code == 1 and "whole count" in err


def test_the_devices_objective_takes_the_fewest_devices_for_the_rate(cli_json, cli):
    rows = cli_json("rank", "--accelerators", "h100-sxm,h200-sxm", "--rate", "40", "--objective", "devices",
                    "--top", "0")["results"]
    devices = [r["devices"] for r in rows]
    assert devices and devices == sorted(devices) and all(r["requests_per_s"] == 40 for r in rows)
    code, _, err = cli("rank", "--objective", "devices")
    assert code == 1 and "--rate" in err
    code, _, err = cli("rank", "--objective", "rate")
    assert code == 1 and "--devices or --inventory" in err


def test_rank_converts_fp8_between_encodings(catalog):
    """An H100 writing FP8 KV for an MI300X decode pool converts it (e4m3fn to e4m3fnuz); for an H200 it does not."""
    c = _cands(catalog, accs=("h100-sxm", "mi300x", "h200-sxm"), weights=("fp8",), kv=("fp8",), tp=(1,),
               prefill_ids=frozenset({"h100-sxm"}))
    rows = [r for r in rank(c, "cost", top=0, prune=False).rows if r["mode"] == "disaggregated"]
    by_decode = {r["decode_hw"]: r["kv_placement"] for r in rows if r["prefill_kv"] == "fp8"}
    assert by_decode["h200-sxm"] == "direct" and by_decode["mi300x"] in ("producer", "transport", "consumer")


def test_show_infeasible_honours_the_filters_and_every_format(cli, cli_json, tmp_path):
    args = ("rank", "--accelerators", "h100-sxm,mi300x", "--prefill-hw", "h100-sxm", "--show-infeasible", "--top", "2")
    doc = cli_json(*args)
    bad = doc["infeasible"]
    assert bad and not [x for x in bad if x["stage"] == "prefill" and x["configuration"].startswith("mi300x")]
    assert not [x for x in bad if x["stage"] == "link" and x["configuration"].startswith("mi300x ->")]
    agg = cli_json(*args, "--mode", "agg")["infeasible"]
    assert agg and {x["stage"] for x in agg} == {"aggregated"}
    code, out, _ = cli(*args, "--format", "csv")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("status,rank,") and lines[0].endswith("stage,configuration,reason")
    assert {ln.split(",")[0] for ln in lines[1:]} == {"ranked", "excluded"}
    code, out, _ = cli(*args, "--format", "csv", "--ttft", "1")  # a dead end still says what was excluded
    assert code == 1 and out.startswith("status,") and "excluded" in out
    pytest.importorskip("openpyxl")
    from openpyxl import load_workbook

    code, _, err = cli(*args, "--format", "xlsx", "-o", str(tmp_path / "r.xlsx"))
    assert code == 0, err
    assert load_workbook(tmp_path / "r.xlsx")["excluded"].max_row == len(bad) + 1


def test_emitting_a_deployment_fails_cleanly_and_says_what_cannot_deploy(cli, cli_json, tmp_path):
    code, _, err = cli("rank", "--accelerators", "h100-sxm", "--pick", "2")
    assert code == 1 and "--emit-deployment" in err
    code, _, err = cli("rank", "--accelerators", "h100-sxm", "--pick", "0", "--emit-deployment", str(tmp_path / "a"))
    assert code == 1 and "from 1" in err and not (tmp_path / "a").exists()
    code, _, err = cli("rank", "--accelerators", "h100-sxm", "--format", "xlsx", "--emit-deployment",
                       str(tmp_path / "b.yaml"))
    assert code == 1 and "needs -o" in err and not (tmp_path / "b.yaml").exists()  # nothing half done
    doc = cli_json("rank", "-m", "llama-3.1-8b", "--inventory", "h100-sxm=8,mi300x=8", "--weights", "fp8", "--kv", "fp8",
                   "--prefill-hw", "h100-sxm", "--decode-hw", "mi300x", "--mode", "disagg", "--top", "3")
    assert doc["meta"]["inventory"] == {"h100-sxm": 8, "mi300x": 8}
    rows = doc["results"]
    assert rows and all(r["kv_conversion"] == "fp8_e4m3fn (h100-sxm) to fp8_e4m3fnuz (mi300x)" for r in rows)


def test_inventory_rows_survive_workloads_without_aggregated_rows(cli_json):
    rows = cli_json("rank", "-m", "llama-3.1-8b", "-w", "long-context-retrieval", "--inventory", "b200=4",
                    "--top", "3")["results"]
    assert rows and all(r["devices"] <= 4 for r in rows)
    for r in rows:  # per-device figures are the built deployment's
        assert r["tokens_per_s_per_device"] == pytest.approx(r["requests_per_s"] * 30 / r["devices"], rel=1e-9)


@pytest.mark.parametrize("retained_bytes", [59.5e9])
def test_pruning_keeps_every_tier_row_that_takes_sequences_off_a_crowded_hbm(catalog, retained_bytes):
    """Llama-3.1-70B on H100s with 8k-token prompts, decode at TP8: the reservations of arriving
    transfers and a retained cache crowd HBM, and host DRAM takes the sequences that no longer fit
    there (their fetch within the TPOT target). Pruning drops only tier rows that hold no KV after ownership, the
    same configurations as their HBM rows: the rows that keep KV in the tier, the count of every
    configuration and the best cost are those of the unpruned run."""
    from pdroof.serving.evaluate import run

    w = Workload("long", 8_000, 1_000, ttft_s=100.0, tpot_s=0.5)
    accs = [catalog.get("accelerator", "h100-sxm")]
    c = _cands(catalog, accs=("h100-sxm",), tiers=("hbm", "host-dram"), model="llama-3.1-70b", workload=w,
               weights=("bf16",), kv=("bf16",), tp=(2, 8), retained_bytes=retained_bytes,
               runtimes=runtimes_for(catalog, "engine", accs))
    pruned, _ = run(c, prune=True)
    full, _ = run(c, prune=False)

    def in_tier(r):
        return int((r.columns["feasible"] & (r.columns["tier_kv_bytes"] > 0)).sum())

    assert in_tier(full) >= 1 and in_tier(pruned) == in_tier(full)
    assert pruned.feasible <= full.feasible <= pruned.feasible + pruned.dominated
    assert pruned.feasible + pruned.dominated + sum(pruned.infeasible.values()) + pruned.filtered == pruned.total
    best = np.nanmin(full.columns["usd_per_million_tokens"][full.columns["feasible"]])
    assert np.nanmin(pruned.columns["usd_per_million_tokens"][pruned.columns["feasible"]]) == best


def test_a_tier_that_adds_no_batch_is_evaluated_where_ownership_crowds_its_hbm_row(catalog):
    """Llama-3.1-70B with 8k-token prompts and a 59.5 GB retained cache: slower tiers whose decode batch
    is no larger than their HBM row's are evaluated only where that row's admission fell short of its
    batch (elsewhere they repeat it), and there they take the sequences HBM has no room for; every such
    row the full run finds, the pruned run finds too, and the progress reported reaches its total once."""
    from pdroof.serving.evaluate import run

    w = Workload("long", 8_000, 1_000, ttft_s=100.0, tpot_s=0.2)
    accs = [catalog.get("accelerator", a) for a in ("h100-sxm", "h200-sxm")]
    c = _cands(catalog, accs=("h100-sxm", "h200-sxm"), tiers=tuple(t.id for t in catalog.all("tier")),
               model="llama-3.1-70b", workload=w, retained_bytes=59.5e9, runtimes=runtimes_for(catalog, "engine", accs),
               weights=("bf16",), kv=("bf16",))  # one wire format and one path: only tiers are pruned
    seen = []
    pruned, st = run(c, prune=True, keep=10**7, progress=lambda done, total: seen.append((done, total)))
    full, _ = run(c, prune=False, keep=10**7)

    def in_tier(r):
        f = r.columns["feasible"] & (r.columns["tier_kv_bytes"] > 0)
        return sorted(zip(r.columns["prefill_row"][f], r.columns["decode_row"][f], r.columns["wire"][f],
                          r.columns["path"][f], strict=True))

    waiting = st["decode"].values["tier_no_gain"] & ~st["decode"].values["tier_dominated"]
    held = in_tier(full)
    assert any(waiting[d] for _, d, _, _ in held)  # rows only the second pass evaluates
    assert in_tier(pruned) == held
    assert seen[-1][0] == seen[-1][1] and all(d <= t for d, t in seen)


@pytest.mark.parametrize("ttft_s, retained_bytes, prompt", [(0.5, 8e9, 8_000), (1.0, 30e9, 32_000)])
def test_skipped_tier_rows_count_under_their_hbm_rows_reasons(catalog, ttft_s, retained_bytes, prompt):
    """Llama-3.1-70B on H100s and H200s with every tier and a tight TTFT: a slower tier that turns
    out as its HBM row is not evaluated, and where that row fails its configurations are counted
    under the same reasons (not as dominated), so that pruning only tiers changes no reason's count:
    what the full run finds feasible or a repeat is feasible or a repeat in the pruned run (a tier row
    that ends up holding no KV is its HBM row's configuration, a repeat in either)."""
    from pdroof.serving.evaluate import run

    w = Workload("long", prompt, 1_000, ttft_s=ttft_s, tpot_s=0.05)
    names = ("h100-sxm", "h200-sxm")
    accs = [catalog.get("accelerator", a) for a in names]
    c = _cands(catalog, accs=names, tiers=tuple(t.id for t in catalog.all("tier")), model="llama-3.1-70b",
               workload=w, retained_bytes=retained_bytes, runtimes=runtimes_for(catalog, "engine", accs),
               weights=("bf16",), kv=("bf16",))  # one wire format and one path: only tiers are pruned
    pruned, _ = run(c, prune=True)
    full, _ = run(c, prune=False)
    assert full.infeasible["misses TTFT (prefill, queueing margin and handoff)"] > 0
    assert +pruned.infeasible == +full.infeasible
    assert pruned.feasible + pruned.dominated == full.feasible + full.dominated


@pytest.mark.parametrize("prompt, tpot_s, retained_bytes", [(8_000, 0.05, 59.5e9), (8_000, 0.5, 59.5e9), (32_000, 0.2, 41e9)])
def test_tier_pruning_matches_the_full_run_where_tiers_hold_kv(catalog, prompt, tpot_s, retained_bytes):
    """Llama-3.1-70B on H100s and H200s with every tier, where a retained cache crowds HBM and a slower
    tier keeps the sequences it has no room for: the pruned run finds every configuration that keeps
    KV in a tier, and counts every reason, as the full run does. (A tier row is skipped as holding
    nothing only where even one sequence's step leaves it no time to fetch one: ownership may admit
    fewer sequences than the stage's batch, and their faster step leaves more.)"""
    from pdroof.serving.evaluate import run

    names = ("h100-sxm", "h200-sxm")
    accs = [catalog.get("accelerator", a) for a in names]
    c = _cands(catalog, accs=names, tiers=tuple(t.id for t in catalog.all("tier")), model="llama-3.1-70b",
               workload=Workload("long", prompt, 1_000, ttft_s=100.0, tpot_s=tpot_s), retained_bytes=retained_bytes,
               runtimes=runtimes_for(catalog, "engine", accs), weights=("bf16",), kv=("bf16",))

    def in_tier(r):
        f = r.columns["feasible"] & (r.columns["tier_kv_bytes"] > 0)
        return sorted(zip(r.columns["prefill_row"][f], r.columns["decode_row"][f], r.columns["wire"][f],
                          r.columns["path"][f], strict=True))

    pruned, _ = run(c, prune=True, keep=10**7)
    full, _ = run(c, prune=False, keep=10**7)
    assert in_tier(full) and in_tier(pruned) == in_tier(full) and +pruned.infeasible == +full.infeasible


def test_a_tier_row_holding_no_kv_is_not_listed_beside_its_hbm_row(catalog):
    """Llama-3.1-8B with 32k-token prompts and 10 output tokens to H20s over the remote pool: every
    slower tier's row ends up holding no KV (reservations, not sequences, fill HBM), so each is its
    HBM row's configuration under another name. They were listed, a host-DRAM row at the top with a
    rate its HBM row did not show; now they count as that row's repeats, and HBM's row ranks first."""
    w = Workload("short", 32_000, 10, ttft_s=100.0, tpot_s=1.0)
    accs = ("rtx-4090", "h20")
    c = _cands(catalog, accs=accs, paths=("remote-pool",), tiers=tuple(t.id for t in catalog.all("tier")),
               workload=w, runtimes=runtimes_for(catalog, "engine", [catalog.get("accelerator", a) for a in accs]),
               weights=("fp8",), kv=("fp8",))
    rk = rank(c, "cost", top=0)
    dis = [r for r in rk.rows if r["mode"] == "disaggregated"]
    assert dis and all(r["tier"] == "hbm" or r["tier_kv_bytes"] > 0 for r in dis)
    assert rk.results.dominated > 0


def test_the_tpot_objective_and_the_pareto_front_see_every_path_and_wire_format(catalog):
    """Qwen3-32B, H100s and H20s, 32k-token prompts over RoCE or 100G TCP: a slower path's longer
    reservations crowd the decode batch, so its step can be faster. Pruning it as "no better" kept the
    lowest TPOT at 10.648 ms (19 sequences) where the full run found 10.588 ms (9), and dropped
    points of the Pareto front; for those two the choices are all evaluated, and agree with the full
    run (10.296 ms since a 32k-token prompt is prefilled in the 8,192-token chunks its engine takes)."""
    w = Workload("long", 32_000, 1_000, ttft_s=100.0, tpot_s=0.05)
    accs = ("h100-sxm", "h20")
    c = _cands(catalog, accs=accs, paths=("roce-400", "tcp-100g"), workload=w, model="qwen3-32b",
               runtimes=runtimes_for(catalog, "engine", [catalog.get("accelerator", a) for a in accs]))
    outcome = lambda rk: sorted((r["tokens_per_s_per_device"], r["ttft_unloaded_s"], r["tpot_s"])  # noqa: E731
                                for r in rk.rows)
    for objective, pareto, top in (("tpot", False, 5), ("throughput", True, 0)):
        pruned = rank(c, objective, top=top, pareto=pareto)
        assert outcome(pruned) == outcome(rank(c, objective, top=top, pareto=pareto, prune=False))
    assert rank(c, "tpot", top=1).rows[0]["tpot_s"] == pytest.approx(0.010296, rel=1e-4)


def test_the_default_rank_never_imports_numpys_masked_arrays():
    """np.unique imports numpy.ma (20 ms of a 400 ms start-up); the default rank's path does without it."""
    import subprocess
    import sys

    code = ("import io, sys, contextlib\nfrom pdroof.cli.app import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['rank'])\n"
            "sys.exit(1 if 'numpy.ma' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _passes(x: float) -> float:
    """k with k·ln k = x (k ≥ 1), by bisection."""
    lo, hi = 1.0, 2.0 + x
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mid * np.log(mid) < x else (lo, mid)
    return (lo + hi) / 2


def test_a_dp_attention_decode_row_of_an_engine_that_takes_arrivals_in_their_own_pass_pays_for_them(catalog):
    """SGLang's decode replica under DP attention sits out a pass for the requests it takes in
    (``admission_passes``): a decode row's TPOT is its step times k, k·ln k = B/O (B its replica's
    batch), and the batch chosen meets the TPOT target so; without DP attention, or under an engine
    that merges arrivals into its next pass (TensorRT-LLM), TPOT is the step."""
    from pdroof.serving.space import decode_stage

    w = Workload("short", prompt_tokens=2048, output_tokens=128, ttft_s=5.0, tpot_s=0.08)
    seen = 0
    for rt, own in (("sglang", 1.0), ("trtllm", 0.0)):
        c = _cands(catalog, accs=("h200-sxm",), model="deepseek-v3", workload=w, runtime=catalog.get("runtime", rt),
                   weights=("fp8",), kv=("fp8",), tp=(1, 8), dp=(1, 8))
        st, rows = decode_stage(c), [r for r in rank(c, "cost", top=0).rows if r["mode"] == "disaggregated"]
        for i in (i for i, reason in enumerate(st.reasons) if reason is None):
            dp, b, step = st.labels["dp"][i], st.values["decode_batch"][i], st.values["step_s"][i]
            k = _passes(own * (dp > 1) * b / w.output_tokens)
            assert step * k <= w.tpot_s
            mine = [r for r in rows if (r["decode_tp"], r["decode_dp"], r["decode_moe_ep"]) ==
                    (st.labels["tp"][i], dp, st.labels["moe_ep"][i]) and r["decode_batch"] == b * dp]
            assert mine and all(r["tpot_s"] == pytest.approx(step * k, rel=1e-9) for r in mine)
            seen += k > 1.3  # dozens of sequences each taking 128 tokens
    assert seen


def test_a_slower_tier_fetches_within_the_tpot_a_replicas_passes_leave(catalog):
    """Review finding: the tier's fetches were sized to the TPOT target's slack over the step, but a
    replica that sits out passes for its arrivals repeats the step and its fetches k times per token:
    every row, tier rows included, now keeps its TPOT within the target."""
    w = Workload("short", prompt_tokens=2048, output_tokens=32, ttft_s=5.0, tpot_s=0.04)
    c = _cands(catalog, accs=("h200-sxm", "b200"), model="deepseek-v3", workload=w,
               runtime=catalog.get("runtime", "sglang"), tiers=("hbm", "host-dram"), retained_bytes=10e9)
    rows = [r for r in rank(c, "cost", top=0).rows if r["mode"] == "disaggregated"]
    tiered = [r for r in rows if r["tier"] != "hbm" and r["decode_dp"] > 1]
    assert tiered and all(r["tpot_s"] <= w.tpot_s * (1 + 1e-9) for r in rows)


def test_a_prefill_row_takes_a_long_prompt_in_its_replicas_chunks(catalog):
    """The prefill stage prefills a prompt beyond its replica's budget in ⌈S/K⌉ passes: a 32,000-token
    prompt under an 8,192-token budget in four, no faster than one pass and exactly
    ``prefill_passes``; SGLang's DP8 rows of DeepSeek-V3 take an 8,192-token prompt in passes of
    2,048 (its chunk divided among the replicas), its DP1 rows in one."""
    from pdroof.cost.numeric import evaluate
    from pdroof.cost.parallelism import Parallelism
    from pdroof.serving.space import prefill_stage
    from pdroof.serving.stage import prefill_passes, stage_inputs

    long = Workload("long", 32_000, 128, ttft_s=10.0, tpot_s=0.05)
    pre = prefill_stage(_cands(catalog, accs=("h100-sxm",), workload=long, weights=("bf16",), tp=(1,)))
    inputs, _ = stage_inputs(catalog.get("model", "llama-3.1-8b"), catalog.get("accelerator", "h100-sxm"),
                             catalog.get("runtime", "engine"), Precision("bf16", "bf16", "bf16"), 1)
    one = float(evaluate("prefill", {**inputs, "batch": 1.0, "new_tokens": 32_000.0, "prefix_tokens": 0.0,
                                     "context_tokens": 32_000.0}, ("seconds",))["seconds"])
    got = pre.values["prefill_s"][0]
    assert got == pytest.approx(float(prefill_passes(inputs, 1.0, 32_000.0)["seconds"]), rel=1e-12)
    assert got > one

    w = Workload("8k", 8192, 256, ttft_s=10.0, tpot_s=0.05)
    c = _cands(catalog, accs=("b200",), model="deepseek-v3", workload=w, runtime=catalog.get("runtime", "sglang"),
               weights=("fp8",), tp=(1, 8), dp=(1, 8))
    pre = prefill_stage(c)
    rows = {split: i for i, split in enumerate(zip(pre.labels["tp"], pre.labels["dp"], pre.labels["moe_ep"],
                                                    strict=True)) if pre.reasons[i] is None}
    for (tp, dp, ep), i in rows.items():
        inputs, _ = stage_inputs(c.model, c.accelerators[0], c.runtime, Precision("fp8", "fp8", "fp8"), tp,
                                 Parallelism(tp, dp, None, ep))
        assert inputs["replica_chunk_tokens"] == 16384 // dp
        assert pre.values["prefill_s"][i] == pytest.approx(float(prefill_passes(inputs, 1.0, 8192.0)["seconds"]),
                                                           rel=1e-9)
    assert {(1, 8, 8), (8, 1, 1)} <= set(rows)


def test_a_decode_row_runs_the_batch_that_serves_the_most_within_the_target(catalog):
    """Review finding: the decode stage kept the largest batch within the TPOT target, which serves
    the most while the time per token grows more slowly than the batch. Where the engine takes
    arrivals in passes of their own (SGLang under DP attention) the passes per token grow with the
    batch, and at a loose target a smaller batch serves more sequences per second of time per token:
    every row now runs the batch of most B/TPOT among those within the target and its KV memory (the
    largest of them where that is the step's), and rank says so (admission_passes)."""
    from pdroof.cost.inputs import scheduler_inputs
    from pdroof.serving.space import BATCHES, decode_stage

    w = Workload("long answers", prompt_tokens=256, output_tokens=1024, ttft_s=10.0, tpot_s=0.1)
    smaller = 0
    for rt in ("sglang", "trtllm"):
        c = _cands(catalog, accs=("b200",), model="deepseek-v3", workload=w, runtime=catalog.get("runtime", rt),
                   weights=("fp8",), kv=("fp8",), tp=(1, 8), dp=(1, 8))
        st = decode_stage(c)
        own = catalog.get("runtime", rt).structure.disaggregated_admission == "own_pass"
        limit = scheduler_inputs(c.runtime, c.accelerators[0])["max_sequences"]  # the engine's, if any
        for i in (i for i, reason in enumerate(st.reasons) if reason is None):
            dp, step = st.labels["dp"][i], st.values["step_by_batch"][i]
            k = np.array([_passes(own * (dp > 1) * b / w.output_tokens) for b in BATCHES])
            within = (step * k <= w.tpot_s) & (BATCHES <= min(st.values["hbm_batch"][i], limit))
            served = np.where(within, BATCHES / (step * k), 0.0)
            chosen = st.values["decode_batch"][i]
            assert chosen / (st.values["step_s"][i] * k[BATCHES == chosen][0]) >= served.max() * (1 - 1e-6)
            largest = BATCHES[within].max()
            assert (chosen == largest) == (not st.values["admission_bound"][i])
            assert st.values["hbm_alone_batch"][i] == chosen  # KV in HBM alone: the same choice
            smaller += chosen < largest
            if not own or dp == 1:
                assert chosen == largest
        rows = [r for r in rank(c, "cost", top=0).rows if r["mode"] == "disaggregated"]
        assert ("admission_passes" in {r["binding"] for r in rows}) == own
    assert smaller


def test_the_batch_that_serves_the_most_is_the_largest_within_a_millionth_of_it():
    """Where what batches serve differs by rounding alone (a step that has turned compute-bound), the
    largest of them: a smaller one is chosen only where it serves more by more than SERVED_TIE."""
    from pdroof.serving.space import SERVED_TIE, _most_served

    ok = np.array([[True, True, True, True, False], [True, True, True, False, False], [False] * 5])
    served = np.array([[1.0, 2.0 * (1 + SERVED_TIE / 10), 2.0, 1.5, 9.0],
                       [1.0, 2.0 * (1 + 10 * SERVED_TIE), 2.0, 9.0, 9.0], [1.0] * 5])
    assert _most_served(ok, served).tolist() == [2, 1, -1]


def test_a_batch_memory_stops_is_kv_bound_only_where_the_next_would_serve_more():
    """The next batch size meets TPOT and does not fit: memory binds where it would serve more, not
    where the engine's own admission passes would make it serve less (admission_passes binds)."""
    from pdroof.serving.space import BATCHES, _capacity_bound

    best = np.array([3, 3])
    meets = np.ones((2, len(BATCHES)), dtype=bool)
    served = np.tile(np.arange(len(BATCHES), dtype=float), (2, 1))
    served[1, 4] = served[1, 3] - 1  # past its peak
    cap = np.full(2, BATCHES[3])
    assert _capacity_bound(np.ones(2, dtype=bool), best, meets, cap, served).tolist() == [True, False]
