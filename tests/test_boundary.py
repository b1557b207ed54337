"""The PD boundary: hard gates, representation plans and their placement, ownership, ``check``,
and the study's qualitative findings."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from pdroof.cost.precision import Precision
from pdroof.cost.runtime import runtime_for
from pdroof.serving.boundary import Pool, plan
from pdroof.serving.estimate import estimate
from pdroof.serving.workload import Workload
from pdroof.spec.errors import PdroofError

from .conftest import REPO

W = Workload("t", 4096, 512)


def _plan(catalog, pre: dict, dec: dict, model="qwen3-32b", path="roce-400", w=W, **kw):
    acc = lambda i: catalog.get("accelerator", i)  # noqa: E731
    return plan(catalog.get("model", model), Pool(acc(pre.pop("hw")), **pre), Pool(acc(dec.pop("hw")), **dec),
                catalog.get("path", path), catalog.all("tier"), catalog.get("runtime", "engine"), w, **kw)


def test_direct_consume_when_layouts_match(catalog):
    p = _plan(catalog, {"hw": "h100-sxm", "weights": "fp8", "kv": "fp8"}, {"hw": "h200-sxm", "weights": "fp8", "kv": "fp8"})
    rep = p.doc["representation"]
    assert p.feasible and rep["actions"] == ["consume directly"] and rep["chosen_placement"] == "direct"
    assert rep["transform_s"] == pytest.approx(0.0, abs=1e-12)


def test_convert_and_redistribute_choose_the_cheapest_placement(catalog):
    p = _plan(catalog, {"hw": "h100-sxm", "weights": "fp8", "kv": "bf16"},
              {"hw": "h200-sxm", "weights": "fp8", "kv": "fp8", "tp": 2})
    rep = p.doc["representation"]
    assert rep["actions"] == ["convert", "redistribute"]
    costs = rep["placement_costs_s"]
    assert rep["chosen_placement"] == min(costs, key=costs.get)
    assert rep["handoff_s"] == pytest.approx(min(costs.values()))


def test_producer_conversion_shrinks_the_wire(catalog):
    """Over a slow link, converting bf16 to fp8 before sending halves the bytes and wins."""
    w = Workload("long", 32_000, 128)
    p = _plan(catalog, {"hw": "h100-sxm", "weights": "fp8", "kv": "bf16"}, {"hw": "mi300x", "weights": "fp8", "kv": "fp8"},
              model="llama-3.1-8b", path="tcp-100g", w=w)
    rep = p.doc["representation"]
    assert rep["chosen_placement"] == "producer" and rep["wire_format"] == "fp8_e4m3fnuz"  # the consumer's bits
    assert rep["wire_bytes"] == pytest.approx(p.doc["ownership"]["source_bytes"] / 2)


def test_page_layout_difference_is_redistributed(catalog):
    p = _plan(catalog, {"hw": "h100-sxm", "page_tokens": 64}, {"hw": "h100-sxm", "page_tokens": 16}, model="llama-3.1-8b",
              path="nvlink4")
    assert p.doc["representation"]["actions"] == ["redistribute"]


@pytest.mark.parametrize("pre,dec,words", [
    ({"hw": "h100-sxm", "rope_theta": 10000.0}, {"hw": "h200-sxm"}, "position encoding"),
    ({"hw": "h100-sxm"}, {"hw": "h200-sxm", "max_context": 4000}, "token range"),
])
def test_hard_gate_rejects(catalog, pre, dec, words):
    p = _plan(catalog, pre, dec, model="llama-3.1-8b")
    assert not p.feasible and any(words in r for r in p.reasons)


def test_model_identity_gate(catalog):
    other = catalog.get("model", "qwen3-8b")
    p = _plan(catalog, {"hw": "h100-sxm"}, {"hw": "h200-sxm", "model": other}, model="llama-3.1-8b")
    assert not p.feasible and any("model identity" in r for r in p.reasons)


def test_infeasible_format_and_path_are_reasons(catalog):
    p = _plan(catalog, {"hw": "ascend-910b", "kv": "fp8"}, {"hw": "h200-sxm"}, model="llama-3.1-8b", path="nvlink4")
    assert not p.feasible
    assert any("fp8 KV" in r for r in p.reasons) and any(r.startswith("path:") for r in p.reasons)


def test_ownership_footprint_and_admission(catalog):
    p = _plan(catalog, {"hw": "h100-sxm", "weights": "fp8", "kv": "bf16"}, {"hw": "h200-sxm", "weights": "fp8", "kv": "fp8"})
    o = p.doc["ownership"]
    assert o["transient_bytes"] == pytest.approx(o["source_bytes"] + o["staging_bytes"] + o["destination_bytes"])
    assert o["source_pinned_s"] > p.doc["serving"]["prefill_s"]
    a = o["decode_admission"]
    assert a["active_kv_bytes"] + a["in_flight_reservations_bytes"] + a["retained_cache_bytes"] <= a["kv_capacity_bytes"]
    held = _plan(catalog, {"hw": "h100-sxm", "weights": "fp8", "kv": "bf16"},
                 {"hw": "h200-sxm", "weights": "fp8", "kv": "fp8"}, retained_bytes=60e9)
    assert held.doc["ownership"]["decode_admission"]["admitted_batch"] < a["admitted_batch"]  # retention costs slots


def _rate(p) -> float:
    s, n_p, n_d = p.doc["serving"], p.doc["placement"]["prefill"]["instances"], p.doc["placement"]["decode"]["instances"]
    return min(n_p * s["prefill_capacity"], n_d * s["decode_capacity"])


def test_study_fp8_kv_sustains_a_higher_rate(catalog):
    """qwen3-32b on h100-sxm, 4 prefill + 4 decode devices, 4K in / 512 out."""
    rates = {}
    for kv in ("bf16", "fp8"):
        p = _plan(catalog, {"hw": "h100-sxm", "count": 4, "weights": "fp8", "kv": kv},
                  {"hw": "h100-sxm", "count": 4, "weights": "fp8", "kv": kv}, path="nvlink4", w=Workload("study", 4096, 512))
        assert p.feasible, p.reasons
        rates[kv] = _rate(p)
    assert rates["fp8"] > 1.5 * rates["bf16"]


def test_study_weight_formats_help_one_role_and_hurt_the_other(catalog):
    m, h100, rt = catalog.get("model", "qwen3-32b"), catalog.get("accelerator", "h100-sxm"), catalog.get("runtime", "engine")
    run = {w: estimate(m, h100, rt, Precision(w, a, "bf16"), batch=4, prompt=4096, context=4096 + 256)
           for w, a in (("bf16", "bf16"), ("fp8", "fp8"), ("int4", "bf16"))}
    tpot = {w: r["decode"]["step_seconds"] for w, r in run.items()}
    assert tpot["fp8"] < tpot["bf16"] and tpot["int4"] < tpot["bf16"]
    ttft = {w: r["prefill"]["seconds"] for w, r in run.items()}
    assert ttft["int4"] > ttft["fp8"]


def test_study_mla_moe_long_prompts_put_more_devices_on_prefill(catalog):
    """DeepSeek-V3, ~64K prompts with a high prefix hit, a few hundred output tokens: prefill on a
    compute-oriented accelerator, decode on Hopper."""
    w = Workload("prod", 64_000, 300, prefix_hit=0.8)
    p = _plan(catalog, {"hw": "b200", "tp": 8, "weights": "fp8", "kv": "fp8"},
              {"hw": "h200-sxm", "tp": 8, "weights": "fp8", "kv": "fp8"}, model="deepseek-v3", path="ib-ndr-400", w=w)
    assert p.feasible, p.reasons
    assert p.doc["serving"]["prefill_device_share"] > 0.5


def test_check_example_passes(cli):
    code, out, err = cli("check", str(REPO / "examples" / "deployment.yaml"), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["passed"] and all(c["passed"] for c in doc["checks"])
    assert doc["plan"]["placement"]["prefill"]["accelerator"] != doc["plan"]["placement"]["decode"]["accelerator"]


def test_check_failure_says_which_and_by_how_much(cli, tmp_path):
    text = (REPO / "examples" / "deployment.yaml").read_text().replace("rate_per_s: 2.0", "rate_per_s: 20.0")
    f = tmp_path / "busy.yaml"
    f.write_text(text)
    code, out, err = cli("check", str(f))
    assert code == 1
    assert "FAIL TTFT p90 at the offered rate" in err and ("over by" in err or "unbounded" in err)


@pytest.mark.parametrize("mutate", [
    lambda t: t.replace("accelerator: mi300x", "accelerator: mi3000x"),
    lambda t: t.replace("ttft_p90_ms: 6000", "ttft_p90_ms: soon"),
    lambda t: t + "surprise: 1\n",
    lambda t: "- not a mapping\n",
])
def test_check_invalid_input_exits_2(cli, tmp_path, mutate):
    f = tmp_path / "bad.yaml"
    f.write_text(mutate((REPO / "examples" / "deployment.yaml").read_text()))
    code, _, err = cli("check", str(f))
    assert code == 2 and err.startswith("Error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("old, new, field", [
    ("accelerator: mi300x", "accelerator: mi3000x", "prefill.accelerator"),
    ("model: qwen3-32b", "model: qwen9", "model"), ("kv_path: roce-400", "kv_path: pigeon", "kv_path"),
    ("preset: summarization", "preset: poetry", "workload.preset"),
    ("ttft_p90_ms: 6000", "ttft_p90_ms: 1.0e-300", "targets.ttft_p90_ms")])
def test_an_unknown_id_or_target_out_of_range_names_the_file_and_field(cli, tmp_path, old, new, field):
    """check and deploy alike: one line naming the deployment file and the field, exit 2 (validate: 1)."""
    text = (REPO / "examples" / "deployment.yaml").read_text()
    assert old in text
    f = tmp_path / "bad.yaml"
    f.write_text(text.replace(old, new))
    for args, status in ((("check", str(f)), 2), (("deploy", str(f), "-e", "sglang"), 2), (("validate", str(f)), 1)):
        code, _, err = cli(*args)
        assert code == status and err.startswith(f"Error: {f}: {field}: ") and len(err.strip().splitlines()) == 1, err


def test_plan_cli_json(cli):
    code, out, err = cli("plan", "--model", "llama-3.1-8b", "--prefill", "h100-sxm", "--decode", "mi300x",
                         "--link", "roce-400", "--kv", "fp8", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["feasible"] and {"placement", "representation", "ownership", "serving"} <= set(doc)


def test_frozen_pool_is_reusable(catalog):
    pool = Pool(catalog.get("accelerator", "h100-sxm"))
    assert replace(pool, tp=2).tp == 2 and pool.tp == 1


def test_check_charges_the_tier_fetch_in_tpot(catalog):
    """Sequences beyond HBM have their KV fetched from the tier every step: 10 of them at 1 GB
    over 55 GB/s add 182 ms to the step."""
    from pdroof.serving.boundary import Plan
    from pdroof.serving.deployment import _decode_tpot, load

    d = load(REPO / "examples" / "deployment.yaml")
    dec = Pool(catalog.get("accelerator", "h200-sxm"), tp=2, weights="fp8", kv="fp8")
    w = Workload("t", 20_000, 300)
    in_hbm = Plan(True, decode_tier={"hbm_batch": 1e9, "tier_bytes_per_s": 55e9, "kv_request_bytes": 1e9})
    spilled = Plan(True, decode_tier={"hbm_batch": 6.0, "tier_bytes_per_s": 55e9, "kv_request_bytes": 1e9})
    model = catalog.get("model", "qwen3-32b")
    base = _decode_tpot(in_hbm, model, dec, catalog, d, w, 16)
    assert _decode_tpot(spilled, model, dec, catalog, d, w, 16) == pytest.approx(base + 10 * 1e9 / 55e9)


def test_reservations_cover_the_transfer_window(catalog):
    """Review D8: the decode destination is preallocated before the first streamed layer moves
    and held until commit: arrivals × (overlapped prefill + exposed handoff) × KV, not only the
    exposed part (19 MB for 1.9 ms before; gigabytes over the 40K-token window)."""
    from pdroof.serving.workload import PRESETS

    p = _plan(catalog, {"hw": "h100-sxm", "weights": "fp8", "kv": "bf16"},
              {"hw": "h200-sxm", "tp": 2, "weights": "fp8", "kv": "fp8"}, w=PRESETS["agent-request"])
    o, s = p.doc["ownership"], p.doc["serving"]
    window = o["destination_reserved_s"]
    assert window >= p.doc["representation"]["transfer_s"] and window > 0.9 * s["prefill_s"]
    a = o["decode_admission"]
    arrivals = a["admitted_batch"] / (300 * s["tpot_s"])  # the admitted batch's replacements
    assert a["in_flight_reservations_bytes"] == pytest.approx(arrivals * window * o["destination_bytes"], rel=1e-9)
    assert a["in_flight_reservations_bytes"] > 1e9
    # the most sequences whose KV and whose arrivals' reservations fit: one more would not
    per_sequence = a["active_kv_bytes"] / a["admitted_batch"] + a["in_flight_reservations_bytes"] / a["admitted_batch"]
    free = a["kv_capacity_bytes"] - a["retained_cache_bytes"]
    assert a["admitted_batch"] * per_sequence <= free * (1 + 1e-12)
    assert a["admitted_batch"] == a["batch_before_ownership"] or (a["admitted_batch"] + 1) * per_sequence > free


def test_fewer_admitted_sequences_bring_fewer_reservations(catalog):
    """Reservations were charged at the batch TPOT allows, before ownership cut it: a fast decode pool
    whose arrivals' reservations alone exceeded its memory admitted nothing. A smaller batch brings
    fewer arrivals, so the admitted batch is the most that fits with its own reservations."""
    from pdroof.serving.workload import PRESETS

    # 30K-token prompts, 30 output tokens: each sequence is replaced every 30 steps, its successor's
    # destination held over a long prefill
    p = _plan(catalog, {"hw": "mi300x", "weights": "fp8", "kv": "bf16"},
              {"hw": "h100-sxm", "tp": 1, "weights": "fp8", "kv": "fp8"}, w=PRESETS["long-context-retrieval"],
              model="llama-3.1-8b")
    a = p.doc["ownership"]["decode_admission"]
    per_sequence = a["in_flight_reservations_bytes"] / a["admitted_batch"]
    free = a["kv_capacity_bytes"] - a["retained_cache_bytes"]
    assert a["batch_before_ownership"] * per_sequence > free  # charged at that batch, nothing was admitted
    assert p.feasible and 1 <= a["admitted_batch"] < a["batch_before_ownership"] and a["headroom_bytes"] >= 0


def test_token_range_gate_says_which_way(catalog):
    """Review D7: the gate's message printed "prompt 200,000 ≤ prefill 40,960" when it failed."""
    from pdroof.serving.workload import PRESETS

    p = _plan(catalog, {"hw": "h200-sxm"}, {"hw": "h200-sxm"}, w=PRESETS["agent-task"])
    assert not p.feasible and any("200,000 > prefill 40,960" in r for r in p.reasons)


