"""The ``pdroof`` command: one Typer app, one error handler."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import typer

from ..spec.errors import PdroofError

app = typer.Typer(
    name="pdroof",
    help="Roofline planner for heterogeneous prefill/decode LLM serving.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__
        from ..output.render import emit

        emit(f"pdroof {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    catalog: list[Path] = typer.Option(
        None, "--catalog", help="extra catalogue directory (repeatable; also $PDROOF_CATALOG)",
        file_okay=False, metavar="DIR"),
    version: bool = typer.Option(False, "--version", help="print the version and exit", is_eager=True,
                                 callback=_version),
):
    ctx.obj = {"catalog_dirs": list(catalog or [])}


# command name -> (module, attribute, kind): commands are registered when first needed, so one
# command's start-up does not import every other command module ("--help" registers them all)
COMMANDS = {
    "hardware": ("specs", "hardware", "group"), "models": ("specs", "models", "group"),
    "paths": ("specs", "paths", "group"), "tiers": ("specs", "tiers", "group"),
    "rank": ("rank", "rank_cmd", "command"), "plan": ("plan", "plan_cmd", "command"),
    "check": ("plan", "check_cmd", "command"), "estimate": ("estimate", "estimate_cmd", "command"),
    "predict": ("predict", "predict_cmd", "command"),
    "transfer": ("transfer", "transfer_cmd", "command"), "equations": ("equations", "equations_cmd", "command"),
    "calibrate": ("calibrate", "calibrate_cmd", "command"), "measure": ("measure", "measure_cmd", "command"),
    "validate": ("validate", "validate_cmd", "command"), "schema": ("validate", "schema_cmd", "command"),
    "examples": ("examples", "examples_cmd", "command"), "deploy": ("deploy", "deploy_cmd", "command"),
}
_registered: set[str] = set()


def register(names=None) -> typer.Typer:
    """Register ``names`` (default: every command) on the app, once each; returns the app."""
    import importlib

    for name in COMMANDS if names is None else names:
        if name in _registered:
            continue
        module, attr, kind = COMMANDS[name]
        obj = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
        if kind == "group":
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)
        _registered.add(name)
    if names is None:  # --help lists commands in the table's order, whatever registered first
        order = list(COMMANDS)
        app.registered_commands.sort(key=lambda c: order.index(c.name))
        app.registered_groups.sort(key=lambda g: order.index(g.name))
    return app


def _past_globals(argv: list[str]) -> list[str]:
    """The arguments after the global ``--catalog`` options."""
    i = 0
    while i < len(argv) and (argv[i] == "--catalog" or argv[i].startswith("--catalog=")):
        i += 2 if argv[i] == "--catalog" else 1
    return argv[i:]


def _command_in(argv: list[str]) -> str | None:
    """The command an argument list invokes (after the global options), or None."""
    rest = _past_globals(argv)
    return rest[0] if rest and rest[0] in COMMANDS else None


def prepare(argv: list[str]) -> typer.Typer:
    """Register what ``argv`` needs: its command, or every command when it names none."""
    command = _command_in(argv)
    return register([command] if command else None)


ERROR_CHARS = 2000  # an error line longer than this is cut: a value pasted into a file can be huge


def one_line(text: str) -> str:
    """An error as one line: newlines and other control characters escaped, the rest cut."""
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS] + f"… ({len(text):,} characters)"


class _ClosedStream:
    """Standard output when the process was started with it closed (``>&-``): any write is an error
    the handler reports in one line; nothing is a terminal."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "it is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _guard_stdout() -> None:
    """A closed standard output becomes one that fails on write; a terminal that cannot show a
    character gets '?' for it instead of a crash (PYTHONIOENCODING=ascii, latin-1)."""
    if sys.stdout is None:
        sys.stdout = _ClosedStream()
    elif hasattr(sys.stdout, "reconfigure") and getattr(sys.stdout, "errors", "replace") == "strict":
        try:
            sys.stdout.reconfigure(errors="replace")
        except (OSError, ValueError):
            pass


def _help_status(args: list[str]) -> int | None:
    """The exit status of the help Rich prints for ``args``: 0 where ``--help`` asks for it, 2 (a
    usage error) where no command is named or a group is named alone; None where it prints none."""
    if "--help" in args:
        return 0
    rest = _past_globals(args)
    return 2 if not rest or (len(rest) == 1 and COMMANDS.get(rest[0], ("", "", ""))[2] == "group") else None


def _help_pipe_quiet() -> None:
    """Where Rich prints the help, a reader that went away is the ``BrokenPipeError`` the handler
    ends with the help's own status, not Rich's exit status 1. Only then: importing Rich costs every
    other command's start-up. Once per process: the method stays replaced for the rest of it."""
    from rich.console import Console

    rich_way = Console.on_broken_pipe
    if getattr(rich_way, "quiet", False):
        return

    def quiet(console) -> None:
        try:
            rich_way(console)  # standard output onto /dev/null, so the last flush has nowhere to fail
        except SystemExit:
            raise BrokenPipeError from None

    quiet.quiet = True
    Console.on_broken_pipe = quiet


def _terminate_as_exit() -> None:
    """SIGTERM unwinds like SIGINT, so a half-written output's temporary file is removed on the way
    out (the writers clean up on any exception); only in the main thread, where handlers may be set."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        def stop(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    """Entry point: usage errors exit 2 (typer's message), input errors print one ``Error:`` line
    on stderr and exit 1; never a traceback for bad input. A standard output that cannot take what
    is written (closed, a full device, a file over its size limit) is one error line too."""
    args = sys.argv[1:] if argv is None else list(argv)
    _guard_stdout()
    help_status = _help_status(args)
    if help_status is not None:
        _help_pipe_quiet()
    prepare(args)
    _terminate_as_exit()
    from typer._click.exceptions import UsageError  # typer's own copy of click, as it raises them
    from typer.exceptions import Abort

    try:
        code = app(args=args, prog_name="pdroof", standalone_mode=False)
    except UsageError as exc:  # a usage mistake is one line too, exit 2, naming the command's --help
        message = exc.format_message()
        if not message:  # no arguments at all: the help was the answer
            return exc.exit_code
        where = f" (pdroof {exc.ctx.command_path.split(' ', 1)[1]} --help)" if exc.ctx and " " in \
            exc.ctx.command_path else ""
        print(f"Error: {one_line(message)}{where}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except PdroofError as exc:
        print(f"Error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # a reader that went away changes no verdict: the help's own, else success
        return help_status or 0
    except (KeyboardInterrupt, Abort):  # SIGINT or SIGTERM (_terminate_as_exit): what was being written is gone
        print("Error: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # writing out what was asked for failed: the disk, the device, a limit
        where = f"{exc.filename}: " if exc.filename else "cannot write to standard output: "
        print(f"Error: {one_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 1
    if code == 130:  # typer turns an interrupt into Exit(130), and returns it outside standalone mode
        print("Error: interrupted", file=sys.stderr)
    return code if isinstance(code, int) else 0  # typer.Exit(n) comes back as n outside standalone mode

