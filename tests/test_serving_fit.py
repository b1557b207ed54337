"""``pdroof calibrate`` on measured serving runs: factors the runs determine are recovered, the
others keep the base's value with the reason, runs that one profile cannot stand for are refused,
and the written profile works wherever a runtime does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from pdroof.calibration.serving_fit import calibrate_serving
from pdroof.calibration.serving_runs import base_for, runs_to_fit
from pdroof.serving.predict import predict
from pdroof.serving.runs import parse_runs
from pdroof.spec.catalog import Catalog, builtin_root
from pdroof.spec.errors import PdroofError

from .conftest import REPO

RUN = {"model": "llama-3.1-8b", "engine": "vllm", "engine_version": None, "weights": "bf16", "kv": None,
       "mode": "aggregated", "deployment": {"accelerator": "h100-sxm", "instances": 1, "tp": 1, "dp": 1,
                                            "moe_tp": 1, "moe_ep": 1}}
# one client (decode streams the weights, TTFT is one prefill plus the request's own time), long
# prompts (prefill compute), and many clients at long contexts (decode attention)
LOADS = [(1024, 128, 1), (8192, 64, 1), (1024, 2048, 96), (2048, 512, 32)]


def _measured(tmp_path, truth: dict, run: dict = RUN, loads=LOADS, engine: str = "vllm") -> tuple[list, object]:
    """Runs 'measured' on a profile that differs from ``engine``'s by ``truth`` (profile-entry
    values; a key's number indexes a list)."""
    doc = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / f"{engine}.yaml").read_text())
    doc["id"] = "truth"
    for key, value in truth.items():
        node = doc
        *path, last = key.split(".")
        for p in path:
            node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
        node[last] = value
    d = tmp_path / "truth" / "hardware" / "runtimes"
    d.mkdir(parents=True)
    (d / "truth.yaml").write_text(yaml.safe_dump(doc))
    runs = parse_runs(json.dumps([{**run, "id": f"r{i}", "isl": s, "osl": o, "concurrency": c}
                                  for i, (s, o, c) in enumerate(loads)]), "runs.json")
    preds = predict(Catalog([tmp_path / "truth"], use_env=False), runs, runtime="truth")
    measured = [{**run, "id": f"r{i}", "isl": s, "osl": o, "concurrency": c,
                 "measured": {"tpot_ms": {"mean": p.predicted["tpot_ms"]["mean"]},
                              "ttft_ms": {"mean": p.predicted["ttft_ms"]["mean"]}}}
                for i, ((s, o, c), p) in enumerate(zip(loads, preds, strict=True))]
    f = tmp_path / "runs.json"
    f.write_text(json.dumps({"runs": measured}))
    return parse_runs(f.read_text(), str(f)), f


def test_factors_the_runs_determine_are_recovered(catalog, tmp_path):
    runs, f = _measured(tmp_path, {"profiles.h100-sxm.weights.bf16": 0.6,
                                   "structure.request_latency_us": 20000})
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "vllm.yaml").read_text())
    doc, rep = calibrate_serving(catalog, runs_to_fit(runs, f, catalog.get("accelerator", "h100-sxm")), f,
                                 catalog.get("accelerator", "h100-sxm"), base, "mine")
    fitted = rep["fitted"]
    assert fitted["weights.bf16"]["value"] == pytest.approx(0.6, rel=0.05)
    assert fitted["request_latency_us"]["value"] == pytest.approx(20000, rel=0.1)
    assert rep["mae"]["fitted"]["tpot"] < 0.02 and rep["mae"]["fitted"]["ttft"] < 0.03
    assert rep["mae"]["before"]["tpot"] > 0.1  # the base was off: the fit did the work
    entry = doc["profiles"]["h100-sxm"]["weights"]["bf16"]
    assert entry["basis"] == "fitted" and "runs.json" in entry["source"] and "sha256" in doc["provenance"]["serving_runs"]
    assert doc["id"] == "mine"


def test_a_factor_the_runs_cannot_see_keeps_the_base_value_and_says_why(catalog, tmp_path):
    runs, f = _measured(tmp_path, {"profiles.h100-sxm.weights.bf16": 0.6})
    one_load = [r for r in runs if r.concurrency == 1 and r.isl == 1024]  # one short run at one client
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "vllm.yaml").read_text())
    _, rep = calibrate_serving(catalog, one_load, f, catalog.get("accelerator", "h100-sxm"), base, "mine")
    from pdroof.cost.runtime import resolve

    assert "attention_decode" in rep["kept"] and "needs" in rep["kept"]["attention_decode"]["why"]
    as_base = resolve(catalog.get("runtime", "vllm"), catalog.get("accelerator", "h100-sxm")).attention_decode
    assert rep["kept"]["attention_decode"]["value"] == pytest.approx(as_base)


