"""Micro-benchmark measurement files (the format of ../shared/calibration, JSON or flat CSV):
reading and checking them, so that fitting sees only sound rows.

Sections: ``gemm`` (dtype, M, N, K, optional Mpad, s), ``attn_prefill`` (S, H, KVH, D, s),
``attn_decode`` (B, L, H, KVH, D, kv_bytes, s), ``copy`` (kind, bytes, s), ``xfer`` (kind, bytes,
s; optional pages) and optional ``e2e`` (model, phase, dtype, B, S or L, s). Times in seconds.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

from ..spec.errors import SpecError
from ..spec.files import FileError, read_capped
from ..spec.units import FORMATS

REQUIRED = {
    "gemm": ("dtype", "M", "N", "K", "s"),
    "attn_prefill": ("S", "H", "KVH", "D", "s"),
    "attn_decode": ("B", "L", "H", "KVH", "D", "s"),
    "copy": ("kind", "bytes", "s"),
}
OPTIONAL = {
    "xfer": ("kind", "bytes", "s"),
    "e2e": ("model", "phase", "s"),
}
TEXT_FIELDS = {"dtype", "shape", "kind", "model", "phase"}


MAX_BYTES = 64 * 2**20


def _read(path: str | Path) -> str:
    try:
        return read_capped(path, MAX_BYTES, "measurement file")
    except FileError as exc:
        raise SpecError(str(path), "", exc.what) from None


def digest(path: str | Path) -> str:
    """The sha256 of a measurement file, read as its readers read it (a regular file within the
    cap: never a FIFO that would block); what a calibrated profile's provenance names."""
    return hashlib.sha256(_read(path).encode("utf-8")).hexdigest()


def _json_problem(exc: ValueError) -> str:
    return f"{exc.msg} (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else str(exc).split(";")[0]


def measurement_kinds(path: str | Path) -> set[str]:
    """What a measurement file holds: ``micro`` (micro-benchmark sections), ``runs`` (measured
    serving runs, the schema of ../shared/calibration/serving), or both in one JSON object. A file
    that holds neither is one SpecError."""
    p = Path(path)
    text = _read(path)
    from ..serving.run_formats import detect

    if detect(text) != "pdroof":  # another benchmark's result file: serving runs
        return {"runs"}
    kinds = set()
    if p.suffix.lower() == ".csv":
        header = set((text.splitlines() or [""])[0].replace(" ", "").split(","))
        kinds |= {"micro"} if "section" in header else set()
        kinds |= {"runs"} if {"model", "isl", "osl"} <= header else set()
    else:
        data = _load_json(text, str(path))
        if isinstance(data, list) or isinstance(data, dict) and "runs" in data:
            kinds.add("runs")
        if isinstance(data, dict) and any(s in data for s in (*REQUIRED, *OPTIONAL)):
            kinds.add("micro")
    if not kinds:
        raise SpecError(str(path), "", "holds neither micro-benchmark sections (gemm, attn_prefill, ...) "
                                       "nor serving runs ('runs', or a CSV with model, isl, osl)")
    return kinds


def _load_json(text: str, name: str):
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer beyond Python's digit limit
        raise SpecError(name, "", f"malformed JSON: {_json_problem(exc)}") from None
    except RecursionError:
        raise SpecError(name, "", "malformed JSON: nested too deeply") from None


