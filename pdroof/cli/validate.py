"""``validate`` user spec files and print a ``schema`` for editors."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from ..errors import PdroofError
from ..specs import KINDS, PATH_KINDS, TIER_KINDS
from ..yamlio import read_yaml

SpecKind = Enum("SpecKind", {k: k for k in [*KINDS, "runtime"]}, type=str)


def guess_kind(path: Path, data) -> str:
    """The spec kind of a file: from its folder name, else from its keys."""
    folder = {"accelerators": "accelerator", "paths": "path", "tiers": "tier", "models": "model",
              "runtimes": "runtime"}.get(path.parent.name)
    if folder:
        return folder
    if isinstance(data, dict):
        if "layers" in data:
            return "model"
        if "dense_tflops" in data:
            return "accelerator"
        if "profiles" in data:
            return "runtime"
        if data.get("kind") in PATH_KINDS:
            return "path"
        if data.get("kind") in TIER_KINDS:
            return "tier"
    raise PdroofError(f"{path}: cannot tell the spec kind; pass --kind")


def validate_cmd(
    files: list[Path] = typer.Argument(..., help="spec files to check", metavar="PATH..."),
    kind: SpecKind | None = typer.Option(None, "--kind", help="spec kind (default: from folder name or keys)"),
):
    """Check spec files: strict keys, types, units, cross-field rules."""
    from ..catalog import load_file
    from ..errors import SpecError

    failed = 0
    for f in files:
        try:
            k = kind.value if kind else guess_kind(f, read_yaml(f))
            rec = load_file(k, f)
            typer.echo(f"ok: {f} ({k} {rec.id})")
        except SpecError as exc:
            failed += 1
            typer.echo(f"Error: {exc}", err=True)
    if failed:
        raise typer.Exit(1)


def schema_cmd(kind: SpecKind = typer.Argument(..., help="spec kind")):
    """Print the JSON Schema of a spec kind (for editor completion and checks)."""
    if kind.value == "runtime":
        from ..runtime import RUNTIME as node
    else:
        node = KINDS[kind.value]
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", **node.json_schema()}
    typer.echo(json.dumps(doc, indent=2))