@pytest.mark.parametrize("change, message", [
    ({"deployment": {**RUN["deployment"], "accelerator": "h200-sxm"}}, "h200-sxm"),
    ({"engine": "sglang"}, "several engines"),
    ({"isl": "many"}, "isl"),
    ({"mode": "disaggregated", "prefill": RUN["deployment"],
      "decode": {**RUN["deployment"], "accelerator": "h200-sxm"}}, "h200-sxm"),  # a pool on another accelerator
])
def test_runs_one_profile_cannot_stand_for_are_refused(catalog, change, message):
    good = {**RUN, "id": "a", "isl": 1024, "osl": 128, "concurrency": 4, "measured": {"tpot_ms": {"mean": 8.0}}}
    runs = parse_runs(json.dumps([good, {**good, "id": "b", **change}]), "runs.json")
    acc = catalog.get("accelerator", "h100-sxm")
    with pytest.raises(PdroofError, match=message):
        runs_to_fit(runs, "runs.json", acc)


@pytest.mark.parametrize("engine, versions, named, base, says", [
    ("sglang", ["0.5.1.post1"], None, "sglang-0.5.1", None),  # none named: the runs' engine and release
    ("sglang", ["0.5.1.post1"], "sglang", "sglang-0.5.1", "release (0.5.1.post1)"),  # the engine, at that release
    ("sglang", ["0.5.12"], "sglang", "sglang", None),  # a release the engine's own profile stands for
    ("sglang", ["0.5.9"], "sglang", "sglang-0.5.9", "release (0.5.9)"),  # ... and one a version profile stands for
    ("sglang", ["0.5.1.post1"], "sglang-0.5.1", "sglang-0.5.1", None),
    ("vllm", [None], "engine", "vllm", "stands for the runs' engine"),  # the default: the runs' engine
    (None, [None], "engine", "trtllm", "stands for trtllm on h100-sxm"),  # ... or, naming none, as rank resolves it
    ("sglang", ["0.5.1.post1", "0.5.9"], "engine", "sglang", "stands for the runs' engine"),  # releases of two
    ("sglang", ["0.5.1.post1", "0.5.9"], "sglang", "sglang", None),  # ... profiles: the engine's own
])
def test_the_base_named_by_its_engine_is_that_engines_profile_for_the_runs_release(catalog, engine, versions, named,
                                                                                    base, says):
    runs = [{**RUN, "id": f"r{i}", "engine": engine, "engine_version": v, "isl": 1024, "osl": 128, "concurrency": 4,
             "measured": {"tpot_ms": {"mean": 8.0}}} for i, v in enumerate(versions)]
    got, why = base_for(catalog, named, parse_runs(json.dumps(runs), "runs.json"), catalog.get("accelerator", "h100-sxm"))
    assert got == base and (why is None if says is None else says in why)


def test_runs_of_releases_that_stand_for_different_profiles_need_one_named(catalog):
    runs = [{**RUN, "id": f"r{i}", "engine": "sglang", "engine_version": v, "isl": 1024, "osl": 128,
             "concurrency": 4, "measured": {"tpot_ms": {"mean": 8.0}}} for i, v in enumerate(["0.5.1.post1", "0.5.9"])]
    with pytest.raises(PdroofError, match="name one with --runtime"):
        base_for(catalog, None, parse_runs(json.dumps(runs), "runs.json"), catalog.get("accelerator", "h100-sxm"))


def test_runs_without_measurements_are_one_error(catalog):
    runs = parse_runs(json.dumps([{**RUN, "id": "a", "isl": 1024, "osl": 128, "concurrency": 4}]), "runs.json")
    with pytest.raises(PdroofError, match="no run measured a TPOT or TTFT mean or median"):
        runs_to_fit(runs, "runs.json", catalog.get("accelerator", "h100-sxm"))


