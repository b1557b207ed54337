"""Calibration: the shipped pytorch profile is what ``calibrate`` makes from the measurements, and
it predicts the measured end-to-end runs."""

from __future__ import annotations

import json

import pytest

from pdroof.calibration.calibrate import calibrate_runtime, e2e_table
from pdroof.calibration.measurements import read_measurements
from pdroof.spec.catalog import builtin_root
from pdroof.spec.errors import SpecError
from pdroof.spec.profile import load_runtime
from pdroof.spec.yamlio import read_yaml

from .conftest import REPO

DATA = REPO / "tests" / "data"  # copies of ../shared/calibration (2026-11-26)
PYTORCH = builtin_root() / "hardware" / "runtimes" / "pytorch.yaml"


@pytest.mark.parametrize("hw", ["h100-sxm", "h200-sxm"])
def test_shipped_profile_is_reproduced(catalog, hw):
    base = read_yaml(PYTORCH)
    doc, _ = calibrate_runtime(DATA / f"{hw}.json", catalog.get("accelerator", hw), base,
                               lambda i: catalog.get("model", i))
    assert doc["profiles"][hw] == base["profiles"][hw]


def test_pytorch_runtime_predicts_h100_end_to_end(catalog):
    rows = read_measurements(DATA / "h100-sxm.json")["e2e"]
    assert len(rows) == 6
    table = e2e_table(rows, load_runtime(PYTORCH), catalog.get("accelerator", "h100-sxm"),
                      lambda i: catalog.get("model", i))
    errors = [r["error"] for r in table]
    assert sum(abs(e) for e in errors) / len(errors) <= 0.08
    assert all(abs(e) <= 0.15 for e in errors)


def test_micro_benchmarks_alone_predict_h100_end_to_end(catalog, tmp_path):
    """Calibrated without its end-to-end rows, H100 still meets the accuracy bar."""
    data = json.loads((DATA / "h100-sxm.json").read_text())
    e2e = data.pop("e2e")
    (tmp_path / "micro.json").write_text(json.dumps(data))
    base = read_yaml(PYTORCH)
    base["profiles"] = {}
    doc, _ = calibrate_runtime(tmp_path / "micro.json", catalog.get("accelerator", "h100-sxm"), base,
                               lambda i: catalog.get("model", i))
    from pdroof.spec.profile import RUNTIME
    from pdroof.spec.schema import validate

    rt = validate(RUNTIME, doc, "micro")
    table = e2e_table(e2e, rt, catalog.get("accelerator", "h100-sxm"), lambda i: catalog.get("model", i))
    errors = [abs(r["error"]) for r in table]
    assert sum(errors) / len(errors) <= 0.08 and max(errors) <= 0.15


def test_paged_transfer_is_explained(catalog):
    _, report = calibrate_runtime(DATA / "h100-sxm.json", catalog.get("accelerator", "h100-sxm"),
                                  read_yaml(PYTORCH), lambda i: catalog.get("model", i))
    paged = {r["kind"]: r for r in report["paged_transfer"]}
    assert paged["d2h_paged"]["measured_s"] / paged["d2h_bulk_same"]["measured_s"] > 10
    assert abs(paged["d2h_bulk_same"]["error"]) < 0.1


def test_cli_calibrate_writes_a_usable_runtime(cli, tmp_path):
    out = tmp_path / "h200.yaml"
    code, text, err = cli("calibrate", str(DATA / "h200-sxm.json"), "--hardware", "h200-sxm", "-o", str(out))
    assert code == 0, err
    assert "fit error" in text
    code, text, err = cli("estimate", "-m", "llama-3.1-8b", "--hardware", "h200-sxm", "--runtime", str(out),
                          "-f", "json")
    assert code == 0, err
    assert json.loads(text)["inputs"]["efficiency_origin"]["compute.bf16"] == "runtime h200"  # the file's name


def _bad(tmp_path, mutate):
    data = json.loads((DATA / "h100-sxm.json").read_text())
    mutate(data)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(data))
    return p