def test_check_reads_every_named_target(cli, tmp_path):
    """Review D3: deployment files name the statistic of each target; every one given is checked,
    at least one per metric."""
    text = (REPO / "examples" / "deployment.yaml").read_text()
    f = tmp_path / "d.yaml"
    f.write_text(text.replace("  tpot_p99_ms: 30", "  tpot_p99_ms: 30\n  ttft_p50_ms: 4000\n  ttft_p99_ms: 9000"))
    code, out, err = cli("check", str(f), "--format", "json")
    assert code == 0, err
    names = [c["check"] for c in json.loads(out)["checks"]]
    assert {"TTFT p50 at the offered rate", "TTFT p90 at the offered rate", "TTFT p99 at the offered rate",
            "TPOT p99 at that batch"} <= set(names)
    f.write_text(text.replace("  tpot_p99_ms: 30\n", ""))
    code, _, err = cli("check", str(f))
    assert code == 2 and "targets.tpot_ms" in err and "at least one TPOT target" in err


def test_check_ttft_percentile_is_the_m_d_1_percentile(cli):
    """Review D3: p90 TTFT at the offered rate is service + the M/D/1 p90 wait + handoff + the
    request's own time outside the passes."""
    from pdroof.cost.queueing import wait

    code, out, err = cli("check", str(REPO / "examples" / "deployment.yaml"), "--format", "json")
    doc = json.loads(out)
    row = next(c for c in doc["checks"] if c["check"] == "TTFT p90 at the offered rate")
    s, h = doc["plan"]["serving"], doc["plan"]["representation"]["handoff_s"]
    import yaml

    dep = yaml.safe_load((REPO / "examples" / "deployment.yaml").read_text())
    rho = dep["workload"]["rate_per_s"] / dep["prefill"]["instances"] * s["prefill_s"]  # per prefill instance
    assert row["value"] == pytest.approx(s["prefill_s"] * (1 + float(wait(rho, "p90"))) + h + s["request_s"],
                                         rel=1e-9)