def test_cli_writes_a_profile_that_works_everywhere(cli, tmp_path, catalog):
    _, f = _measured(tmp_path, {"profiles.h100-sxm.weights.bf16": 0.6})
    out = tmp_path / "my-vllm.yaml"
    code, text, err = cli("calibrate", str(f), "--hardware", "h100-sxm", "-o", str(out))
    assert code == 0, err
    assert "fitted weights.bf16" in text and "left out" in text
    assert yaml.safe_load(out.read_text())["id"] == "my-vllm"
    for args in (("predict", str(f), "--runtime", str(out)),
                 ("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", "--runtime", str(out))):
        code, _, err = cli(*args)
        assert code == 0, err


def test_cli_refuses_a_file_that_holds_neither_kind(cli, tmp_path):
    f = tmp_path / "x.json"
    f.write_text('{"hello": 1}')
    code, out, err = cli("calibrate", str(f), "--hardware", "h100-sxm", "-o", str(tmp_path / "o.yaml"))
    assert code == 1 and err.count("\n") == 1 and "neither" in err and not (tmp_path / "o.yaml").exists()


def test_micro_benchmark_files_still_calibrate_as_before(cli, tmp_path):
    out = tmp_path / "h200.yaml"
    code, text, err = cli("calibrate", str(REPO / "tests" / "data" / "h200-sxm.json"), "--hardware", "h200-sxm",
                          "-o", str(out))
    assert code == 0, err
    assert "micro-benchmarks" in text and yaml.safe_load(out.read_text())["profiles"]["h200-sxm"]


def test_the_written_profile_predicts_what_the_fit_reported(cli, tmp_path):
    """On an accelerator vllm has no entry for (H800: its factors come from the Hopper family), the
    written profile carries what vllm resolves there, so predicting with it gives the fitted column:
    only the fitted factors changed."""
    run = {**RUN, "deployment": {**RUN["deployment"], "accelerator": "h800"}}
    _, f = _measured(tmp_path, {"profiles.h800.weights.bf16": 0.5, "profiles.h800.family": "nvidia-hopper"}, run)
    out, rep = tmp_path / "my-h800.yaml", tmp_path / "report.json"
    code, _, err = cli("calibrate", str(f), "--hardware", "h800", "-o", str(out), "--report", str(rep))
    assert code == 0, err
    fitted = {r["id"]: r for r in json.loads(rep.read_text())["serving"]["runs"]}
    code, text, err = cli("predict", str(f), "--runtime", str(out), "--format", "json")
    assert code == 0, err
    for p in json.loads(text)["runs"]:
        for metric in ("tpot", "ttft"):
            assert p["vs_measured"][f"{metric}_ms"]["error"] == pytest.approx(fitted[p["id"]][f"{metric}_fitted"],
                                                                            abs=1e-9)


def test_a_mixture_of_experts_model_fits_its_experts(catalog, tmp_path):
    run = {**RUN, "model": "mixtral-8x7b", "deployment": {**RUN["deployment"], "tp": 2}}
    runs, f = _measured(tmp_path, {"profiles.h100-sxm.moe_weights.bf16": 0.5}, run)
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "vllm.yaml").read_text())
    _, rep = calibrate_serving(catalog, runs, f, catalog.get("accelerator", "h100-sxm"), base, "mine")
    assert rep["fitted"]["moe_weights.bf16"]["value"] == pytest.approx(0.5, rel=0.05)


def test_one_file_with_micro_benchmarks_and_runs_fits_both(cli, tmp_path):
    """Micro-benchmark sections first (the profile's kernel factors), then the runs on top, from
    the runs' engine profile."""
    _, f = _measured(tmp_path, {"profiles.h100-sxm.weights.bf16": 0.6})
    both = {**json.loads((REPO / "tests" / "data" / "h100-sxm.json").read_text()),
            "runs": json.loads(f.read_text())["runs"]}
    g = tmp_path / "both.json"
    g.write_text(json.dumps(both))
    out = tmp_path / "both-h100.yaml"
    code, text, err = cli("calibrate", str(g), "--hardware", "h100-sxm", "-o", str(out))
    assert code == 0, err
    doc = yaml.safe_load(out.read_text())
    assert "micro-benchmarks" in text and "serving runs" in text
    assert doc["engine"] == "vllm" and doc["profiles"]["h100-sxm"]["weights"]["bf16"]["basis"] == "fitted"
    assert "fit" in doc["profiles"]["h100-sxm"]  # the micro-benchmark fit's errors


