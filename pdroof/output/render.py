"""One place that renders results: text tables (human units in headers, numbers right-aligned),
CSV and JSON (raw SI values, keys named after the equations). Files are written atomically.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec.errors import PdroofError
from ..spec.view import human

FORMATS = ("table", "json", "csv")


@dataclass(frozen=True)
class Column:
    """A result column: ``key`` in the row dicts (SI), ``header`` with the human unit, and the
    factor that converts SI to that unit for tables."""

    key: str
    header: str
    scale: float = 1.0
    digits: int = 3
    text: Callable[[Any], str] | None = None

    def cell(self, row: dict) -> str:
        v = row.get(self.key)
        if self.text is not None:
            return self.text(v)
        return human(v, self.scale, self.digits)


def table_width() -> int | None:
    """Characters a table may take: ``COLUMNS`` when set, a terminal's width, else no limit (a
    pipe or a file keeps the table's natural width)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def table_text(rows: Sequence[dict], columns: Sequence[Column], title: str | None = None,
               caption: str | None = None) -> str:
    right = [c.text is None and any(isinstance(r.get(c.key), (int, float)) and not isinstance(r.get(c.key), bool)
                                    for r in rows) for c in columns]
    cells = [[c.cell(r) for c in columns] for r in rows]
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    from .table import format_table  # textwrap: only tables need it

    return format_table([c.header for c in columns], cells, right, title=title, caption=caption,
                        width=table_width(), bold=bold)


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data: numpy scalars and arrays, tuples and records become JSON types."""
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2) + "\n"


def json_records_text(key: str, records: Sequence[Any], rest: dict) -> str:
    """A JSON object whose ``key`` holds ``records``, one compact record per line (a file of
    thousands stays readable, greppable and fast to write), then ``rest`` indented."""
    def line(r) -> str:
        try:  # plain data already (the common case): no conversion pass
            return json.dumps(r, separators=(", ", ": "), allow_nan=False)
        except (TypeError, ValueError):
            return json.dumps(to_jsonable(r), separators=(", ", ": "))

    lines = ",\n".join(line(r) for r in records)
    tail = json.dumps(to_jsonable(rest), indent=2)[1:-1].strip("\n")
    return "{\n" + json.dumps(key) + ": [\n" + lines + "\n]" + ("," + "\n" + tail if tail else "") + "\n}\n"


def csv_text(rows: Iterable[dict], keys: Sequence[str]) -> str:
    buf = io.StringIO()
    import csv

    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for r in rows:
        w.writerow([_csv_cell(r.get(k)) for k in keys])
    return buf.getvalue()


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ";".join(map(str, v))
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""  # no inf or nan where a number belongs
    return v


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` without destroying what is not ours: a regular file (or the one a
    symbolic link points to, the link kept) is replaced atomically through a temporary file beside
    it, with the permissions the user's umask gives a new file; a device or a FIFO is written
    through; a directory is refused. Any failure (a full disk, no permission) is one error and
    leaves the old file and no temporary one."""
    write_all_atomic([(path, data)])


def write_all_atomic(files: Sequence[tuple[str | Path, str | bytes]]) -> None:
    """Several files as one: every regular file staged beside its target first, then what is written
    through (a device, a FIFO: it cannot be taken back), then the staged files put in place, so a
    failure (a full disk or device half-way) leaves every old file and no temporary one."""
    staged: list[tuple[str, Path]] = []
    through: list[tuple[Path, str | bytes]] = []
    try:
        for path, data in files:
            p, st = _target(path)
            if st is not None and (not _regular(st) or str(p).startswith(("/dev/", "/proc/"))):
                through.append((p, data))  # /dev/null, /dev/stdout, a FIFO: written through, never replaced
            else:
                staged.append((_stage(p, data, st), Path(os.path.realpath(p))))
        for p, data in through:
            try:
                with open(p, "ab" if isinstance(data, bytes) else "a", **_text_mode(data)) as f:
                    f.write(data)
            except OSError as exc:
                raise PdroofError(f"{p}: cannot write: {exc.strerror}") from None
        for tmp, target in staged:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise PdroofError(f"{target}: cannot write: {exc.strerror}") from None
    except BaseException:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise


def _regular(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode)


def _target(path: str | Path) -> tuple[Path, os.stat_result | None]:
    """The path and what it is now (following a symbolic link); a directory is refused."""
    import stat

    p = Path(path)
    try:
        st = os.stat(p)  # follows a symbolic link to what it names
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise PdroofError(f"{path}: cannot write: {exc.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise PdroofError(f"{path}: is a directory")
    return p, st


def _stage(p: Path, data: str | bytes, st: os.stat_result | None) -> str:
    """``data`` in a temporary file beside what ``p`` names, with the mode and owner it will keep."""
    import tempfile  # only writers need it (it imports random)

    target = Path(os.path.realpath(p))  # a link's target is replaced, the link stays
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise PdroofError(f"{p}: cannot write: {exc.strerror}") from None
    try:
        try:
            with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w", **_text_mode(data)) as f:
                f.write(data)
            os.chmod(tmp, (st.st_mode & 0o7777) if st is not None else 0o666 & ~_umask())
            if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                _keep_owner(tmp, st)
        except OSError as exc:
            raise PdroofError(f"{p}: cannot write: {exc.strerror}") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return tmp


def _keep_owner(tmp: str, st: os.stat_result) -> None:
    """A replaced file keeps its owner and group where we may give them (root may; another user
    may keep the group if a member), so root's -o onto a user's file does not take it over."""
    for uid, gid in ((st.st_uid, st.st_gid), (-1, st.st_gid)):
        try:
            os.chown(tmp, uid, gid)
            return
        except PermissionError:
            continue


def _text_mode(data: str | bytes) -> dict:
    return {} if isinstance(data, bytes) else {"encoding": "utf-8", "newline": ""}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reader_gone() -> bool:
    """Where the process's own standard output lost its reader (``pdroof ... | head``), point it at
    /dev/null, so that what is still written, and the interpreter's last flush, go nowhere instead of
    failing; the command carries on to its own end and exit status. Not a stream a caller
    substituted for it: that one is the caller's to handle."""
    if sys.stdout is not sys.__stdout__:
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return False
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)
    return True


def emit(text: str, out: str | Path | None = None) -> None:
    """Print ``text``, or write it atomically to ``out``; a standard output that cannot take it
    (closed, a full device) is one error, one whose reader went away none (``_reader_gone``)."""
    if out is not None:
        write_atomic(out, text)
        return
    try:
        try:
            sys.stdout.write(text)
        except UnicodeEncodeError:  # a terminal that cannot show a character (PYTHONIOENCODING=ascii): '?'
            sys.stdout.flush()
            sys.stdout.buffer.write(text.encode(sys.stdout.encoding or "ascii", errors="replace"))
        sys.stdout.flush()
    except BrokenPipeError:
        if not _reader_gone():
            raise
    except OSError as exc:
        raise PdroofError(f"cannot write to standard output: {exc.strerror}") from None
    except ValueError:  # closed
        raise PdroofError("cannot write to standard output: it is closed") from None


def rows_output(rows: Sequence[dict], columns: Sequence[Column], fmt: str, *, title: str | None = None,
                json_obj: Any = None, caption: str | None = None) -> str:
    """Text for a list of result rows in ``fmt``; ``json_obj`` overrides the JSON document."""
    if fmt == "json":
        return json_text(json_obj if json_obj is not None else list(rows))
    if fmt == "csv":
        return csv_text(rows, [c.key for c in columns])
    return table_text(rows, columns, title=title, caption=caption)
