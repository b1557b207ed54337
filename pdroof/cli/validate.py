"""``validate`` user spec files and print a ``schema`` for editors."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from ..output.render import emit
from ..spec.errors import PdroofError
from ..spec.kinds import KINDS, PATH_KINDS, TIER_KINDS
from ..spec.yamlio import read_yaml
from .options import catalog

ALL_KINDS = (*KINDS, "runtime", "workload", "deployment")
SpecKind = Enum("SpecKind", {k: k for k in ALL_KINDS}, type=str)


def schema_node(kind: str):
    """The schema of any spec kind (imported lazily: most commands never need them all)."""
    if kind == "runtime":
        from ..spec.profile import RUNTIME

        return RUNTIME
    if kind == "workload":
        from ..serving.workload import WORKLOAD

        return WORKLOAD
    if kind == "deployment":
        from ..serving.deployment import DEPLOYMENT

        return DEPLOYMENT
    return KINDS[kind]


def guess_kind(path: Path, data) -> str:
    """The spec kind of a file: from its folder name, else from its keys."""
    folder = {"accelerators": "accelerator", "paths": "path", "tiers": "tier", "models": "model",
              "runtimes": "runtime"}.get(path.parent.name)
    if folder:
        return folder
    if isinstance(data, dict):
        if "targets" in data and ("prefill" in data or "pool" in data):
            return "deployment"
        if "prompt_tokens" in data:
            return "workload"
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
    ctx: typer.Context,
    files: list[Path] = typer.Argument(..., help="spec files to check", metavar="PATH..."),
    kind: SpecKind | None = typer.Option(None, "--kind", help="spec kind (default: from folder name or keys)"),
):
    """Check spec files: strict keys, types, units, cross-field rules."""
    from ..spec.errors import SpecError
    from ..spec.schema import validate

    failed = 0
    for f in files:
        try:
            data = read_yaml(f)
            k = kind.value if kind else guess_kind(f, data)
            if k == "runtime" and isinstance(data, dict) and data.get("inherits"):
                rec = catalog(ctx).get("runtime", str(f))  # checked with what it inherits
            elif k == "deployment":
                from ..serving.deployment import checked

                rec = checked(data, f, catalog(ctx))  # the ids it names too, as check and deploy resolve them
            else:
                rec = validate(schema_node(k), data, str(f))
            emit(f"ok: {f} ({k} {rec.get('id') or rec.get('model') or ''})\n")
        except SpecError as exc:
            failed += 1
            typer.echo(f"Error: {exc}", err=True)
    if failed:
        raise typer.Exit(1)


def schema_cmd(kind: SpecKind = typer.Argument(..., help="spec kind")):
    """Print the JSON Schema of a spec kind (for editor completion and checks)."""
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema_node(kind.value).json_schema()}
    emit(json.dumps(doc, indent=2) + "\n")
