"""The ``pdroof`` command: one Typer app, one error handler."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..spec.errors import PdroofError

app = typer.Typer(
    name="pdroof",
    help="Roofline planner for heterogeneous prefill/decode LLM serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    catalog: list[Path] = typer.Option(
        None, "--catalog", help="extra catalogue directory (repeatable; also $PDROOF_CATALOG)",
        file_okay=False, metavar="DIR"),
):
    ctx.obj = {"catalog_dirs": list(catalog or [])}


def _register() -> None:
    from . import calibrate, equations, estimate, measure, plan, rank, specs, transfer, validate

    app.add_typer(specs.hardware, name="hardware")
    app.add_typer(specs.models, name="models")
    app.add_typer(specs.paths, name="paths")
    app.add_typer(specs.tiers, name="tiers")
    app.command("rank")(rank.rank_cmd)
    app.command("plan")(plan.plan_cmd)
    app.command("check")(plan.check_cmd)
    app.command("estimate")(estimate.estimate_cmd)
    app.command("transfer")(transfer.transfer_cmd)
    app.command("equations")(equations.equations_cmd)
    app.command("calibrate")(calibrate.calibrate_cmd)
    app.command("measure")(measure.measure_cmd)
    app.command("validate")(validate.validate_cmd)
    app.command("schema")(validate.schema_cmd)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point: usage errors exit 2 (typer's message), input errors print one ``Error:`` line
    on stderr and exit 1; never a traceback for bad input."""
    try:
        app(args=argv, prog_name="pdroof")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except PdroofError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


def run() -> None:
    sys.exit(main())