@pytest.mark.parametrize("name, message", [("UPPER.yaml", "profile's id"), ("my profile.yaml", "profile's id")])
def test_an_output_name_that_cannot_be_the_profiles_id_is_refused_before_fitting(cli, tmp_path, name, message):
    code, _, err = cli("calibrate", str(REPO / "tests" / "data" / "serving_llama8b_h100_trtllm.json"),
                       "--hardware", "h100-sxm", "-o", str(tmp_path / name))
    assert code == 1 and message in err and err.count("\n") == 1 and not (tmp_path / name).exists()


def test_disaggregated_runs_calibrate_like_aggregated_ones(catalog, tmp_path):
    """Runs over a prefill and a decode pool of the accelerator fit its factors too (predict's pool
    loop is the model they are fitted through)."""
    pool = RUN["deployment"]
    run = {**RUN, "mode": "disaggregated", "deployment": None, "prefill": pool, "decode": {**pool, "instances": 2}}
    runs, f = _measured(tmp_path, {"profiles.h100-sxm.weights.bf16": 0.6}, run)
    assert all(r.mode == "disaggregated" for r in runs)
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "vllm.yaml").read_text())
    _, rep = calibrate_serving(catalog, runs, f, catalog.get("accelerator", "h100-sxm"), base, "mine")
    assert rep["fitted"]["weights.bf16"]["value"] == pytest.approx(0.6, rel=0.05)


def test_the_memory_an_engine_keeps_from_its_kv_pool_is_fitted_where_requests_wait_for_it(catalog, tmp_path):
    """Sixteen clients of a 32B model on one H100: how many sequences the KV pool admits sets how
    long requests wait, so TTFT determines the engine's memory reserve. Candidates that leave no
    room for the weights cannot serve a run: they score as infinitely wrong, never as a perfect fit."""
    run = {**RUN, "model": "qwen3-32b"}
    runs, f = _measured(tmp_path, {"structure.memory_reserve_fraction": 0.19}, run,
                        loads=[(1024, 128, 16), (1024, 512, 16), (2048, 512, 16), (1024, 128, 1)])
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "vllm.yaml").read_text())
    acc = catalog.get("accelerator", "h100-sxm")
    doc, rep = calibrate_serving(catalog, runs_to_fit(runs, f, acc), f, acc, base, "mine")
    assert rep["fitted"]["memory_reserve_fraction"]["value"] == pytest.approx(0.19, abs=0.015)
    assert rep["mae"]["before"]["ttft"] > 0.3 and rep["mae"]["fitted"]["ttft"] < rep["mae"]["before"]["ttft"] / 3


def test_tensorrt_llms_share_of_the_memory_the_weights_leave_is_fitted_where_requests_wait_for_it(catalog, tmp_path):
    """TensorRT-LLM keeps a share of the memory its weights and activations leave (10%), not of the
    device: where a 32B model's clients wait for its KV pool on one H100, TTFT determines that share."""
    run = {**RUN, "model": "qwen3-32b", "engine": "trtllm"}
    runs, f = _measured(tmp_path, {"structure.memory_reserve_free_fraction": 0.4}, run, engine="trtllm",
                        loads=[(1024, 128, 16), (1024, 512, 24), (2048, 512, 32), (1024, 128, 1)])
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "trtllm.yaml").read_text())
    acc = catalog.get("accelerator", "h100-sxm")
    doc, rep = calibrate_serving(catalog, runs_to_fit(runs, f, acc), f, acc, base, "mine")
    assert rep["fitted"]["memory_reserve_free_fraction"]["value"] == pytest.approx(0.4, abs=0.04)
    assert doc["structure"]["memory_reserve_fraction"] == 0  # the share it keeps is of what is left, not the device's


def test_an_engine_that_keeps_an_amount_of_memory_has_that_amount_fitted_up_or_down(catalog, tmp_path):
    """SGLang keeps an amount of memory (13 GiB on an H100), not a share: where its requests wait for
    KV memory the fit finds the amount, below the base's as well as above it, and the written
    profile shifts every device's amount alike (a B200's, 25.5 GiB, by as much)."""
    run = {**RUN, "model": "qwen3-32b", "engine": "sglang"}
    loads = [(1024, 128, 16), (1024, 512, 16), (2048, 512, 16), (1024, 128, 1)]
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "sglang.yaml").read_text())
    acc = catalog.get("accelerator", "h100-sxm")
    for gib in (9.0, 17.0):
        runs, f = _measured(tmp_path / str(gib), {"structure.smaller_devices.2.memory_reserve_gib": gib}, run, loads,
                            "sglang")
        doc, rep = calibrate_serving(catalog, runs_to_fit(runs, f, acc), f, acc, base, "mine")
        fitted = rep["fitted"]["memory_reserve_gib"]["value"]
        assert fitted == pytest.approx(gib, abs=1.0)
        tiers = doc["structure"]["smaller_devices"]
        assert tiers[2]["memory_reserve_gib"] == pytest.approx(fitted, abs=1e-9)  # the H100's tier, as reported
        assert doc["structure"]["memory_reserve_gib"]["value"] == pytest.approx(25.5 + tiers[2]["memory_reserve_gib"] - 13)


