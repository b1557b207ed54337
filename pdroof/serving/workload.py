"""Stage pressure: the workload a deployment answers to (prompt and output lengths, prefix reuse,
request rate, TTFT and TPOT targets), as presets for the study's regimes or a workload YAML."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from ..spec.errors import PdroofError
from ..spec.kinds import ID
from ..spec.schema import F, Map, Num, Record, Str, validate
from ..spec.units import MILLI
from ..spec.yamlio import read_yaml

# The study's operating metric r*: the highest rate meeting p90 TTFT < 10 s and p99 TPOT < 25 ms.
DEFAULT_TTFT_S = 10.0
DEFAULT_TPOT_S = 25e-3
DEFAULT_TTFT_STAT = "p90"
DEFAULT_TPOT_STAT = "p99"
STATS = ("mean", "p50", "p90", "p99")  # p50 is the median


@dataclass(frozen=True)
class Workload:
    id: str
    prompt_tokens: int
    output_tokens: int
    prefix_hit: float = 0.0          # fraction of each prompt served from a prefix cache
    rate_per_s: float | None = None  # offered request rate (None: report capacity per device)
    ttft_s: float = DEFAULT_TTFT_S
    tpot_s: float = DEFAULT_TPOT_S
    description: str = ""
    ttft_stat: str = DEFAULT_TTFT_STAT  # which statistic of TTFT the target bounds
    tpot_stat: str = DEFAULT_TPOT_STAT

    def __post_init__(self):
        for name in ("ttft_stat", "tpot_stat"):
            if getattr(self, name) not in STATS:
                raise PdroofError(f"--{name.replace('_', '-')}: unknown statistic {getattr(self, name)!r}; "
                                  f"statistics: {', '.join(STATS)}")

    @property
    def new_tokens(self) -> float:
        return max(1.0, self.prompt_tokens * (1 - self.prefix_hit))

    @property
    def prefix_tokens(self) -> float:
        return self.prompt_tokens - self.new_tokens

    @property
    def mean_context(self) -> float:
        """Average context of a decode step over a request's life."""
        return self.prompt_tokens + self.output_tokens / 2

    def to_dict(self) -> dict:
        return {"id": self.id, "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens,
                "prefix_hit": self.prefix_hit, "rate_per_s": self.rate_per_s, "ttft_s": self.ttft_s,
                "ttft_stat": self.ttft_stat, "tpot_s": self.tpot_s, "tpot_stat": self.tpot_stat,
                "description": self.description}

    def targets_text(self) -> str:
        return (f"TTFT {self.ttft_stat} ≤ {self.ttft_s * 1e3:g} ms, "
                f"TPOT {self.tpot_stat} ≤ {self.tpot_s * 1e3:g} ms")


# Regimes the study plots (prompt / output tokens, roughly), with its r* targets.
PRESETS: dict[str, Workload] = {w.id: w for w in (
    Workload("chat", 1024, 150, description="chat (~1K in / ~150 out)"),
    Workload("code-completion", 1536, 10, description="code completion (~1.5K / ~10)"),
    Workload("summarization", 20_000, 300, description="summarization (~20K / ~300)"),
    Workload("agent-request", 40_000, 300, description="agent request (~40K / ~300)"),
    Workload("agent-task", 200_000, 1500, description="agent task (~200K / ~1.5K)"),
    Workload("long-context-retrieval", 30_000, 30, description="long-context retrieval, RULER-like (~30K / ~30)"),
    Workload("long-document-qa", 200_000, 5, description="long-document QA, InfiniteBench-like (~200K / ~5)"),
)}

def target_fields(required: bool = False) -> tuple[F, ...]:
    """Target keys, each naming its statistic: ``ttft_ms`` (mean), ``ttft_p50_ms`` (median),
    ``ttft_p90_ms``, ``ttft_p99_ms``, and the same for TPOT; attributes ``ttft_p90_s`` etc."""
    out = []
    for metric, what in (("ttft", "time-to-first-token"), ("tpot", "time-per-output-token")):
        for stat in STATS:
            key = f"{metric}_ms" if stat == "mean" else f"{metric}_{stat}_ms"
            out.append(F(key, Num(scale=MILLI, minimum=1e-3, maximum=86_400_000), attr=f"{metric}_{stat}_s",
                         doc=f"{what} target on the {'median' if stat == 'p50' else stat}"))
    return tuple(out)


