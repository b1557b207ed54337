"""``examples``: the example files that ship with pdroof (deployments to ``check``), listed or
written out, so a pip install reaches them too."""

from __future__ import annotations

from pathlib import Path

import typer

from ..output import render
from ..output.render import Column
from .options import OutOpt


def examples_cmd(
    name: str = typer.Argument(None, help="an example to print (or write with -o); none: list them"),
    output: Path | None = OutOpt,
):
    """List the shipped examples, or print (or write) one."""
    from ..spec.catalog import builtin_root
    from ..spec.errors import PdroofError

    found = {p.stem: p for p in sorted((builtin_root() / "examples").glob("*.yaml"))}
    if name is None:
        rows = [{"name": n, "about": _about(p)} for n, p in found.items()]
        render.emit(render.table_text(rows, [Column("name", "example"), Column("about", "what it is")]), output)
        return
    path = found.get(name.removesuffix(".yaml"))
    if path is None:
        raise PdroofError(f"no example {name!r}; the examples: {', '.join(found) or 'none'}")
    render.emit(path.read_text(encoding="utf-8"), output)


def _about(path: Path) -> str:
    """The example's first comment sentence."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    text = " ".join(lines)
    return text.split(". ")[0].split(": ")[0] if text else ""