def test_with_nothing_fitted_each_run_left_out_is_predicted_as_the_base_predicts_it(catalog, tmp_path):
    """Runs the base predicts exactly leave every factor at its value; the profile is then the base,
    and so is its prediction of each run left out (it was reported as unknown)."""
    runs, f = _measured(tmp_path, {})
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "vllm.yaml").read_text())
    acc = catalog.get("accelerator", "h100-sxm")
    _, rep = calibrate_serving(catalog, runs_to_fit(runs, f, acc), f, acc, base, "mine")
    assert not rep["fitted"]
    assert rep["mae"]["left_out"] == rep["mae"]["before"] and rep["mae"]["left_out"]["tpot"] is not None
    assert all(r["tpot_left_out"] == r["tpot_before"] for r in rep["runs"])


def test_a_base_with_a_number_json_writes_with_an_exponent_is_fitted(catalog, tmp_path, monkeypatch):
    """A candidate profile is written as JSON and read back as a spec: json writes 0.00001 as 1e-05,
    which YAML reads as a string, and calibrating from a profile that held one failed ('must be a
    number, not a string'), unless the text was read back as JSON. Read by PyYAML here."""
    from pdroof.spec import yamlio

    class Forgets(dict):
        def __setitem__(self, key, value):
            pass

    monkeypatch.setattr(yamlio, "_WRITTEN", Forgets())
    runs, f = _measured(tmp_path, {})
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "vllm.yaml").read_text())
    base["structure"]["disaggregation_latency_us"] = 0.00001
    acc = catalog.get("accelerator", "h100-sxm")
    doc, _ = calibrate_serving(catalog, runs_to_fit(runs, f, acc), f, acc, base, "mine")
    assert doc["structure"]["disaggregation_latency_us"] == 0.00001


def test_the_prior_costs_nothing_at_the_base_and_grows_with_each_step_away():
    from pdroof.calibration.serving_factors import Factor
    from pdroof.calibration.serving_fit import PRIOR_PER_STEP, _steps

    eff = Factor(("profiles", "h100-sxm", "weights", "bf16"), 0.2, 0.95, 1.1, True, "")
    lat = Factor(("structure", "step_latency_us"), 0.0, 5000.0, 250.0, False, "")
    assert _steps(eff, 0.5, 0.5) == 0 and _steps(lat, 500, 500) == 0
    assert _steps(eff, 0.5 * 1.1 ** 2, 0.5) == pytest.approx(2) == _steps(eff, 0.5 / 1.1 ** 2, 0.5)
    assert _steps(lat, 1000, 500) == pytest.approx(2)
    assert 0 < PRIOR_PER_STEP < 0.05


def test_a_per_sequence_cost_is_fitted_only_for_an_engine_whose_profile_charges_one(catalog, tmp_path):
    """An overlap scheduler (base 0 per sequence) has no such cost to fit: it would soak up whatever
    else grows with the batch. vLLM's profile charges one, so its runs may determine it."""
    runs, f = _measured(tmp_path, {"profiles.h100-sxm.weights.bf16": 0.7})
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "vllm.yaml").read_text())
    acc = catalog.get("accelerator", "h100-sxm")
    _, rep = calibrate_serving(catalog, runs_to_fit(runs, f, acc), f, acc, base, "mine")
    assert "sequence_latency_us" in {**rep["fitted"], **rep["kept"]}
    base["structure"]["sequence_latency_us"] = 0
    _, rep = calibrate_serving(catalog, runs_to_fit(runs, f, acc), f, acc, base, "mine")
    assert "sequence_latency_us" not in {**rep["fitted"], **rep["kept"]}