def read_measurements(path: str | Path) -> dict[str, list[dict]]:
    """Read and check a measurement file; every problem is one SpecError naming file and field."""
    p = Path(path)
    name = str(path)
    text = _read(path)
    if p.suffix.lower() == ".csv":
        data = _from_csv(text, name)
    else:
        data = _load_json(text, name)
    if not isinstance(data, dict):
        raise SpecError(name, "", "must be a JSON object with one list per section")
    meta = data.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise SpecError(name, "meta", f"must be a mapping (device, date, torch, sms), not {repr(meta)[:40]}")
    out: dict[str, list[dict]] = {"meta": meta or {}}
    sizes = [len(v) for v in data.values() if isinstance(v, list)]
    if sum(sizes) > MAX_ROWS:  # the fit's work grows with the rows: bounded before any of it
        raise SpecError(name, "", f"{sum(sizes):,} measurement rows, more than {MAX_ROWS:,}: split the file")
    for section, fields in {**REQUIRED, **OPTIONAL}.items():
        rows = data.get(section)
        if rows is None:
            if section in REQUIRED:
                raise SpecError(name, section, "missing section")
            out[section] = []
            continue
        if not isinstance(rows, list) or (not rows and section in REQUIRED):
            raise SpecError(name, section, "must be a non-empty list of measurements")
        out[section] = [_check_row(r, fields, f"{section}[{i}]", name) for i, r in enumerate(rows)]
    if not any(r["dtype"] == "bf16" for r in out["gemm"]):
        raise SpecError(name, "gemm", "needs bf16 rows (the reference format)")
    for i, r in enumerate(out["e2e"]):  # a whole stack in a format pdroof knows, one phase's length
        length = {"prefill": "S", "decode": "L"}.get(r["phase"])
        if length is None:
            raise SpecError(name, f"e2e[{i}].phase", f"must be prefill or decode, not {r['phase']!r}")
        if length not in r:
            raise SpecError(name, f"e2e[{i}].{length}", f"missing field (a {r['phase']} row's length)")
        if r.get("dtype", "bf16") not in FORMATS:
            raise SpecError(name, f"e2e[{i}].dtype", f"must be one of {', '.join(FORMATS)}, not {r['dtype']!r}")
    if not any(r["kind"] == "d2d" for r in out["copy"]):
        raise SpecError(name, "copy", "needs a d2d (device-to-device) copy row")
    return out


def _check_row(row, fields, where: str, name: str) -> dict:
    if not isinstance(row, dict):
        raise SpecError(name, where, "must be an object")
    for f in fields:
        if f not in row or row[f] in (None, ""):
            raise SpecError(name, f"{where}.{f}", "missing field")
    clean = {}
    for k, v in row.items():
        if k in TEXT_FIELDS:
            clean[k] = str(v)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, int) and abs(v) > 2**53) \
                or not math.isfinite(v):
            raise SpecError(name, f"{where}.{k}", f"must be a number (finite), not {repr(v)[:40]}")
        if v <= 0:
            raise SpecError(name, f"{where}.{k}", f"must be positive, not {v}")
        clean[k] = v
    if clean["s"] > 60:
        raise SpecError(name, f"{where}.s", f"{clean['s']} s is not a micro-benchmark time: times must be in seconds")
    # A reported rate must agree with the time: catches times written in ms or µs.
    rate = _implied_rate(clean)
    if rate is not None:
        reported, implied, label = rate
        if not 0.8 < implied / reported < 1.25:
            raise SpecError(name, f"{where}.s", f"time disagrees with its {label} ({reported:g} reported, "
                                                f"{implied:g} implied): times must be in seconds")
    return clean


def _implied_rate(r: dict):
    if "tflops" in r and "M" in r and "N" in r and "K" in r:
        m = r.get("Mpad", r["M"])
        return r["tflops"], 2 * m * r["N"] * r["K"] / r["s"] / 1e12, "tflops"
    if "gbps" in r and "bytes" in r:
        return r["gbps"], r["bytes"] / r["s"] / 1e9, "gbps"
    if "gbps_rw" in r and "bytes" in r:
        return r["gbps_rw"], 2 * r["bytes"] / r["s"] / 1e9, "gbps_rw"
    return None


MAX_ROWS = 20_000  # measurement rows a file may hold (a GPU's full sweep is a few hundred)


def _from_csv(text: str, name: str) -> dict[str, list[dict]]:
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "section" not in reader.fieldnames:
        raise SpecError(name, "section", "a measurement CSV needs a 'section' column")
    data: dict[str, list[dict]] = {}
    for i, row in enumerate(reader, start=2):
        if None in row:  # more fields than the header names
            raise SpecError(name, f"line {i}", f"has {len(row[None])} more field(s) than the header")
        if i - 1 > MAX_ROWS:
            raise SpecError(name, "", f"more than {MAX_ROWS:,} measurement rows: split the file")
        section = row.pop("section")
        parsed = {}
        for k, v in row.items():
            if v in (None, ""):
                continue
            if k in TEXT_FIELDS:
                parsed[k] = v
                continue
            try:
                parsed[k] = float(v) if any(c in v for c in ".eE") else int(v)
            except ValueError:
                raise SpecError(name, f"line {i}.{k}", f"must be a number, not {v!r}") from None
        data.setdefault(section, []).append(parsed)
    return data