def targets_of(rec: Record) -> dict[str, list[tuple[str, float]]]:
    """(statistic, seconds) of each target a record gives, per metric, in STATS order."""
    return {m: [(s, rec.get(f"{m}_{s}_s")) for s in STATS if rec.get(f"{m}_{s}_s") is not None]
            for m in ("ttft", "tpot")}


def _one_target_each(rec: Record):
    for metric, given in targets_of(rec).items():
        if len(given) > 1:
            return (f"{metric}_ms", f"a workload bounds one statistic of {metric.upper()}; "
                                    f"give one of {metric}_ms, {metric}_p50_ms, {metric}_p90_ms, {metric}_p99_ms")
    return None


WORKLOAD = Map(title="workload", fields=(
    F("id", ID, required=True),
    F("description", Str()),
    F("prompt_tokens", Num(integer=True), required=True),
    F("output_tokens", Num(integer=True), required=True),
    F("prefix_hit", Num(positive=False, minimum=0, maximum=0.999), default=0.0,
      doc="fraction of each prompt already cached (prefix reuse)"),
    F("rate_per_s", Num(), doc="offered request rate"),
    *target_fields(),
), checks=(_one_target_each,), doc="targets default to the study's p90 TTFT ≤ 10 s and p99 TPOT ≤ 25 ms")


def load_workload(path: str | Path) -> Workload:
    r = validate(WORKLOAD, read_yaml(path), str(path))
    t = targets_of(r)
    ttft = t["ttft"][0] if t["ttft"] else (DEFAULT_TTFT_STAT, DEFAULT_TTFT_S)
    tpot = t["tpot"][0] if t["tpot"] else (DEFAULT_TPOT_STAT, DEFAULT_TPOT_S)
    return Workload(r.id, r.prompt_tokens, r.output_tokens, r.prefix_hit, r.rate_per_s, ttft[1], tpot[1],
                    r.description or "", ttft_stat=ttft[0], tpot_stat=tpot[0])


def resolve(ref: str | None = None, **overrides) -> Workload:
    """A preset id or workload file, then explicit overrides (None leaves a field as it is)."""
    if ref is None:
        base = PRESETS["chat"]
    elif ref in PRESETS:
        base = PRESETS[ref]
    elif ref.endswith((".yaml", ".yml")) or "/" in ref:
        base = load_workload(ref)
    else:
        raise PdroofError(f"unknown workload {ref!r}; presets: {', '.join(PRESETS)} (or a workload YAML)")
    changes = {k: v for k, v in overrides.items() if v is not None}
    for key in ("prompt_tokens", "output_tokens"):
        if key in changes and changes[key] < 1:
            raise PdroofError(f"--{key.split('_')[0]} must be at least 1, not {changes[key]}")
    if "prefix_hit" in changes and not (0 <= changes["prefix_hit"] < 1):
        raise PdroofError(f"--prefix-hit must be in [0, 1), not {changes['prefix_hit']}")
    # what is physical: up to ten million requests/s, targets from a microsecond to a day
    for key, scale, unit, low, high in (("rate_per_s", 1, "/s", 1e-9, 1e7), ("ttft_s", 1e3, " ms", 1e-6, 86400.0),
                                        ("tpot_s", 1e3, " ms", 1e-6, 86400.0)):
        if key in changes and not (changes[key] > 0 and math.isfinite(changes[key])):
            raise PdroofError(f"--{key.split('_')[0]} must be positive, not {changes[key] * scale:g}{unit}")
        if key in changes and not low <= changes[key] <= high:
            raise PdroofError(f"--{key.split('_')[0]} must be from {low * scale:g} to {high * scale:g}{unit}, "
                              f"not {changes[key] * scale:g}{unit}")
    if changes:
        same = all(k == "rate_per_s" or getattr(base, k) == v for k, v in changes.items())
        base = replace(base, **changes, id=base.id if same else f"{base.id}*")
    return base
