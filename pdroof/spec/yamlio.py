"""Safe YAML reading: plain data only, no object-constructing tags, no aliases (billion laughs).
PyYAML is imported only when a file is not in the shipped catalogue's snapshot."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from .errors import SpecError
from .files import FileError, read_capped

MAX_BYTES = 4 * 2**20
_WRITTEN: dict[str, None] = {}  # JSON texts this process wrote as spec files, oldest first (bounded)


def json_spec_text(data) -> str:
    """``data`` as JSON text that PyYAML reads as the same data (an exponent's mantissa keeps its
    point, ``1.0e-05``: YAML 1.1 reads ``1e-05`` as a string; characters as they are, not escaped:
    PyYAML refuses json's surrogate pairs; non-finite numbers, which no spec takes, aside), noted
    so that this process reads it back as JSON (PyYAML takes ten times longer; calibration writes
    hundreds of candidate profiles)."""
    import json
    import re

    text = re.sub(r'"(?:[^"\\]|\\.)*"|(?<![\d.])(-?\d+)(?=[eE])', lambda m: m.group(0) if m.group(1) is None
                  else m.group(1) + ".0", json.dumps(data, ensure_ascii=False))
    _WRITTEN[text] = None
    while len(_WRITTEN) > 256:
        del _WRITTEN[next(iter(_WRITTEN))]
    return text


@cache
def _loaders():
    """(PyYAML, the libyaml safe loader or None, a pure-Python strict loader)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses aliases: spec files never need them and they enable alias bombs."""

        def compose_node(self, parent, index):  # noqa: D401 - PyYAML hook
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.YAMLError(f"YAML aliases are not allowed (line {event.start_mark.line + 1})")
            return super().compose_node(parent, index)

    return yaml, getattr(yaml, "CSafeLoader", None), StrictLoader


def _load(text: str):
    """Plain data only. Scan the events first (linear in the text, no expansion): aliases and a
    key given twice in one mapping are refused (PyYAML would keep the last silently); then
    construct with the C safe loader where there is one, else the pure-Python strict loader."""
    yaml, fast, strict = _loaders()
    _scan(yaml, yaml.parse(text, Loader=fast or strict))
    if fast is None:
        return yaml.load(text, Loader=strict)  # noqa: S506 - strict safe loader
    return yaml.load(text, Loader=fast)  # noqa: S506 - libyaml safe loader


def _scan(yaml, events) -> None:
    """Refuse aliases and duplicate keys. A stack of open collections: a mapping's keys so far and
    whether a key comes next; a nested collection, once closed, stands for its parent's value."""
    stack: list[list] = []  # [keys or None (a sequence), expecting a key]

    def value_done():
        if stack and stack[-1][0] is not None:
            stack[-1][1] = True

    for event in events:
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.AliasEvent):
            raise yaml.YAMLError(f"YAML aliases are not allowed (line {line})")
        if isinstance(event, yaml.ScalarEvent):
            top = stack[-1] if stack else None
            if top is not None and top[0] is not None and top[1]:
                if event.value in top[0]:
                    raise yaml.YAMLError(f"duplicate key {event.value!r} (line {line})")
                top[0].add(event.value)
                top[1] = False
            else:
                value_done()
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if stack and stack[-1][0] is not None and stack[-1][1]:  # a collection as a key: no name to compare
                stack[-1][1] = False
            stack.append([set() if isinstance(event, yaml.MappingStartEvent) else None, True])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            stack.pop()
            value_done()


def parse_yaml(text: str, file: str, *, snapshot: bool = True):
    """Parse YAML text into plain Python data; any failure is a SpecError naming ``file``. With
    ``snapshot``, a built-in spec's text is looked up in the catalogue's snapshot first."""
    if snapshot:
        from .snapshot import parsed

        known = parsed(text)
        if known is not None:
            return known
    if text in _WRITTEN:
        import json

        return json.loads(text)
    yaml = _loaders()[0]
    try:
        return _load(text)
    except yaml.YAMLError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or msg
        raise SpecError(file, "", f"malformed YAML: {problem}{where}") from None
    except ValueError as exc:  # an integer beyond Python's digit limit, met while constructing
        raise SpecError(file, "", f"malformed YAML: {str(exc).split(';')[0]}") from None


def read_yaml(path: str | Path):
    """Read a YAML file into plain data, with the file named in every error."""
    name = str(path)
    try:
        text = read_capped(path, MAX_BYTES, "YAML file")
    except FileError as exc:  # as a spec error: the file, no field
        raise SpecError(name, "", exc.what) from None
    data = parse_yaml(text, name)
    if data is None:
        raise SpecError(name, "", "file is empty")
    return data
