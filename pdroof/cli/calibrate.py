"""``calibrate``: fit a runtime profile to micro-benchmark measurements."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..output import render
from ..output.render import Column
from .options import EngineOpt, EngineVersionOpt, ModelOpt, TpOpt, WeightsOpt, catalog

E2E_COLUMNS = [
    Column("model", "model"), Column("phase", "phase"), Column("dtype", "dtype"), Column("B", "B"),
    Column("S", "S"), Column("L", "L"), Column("measured_s", "measured (ms)", 1e-3),
    Column("predicted_s", "predicted (ms)", 1e-3), Column("error_pct", "error"),
]


RUN_COLUMNS = [
    Column("id", "run"), Column("isl", "in"), Column("osl", "out"), Column("concurrency", "clients"),
    Column("tpot_before", "TPOT base"), Column("tpot_fitted", "fitted"), Column("tpot_left_out", "left out"),
    Column("ttft_before", "TTFT base"), Column("ttft_fitted", "fitted"), Column("ttft_left_out", "left out"),
]


def calibrate_cmd(
    ctx: typer.Context,
    measurements: Path = typer.Argument(..., help="micro-benchmark results (JSON, or CSV with a section column), "
                                                  "measured serving runs (JSON or CSV, as pdroof predict reads), or "
                                                  "both in one JSON object ('runs' beside the sections)"),
    hardware: str = typer.Option(..., "--hardware", help="accelerator the measurements were taken on"),
    runtime: str = typer.Option(None, "--runtime",
                                help="runtime to start from (its structure, fallback and other profiles); default: "
                                     "pytorch for micro-benchmarks, the runs' engine profile for serving runs (engine, "
                                     "or the engine's own id, stands for its profile at the runs' release)"),
    output: Path = typer.Option(..., "--output-file", "-o", help="runtime profile YAML to write"),
    report: Path = typer.Option(None, "--report", help="also write the fit report as JSON"),
    model: str = ModelOpt,
    engine: str = EngineOpt,
    engine_version: str = EngineVersionOpt,
    weights: str = WeightsOpt,
    tp: int = TpOpt,
):
    """Fit efficiency factors for one accelerator and write a runtime profile with provenance."""
    import yaml

    from ..calibration.measurements import digest, measurement_kinds
    from ..calibration.serving_runs import base_for, check_base, check_profile_id, runs_to_fit
    from ..serving.run_formats import RunDefaults, read_any_runs
    from ..spec.errors import PdroofError

    real = os.path.realpath  # Path.resolve raises on a symlink loop; realpath returns the path as far as it goes
    if report is not None and real(report) == real(output):
        raise typer.BadParameter(f"{report} is the profile's own path (-o): the report needs another file",
                                 param_hint="--report")
    cat = catalog(ctx)
    acc = cat.get("accelerator", hardware)
    for path in (output, report):  # before the fit, not after it
        folder = Path(real(path)).parent if path is not None else None
        if folder is not None and not folder.is_dir():
            raise PdroofError(f"{path}: directory {folder} does not exist")
    check_profile_id(output.stem)
    kinds = measurement_kinds(measurements)
    read = digest(measurements)  # the fit reads the file more than once: it must be one file throughout
    given = RunDefaults(model, engine, engine_version, weights, acc.id, tp)
    runs = runs_to_fit(read_any_runs(measurements, given, cat)[1], measurements, acc) if "runs" in kinds else None
    if runs is not None:  # serving runs name their engine and release: the base is its profile unless named
        runtime, why = base_for(cat, runtime, runs, acc)
        check_base(cat.get("runtime", runtime), runs, measurements)
        if why:
            render.emit(f"starting from {runtime}: {why}\n")
    doc, rep = None, {}
    if "micro" in kinds:
        base = cat.get("runtime", runtime or "pytorch")
        doc, rep = _micro(cat, measurements, acc, cat.runtime_document(runtime or "pytorch"))
        doc["engine"], doc["id"] = base.engine or base.id, output.stem  # the stack it stands for; the file's name
    if runs is not None:
        base_doc = cat.runtime_document(runtime) if doc is None else doc
        doc, rep["serving"] = _serving(cat, measurements, runs, acc, base_doc, output.stem)
    if digest(measurements) != read:
        raise PdroofError(f"{measurements}: changed while it was being fitted; nothing written (run again)")
    text = "# Written by pdroof calibrate; see provenance.\n" + yaml.safe_dump(doc, sort_keys=False, width=110)
    # the profile and its report as one: a report that cannot be written leaves the old profile
    render.write_all_atomic([(output, text), *([(report, render.json_text(rep))] if report else [])])
    render.emit(f"wrote {output}: runtime {doc['id']}\n")


def _micro(cat, measurements: Path, acc, base_doc: dict) -> tuple[dict, dict]:
    from ..calibration.calibrate import calibrate_runtime

    doc, rep = calibrate_runtime(measurements, acc, base_doc, lambda i: cat.get("model", i))
    fit = rep["fit"]
    lines = [f"micro-benchmarks: profile {acc.id} in runtime {doc['id']}",
             "fit error (rms of log ratio): " + ", ".join(f"{k} {v:.1%}" for k, v in fit.items())]
    for row in rep.get("paged_transfer", []):
        lines.append(f"host copy {row['kind']}: {row['messages']} message(s), "
                     f"measured {row['measured_s'] * 1e3:.2f} ms, "
                     f"predicted {row['predicted_s'] * 1e3:.2f} ms")
    render.emit("\n".join(lines) + "\n")
    for key, title in (("e2e_micro_only", "end-to-end, micro-benchmark fit only (layer latency from the base runtime)"),
                       ("e2e", "end-to-end, layer latency fitted")):
        if key in rep:
            rows = [{**r, "error_pct": f"{r['error']:+.1%}"} for r in rep[key]]
            mape = sum(abs(r["error"]) for r in rep[key]) / len(rows)
            render.emit(render.table_text(rows, E2E_COLUMNS, title=title, caption=f"mean absolute error {mape:.1%}"))
    return doc, rep


def _serving(cat, measurements: Path, runs: list, acc, base_doc: dict, profile_id: str):
    from ..calibration.serving_fit import calibrate_serving
    from ..spec.view import percent

    doc, rep = calibrate_serving(cat, runs, measurements, acc, base_doc, profile_id)
    lines = [f"serving runs: {len(runs)} on {acc.id}, from {rep['base']}, written as runtime {doc['id']}"]
    lines += [f"  fitted {k}: {v['base']:.4g} -> {v['value']:.4g}" for k, v in rep["fitted"].items()]
    lines += [f"  kept {k} {v['value']:.4g}: {v['why']}" for k, v in rep["kept"].items()]
    render.emit("\n".join(lines) + "\n")
    rows = [{k: (f"{v:+.1%}" if k.startswith(("tpot", "ttft")) and v is not None else ("—" if v is None else v))
             for k, v in r.items()} for r in rep["runs"]]
    mae = rep["mae"]
    caption = "mean absolute error: " + "; ".join(
        f"{m.upper()} base {percent(mae['before'][m])}, fitted {percent(mae['fitted'][m])}, "
        f"left out {percent(mae['left_out'][m])}" for m in ("tpot", "ttft"))
    render.emit(render.table_text(rows, RUN_COLUMNS, title="predicted against measured (relative error)",
                                  caption=caption))
    return doc, rep
