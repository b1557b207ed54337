"""Measured (or planned) serving runs in the schema of the shared serving measurements: a JSON
document (``{"runs": [...]}`` or a list) or a CSV with the same fields flattened (``deployment.tp``,
``measured.tpot_ms.mean``). A file that is not a run file is one error; a run with a bad or
missing field is kept with the reason, so the other runs still come out.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..cost.parallelism import MAX_DEGREE
from ..spec.errors import PdroofError
from ..spec.files import read_capped
from ..spec.units import FORMAT_BYTES

MAX_BYTES = 256 * 2**20
STATS = ("mean", "median", "p90", "p99")
MODES = ("aggregated", "disaggregated")
POOL_KEYS = ("accelerator", "instances", "tp", "dp", "moe_tp", "moe_ep", "batch")
FIXED_LENGTHS = (1.0, 1.0)
# InferenceX's benchmark draws each request's lengths uniformly between 0.8 and 1 times the nominal
# isl and osl (RANDOM_RANGE_RATIO=0.8 in its benchmark scripts; kimbochen/bench_serving's
# sample_random_requests): what a run from it that does not say its length_range took
INFERENCEX_LENGTH_RANGE = (0.8, 1.0)


@dataclass(frozen=True)
class Pool:
    accelerator: str
    instances: int = 1
    tp: int = 1
    dp: int = 1
    moe_tp: int | None = None
    moe_ep: int = 1
    batch: int | None = None


@dataclass(frozen=True)
class Run:
    """One run; ``error`` says why it cannot be read (its other fields may then be partial)."""

    id: str
    model: str = ""
    engine: str | None = None
    engine_version: str | None = None
    weights: str = ""
    kv: str | None = None
    mode: str = "aggregated"
    isl: int = 0
    osl: int = 0
    concurrency: int | None = None
    pools: dict[str, Pool] = field(default_factory=dict)  # "deployment", or "prefill" and "decode"
    measured: dict[str, dict[str, float]] = field(default_factory=dict)  # tpot_ms / ttft_ms -> stat -> ms
    # each request's isl and osl drawn uniformly between these fractions of the run's
    length_range: tuple[float, float] = FIXED_LENGTHS
    error: str | None = None

    @property
    def length_mean(self) -> float:
        """A request's mean length as a fraction of the run's isl and osl."""
        return (self.length_range[0] + self.length_range[1]) / 2

    @property
    def lengths_vary(self) -> bool:
        return self.length_range[0] < self.length_range[1]


class _Bad(Exception):
    pass


# engine names as the tools' backends and frameworks spell them (lower-cased), and pdroof's ids
ENGINE_NAMES = {"vllm": "vllm", "vllm-chat": "vllm", "sglang": "sglang", "sglang-oai": "sglang", "trt": "trtllm",
                "trtllm": "trtllm", "tensorrt-llm": "trtllm", "tensorrt_llm": "trtllm", "atom": "atom"}


# what a run can physically be: tokens per request, clients, instances and degrees of parallelism
LIMITS = {"isl": 10**7, "osl": 10**7, "concurrency": 10**6, "instances": 10**5, "batch": 10**6,
          **dict.fromkeys(("tp", "dp", "moe_tp", "moe_ep"), MAX_DEGREE)}


def _int(v, where: str, minimum: int = 1, optional: bool = False) -> int | None:
    top = LIMITS.get(where.rsplit(".", 1)[-1], 2**40)
    if type(v) is int and minimum <= v <= top:  # the common case, checked first (thousands of runs)
        return v
    if v is None or v == "":
        if optional:
            return None
        raise _Bad(f"{where}: missing")
    if isinstance(v, bool):
        raise _Bad(f"{where}: must be an integer, not {v!r}")
    if isinstance(v, int) and not minimum <= v <= top:  # before any float conversion (400 digits overflow)
        raise _Bad(f"{where}: must be between {minimum} and {top:,}, not {_cut(v)}")
    if isinstance(v, str):
        try:
            v = float(v)
        except (ValueError, OverflowError):
            raise _Bad(f"{where}: must be an integer, not {_cut(v)}") from None
    if not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v):
        raise _Bad(f"{where}: must be an integer, not {_cut(v)}")
    if v < minimum or v > top:
        raise _Bad(f"{where}: must be between {minimum} and {top:,}, not {_cut(v)}")
    return int(v)


def _cut(v) -> str:
    """A value as an error shows it: at most 20 characters (a pasted value can be huge; an integer of
    thousands of digits cannot even be printed)."""
    if isinstance(v, int) and v.bit_length() > 64:
        return f"an integer of {v.bit_length():,} bits"
    text = v if isinstance(v, str) else repr(v)
    return repr(text[:20] + ("…" if len(text) > 20 else "")) if isinstance(v, str) else text[:20]


def _str(v, where: str, optional: bool = False) -> str | None:
    if v is None or v == "":
        if optional:
            return None
        raise _Bad(f"{where}: missing")
    if not isinstance(v, str):
        raise _Bad(f"{where}: must be a string, not {v!r}")
    return v


def _pool(d, where: str, seen: dict) -> Pool:
    """A pool; ``seen`` holds the pools parsed so far (runs of one deployment share it, and a file
    of thousands of runs has a few dozen)."""
    if not isinstance(d, dict):
        raise _Bad(f"{where}: must be a mapping")
    try:
        key = (where, *((k, type(v), v) for k, v in d.items()))  # the type: True must not pass as 1
        return seen[key]
    except TypeError:  # an unhashable value: parse it, and report it if it is wrong
        return _parse_pool(d, where)
    except KeyError:
        pool = seen[key] = _parse_pool(d, where)
        return pool


def _parse_pool(d: dict, where: str) -> Pool:
    return Pool(accelerator=_str(d.get("accelerator"), f"{where}.accelerator"),
                instances=_int(d.get("instances", 1), f"{where}.instances"),
                tp=_int(d.get("tp", 1), f"{where}.tp"), dp=_int(d.get("dp", 1), f"{where}.dp"),
                moe_tp=_int(d.get("moe_tp"), f"{where}.moe_tp", optional=True),
                moe_ep=_int(d.get("moe_ep", 1), f"{where}.moe_ep"),
                batch=_int(d.get("batch"), f"{where}.batch", optional=True))


def _measured(d, where: str) -> dict[str, dict[str, float]]:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise _Bad(f"{where}: must be a mapping")
    out: dict[str, dict[str, float]] = {}
    for metric in ("tpot_ms", "ttft_ms"):
        m = d.get(metric)
        if m is None:
            continue
        if not isinstance(m, dict):
            raise _Bad(f"{where}.{metric}: must be a mapping of statistics")
        vals = {}
        for stat, v in m.items():
            if stat not in STATS:
                raise _Bad(f"{where}.{metric}.{stat}: unknown statistic (one of {', '.join(STATS)})")
            if v is None or v == "":
                continue
            try:
                x = float(v)
            except (TypeError, ValueError, OverflowError):
                raise _Bad(f"{where}.{metric}.{stat}: must be a number, not {v!r}") from None
            if not math.isfinite(x) or x <= 0:
                raise _Bad(f"{where}.{metric}.{stat}: must be a positive number, not {v!r}")
            vals[stat] = x
        if vals:
            out[metric] = vals
    return out


def _length_range(d: dict) -> tuple[float, float]:
    v = d.get("length_range")
    if v is None or v == "":
        return INFERENCEX_LENGTH_RANGE if "inferencex" in str(d.get("source") or "").lower() else FIXED_LENGTHS
    if isinstance(v, str):  # a CSV cell: "0.8,1" or "[0.8, 1]"
        v = v.strip("[]() ").replace(",", " ").split()
    try:
        lo, hi = (float(x) for x in v)
    except (TypeError, ValueError):
        raise _Bad(f"length_range: must be two fractions [low, high] of isl and osl, not {v!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi <= 2 and hi > 0):
        raise _Bad(f"length_range: must be fractions with 0 <= low <= high <= 2 and high > 0, not {[lo, hi]!r}")
    return lo, hi


def parse_run(d, index: int, pools_seen: dict | None = None) -> Run:
    """One run from its mapping; never raises (a bad run carries its error). ``pools_seen``: the
    pools of the runs parsed before it in the same file."""
    seen = {} if pools_seen is None else pools_seen
    rid = d.get("id") if isinstance(d, dict) else None
    rid = str(rid) if rid not in (None, "") else f"#{index + 1}"
    if not isinstance(d, dict):
        return Run(rid, error=f"runs[{index}]: must be a mapping, not {type(d).__name__}")
    try:
        mode = _str(d.get("mode", "aggregated"), "mode")
        if mode not in MODES:
            raise _Bad(f"mode: must be one of {', '.join(MODES)}, not {mode!r}")
        weights = _str(d.get("weights"), "weights")
        kv = _str(d.get("kv"), "kv", optional=True)
        for name, fmt in (("weights", weights), ("kv", kv)):
            if fmt is not None and fmt not in FORMAT_BYTES:
                raise _Bad(f"{name}: unknown format {fmt!r}")
        if mode == "aggregated":
            pools = {"deployment": _pool(d.get("deployment"), "deployment", seen)}
        else:
            pools = {k: _pool(d.get(k), k, seen) for k in ("prefill", "decode")}
        version = d.get("engine_version")
        if version not in (None, "") and not isinstance(version, str):  # a JSON number loses digits: 0.10 -> 0.1
            raise _Bad(f"engine_version: must be a string such as \"0.5.1.post1\", not {version!r}")
        engine = _str(d.get("engine"), "engine", optional=True)
        return Run(id=rid, model=_str(d.get("model"), "model"),
                   engine=None if engine is None else ENGINE_NAMES.get(engine.lower(), engine),
                   engine_version=None if version in (None, "") else str(version), weights=weights, kv=kv, mode=mode,
                   isl=_int(d.get("isl"), "isl"), osl=_int(d.get("osl"), "osl"),
                   concurrency=_int(d.get("concurrency"), "concurrency", optional=True), pools=pools,
                   measured=_measured(d.get("measured"), "measured"), length_range=_length_range(d))
    except _Bad as exc:
        return Run(rid, error=str(exc))


def _unflatten(row: dict[str, str]) -> dict:
    out: dict = {}
    for key, value in row.items():
        if key is None:
            continue
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise PdroofError(f"column {key!r} nests under a plain value")
        node[parts[-1]] = value.strip() if isinstance(value, str) else value
    return out


MAX_RUNS = 20_000  # runs a file may hold: each is a closed loop to solve (20,000 take a few seconds)


def parse_runs(text: str, name: str, doc=None) -> list[Run]:
    """Runs from the text of a JSON or CSV run file named ``name`` (``doc``: the text already
    parsed as JSON, where the caller has it)."""
    if text.lstrip().startswith(("{", "[")) or str(name).lower().endswith(".json"):
        try:
            doc = json.loads(text) if doc is None else doc
        except ValueError as exc:  # a 5,000-digit number is one too (int conversion limit)
            raise PdroofError(f"{name}: not valid JSON ({str(exc)[:200]})") from None
        except RecursionError:
            raise PdroofError(f"{name}: not a run file: nested too deeply") from None
        items = doc.get("runs") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise PdroofError(f"{name}: not a run file: expected a list of runs or an object with 'runs'")
        if len(items) > MAX_RUNS:
            raise PdroofError(f"{name}: {len(items):,} runs, more than {MAX_RUNS:,}: split the file")
    else:
        if text.count("\n") > MAX_RUNS + 1:  # counted before any row is parsed
            raise PdroofError(f"{name}: more than {MAX_RUNS:,} runs: split the file")
        reader = csv.DictReader(io.StringIO(text))
        try:
            header = reader.fieldnames or []
            if not {"model", "isl", "osl"} <= {h.strip() for h in header}:
                raise PdroofError(f"{name}: not a run file: a CSV of runs needs the columns model, isl, osl "
                                  "(and deployment.accelerator, ...)")
            items = []
            for row in reader:
                if None in row:  # more fields than the header names
                    raise PdroofError(f"{name}: line {reader.line_num}: more fields than the header")
                items.append(_unflatten(row))
        except csv.Error as exc:  # a field over the csv module's limit, a NUL byte
            raise PdroofError(f"{name}: not a CSV run file: line {reader.line_num}: {exc}") from None
        except PdroofError as exc:
            raise PdroofError(exc.args[0] if str(exc).startswith(name) else f"{name}: {exc}") from None
    seen: dict = {}
    return [parse_run(d, i, seen) for i, d in enumerate(items)]


def read_runs(path: str | Path) -> list[Run]:
    """Runs of a JSON or CSV file; a file that cannot be read or is not a run file is one error."""
    return parse_runs(read_text(path), str(path))


def read_text(path: str | Path) -> str:
    """A run file's text; one that is missing, not a regular file, too large or not UTF-8 is one error."""
    return read_capped(path, MAX_BYTES, "run file")
