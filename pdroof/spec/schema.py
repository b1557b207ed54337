"""A small declarative schema: one description per spec kind gives strict validation, conversion
of human units to SI, provenance capture and a JSON Schema for editors.

YAML keys carry human units (``bandwidth_gb_per_s``); validated records carry SI attributes
(``bandwidth_bytes_per_s``). Any number may be written plainly or as
``{value: 3350, source: MLE, basis: measured, note: ...}``; the source is kept in the record's
``provenance`` map.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError

BASES = ("datasheet", "measured", "assumed", "derived", "fitted")
_SOURCED_KEYS = {"value", "source", "basis", "note"}


class Record:
    """A validated spec object: read-only attributes in SI units, plus ``provenance``."""

    def __init__(self, values: dict[str, Any], provenance: dict[str, dict] | None = None):
        # fields are plain instance attributes (read in the design space's inner loops); a field
        # named like a method or ``provenance`` is reachable through ``get`` only, as before
        d = object.__getattribute__(self, "__dict__")
        d.update((k, v) for k, v in values.items() if not hasattr(Record, k))
        d["_values"] = dict(values)
        d["provenance"] = provenance or {}

    def __setattr__(self, name, value):
        raise AttributeError("spec records are read-only")

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items() if not isinstance(v, Record))
        return f"Record({inner})"

    def __contains__(self, name: str) -> bool:
        """True when ``name`` is set (present and not null)."""
        return self._values.get(name) is not None

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def keys(self):
        return self._values.keys()

    def to_dict(self) -> dict[str, Any]:
        """Plain nested data in SI units (records and lists of records expanded)."""
        return {k: _plain(v) for k, v in self._values.items()}


def _plain(v):
    if isinstance(v, Record):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


class _Ctx:
    """Validation context: the file being read and the provenance collected on the way."""

    def __init__(self, file: str):
        self.file = file
        self.provenance: dict[str, dict] = {}  # keyed by YAML path
        self.attr_paths: dict[str, str] = {"": ""}  # YAML path -> SI attribute path

    def fail(self, path: str, what: str):
        raise SpecError(self.file, path, what)


def _yaml_float(text: str) -> str:
    """The form PyYAML reads as a number: a decimal point and a signed exponent (1.0e+12)."""
    mantissa, exp = re.split(r"[eE]", text.strip())
    return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exp if exp[0] in '+-' else '+' + exp}"


PHYSICAL_MAX = 1e30  # no quantity a spec gives comes near this in SI units (1e30 bytes, FLOP/s, ...)
PHYSICAL_MIN = 1e-30  # nor this, short of zero (a bandwidth of 1e-300 GB/s made every time overflow)


def _typename(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return f"a string ({v!r})" if len(v) < 40 else "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return type(v).__name__


class Node:
    doc: str = ""

    def validate(self, v: Any, path: str, ctx: _Ctx) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def json_schema(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Num(Node):
    """A number. ``scale`` converts the YAML unit to SI; ``positive`` rejects zero and below."""

    scale: float = 1.0
    positive: bool = True
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    sourced: bool = True
    doc: str = ""

    def validate(self, v, path, ctx):
        if isinstance(v, dict) and self.sourced:
            unknown = set(v) - _SOURCED_KEYS
            if unknown:
                ctx.fail(f"{path}.{sorted(unknown)[0]}",
                         "unknown key (a sourced number has value, source, basis, note)")
            if "value" not in v:
                ctx.fail(path, "a sourced number needs a 'value'")
            basis = v.get("basis")
            if basis is not None and basis not in BASES:
                ctx.fail(f"{path}.basis", f"must be one of {', '.join(BASES)}, not {basis!r}")
            for k in ("source", "note"):
                if k in v and not isinstance(v[k], str):
                    ctx.fail(f"{path}.{k}", f"must be a string, not {_typename(v[k])}")
            ctx.provenance[path] = {k: v[k] for k in ("source", "basis", "note") if k in v}
            v = v["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            hint = ""
            if isinstance(v, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", v.strip()):
                hint = (f"; YAML reads {v} as text: write it with a decimal point and a signed exponent, "
                        f"e.g. {_yaml_float(v)}")
            ctx.fail(path, f"must be a number, not {_typename(v)}{hint}")
        if isinstance(v, int) and abs(v) > 2**53:  # beyond a float's integers (400 digits would overflow)
            ctx.fail(path, f"is out of any physical range (an integer of {v.bit_length():,} bits)")
        if not math.isfinite(v):
            ctx.fail(path, "must be a finite number")
        if not (v == 0 or PHYSICAL_MIN <= abs(float(v) * self.scale) <= PHYSICAL_MAX):
            ctx.fail(path, f"is out of any physical range ({v:g} in the file's unit)")
        if self.integer and (not float(v).is_integer()):
            ctx.fail(path, f"must be a whole number, not {v}")
        if self.positive and v <= 0:
            ctx.fail(path, f"must be positive, not {v}")
        if self.minimum is not None and v < self.minimum:
            ctx.fail(path, f"must be >= {self.minimum}, not {v}")
        if self.maximum is not None and v > self.maximum:
            ctx.fail(path, f"must be <= {self.maximum}, not {v}")
        if self.integer:
            return int(v)
        return float(v) * self.scale

    def json_schema(self):
        s: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.positive:
            s["exclusiveMinimum"] = 0
        if self.minimum is not None:
            s["minimum"] = self.minimum
        if self.maximum is not None:
            s["maximum"] = self.maximum
        if self.doc:
            s["description"] = self.doc
        if not self.sourced:
            return s
        sourced = {
            "type": "object",
            "properties": {
                "value": dict(s),
                "source": {"type": "string"},
                "basis": {"enum": list(BASES)},
                "note": {"type": "string"},
            },
            "required": ["value"],
            "additionalProperties": False,
        }
        return {"anyOf": [s, sourced], **({"description": self.doc} if self.doc else {})}


@dataclass
class Str(Node):
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    doc: str = ""

    def validate(self, v, path, ctx):
        if not isinstance(v, str):
            ctx.fail(path, f"must be a string, not {_typename(v)}")
        if self.choices is not None and v not in self.choices:
            ctx.fail(path, f"must be one of {', '.join(self.choices)}, not {v!r}")
        if self.pattern is not None and not re.fullmatch(self.pattern, v):
            ctx.fail(path, f"{v!r} does not match {self.pattern}")
        return v

    def json_schema(self):
        s: dict[str, Any] = {"type": "string"}
        if self.choices:
            s["enum"] = list(self.choices)
        if self.pattern:
            s["pattern"] = f"^{self.pattern}$"
        if self.doc:
            s["description"] = self.doc
        return s


@dataclass
class Bool(Node):
    doc: str = ""

    def validate(self, v, path, ctx):
        if not isinstance(v, bool):
            ctx.fail(path, f"must be true or false, not {_typename(v)}")
        return v

    def json_schema(self):
        return {"type": "boolean", **({"description": self.doc} if self.doc else {})}


@dataclass
class List(Node):
    item: Node
    min_items: int = 0
    unique: bool = False
    doc: str = ""

    def validate(self, v, path, ctx):
        if isinstance(v, str) and isinstance(self.item, Str):
            v = [v]  # a lone string where a list of strings belongs (``source: MLE``)
        if not isinstance(v, list):
            ctx.fail(path, f"must be a list, not {_typename(v)}")
        if len(v) < self.min_items:
            ctx.fail(path, f"needs at least {self.min_items} item(s)")
        out = [self.item.validate(x, f"{path}[{i}]", ctx) for i, x in enumerate(v)]
        if self.unique and len(set(map(repr, out))) != len(out):
            ctx.fail(path, "items must be unique")
        return tuple(out)

    def json_schema(self):
        s = {"type": "array", "items": self.item.json_schema()}
        if self.min_items:
            s["minItems"] = self.min_items
        if self.doc:
            s["description"] = self.doc
        return s


@dataclass
class F:
    """A field of a mapping: YAML key, node, SI attribute name, whether required, default."""

    key: str
    node: Node
    attr: str | None = None
    required: bool = False
    default: Any = None
    nullable: bool = True
    doc: str = ""

    @property
    def name(self) -> str:
        return self.attr or self.key


Check = Callable[[Record], "tuple[str, str] | None"]


@dataclass
class Map(Node):
    """A mapping with a closed set of keys; unknown keys (typos) are errors."""

    fields: Iterable[F]
    title: str = ""
    checks: tuple[Check, ...] = ()
    doc: str = ""
    derived: tuple[tuple[str, Callable[[dict], Any]], ...] = ()  # attributes computed from the validated ones
    _by_key: dict[str, F] = field(init=False, repr=False)

    def __post_init__(self):
        self.fields = tuple(self.fields)
        self._by_key = {f.key: f for f in self.fields}

    def validate(self, v, path, ctx):
        if not isinstance(v, dict):
            ctx.fail(path, f"must be a mapping, not {_typename(v)}")
        for k in v:
            if not isinstance(k, str):
                ctx.fail(path, f"keys must be strings, not {_typename(k)}")
            if k not in self._by_key:
                close = _closest(k, self._by_key)
                hint = f" (did you mean '{close}'?)" if close else ""
                ctx.fail(_join(path, k), f"unknown key{hint}")
        values: dict[str, Any] = {}
        for f in self.fields:
            sub = _join(path, f.key)
            ctx.attr_paths[sub] = _join(ctx.attr_paths.get(path, path), f.name)
            if f.key not in v or (v[f.key] is None and f.nullable and not f.required):
                if f.required:
                    ctx.fail(sub, "missing required field")
                values[f.name] = f.default
                continue
            if v[f.key] is None:
                ctx.fail(sub, "must not be null")
            values[f.name] = f.node.validate(v[f.key], sub, ctx)
        for name, derive in self.derived:
            values[name] = derive(values)
        rec = Record(values)
        for check in self.checks:
            problem = check(rec)
            if problem:
                ctx.fail(_join(path, problem[0]), problem[1])
        return rec

    def json_schema(self):
        props = {}
        for f in self.fields:
            s = f.node.json_schema()
            if f.doc:
                s = {**s, "description": f.doc}
            if f.nullable and not f.required:
                s = {"anyOf": [s, {"type": "null"}], **({"description": f.doc} if f.doc else {})}
            props[f.key] = s
        out = {
            "type": "object",
            "properties": props,
            "required": [f.key for f in self.fields if f.required],
            "additionalProperties": False,
        }
        if self.title:
            out["title"] = self.title
        if self.doc:
            out["description"] = self.doc
        return out


@dataclass
class MapOf(Node):
    """A mapping from free keys (restricted by ``key``) to one kind of value."""

    value: Node
    key: Str = field(default_factory=Str)
    doc: str = ""

    def validate(self, v, path, ctx):
        if not isinstance(v, dict):
            ctx.fail(path, f"must be a mapping, not {_typename(v)}")
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                ctx.fail(path, f"keys must be strings, not {_typename(k)}")
            self.key.validate(k, _join(path, k), ctx)
            ctx.attr_paths[_join(path, k)] = _join(ctx.attr_paths.get(path, path), k)
            out[k] = self.value.validate(x, _join(path, k), ctx)
        return out

    def json_schema(self):
        s: dict[str, Any] = {"type": "object", "additionalProperties": self.value.json_schema()}
        if self.key.choices:
            s["propertyNames"] = {"enum": list(self.key.choices)}
        elif self.key.pattern:
            s["propertyNames"] = {"pattern": f"^{self.key.pattern}$"}
        if self.doc:
            s["description"] = self.doc
        return s


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _closest(key: str, known: Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    return match[0] if match else None


def validate(schema: Map, data: Any, file: str) -> Record:
    """Validate ``data`` read from ``file`` against ``schema``; the record carries provenance,
    keyed by SI attribute path (``memory.bandwidth_bytes_per_s``)."""
    ctx = _Ctx(file)
    rec = schema.validate(data, "", ctx)
    prov = {ctx.attr_paths.get(k, k): v for k, v in ctx.provenance.items()}
    object.__setattr__(rec, "provenance", prov)
    return rec