def test_each_pool_runs_the_engine_best_supported_on_it(cli, catalog):
    """``plan`` and ``check`` resolve the default runtime per pool and say which each ran."""
    from pdroof.cost.runtime import engine_id

    amd = engine_id(catalog, catalog.get("accelerator", "mi300x"))
    code, out, err = cli("plan", "--model", "llama-3.1-8b", "--prefill", "h100-sxm", "--decode", "mi300x",
                         "--format", "json")
    assert code == 0, err
    placement = json.loads(out)["placement"]
    assert (placement["prefill"]["runtime"], placement["decode"]["runtime"]) == ("trtllm", amd)
    code, out, err = cli("check", str(REPO / "examples" / "deployment.yaml"), "--format", "json")
    placement = json.loads(out)["plan"]["placement"]  # prefill on MI300X, decode on H200
    assert (placement["prefill"]["runtime"], placement["decode"]["runtime"]) == (amd, "trtllm")
    code, out, err = cli("check", str(REPO / "examples" / "deployment.yaml"))
    assert f"(runtime prefill {amd}, decode trtllm)" in out


def test_one_accelerator_runs_one_runtime(catalog):
    with pytest.raises(PdroofError, match="both on h100-sxm run one runtime"):
        _plan(catalog, {"hw": "h100-sxm", "runtime": catalog.get("runtime", "vllm")},
              {"hw": "h100-sxm", "runtime": catalog.get("runtime", "sglang")}, model="llama-3.1-8b")


def test_the_prefill_engines_request_overhead_is_in_the_disaggregated_ttft(catalog):
    """TTFT = prefill + wait + handoff + the prefill runtime's time per request outside the passes,
    a disaggregated request's (dispatch to both pools, the pre-allocation handshake) included."""
    from pdroof.serving.workload import PRESETS

    rt = catalog.get("runtime", "trtllm")
    assert rt.structure.request_latency_s > 0
    pool = Pool(catalog.get("accelerator", "h100-sxm"))
    doc = plan(catalog.get("model", "llama-3.1-8b"), pool, replace(pool), catalog.get("path", "nvlink4"),
               catalog.all("tier"), rt, PRESETS["chat"]).doc
    s = doc["serving"]
    assert rt.structure.disaggregation_latency_s > 0
    assert s["request_s"] == rt.structure.request_latency_s + rt.structure.disaggregation_latency_s
    assert s["ttft_unloaded_s"] == pytest.approx(s["prefill_s"] + doc["representation"]["handoff_s"] + s["request_s"])


