"""Flat, human-readable views of spec records for ``show`` tables and ``list`` rows."""

from __future__ import annotations

import math
from typing import Any

from .schema import Record

# Unit of an SI attribute, from its name suffix: (suffix, human unit, scale).
_SUFFIX_UNITS = (
    ("_flops_per_s", "TFLOP/s", 1e12),
    ("_bytes_per_s", "GB/s", 1e9),
    ("_bytes", "GB", 1e9),
    ("latency_s", "µs", 1e-6),
    ("_s", "s", 1.0),
)


def unit_of(path: str) -> tuple[str, float]:
    if path.startswith("memory.") and path.endswith("_bytes"):
        return "GiB", 2.0**30  # device memory is built, and reported, in binary units
    parts = path.split(".")
    for name in reversed(parts):
        for suffix, unit, scale in _SUFFIX_UNITS:
            if name.endswith(suffix):
                return unit, scale
    return "", 1.0


def flatten(rec: Record | dict, prefix: str = "") -> list[tuple[str, Any]]:
    items = rec.to_dict().items() if isinstance(rec, Record) else rec.items()
    out: list[tuple[str, Any]] = []
    for k, v in items:
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.extend(flatten(v, path))
        elif v is not None and v != () and v != []:
            out.append((path, v))
    return out


def show_rows(rec: Record) -> list[dict]:
    """One row per set field: field, value in human units, unit, source."""
    rows = []
    for path, v in flatten(rec):
        unit, scale = unit_of(path)
        prov = _provenance_for(rec, path)
        rows.append({"field": path, "value": human(v, scale), "unit": unit, "source": prov})
    return rows


def _provenance_for(rec: Record, path: str) -> str:
    p = rec.provenance.get(path, {})
    return " · ".join(b for b in (p.get("basis"), p.get("source")) if b)


def percent(v: float | None, width: int = 0) -> str:
    """A fraction as a percentage with one decimal (``—`` where there is none), right-aligned to ``width``."""
    return f"{'—' if v is None else f'{v:.1%}':>{width}}"


def human(v: Any, scale: float = 1.0, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        x = v / scale
        if isinstance(v, float) and not math.isfinite(x):  # never inf or nan where a number belongs
            return "—"
        if isinstance(v, int) and scale == 1.0:
            return f"{v:,}"
        if x == 0:
            return "0"
        if abs(x) >= 10 ** (digits + 3) or abs(x) < 10 ** (-digits):
            return f"{x:.{digits}g}"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)
