"""``calibrate``: fit a runtime profile to micro-benchmark measurements."""

from __future__ import annotations

from pathlib import Path

import typer

from ..output import render
from ..output.render import Column
from .options import catalog

E2E_COLUMNS = [
    Column("model", "model"), Column("phase", "phase"), Column("dtype", "dtype"), Column("B", "B"),
    Column("S", "S"), Column("L", "L"), Column("measured_s", "measured (ms)", 1e-3),
    Column("predicted_s", "predicted (ms)", 1e-3), Column("error_pct", "error"),
]


def calibrate_cmd(
    ctx: typer.Context,
    measurements: Path = typer.Argument(..., help="micro-benchmark results (JSON, or CSV with a section column)",
                                        dir_okay=False),
    hardware: str = typer.Option(..., "--hardware", help="accelerator the measurements were taken on"),
    runtime: str = typer.Option("pytorch", "--runtime",
                                help="runtime to start from (its structure, fallback and other profiles)"),
    output: Path = typer.Option(..., "--output-file", "-o", help="runtime profile YAML to write", dir_okay=False),
    report: Path = typer.Option(None, "--report", help="also write the fit report as JSON", dir_okay=False),
):
    """Fit efficiency factors for one accelerator and write a runtime profile with provenance."""
    import yaml

    from ..calibration.calibrate import calibrate_runtime
    from ..spec.catalog import looks_like_path
    from ..spec.yamlio import read_yaml

    cat = catalog(ctx)
    acc = cat.get("accelerator", hardware)
    base_path = runtime if looks_like_path(runtime) else cat.files("runtime").get(runtime)
    if base_path is None:
        cat.get("runtime", runtime)  # raises the unknown-id error
    doc, rep = calibrate_runtime(measurements, acc, read_yaml(base_path), lambda i: cat.get("model", i))
    text = "# Written by pdroof calibrate; see provenance.\n" + yaml.safe_dump(doc, sort_keys=False, width=110)
    render.write_atomic(output, text)
    if report:
        render.write_atomic(report, render.json_text(rep))
    fit = rep["fit"]
    lines = [f"wrote {output}: profile {acc.id} in runtime {doc['id']}",
             "fit error (rms of log ratio): " + ", ".join(f"{k} {v:.1%}" for k, v in fit.items())]
    for row in rep.get("paged_transfer", []):
        lines.append(f"host copy {row['kind']}: {row['messages']} message(s), "
                     f"measured {row['measured_s'] * 1e3:.2f} ms, "
                     f"predicted {row['predicted_s'] * 1e3:.2f} ms")
    typer.echo("\n".join(lines))
    for key, title in (("e2e_micro_only", "end-to-end, micro-benchmark fit only (layer latency from the base runtime)"),
                       ("e2e", "end-to-end, layer latency fitted")):
        if key in rep:
            rows = [{**r, "error_pct": f"{r['error']:+.1%}"} for r in rep[key]]
            mape = sum(abs(r["error"]) for r in rep[key]) / len(rows)
            typer.echo(render.table_text(rows, E2E_COLUMNS, title=title, caption=f"mean absolute error {mape:.1%}"),
                       nl=False)
