"""``measure``: run the micro-benchmarks on the local accelerator (needs PyTorch)."""

from __future__ import annotations

from pathlib import Path

import typer

from .options import catalog


def measure_cmd(
    ctx: typer.Context,
    output: Path = typer.Option(..., "--output-file", "-o", help="measurement JSON to write"),
    smoke: bool = typer.Option(False, "--smoke", help="tiny shapes, runs on a CPU in seconds (a self-test)"),
    device: str = typer.Option(None, "--device", help="torch device (default: cuda if present, else cpu)"),
    models: list[str] = typer.Option(["llama-3.1-8b", "llama-3.1-70b"], "--model", "-m",
                                     help="models whose GEMM shapes to time (repeatable)"),
    repeats: int = typer.Option(None, "--repeats", help="timed repeats per point (median reported)"),
):
    """Time GEMMs, attention, device copies and the host link; write a file `calibrate` reads."""
    from ..calibration.measure import measure
    from ..output import render

    cat = catalog(ctx)
    specs = [cat.get("model", m) for m in models]
    doc = measure(specs, device=device, smoke=smoke, repeats=repeats,
                  progress=lambda s: typer.echo(f"measuring {s} ...", err=True))
    render.write_atomic(output, render.json_text(doc))
    counts = ", ".join(f"{k} {len(v)}" for k, v in doc.items() if isinstance(v, list))
    render.emit(f"wrote {output} ({doc['meta']['device']}): {counts}\n")
