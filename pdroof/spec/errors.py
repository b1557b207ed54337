"""The error family shown to users as one ``Error: ...`` line (never a traceback)."""

from __future__ import annotations

from contextlib import contextmanager


class PdroofError(Exception):
    """Any failure caused by user input: bad spec, unknown id, infeasible request."""


class SpecError(PdroofError):
    """A spec file (or an inline value) is invalid; names the file and the field."""

    def __init__(self, file: str, field: str, what: str):
        self.file, self.field, self.what = file, field, what
        super().__init__(f"{file}: {field or '<top>'}: {what}")


@contextmanager
def as_field_of(file, field: str):
    """Errors raised inside as ``file``'s ``field``'s (an unknown id it names); a SpecError as it is,
    since it names its own file (one the field refers to)."""
    try:
        yield
    except SpecError:
        raise
    except PdroofError as exc:
        raise SpecError(str(file), field, str(exc)) from None