@pytest.mark.parametrize("mutate,field,words", [
    (lambda d: d.pop("gemm"), "gemm", "missing section"),
    (lambda d: d["gemm"][0].__setitem__("s", -1.0), "gemm[0].s", "must be positive"),
    (lambda d: d["gemm"][0].__setitem__("s", d["gemm"][0]["s"] * 1e3), "gemm[0].s", "must be in seconds"),
    (lambda d: d["attn_decode"][0].pop("L"), "attn_decode[0].L", "missing field"),
    (lambda d: d["copy"][0].__setitem__("bytes", "lots"), "copy[0].bytes", "must be a number"),
    (lambda d: d.__setitem__("meta", -1), "meta", "must be a mapping"),
    (lambda d: d["e2e"][0].__setitem__("dtype", 0), "e2e[0].dtype", "must be one of"),
    (lambda d: d["e2e"][0].pop("S"), "e2e[0].S", "missing field"),  # a prefill row's prompt
    (lambda d: d["e2e"][0].__setitem__("phase", "both"), "e2e[0].phase", "must be prefill or decode"),
])
def test_bad_measurement_files(tmp_path, mutate, field, words, cli):
    p = _bad(tmp_path, mutate)
    with pytest.raises(SpecError) as exc:
        read_measurements(p)
    assert f": {field}: " in str(exc.value) and words in str(exc.value)
    code, _, err = cli("calibrate", str(p), "--hardware", "h100-sxm", "-o", str(tmp_path / "x.yaml"))
    assert code == 1 and err.startswith("Error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.yaml").exists()


def test_gemms_in_a_format_the_accelerator_has_no_peak_for_name_the_file(tmp_path, cli):
    p = _bad(tmp_path, lambda d: d["gemm"].append({**d["gemm"][0], "dtype": "abc"}))
    code, _, err = cli("calibrate", str(p), "--hardware", "h100-sxm", "-o", str(tmp_path / "x.yaml"))
    assert code == 1 and err.startswith(f"Error: {p}: gemm: abc GEMMs") and not (tmp_path / "x.yaml").exists()


def test_the_profile_and_its_report_need_two_files(tmp_path, cli):
    same = tmp_path / "same.yaml"
    code, _, err = cli("calibrate", str(DATA / "serving_llama8b_h100_trtllm.json"), "--hardware", "h100-sxm",
                       "-o", str(same), "--report", str(same))
    assert code == 2 and "--report" in err and not same.exists()


def test_flat_csv_is_read(tmp_path):
    data = json.loads((DATA / "h100-sxm.json").read_text())
    keys = sorted({k for sec in ("gemm", "attn_prefill", "attn_decode", "copy", "xfer") for r in data[sec] for k in r})
    lines = [",".join(["section", *keys])]
    for sec in ("gemm", "attn_prefill", "attn_decode", "copy", "xfer"):
        for r in data[sec]:
            lines.append(",".join([sec, *(repr(r[k]) if isinstance(r.get(k), float) else str(r.get(k, ""))
                                          for k in keys)]))
    p = tmp_path / "m.csv"
    p.write_text("\n".join(lines))
    got = read_measurements(p)
    assert len(got["gemm"]) == len(data["gemm"]) and got["e2e"] == []


def test_runs_of_another_engine_than_the_base_name_the_file(tmp_path, cli):
    runs = DATA / "serving_llama8b_h100_trtllm.json"
    code, _, err = cli("calibrate", str(runs), "--hardware", "h100-sxm", "--runtime", "vllm",
                       "-o", str(tmp_path / "x.yaml"))
    assert code == 1 and err.startswith(f"Error: {runs}: runs measured on trtllm, but runtime vllm stands for vllm")


@pytest.mark.parametrize("change, field, words", [({"layers_run": 1e300}, "layers_run", "more than the 32 layers"),
                                                  ({"model": "llama-9"}, "model", "unknown model"),
                                                  ({"dtype": "fp4"}, "dtype", "h100-sxm has no fp4 peak")])
def test_an_end_to_end_row_beyond_its_model_names_the_field(tmp_path, cli, change, field, words):
    p = _bad(tmp_path, lambda d: d["e2e"][0].update(change))
    code, _, err = cli("calibrate", str(p), "--hardware", "h100-sxm", "-o", str(tmp_path / "x.yaml"))
    assert code == 1 and err.startswith(f"Error: {p}: e2e[0].{field}: ") and words in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.yaml").exists()
