"""``deploy``: the launch commands of a deployment's pools for one engine."""

from __future__ import annotations

import stat
from enum import Enum
from pathlib import Path

import typer

EngineName = Enum("EngineName", {k: k for k in ("sglang", "vllm", "trtllm")}, type=str)


def deploy_cmd(
    ctx: typer.Context,
    deployment: Path = typer.Argument(..., help="deployment YAML (as pdroof check reads)"),
    engine: EngineName = typer.Option(..., "--engine", "-e", help="the serving engine: sglang, vllm or trtllm"),
    transfer: str = typer.Option(None, "--transfer", help="KV transfer backend (sglang: mooncake, nixl, mori; vllm: "
                                                          "nixl, mooncake, mori; trtllm: nixl, ucx); default the "
                                                          "engine's"),
    out_dir: Path = typer.Option(None, "--out-dir", help="write one script per pool (and the router's) into DIR"),
):
    """Print the launch commands of each pool of a deployment (and the router), for one engine: exit 0,
    1 when the engine cannot run what the deployment plans, 2 for an invalid deployment file."""
    from ..output import render
    from ..serving.deployment import load
    from ..serving.launch import launch_scripts
    from ..spec.errors import PdroofError
    from .app import one_line
    from .options import catalog

    try:  # an invalid deployment file (an unknown id in it included) exits 2, as pdroof check does
        d = load(deployment, catalog(ctx))
    except PdroofError as exc:
        typer.echo(f"Error: {one_line(str(exc))}", err=True)
        raise typer.Exit(2) from None
    scripts = launch_scripts(d, catalog(ctx), engine.value, transfer, deployment.name)
    if out_dir is None:
        render.emit("\n".join(f"### {s.name}\n{s.text}" for s in scripts))
        return
    if out_dir.exists() and not out_dir.is_dir():
        raise PdroofError(f"--out-dir {out_dir}: not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    render.write_all_atomic([(out_dir / s.name, s.text) for s in scripts])  # the set whole, or none of it
    for s in scripts:  # scripts run as they are; a device or FIFO written through keeps its mode
        mode = (out_dir / s.name).stat().st_mode
        if stat.S_ISREG(mode):
            (out_dir / s.name).chmod(mode | 0o111)
    typer.echo(f"wrote {', '.join(s.name for s in scripts)} to {out_dir}", err=True)