def test_a_metric_a_fit_predicts_worse_left_out_than_the_base_keeps_the_bases_factors(catalog, tmp_path,
                                                                                      monkeypatch):
    """Cross-validation decides what the runs determine: where each run left out is predicted worse
    by a fit to the others than by the base, that metric's factors keep the base's values and say
    why; the other metric's fit stands."""
    import pdroof.calibration.serving_fit as sf

    runs, f = _measured(tmp_path, {"profiles.h100-sxm.weights.bf16": 0.6, "structure.request_latency_us": 20000})
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "vllm.yaml").read_text())
    acc = catalog.get("accelerator", "h100-sxm")
    honest = sf._left_out

    def tpot_worse(ev, n, fitted, start, before):  # as if the TPOT fit did not carry to the run left out
        loo = honest(ev, n, fitted, start, before)
        if any(g.metric == 0 for g in fitted):
            loo[:, 0] = np.abs(before[:, 0]) + 0.5
        return loo

    monkeypatch.setattr(sf, "_left_out", tpot_worse)
    doc, rep = calibrate_serving(catalog, runs_to_fit(runs, f, acc), f, acc, base, "mine")
    assert "weights.bf16" in rep["kept"] and "left out" in rep["kept"]["weights.bf16"]["why"]
    assert "weights" not in doc["profiles"]["h100-sxm"] or doc["profiles"]["h100-sxm"]["weights"]["bf16"] == \
        base["profiles"]["h100-sxm"]["weights"]["bf16"]  # the written profile keeps the base's
    assert all(g.startswith(("request", "compute", "disaggregation")) for g in rep["fitted"])
    assert "request_latency_us" in rep["fitted"]


def test_a_metric_predicted_worse_left_out_gives_up_the_factor_it_moves_least_first(catalog, tmp_path, monkeypatch):
    """Where a metric's fit predicts its runs left out worse than the base, the factor the runs
    depend on least keeps the base's value (saying so) and the rest are fitted again: here
    the left-out TTFT is worse than the base while two or more of its factors are fitted, better
    with one, so one stays fitted."""
    import pdroof.calibration.serving_fit as sf

    runs, f = _measured(tmp_path, {"profiles.h100-sxm.weights.bf16": 0.6, "profiles.h100-sxm.compute.bf16": 0.5,
                                   "structure.request_latency_us": 20000})
    base = yaml.safe_load((builtin_root() / "hardware" / "runtimes" / "vllm.yaml").read_text())
    acc = catalog.get("accelerator", "h100-sxm")
    honest = sf._left_out
    both = []

    def ttft_worse_with_two(ev, n, fitted, start, before):
        loo = honest(ev, n, fitted, start, before)
        ttft = [g for g in fitted if g.metric == 1]
        both.append(len(ttft))
        # worse than the base with two or more, better with one
        loo[:, 1] = np.abs(before[:, 1]) + 0.5 if len(ttft) > 1 else before[:, 1] / 2
        return loo

    monkeypatch.setattr(sf, "_left_out", ttft_worse_with_two)
    _, rep = calibrate_serving(catalog, runs_to_fit(runs, f, acc), f, acc, base, "mine")
    assert both[0] >= 2 and both[-1] == 1  # two or more at first, one in the end
    given_up = [k for k, v in rep["kept"].items() if "left out" in v["why"]]
    assert len(given_up) == both[0] - 1
    # the request latency moves these runs' TTFT most (a step of it 18%, of compute.bf16 8%): it stays
    assert [k for k in rep["fitted"] if k.startswith(("request", "compute"))] == ["request_latency_us"]
    assert all("request_latency_us, the one they depend on least" in rep["kept"][k]["why"] for k in given_up)


def test_a_file_that_changes_while_it_is_fitted_writes_nothing(cli, tmp_path, monkeypatch):
    """The fit reads its input more than once (kinds, runs, the digest the provenance records): a file
    rewritten meanwhile would leave a profile whose sha256 names other runs than those it fits."""
    import pdroof.calibration.serving_fit as serving_fit

    _, f = _measured(tmp_path, {"profiles.h100-sxm.weights.bf16": 0.6})
    fit = serving_fit.calibrate_serving

    def meanwhile(*args, **kw):
        f.write_text(f.read_text() + "\n")
        return fit(*args, **kw)

    monkeypatch.setattr(serving_fit, "calibrate_serving", meanwhile)
    out = tmp_path / "mine.yaml"
    code, _, err = cli("calibrate", str(f), "--hardware", "h100-sxm", "-o", str(out))
    assert code == 1 and "changed while it was being fitted" in err and err.count("\n") == 1
    assert not out.exists()
