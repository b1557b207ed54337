"""``predict``: TTFT, TPOT and throughput for each run of a serving-run file, against what it measured."""

from __future__ import annotations

from pathlib import Path

import typer

from ..output import render
from ..output.render import Column
from .options import (
    EngineOpt,
    EngineVersionOpt,
    Fmt,
    FormatOpt,
    ModelOpt,
    OutOpt,
    TpOpt,
    WeightsOpt,
    catalog,
    waves_option,
)

RUN_COLUMNS = [
    Column("id", "run"), Column("runtime", "runtime"),
    Column("tpot_ms", "TPOT (ms)", 1.0), Column("tpot_measured_ms", "measured", 1.0),
    Column("tpot_error", "err", text=lambda v: "" if v is None else f"{v:+.0%}"),
    Column("ttft_ms", "TTFT (ms)", 1.0), Column("ttft_measured_ms", "measured", 1.0),
    Column("ttft_error", "err", text=lambda v: "" if v is None else f"{v:+.0%}"),
    Column("output_tokens_per_s", "tok/s", 1.0), Column("error", "not predicted", text=lambda v: v or ""),
]
GROUP_COLUMNS = [
    Column("group", "group (model · accelerator · engine · version · weights · mode)"), Column("runs", "runs"),
    Column("tpot_mae", "TPOT MAE", text=lambda v: "" if v is None else f"{v:.1%}"),
    Column("ttft_mae", "TTFT MAE", text=lambda v: "" if v is None else f"{v:.1%}"),
]
CSV_KEYS = ["id", "runtime", "tpot_ms", "tpot_measured_ms", "tpot_error", "ttft_ms", "ttft_measured_ms",
            "ttft_error", "ttft_stat", "output_tokens_per_s", "error"]


def _row(p) -> dict:
    v = p.vs_measured or {}
    row = {"id": p.run.id, "runtime": p.runtime, "error": p.error}
    for metric in ("tpot", "ttft"):
        m = v.get(f"{metric}_ms")
        pred = (p.predicted or {}).get(f"{metric}_ms", {})
        stat = m["stat"] if m else "mean"
        row[f"{metric}_ms"] = pred.get(stat)
        row[f"{metric}_measured_ms"] = m["measured"] if m else None
        row[f"{metric}_error"] = m["error"] if m else None
        row[f"{metric}_stat"] = stat
    row["output_tokens_per_s"] = (p.predicted or {}).get("output_tokens_per_s")
    return row


def predict_cmd(
    ctx: typer.Context,
    runs: Path = typer.Argument(..., help="serving-run file: JSON ({\"runs\": [...]} or a list) or CSV; or vLLM's, "
                                          "SGLang's or InferenceX's result file",
                                metavar="RUNS"),
    runtime: str = typer.Option(None, "--runtime", help="runtime profile for every run (default: the run's engine)"),
    waves: float = waves_option("requests per client in each benchmark run (the first wave queues)"),
    fmt: Fmt = FormatOpt,
    output: Path | None = OutOpt,
    hardware: str = typer.Option(None, "--hardware", help="for another tool's result file: the accelerator it ran on"),
    model: str = ModelOpt,
    engine: str = EngineOpt,
    engine_version: str = EngineVersionOpt,
    weights: str = WeightsOpt,
    tp: int = TpOpt,
):
    """Predict each run's TTFT and TPOT statistics and output tokens/s; with measurements, the error."""
    from ..serving.predict import group_errors, overall, predict
    from ..serving.run_formats import RunDefaults, read_any_runs
    from ..spec.errors import PdroofError

    cat = catalog(ctx)
    acc = cat.get("accelerator", hardware).id if hardware else None
    given = RunDefaults(model, engine, engine_version, weights, acc, tp)
    found = read_any_runs(runs, given, cat)[1]
    if not found:
        raise PdroofError(f"{runs}: holds no runs")
    preds = predict(cat, found, runtime, waves=waves)  # a run it cannot predict says why; the others come out
    summary = overall(preds)
    if fmt.value == "json":
        render.emit(render.json_records_text("runs", [p.to_dict() for p in preds],
                                             {"groups": group_errors(preds), "summary": summary}), output)
        return
    rows = [_row(p) for p in preds]
    if fmt.value == "csv":
        render.emit(render.csv_text(rows, CSV_KEYS), output)
        return
    caption = (f"{summary['predicted']} of {summary['runs']} runs predicted"
               + (f"; TPOT mean abs error {summary['tpot_mae']:.1%}" if summary["tpot_mae"] is not None else "")
               + (f", TTFT {summary['ttft_mae']:.1%}" if summary["ttft_mae"] is not None else "")
               + " (median where measured, else mean)"
               + (f"; no profile for engine {', '.join(summary['engines_without_profile'])}: the default engine's "
                  "profile on each accelerator stood in (runtime; --runtime picks one)"
                  if summary["engines_without_profile"] else ""))
    text = render.table_text(rows, RUN_COLUMNS, title=f"predicted runs of {runs.name}", caption=caption)
    groups = group_errors(preds)
    if groups:
        text += render.table_text(groups, GROUP_COLUMNS, title="mean absolute error per group")
    render.emit(text, output)