def test_a_deployment_pool_says_instances_and_its_split(cli, tmp_path):
    """The run schema's vocabulary: instances (count its older name, not both), and per pool tp,
    dp, moe_tp and moe_ep; a DP-attention decode pool is checked per attention replica."""
    text = (REPO / "examples" / "deployment.yaml").read_text()
    old = tmp_path / "count.yaml"
    old.write_text(text.replace("instances: 14   ", "count: 14       "))
    code, out, err = cli("check", str(old), "--format", "json")
    assert code == 0, err
    both = tmp_path / "both.yaml"
    both.write_text(text.replace("instances: 14", "instances: 14\n  count: 14"))
    code, _, err = cli("check", str(both))
    assert code == 2 and "count" in err and "not both" in err
    ds = tmp_path / "ds.yaml"
    ds.write_text("""model: deepseek-v3
workload: {prompt_tokens: 2048, output_tokens: 256, rate_per_s: 4.0}
targets: {ttft_p90_ms: 3000, tpot_p99_ms: 60}
prefill: {accelerator: h200-sxm, instances: 2, tp: 8, weights: fp8, kv: fp8}
decode: {accelerator: h200-sxm, instances: 1, tp: 1, dp: 8, moe_ep: 8, weights: fp8, kv: fp8}
kv_path: ib-ndr-400
""")
    code, out, err = cli("check", str(ds), "--format", "json")
    doc = json.loads(out)
    dec = doc["plan"]["placement"]["decode"]
    assert (dec["tp"], dec["dp"], dec["moe_tp"], dec["moe_ep"], dec["devices"]) == (1, 8, 1, 8, 8)
    ingress = next(c for c in doc["checks"] if c["check"] == "decode ingress capacity")
    assert "per decode attention replica" in ingress["detail"] and ingress["value"] == pytest.approx(4.0 / 8)
    bad = tmp_path / "bad.yaml"
    bad.write_text(ds.read_text().replace("moe_ep: 8", "moe_ep: 8, moe_tp: 2"))
    code, out, err = cli("check", str(bad), "--format", "json")
    assert code == 1 and "must equal" in out


