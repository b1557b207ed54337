"""Other benchmarks' result files read as runs: each format recognised, its fields mapped (tokens
per request from totals, InferenceX's seconds to ms), and what a file does not say asked for by
the option that gives it."""

from __future__ import annotations

import json

import pytest

from pdroof.serving.run_formats import RunDefaults, detect, read_any_runs

from .conftest import REPO

DATA = REPO / "tests" / "data"
GIVEN = RunDefaults(engine="vllm", weights="bf16", accelerator="h100-sxm", tp=1)


def test_vllm_bench_serve_json():
    fmt, (run,) = read_any_runs(DATA / "vllm_bench_serve.json", GIVEN)
    doc = json.loads((DATA / "vllm_bench_serve.json").read_text())
    assert fmt == "vllm" and run.error is None
    assert run.model == "llama-3.1-8b"  # meta-llama/Llama-3.1-8B-Instruct, by the model's hf_repo
    assert (run.isl, run.osl) == (doc["total_input_tokens"] // doc["completed"], doc["total_output_tokens"] // doc["completed"])
    assert run.concurrency == doc["max_concurrency"] and run.pools["deployment"].tp == 1
    assert run.measured["ttft_ms"] == {"mean": doc["mean_ttft_ms"], "median": doc["median_ttft_ms"],
                                       "p90": doc["p90_ttft_ms"], "p99": doc["p99_ttft_ms"]}


def test_sglang_bench_serving_jsonl():
    fmt, runs = read_any_runs(DATA / "sglang_bench_serving.jsonl", RunDefaults(weights="bf16", accelerator="h100-sxm"))
    lines = [json.loads(ln) for ln in (DATA / "sglang_bench_serving.jsonl").read_text().splitlines()]
    assert fmt == "sglang" and runs[0].error is None
    first = runs[0]
    assert first.model == "qwen2.5-7b" and first.engine == "sglang" and first.pools["deployment"].tp == 1
    # random_range_ratio 0: lengths average half the nominal, so the totals say what ran
    assert first.isl == lines[0]["total_input_tokens"] // lines[0]["completed"] != lines[0]["random_input_len"]
    assert first.measured["tpot_ms"]["p99"] == lines[0]["p99_tpot_ms"]
    assert first.length_range == (0.0, 2.0)  # uniform over [1, L]: 0 to twice the mean recorded
    assert "not a closed loop" in runs[1].error and "--max-concurrency" in runs[1].error  # a request-rate run
    assert runs[1].id == "sglang_bench_serving.jsonl:2"  # named by its line


def test_inferencex_records_in_seconds():
    fmt, runs = read_any_runs(DATA / "inferencex_results.json")
    rec = json.loads((DATA / "inferencex_results.json").read_text())[0]
    run = runs[0]
    assert fmt == "inferencex" and run.error is None
    assert (run.model, run.engine, run.weights) == ("llama-3.1-70b", "vllm", "fp8")
    assert run.pools["deployment"].accelerator == "h100-sxm" and run.pools["deployment"].tp == rec["decode_tp"]
    assert run.measured["ttft_ms"]["median"] == pytest.approx(rec["metrics"]["median_ttft"] * 1e3)
    assert run.engine_version == rec["image"] and (run.isl, run.osl, run.concurrency) == (1024, 1024, rec["conc"])
    assert run.length_range == (0.8, 1.0) and run.lengths_vary  # its benchmark's RANDOM_RANGE_RATIO


def test_dp_attention_is_one_attention_replica_per_device(tmp_path):
    rec = {**json.loads((DATA / "inferencex_results.json").read_text())[0], "model": "dsr1", "decode_tp": 8,
           "decode_ep": 8, "decode_dp_attention": True, "hardware": "mi355x", "framework": "sglang"}
    f = tmp_path / "ix.json"
    f.write_text(json.dumps([rec]))
    (run,) = read_any_runs(f)[1]
    pool = run.pools["deployment"]
    assert run.model == "deepseek-v3" and (pool.tp, pool.dp, pool.moe_ep) == (1, 8, 8)


@pytest.mark.parametrize("missing, option", [("engine", "--engine"), ("weights", "--weights"), ("tp", "--tp"),
                                             ("accelerator", "--hardware")])
def test_what_a_file_does_not_say_names_its_option(missing, option):
    given = RunDefaults(**{**GIVEN.__dict__, missing: None})
    (run,) = read_any_runs(DATA / "vllm_bench_serve.json", given)[1]
    assert run.error and option in run.error


def test_an_unknown_model_name_asks_for_model(tmp_path):
    doc = {**json.loads((DATA / "vllm_bench_serve.json").read_text()), "model_id": "acme/Wonder-13B"}
    f = tmp_path / "r.json"
    f.write_text(json.dumps(doc))
    (run,) = read_any_runs(f, GIVEN)[1]
    assert "--model" in run.error and "Wonder" in run.error
    (run,) = read_any_runs(f, RunDefaults(**{**GIVEN.__dict__, "model": "qwen3-8b"}))[1]
    assert run.error is None and run.model == "qwen3-8b"


def test_pdroof_run_files_are_read_as_before():
    assert detect((DATA / "serving_llama8b_h100_trtllm.json").read_text()) == "pdroof"
    fmt, runs = read_any_runs(DATA / "serving_llama8b_h100_trtllm.json")
    assert fmt == "pdroof" and len(runs) == 5 and all(r.error is None for r in runs)


def test_calibrate_reads_another_tools_results(cli, tmp_path):
    out = tmp_path / "ix.yaml"
    code, text, err = cli("calibrate", str(DATA / "inferencex_results.json"), "--hardware", "h100-sxm", "-o", str(out))
    assert code == 0, err
    assert "serving runs: 2 on h100-sxm" in text
    code, _, err = cli("calibrate", str(DATA / "vllm_bench_serve.json"), "--hardware", "h100-sxm", "-o",
                       str(tmp_path / "v.yaml"))
    assert code == 1 and "--engine" in err and err.count("\n") == 1


def test_an_inferencex_records_own_hardware_wins_and_is_checked(tmp_path, catalog):
    from pdroof.calibration.serving_runs import runs_to_fit
    from pdroof.spec.errors import PdroofError

    rec = json.loads((DATA / "inferencex_results.json").read_text())[0]
    f = tmp_path / "ix.json"
    f.write_text(json.dumps([rec, {**rec, "hardware": "b200"}, {**rec, "hardware": "h200-nv"}, {**rec, "hardware": "tpu7"}]))
    runs = read_any_runs(f, RunDefaults(accelerator="h100-sxm"))[1]
    assert [r.pools["deployment"].accelerator for r in runs[:3]] == ["h100-sxm", "b200", "h200-sxm"]
    assert "tpu7" in runs[3].error
    with pytest.raises(PdroofError, match="b200"):
        runs_to_fit(runs[:2], f, catalog.get("accelerator", "h100-sxm"))


@pytest.mark.parametrize("name, model", [("meta-llama/Meta-Llama-3.1-70B-Instruct", "llama-3.1-70b"),
                                         ("deepseek-ai/DeepSeek-R1-0528", "deepseek-v3"),
                                         ("Qwen/Qwen3-32B-FP8", "qwen3-32b")])
def test_models_are_matched_by_their_hugging_face_names(tmp_path, name, model):
    doc = {**json.loads((DATA / "vllm_bench_serve.json").read_text()), "model_id": name}
    f = tmp_path / "r.json"
    f.write_text(json.dumps(doc))
    (run,) = read_any_runs(f, GIVEN)[1]
    assert run.error is None and run.model == model


def test_vllm_append_result_lines_engine_aliases_and_rate_limits(tmp_path):
    doc = json.loads((DATA / "vllm_bench_serve.json").read_text())
    f = tmp_path / "append.jsonl"
    f.write_text("\n".join(json.dumps(d) for d in (doc, {**doc, "request_rate": 4.0}, {**doc, "backend": "x"}))
                 + "\n{broken\n")
    fmt, runs = read_any_runs(f, RunDefaults(**{**GIVEN.__dict__, "engine": "tensorrt-llm"}))
    assert fmt == "vllm" and runs[0].error is None and runs[0].engine == "trtllm"
    assert "not a closed loop" in runs[1].error  # a request rate with a concurrency cap is rate-limited
    assert "not valid JSON" in runs[3].error and runs[3].id == "append.jsonl:4"


def test_predict_reads_another_tools_results(cli_json):
    doc = cli_json("predict", str(DATA / "vllm_bench_serve.json"), "--hardware", "h100-sxm", "--engine", "vllm",
                   "--weights", "bf16", "--tp", "1")
    (run,) = doc["runs"]
    assert run["error"] is None and run["vs_measured"]["ttft_ms"]["stat"] == "median"
    doc = cli_json("predict", str(DATA / "vllm_bench_serve.json"))
    assert "--engine" in doc["runs"][0]["error"]  # the run says what is missing; the command still answers


def test_inferencex_disaggregated_and_multinode_records_are_read(tmp_path):
    """A disaggregated record becomes prefill and decode pools (its workers the instances, DP
    attention and EP per side); a multi-node one is an instance across nodes, predicted as such."""
    rec = {**json.loads((DATA / "inferencex_results.json").read_text())[0], "model": "dsr1", "hardware": "h200",
           "disagg": True, "is_multinode": True, "prefill_tp": 8, "prefill_ep": 8, "prefill_dp_attention": True,
           "prefill_num_workers": 2, "decode_tp": 16, "decode_ep": 16, "decode_dp_attention": True,
           "decode_num_workers": 1, "precision": "fp8"}
    f = tmp_path / "ix.json"
    f.write_text(json.dumps([rec]))
    _, (run,) = read_any_runs(f)
    assert run.error is None and run.mode == "disaggregated"
    pre, dec = run.pools["prefill"], run.pools["decode"]
    assert (pre.instances, pre.tp, pre.dp, pre.moe_ep) == (2, 1, 8, 8)
    assert (dec.instances, dec.tp, dec.dp, dec.moe_ep) == (1, 1, 16, 16)


@pytest.mark.parametrize("source, field, value", [
    ("sglang_bench_serving.jsonl", "backend", -1), ("sglang_bench_serving.jsonl", "server_info.model_path", 7),
    ("sglang_bench_serving.jsonl", "server_info.tp_size", "2"), ("vllm_bench_serve.json", "model_id", ["x"]),
    ("inferencex_results.json", "framework", 3), ("inferencex_results.json", "decode_tp", "8"),
    ("inferencex_results.json", "decode_ep", -1)])
def test_a_field_of_the_wrong_type_is_the_runs_error_naming_it(tmp_path, source, field, value):
    """Not a traceback: the run carries one error naming the field (predict lists it, calibrate refuses)."""
    text = (DATA / source).read_text()
    docs = [json.loads(ln) for ln in text.splitlines() if ln.strip()] if source.endswith(".jsonl") else json.loads(text)
    for doc in docs if isinstance(docs, list) else [docs]:
        *outer, key = field.split(".")
        target = doc
        for k in outer:
            target = target.setdefault(k, {})
        target[key] = value
    f = tmp_path / source
    f.write_text("\n".join(json.dumps(d) for d in docs) if source.endswith(".jsonl") else json.dumps(docs))
    named = "model" not in field  # an option given for a field replaces it unread
    runs = read_any_runs(f, RunDefaults(weights="bf16", accelerator="h100-sxm", model="qwen3-8b" if named else None))[1]
    assert runs[0].error and f"{key}: must be" in runs[0].error, runs[0].error  # (the second SGLang line ran at a rate)


def test_an_option_replaces_a_bad_field_and_whole_floats_are_counts(tmp_path):
    """A field an option replaces is not read; 8.0 (as pandas writes JSON) is 8; InferenceX's ep 0 is none."""
    doc = {**json.loads((DATA / "vllm_bench_serve.json").read_text()), "model_id": ["x"], "backend": 3}
    f = tmp_path / "v.json"
    f.write_text(json.dumps(doc))
    (run,) = read_any_runs(f, RunDefaults(**{**GIVEN.__dict__, "model": "qwen3-8b"}))[1]
    assert run.error is None and (run.model, run.engine) == ("qwen3-8b", "vllm")
    rec = {**json.loads((DATA / "inferencex_results.json").read_text())[0], "decode_tp": 4.0, "decode_ep": 0}
    f = tmp_path / "ix.json"
    f.write_text(json.dumps([rec]))
    (run,) = read_any_runs(f)[1]
    assert run.error is None and (run.pools["deployment"].tp, run.pools["deployment"].moe_ep) == (4, 1)


def test_a_byte_order_mark_is_skipped_in_every_format(tmp_path):
    for name in ("vllm_bench_serve.json", "sglang_bench_serving.jsonl", "inferencex_results.json"):
        f = tmp_path / name
        f.write_text("\ufeff" + (DATA / name).read_text(), encoding="utf-8")
        assert [r.error for r in read_any_runs(f, GIVEN)[1]] == [r.error for r in read_any_runs(DATA / name, GIVEN)[1]]
