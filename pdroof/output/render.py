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
        return repr(v)
    return v


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: never a partial file."""
    p = Path(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    import tempfile  # only writers need it (it imports random)

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent if str(p.parent) else ".")
    except OSError as exc:
        raise PdroofError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def emit(text: str, out: str | Path | None = None) -> None:
    """Print ``text``, or write it atomically to ``out``."""
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, text)


def rows_output(rows: Sequence[dict], columns: Sequence[Column], fmt: str, *, title: str | None = None,
                json_obj: Any = None, caption: str | None = None) -> str:
    """Text for a list of result rows in ``fmt``; ``json_obj`` overrides the JSON document."""
    if fmt == "json":
        return json_text(json_obj if json_obj is not None else list(rows))
    if fmt == "csv":
        return csv_text(rows, [c.key for c in columns])
    return table_text(rows, columns, title=title, caption=caption)