def test_plan_takes_each_pools_split(cli):
    code, out, err = cli("plan", "--model", "deepseek-v3", "--prefill", "h200-sxm", "--decode", "h200-sxm",
                         "--prefill-tp", "8", "--decode-dp", "8", "--decode-moe-ep", "8", "--prefill-weights", "fp8",
                         "--decode-weights", "fp8", "--prefill-kv", "fp8", "--kv", "fp8", "--link", "ib-ndr-400",
                         "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["feasible"] and doc["placement"]["decode"]["moe_ep"] == 8 and doc["placement"]["decode"]["dp"] == 8


def test_the_studys_production_deployment_holds_its_targets(cli):
    """examples/production-glm.yaml: GLM-5.1, prefill on four TP8 MetaX C600 instances in INT8
    W8A8, decode on one H20 instance of sixteen (DP16, EP16, two nodes) in FP8; 64K in with 90%
    prefix hits, 512 out, 1.8 req/s: TTFT p50 <= 5 s and TPOT p90 <= 30 ms, as the study ran it."""
    code, out, err = cli("check", str(REPO / "examples" / "production-glm.yaml"), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["passed"]
    dec = doc["plan"]["placement"]["decode"]
    assert (dec["accelerator"], dec["dp"], dec["moe_ep"], dec["devices"]) == ("h20", 16, 16, 16)
    pre = doc["plan"]["placement"]["prefill"]
    assert (pre["accelerator"], pre["tp"], pre["instances"]) == ("metax-c600", 8, 4)


def test_check_sizes_the_decode_batch_at_the_step_it_reports(cli):
    """The batch the rate needs and the TPOT reported are one fixed point, B = λ·O·t(B): the step
    the batch was sized with is the TPOT checked (it had sized from the full pool's slower step)."""
    code, out, err = cli("check", str(REPO / "examples" / "deployment.yaml"), "--format", "json")
    doc = json.loads(out)
    fits = next(c for c in doc["checks"] if c["check"] == "decode batch that fits")
    tpot = next(c for c in doc["checks"] if c["check"].startswith("TPOT"))
    assert f"{tpot['value'] * 1e3:.1f} ms per token" in fits["detail"]
    import yaml

    dep = yaml.safe_load((REPO / "examples" / "deployment.yaml").read_text())
    rate = dep["workload"]["rate_per_s"] / dep["decode"]["instances"]
    from pdroof.serving.workload import resolve

    out_tokens = resolve(dep["workload"]["preset"]).output_tokens
    assert fits["value"] == pytest.approx(rate * out_tokens * tpot["value"], rel=0.02)


def test_checks_decode_batch_is_the_least_fixed_point(catalog, tmp_path, cli):
    """Started from the full pool's slower step the iteration could overshoot the pool and report
    a false failure; from below it rises to the least batch that holds the rate."""
    text = (REPO / "examples" / "deployment.yaml").read_text().replace("rate_per_s: 2.0", "rate_per_s: 3.0")
    text = text.replace("  kv: bf16\nkv_path", "  kv: fp8\nkv_path")  # an FP8 decode cache holds the batch
    f = tmp_path / "d.yaml"
    f.write_text(text)
    code, out, _ = cli("check", str(f), "--format", "json")
    doc = json.loads(out)
    fits = next(c for c in doc["checks"] if c["check"] == "decode batch that fits")
    tpot = next(c for c in doc["checks"] if c["check"].startswith("TPOT"))
    assert fits["value"] <= fits["limit"] and tpot["value"] < float("inf")


def test_plan_and_check_honour_csv_and_output_files(cli, tmp_path):
    import csv
    import io

    code, out, err = cli("check", str(REPO / "examples" / "deployment.yaml"), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["check"].startswith("TTFT") and float(rows[0]["value"]) > 0
    code, out, err = cli("plan", "--model", "llama-3.1-8b", "--prefill", "h100-sxm", "--decode", "h200-sxm",
                         "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {"decision", "quantity", "value"} == set(rows[0])
    assert any(r["decision"] == "plan.representation.gate" and r["value"] == "True" for r in rows)
    f = tmp_path / "check.json"
    code, _, _ = cli("check", str(REPO / "examples" / "deployment.yaml"), "--format", "json", "-o", str(f))
    assert code == 0 and json.loads(f.read_text())["passed"]


def test_the_examples_ship_and_write_out(cli, tmp_path):
    """`pdroof examples` lists the shipped examples (packaged in the wheel, beside the catalogue);
    one written out with -o passes `check` from wherever it lands."""
    code, out, _ = cli("examples")
    assert code == 0 and "deployment" in out and "production-glm" in out
    f = tmp_path / "prod.yaml"
    code, _, err = cli("examples", "production-glm", "-o", str(f))
    assert code == 0 and f.read_text() == (REPO / "examples" / "production-glm.yaml").read_text()
    code, _, err = cli("check", str(f))
    assert code == 0, err
    code, _, err = cli("examples", "nope")
    assert code == 1 and "the examples: deployment, production-glm" in err


def test_fp8_is_counted_by_its_bits(catalog):
    """FP8 on an MI300X is e4m3fnuz, on an H100 or an MI355X OCP e4m3fn: KV written as one cannot be
    read as the other, so between them a conversion is planned, and between two e4m3fn pools none."""
    nv = {"hw": "h100-sxm", "weights": "fp8", "kv": "fp8"}
    mi300 = _plan(catalog, dict(nv), {"hw": "mi300x", "weights": "fp8", "kv": "fp8"}).doc["representation"]
    assert mi300["producer_layout"]["format"] == "fp8_e4m3fn" and mi300["consumer_layout"]["format"] == "fp8_e4m3fnuz"
    assert "convert" in mi300["actions"]
    for other in ("h200-sxm", "mi355x"):
        rep = _plan(catalog, dict(nv), {"hw": other, "weights": "fp8", "kv": "fp8"}).doc["representation"]
        assert rep["actions"] == ["consume directly"], other


def test_a_batch_the_engines_sequence_limit_stops_says_so_not_kv_capacity(catalog):
    """Llama-3.1-8B with short prompts on vLLM holds some 4,000 sequences in an H100's KV memory, but
    vLLM runs 1,024 at most: the decode batch stops below that limit, and the binding names the
    limit, not the memory (which has room left)."""
    w = Workload("t", 64, 512, tpot_s=5.0, ttft_s=100.0)
    acc = catalog.get("accelerator", "h100-sxm")
    p = plan(catalog.get("model", "llama-3.1-8b"), Pool(acc, weights="bf16", kv="bf16"),
             Pool(acc, weights="bf16", kv="bf16"), catalog.get("path", "roce-400"), catalog.all("tier"),
             catalog.get("runtime", "vllm"), w)
    s = p.doc["serving"]
    assert s["decode_batch"] <= 1024 and s["binding"] == "sequence_limit"


def test_a_slower_tier_takes_sequences_only_where_they_serve_more(catalog):
    """Llama-3.1-70B at TP2 with 32k-token prompts: HBM holds one sequence's KV beside the in-flight
    reservations, and host DRAM could take a second (the decode stage's batch counts the tier: three
    with the two HBM holds before reservations), but fetching it every step would make two sequences
    step in 127 ms where one steps in 30: a quarter of the requests/s. The tier then holds nothing and the plan is HBM's; it used to admit both."""
    w = Workload("long", 32_000, 1_000, tpot_s=0.2, ttft_s=100.0)
    acc = catalog.get("accelerator", "h100-sxm")
    rt = runtime_for(catalog, "engine", acc)  # as ``pdroof plan`` gives each pool
    hbm, host = (plan(catalog.get("model", "llama-3.1-70b"), Pool(acc, tp=2, runtime=rt),
                      Pool(acc, tp=2, tier=tier, runtime=rt), catalog.get("path", "roce-400"), catalog.all("tier"),
                      catalog.get("runtime", "engine"), w)
                 for tier in ("hbm", "host-dram"))
    assert hbm.feasible and host.feasible
    in_hbm, spilled = hbm.doc["ownership"]["decode_admission"], host.doc["ownership"]["decode_admission"]
    assert in_hbm["admitted_batch"] == spilled["admitted_batch"] == 1
    assert spilled["batch_before_ownership"] == 3 and spilled["tier_capacity_bytes"] > 0
    assert spilled["tier_kv_bytes"] == 0 and host.doc["serving"]["tpot_s"] == hbm.doc["serving"]["tpot_s"]


def test_a_retained_cache_that_crowds_hbm_sends_the_sequence_to_the_tier_and_tpot_pays_its_fetch(catalog, tmp_path):
    """HBM holds the retained cache and the reservations of arriving transfers first; the sequences
    that no longer fit beside them live in the tier and are fetched every step, in ``plan`` and in
    ``check`` alike (they used to be charged as if HBM held them). Without the retained cache HBM
    holds them, and the tier nothing (sequences fetched every step would serve fewer requests/s).
    Llama-3.1-70B at TP4 on H100s, 32k-token prompts, 41 GB retained: three sequences, all in host
    DRAM, HBM keeping room for one arrival's whole destination."""
    w = Workload("long", 32_000, 1_000, tpot_s=0.2, ttft_s=100.0)
    acc = catalog.get("accelerator", "h100-sxm")
    rt = runtime_for(catalog, "engine", acc)
    args = (catalog.get("model", "llama-3.1-70b"), Pool(acc, tp=4, runtime=rt),
            Pool(acc, tp=4, tier="host-dram", runtime=rt), catalog.get("path", "roce-400"), catalog.all("tier"),
            catalog.get("runtime", "engine"), w)
    free, crowded = plan(*args), plan(*args, retained_bytes=41e9)
    a, b = free.doc["ownership"]["decode_admission"], crowded.doc["ownership"]["decode_admission"]
    seq = crowded.decode_tier["kv_request_bytes"]
    assert a["tier_kv_bytes"] == 0 and b["admitted_batch"] == 3 and b["tier_kv_bytes"] == pytest.approx(3 * seq)
    assert b["headroom_bytes"] >= 0  # what HBM keeps fits it
    assert b["kv_capacity_bytes"] - b["retained_cache_bytes"] >= crowded.doc["ownership"]["destination_bytes"]
    fetch_s = 3 * seq / crowded.decode_tier["tier_bytes_per_s"]
    assert crowded.doc["serving"]["tpot_s"] >= 0.9 * fetch_s


def test_check_charges_the_fetches_its_plan_charges(cli, tmp_path):
    """A 60 GB retained cache on the example's H200 decode pool: the plan admits 17 sequences and its
    tier, whichever, holds none of them, so ``check`` passes or fails alike with HBM alone, host
    DRAM or NVMe (it re-derived admission at each trial batch and charged fetches the plan did not)."""
    import yaml

    d = yaml.safe_load((REPO / "examples" / "deployment.yaml").read_text())
    d["retained_cache_gb"], d["targets"]["tpot_p99_ms"], d["workload"]["rate_per_s"] = 60, 60, 2.4
    d["prefill"]["instances"] = 40
    docs = {}
    for tier in ("hbm", "host-dram", "nvme"):
        d["decode"]["tier"] = tier
        f = tmp_path / f"{tier}.yaml"
        f.write_text(yaml.safe_dump(d))
        code, out, err = cli("check", str(f), "--format", "json")
        docs[tier] = json.loads(out)
        assert code == 0, err
        assert docs[tier]["plan"]["ownership"]["decode_admission"]["tier_kv_bytes"] == 0
    steps = {t: [c["value"] for c in doc["checks"] if c["check"].startswith(("TPOT", "decode batch"))] for t, doc in docs.items()}
    assert steps["host-dram"] == steps["hbm"] == steps["nvme"]


@pytest.mark.parametrize("tp, retained_gb, tier", [(4, 0, "hbm"), (4, 20, "hbm"), (2, 4, "host-dram")])
def test_tpot_and_capacity_are_those_of_the_batch_ownership_admits(catalog, tp, retained_gb, tier):
    """Llama-3.1-70B on H100s with 32k-token prompts: the reservations of arriving transfers (and a
    retained cache) leave HBM room for fewer sequences than the TPOT target allows (at TP2 with a
    4 GB retained cache for none: host DRAM holds the two admitted). The plan's TPOT is the step of
    the batch admitted, with the fetches of what a slower tier holds, and its decode capacity that
    batch over O such steps (they were the step of the larger batch: at TP4, 33 ms where 10 step in
    27 ms)."""
    w = Workload("long", 32_000, 150, tpot_s=0.3, ttft_s=100.0)
    acc = catalog.get("accelerator", "h100-sxm")
    rt = runtime_for(catalog, "engine", acc)
    m = catalog.get("model", "llama-3.1-70b")
    p = plan(m, Pool(acc, tp=4, runtime=rt), Pool(acc, tp=tp, tier=tier, runtime=rt), catalog.get("path", "roce-400"),
             catalog.all("tier"), catalog.get("runtime", "engine"), w, retained_bytes=retained_gb * 1e9)
    adm, s = p.doc["ownership"]["decode_admission"], p.doc["serving"]
    b = adm["admitted_batch"]
    assert 1 <= b < adm["batch_before_ownership"] and (adm["tier_kv_bytes"] > 0) == (tier != "hbm")
    step = estimate(m, acc, rt, Precision("bf16", "bf16", "bf16"), batch=int(b), prompt=32_000, context=32_075,
                    tp=tp)["decode"]["step_seconds"] + adm["tier_kv_bytes"] / p.decode_tier["tier_bytes_per_s"]
    assert s["tpot_s"] == pytest.approx(step, rel=1e-9)
    assert s["decode_capacity"] == pytest.approx(b / (150 * step), rel=1e-9)


def test_a_tier_that_would_serve_fewer_requests_holds_nothing(catalog):
    """Llama-3.1-8B on H100s, 8k-token prompts, a 50 ms TPOT target and a 20 GB retained cache: host
    DRAM could take one sequence beyond the 38 HBM admits, fetched every step (45 ms where 38 step in
    24 ms: 0.87 req/s against 1.58). The tier holds nothing then, and the plan is HBM's."""
    w = Workload("long", 8_000, 1_000, tpot_s=0.05, ttft_s=100.0)
    acc = catalog.get("accelerator", "h100-sxm")
    rt = runtime_for(catalog, "engine", acc)
    plans = {tier: plan(catalog.get("model", "llama-3.1-8b"), Pool(acc, runtime=rt), Pool(acc, tier=tier, runtime=rt),
                        catalog.get("path", "roce-400"), catalog.all("tier"), catalog.get("runtime", "engine"), w,
                        retained_bytes=20e9) for tier in ("hbm", "host-dram")}
    hbm, host = (p.doc for p in plans.values())
    assert host["ownership"]["decode_admission"]["tier_kv_bytes"] == 0
    for key in ("tpot_s", "decode_batch", "decode_capacity"):
        assert host["serving"][key] == pytest.approx(hbm["serving"][key], rel=1e-12)


def test_the_admitted_batch_settles_however_far_it_falls(catalog):
    """Llama-3.1-8B int4 at TP4 on H200s, 32k-token prompts and 10 output tokens: arrivals come every
    ten steps, so reservations crowd HBM from 119 sequences down to 11, one pass at a time; the plan
    reports 11 at their own step (8 passes left it at the step of 12), and the source stays pinned
    for the prefill, the hand-off and that step."""
    w = Workload("short", 32_000, 10, tpot_s=1.0, ttft_s=100.0)
    pre, acc = catalog.get("accelerator", "h100-sxm"), catalog.get("accelerator", "h200-sxm")
    m = catalog.get("model", "llama-3.1-8b")
    p = plan(m, Pool(pre, tp=2, runtime=runtime_for(catalog, "engine", pre)),
             Pool(acc, tp=4, weights="int4", runtime=runtime_for(catalog, "engine", acc)),
             catalog.get("path", "roce-400"), catalog.all("tier"), catalog.get("runtime", "engine"), w)
    adm, s, own = p.doc["ownership"]["decode_admission"], p.doc["serving"], p.doc["ownership"]
    b = adm["admitted_batch"]
    assert b <= 16 < adm["batch_before_ownership"]  # on the stage's batch grid: its step exact
    step = estimate(m, acc, runtime_for(catalog, "engine", acc), Precision("int4", "bf16", "bf16"), batch=int(b),
                    prompt=32_000, context=32_005, tp=4)["decode"]["step_seconds"]
    assert s["tpot_s"] == pytest.approx(step, rel=1e-9)
    assert own["source_pinned_s"] == pytest.approx(s["prefill_s"] + p.doc["representation"]["handoff_s"] + step)


def test_a_tier_that_holds_nothing_plans_as_hbm_does(catalog):
    """Llama-3.1-70B from H100s at TP2 to H200s at TP4, 32k-token prompts and a 4 GB retained cache:
    the tier rows' own batch is larger than HBM's, and HBM alone solved from it admitted 34 sequences
    where the HBM plan admits 33 (a tier that held nothing beat HBM). It is solved from the batch HBM
    alone runs now, so host DRAM and a remote pool plan as HBM does; and HBM's headroom is what its
    capacity keeps beside the retained cache, the reservations and the sequences admitted (it counted
    the sequences HBM could hold, not those admitted)."""
    w = Workload("long", 32_000, 1_000, tpot_s=0.2, ttft_s=100.0)
    pre, acc = catalog.get("accelerator", "h100-sxm"), catalog.get("accelerator", "h200-sxm")
    docs = {tier: plan(catalog.get("model", "llama-3.1-70b"), Pool(pre, tp=2, runtime=runtime_for(catalog, "engine", pre)),
                       Pool(acc, tp=4, tier=tier, runtime=runtime_for(catalog, "engine", acc)),
                       catalog.get("path", "roce-400"), catalog.all("tier"), catalog.get("runtime", "engine"), w,
                       retained_bytes=4e9).doc for tier in ("hbm", "host-dram", "remote-pool")}
    for tier in ("host-dram", "remote-pool"):
        assert docs[tier]["ownership"]["decode_admission"]["tier_kv_bytes"] == 0
        for key in ("tpot_s", "decode_batch", "decode_capacity", "usd_per_million_tokens"):
            assert docs[tier]["serving"][key] == docs["hbm"]["serving"][key]
    a = docs["hbm"]["ownership"]["decode_admission"]
    assert a["headroom_bytes"] == pytest.approx(a["kv_capacity_bytes"] - a["retained_cache_bytes"]
                                                - a["in_flight_reservations_bytes"] - a["active_kv_bytes"])


def test_a_batch_ownership_crowds_below_the_engines_limit_binds_on_kv_capacity(catalog):
    """Llama-3.1-8B with short prompts on vLLM: the engine's sequence limit stops the decode batch at
    883, and a 40 GB retained cache then leaves HBM room for 464 of them. The binding is KV capacity,
    not the limit the crowded batch is far below."""
    w = Workload("t", 64, 512, tpot_s=5.0, ttft_s=100.0)
    acc = catalog.get("accelerator", "h100-sxm")
    p = plan(catalog.get("model", "llama-3.1-8b"), Pool(acc), Pool(acc), catalog.get("path", "roce-400"),
             catalog.all("tier"), catalog.get("runtime", "vllm"), w, retained_bytes=40e9)
    a = p.doc["ownership"]["decode_admission"]
    assert a["admitted_batch"] < a["batch_before_ownership"] and p.doc["serving"]["binding"] == "kv_capacity"


def test_memory_paces_admissions_where_one_sequence_brings_more_reservations_than_hbm_holds(catalog, cli, tmp_path):
    """Llama-3.1-8B, 32k-token prompts and 10 output tokens, from an RTX 4090 to H20s at TP4 over the
    remote pool: each arrival reserves 0.52 GB for 4.7 s, so even one sequence at its own 2.1 ms step
    brings more reservations than HBM holds. The plan kept the step of a larger batch (3.45 ms, 29
    req/s: a lower bound that depended on where the passes stopped); now one sequence runs at its
    own step, admitted at the pace HBM holds its arrivals' reservations: ⌊(C_K − R − K_R)/K_D⌋ whole
    destinations each window. ``check`` fails a rate above that (it passed up to one sequence's step rate)."""
    import yaml

    w = Workload("short", 32_000, 10, ttft_s=100.0, tpot_s=1.0)
    acc = catalog.get("accelerator", "h20")
    p = _plan(catalog, {"hw": "rtx-4090", "weights": "fp8", "kv": "fp8"},
              {"hw": "h20", "tp": 4, "weights": "fp8", "kv": "fp8"}, model="llama-3.1-8b", path="remote-pool", w=w)
    own, s = p.doc["ownership"], p.doc["serving"]
    a = own["decode_admission"]
    step = estimate(catalog.get("model", "llama-3.1-8b"), acc, runtime_for(catalog, "engine", acc),
                    Precision("fp8", "fp8", "fp8"), batch=1, prompt=32_000, context=32_005,
                    tp=4)["decode"]["step_seconds"]
    # whole destinations beside the sequence, each held for its transfer window
    in_flight = math.floor((a["kv_capacity_bytes"] - a["active_kv_bytes"]) / own["destination_bytes"])
    by_memory = in_flight / own["destination_reserved_s"]
    assert a["admitted_batch"] == 1 and s["tpot_s"] == pytest.approx(step, rel=1e-9)
    assert s["decode_capacity"] == pytest.approx(by_memory, rel=1e-9) and by_memory < 0.8 / (10 * step)
    assert a["memory_pace_s"] == pytest.approx(1 / (10 * by_memory), rel=1e-9)
    assert 0 <= a["headroom_bytes"] < own["destination_bytes"]  # less than one more destination left
    # the sequence joins at the step after its transfer, paced or not
    assert own["source_pinned_s"] == pytest.approx(s["prefill_s"] + p.doc["representation"]["handoff_s"] + step)
    d = {"model": "llama-3.1-8b", "runtime": "engine", "kv_path": "remote-pool",
         "workload": {"prompt_tokens": 32_000, "output_tokens": 10},
         "targets": {"ttft_ms": 100_000, "tpot_p99_ms": 1_000},
         "prefill": {"accelerator": "rtx-4090", "instances": 400, "weights": "fp8", "kv": "fp8"},
         "decode": {"accelerator": "h20", "instances": 1, "tp": 4, "weights": "fp8", "kv": "fp8"}}
    for rate, code in ((0.95 * by_memory, 0), (1.05 * by_memory, 1)):  # both within one sequence's step rate
        d["workload"]["rate_per_s"] = rate
        f = tmp_path / "d.yaml"
        f.write_text(yaml.safe_dump(d))
        got, out, err = cli("check", str(f), "--format", "json")
        memory = next(x for x in json.loads(out)["checks"] if x["check"] == "decode memory beside transfers in flight")
        assert got == code and memory["passed"] == (code == 0), (out, err)


@pytest.mark.parametrize("retained_gb, hbm, tier, output", [(20, 0.1252, 0.1877, 10), (28, None, 0.0626, 10),
                                                           (30, None, None, 10), (30, None, None, 1000)])
def test_a_paced_sequence_may_sit_in_the_tier_and_a_whole_destination_must_fit(catalog, retained_gb, hbm, tier,
                                                                              output):
    """Llama-3.1-8B, 64k-token prompts and 10 output tokens, from an RTX 4090 to an L40S over 100G TCP:
    one sequence's KV and one arrival's destination are 4.19 GB each. With 20 GB retained, HBM paces
    arrivals beside the sequence (two whole destinations in flight), and a host-DRAM tier that holds
    the sequence leaves HBM to the reservations (three): more requests/s, each step fetching it. With 28 GB retained, a destination fits beside
    the sequence only where the tier holds it; with 30 GB, nowhere (averaged reservations admitted a
    sequence there, at 1e-20 req/s), paced or not (with 1,000 output tokens a step of the tier's
    sequence admitted at 0.0066 req/s, its arrivals' 4.19 GB destinations averaged into 3.42 GB)."""
    w = Workload("short", 64_000, output, ttft_s=1_000.0, tpot_s=1.0)
    got = {}
    for where in ("hbm", "host-dram"):
        p = _plan(catalog, {"hw": "rtx-4090", "weights": "fp8", "kv": "fp8"},
                  {"hw": "l40s", "weights": "fp8", "kv": "fp8", "tier": where}, model="llama-3.1-8b",
                  path="tcp-100g", w=w, retained_bytes=retained_gb * 1e9)
        a = p.doc["ownership"]["decode_admission"] if p.feasible else None
        got[where] = p.doc["serving"]["decode_capacity"] if p.feasible else None
        if p.feasible:
            assert a["admitted_batch"] == 1 and a["memory_pace_s"] > p.doc["serving"]["tpot_s"]
            assert (a["tier_kv_bytes"] > 0) == (where == "host-dram")
        else:
            assert p.reasons == ["no decode admission room after reservations and retained cache"]
    assert got["hbm"] == (pytest.approx(hbm, rel=1e-3) if hbm else None)
    assert got["host-dram"] == (pytest.approx(tier, rel=1e-3) if tier else None)


def test_checks_memory_pace_is_its_own_limit_not_the_ingress(catalog, cli, tmp_path):
    """A paced plan whose decode ingress is the smaller capacity: at a rate between the two, check
    fails the ingress alone; the memory check's limit is the pace's rate, admitted / (O · pace)."""
    import yaml

    d = {"model": "llama-3.1-8b", "runtime": "engine", "kv_path": "tcp-100g",
         "workload": {"prompt_tokens": 32_000, "output_tokens": 1},
         "targets": {"ttft_ms": 1_000_000, "tpot_p99_ms": 1_000},
         "prefill": {"accelerator": "rtx-4090", "instances": 400, "weights": "fp8", "kv": "fp8"},
         "decode": {"accelerator": "h20", "instances": 2, "tp": 4, "weights": "fp8", "kv": "fp8"}}
    f = tmp_path / "d.yaml"
    f.write_text(yaml.safe_dump({**d, "workload": {**d["workload"], "rate_per_s": 1.0}}))
    code, out, err = cli("check", str(f), "--format", "json")
    doc = json.loads(out)
    checks = {c["check"]: c for c in doc["checks"]}
    a = doc["plan"]["ownership"]["decode_admission"]
    ingress = checks["decode ingress capacity"]["limit"]
    memory = checks["decode memory beside transfers in flight"]["limit"]
    assert code == 0 and memory == pytest.approx(a["admitted_batch"] / a["memory_pace_s"], rel=1e-9)
    assert ingress < memory
    # two decode instances, each offered the midpoint between its ingress and its memory pace
    f.write_text(yaml.safe_dump({**d, "workload": {**d["workload"], "rate_per_s": ingress + memory}}))
    code, out, err = cli("check", str(f), "--format", "json")
    checks = {c["check"]: c for c in json.loads(out)["checks"]}
    assert code == 1 and not checks["decode ingress capacity"]["passed"]
    assert checks["decode memory beside transfers in flight"]["passed"]


@pytest.mark.parametrize("runtime, own", [("sglang", True), ("trtllm", False)])
def test_plan_charges_a_dp_attention_replica_the_passes_its_arrivals_take(catalog, runtime, own):
    """plan agrees with rank and predict: a DP-attention decode replica of an engine that takes
    arrived requests in passes of their own (SGLang) reports TPOT as its step times k, k·ln k = B/O;
    one that merges them into its next pass (TensorRT-LLM) reports the step."""
    from pdroof.cost.numeric import evaluate
    from pdroof.cost.parallelism import Parallelism
    from pdroof.serving.stage import stage_inputs

    rt = catalog.get("runtime", runtime)
    model, acc = catalog.get("model", "deepseek-v3"), catalog.get("accelerator", "h200-sxm")
    w = Workload("t", 4096, 256, tpot_s=0.06)
    p = plan(model, Pool(acc, tp=8, weights="fp8", kv="fp8"), Pool(acc, tp=1, dp=8, moe_ep=8, weights="fp8", kv="fp8"),
             catalog.get("path", "roce-400"), catalog.all("tier"), rt, w)
    s = p.doc["serving"]
    b = s["decode_batch"]
    inputs, _ = stage_inputs(model, acc, rt, Precision("fp8", "fp8", "fp8"), 1, Parallelism(1, dp=8, moe_ep=8))
    step = float(evaluate("decode", {**inputs, "batch": b, "new_tokens": 1.0, "prefix_tokens": 0.0,
                                     "context_tokens": w.mean_context}, ("seconds",))["seconds"])
    k = s["tpot_s"] / step
    assert p.feasible and b > 20 and s["tpot_s"] <= w.tpot_s
    assert (k * math.log(k) == pytest.approx(b / w.output_tokens, rel=1e-9)) if own else k == pytest.approx(1.0)


@pytest.mark.parametrize("runtime, own", [("sglang", True), ("trtllm", False)])
def test_check_charges_a_dp_attention_replica_the_passes_its_arrivals_take(catalog, runtime, own):
    """check sizes a decode pool's batch at the time per token rank and plan charge: for an SGLang
    DP-attention replica the step at the batch times k, k·ln k = B/O; for TensorRT-LLM the step."""
    from pdroof.cost.numeric import evaluate
    from pdroof.cost.parallelism import Parallelism
    from pdroof.serving.boundary import Plan
    from pdroof.serving.deployment import _decode_tpot, load
    from pdroof.serving.stage import stage_inputs

    rt = catalog.get("runtime", runtime)
    model, acc = catalog.get("model", "deepseek-v3"), catalog.get("accelerator", "h200-sxm")
    dec = Pool(acc, tp=1, dp=8, moe_ep=8, weights="fp8", kv="fp8", runtime=rt)
    w = Workload("t", 4096, 256)
    tpot = _decode_tpot(Plan(True), model, dec, catalog, load(REPO / "examples" / "deployment.yaml"), w, 40)
    inputs, _ = stage_inputs(model, acc, rt, Precision("fp8", "fp8", "fp8"), 1, Parallelism(1, dp=8, moe_ep=8))
    step = float(evaluate("decode", {**inputs, "batch": 40.0, "new_tokens": 1.0, "prefix_tokens": 0.0,
                                     "context_tokens": w.mean_context}, ("seconds",))["seconds"])
    k = tpot / step
    assert (k * math.log(k) == pytest.approx(40 / 256, rel=1e-9)) if own else k == pytest.approx(1.0)
