"""Stage pressure: the workload a deployment answers to (prompt and output lengths, prefix reuse,
request rate, TTFT and TPOT targets), as presets for the study's regimes or a workload YAML."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import PdroofError
from .schema import F, Map, Num, Str, validate
from .specs import ID
from .units import MILLI
from .yamlio import read_yaml

# The study's operating metric r*: the highest rate meeting p90 TTFT < 10 s and p99 TPOT < 25 ms.
DEFAULT_TTFT_S = 10.0
DEFAULT_TPOT_S = 25e-3


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
                "tpot_s": self.tpot_s, "description": self.description}


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

WORKLOAD = Map(title="workload", fields=(
    F("id", ID, required=True),
    F("description", Str()),
    F("prompt_tokens", Num(integer=True), required=True),
    F("output_tokens", Num(integer=True), required=True),
    F("prefix_hit", Num(positive=False, minimum=0, maximum=0.999), default=0.0,
      doc="fraction of each prompt already cached (prefix reuse)"),
    F("rate_per_s", Num(), doc="offered request rate"),
    F("ttft_ms", Num(scale=MILLI), attr="ttft_s", default=DEFAULT_TTFT_S, doc="time-to-first-token target"),
    F("tpot_ms", Num(scale=MILLI), attr="tpot_s", default=DEFAULT_TPOT_S, doc="time-per-output-token target"),
))


def load_workload(path: str | Path) -> Workload:
    r = validate(WORKLOAD, read_yaml(path), str(path))
    return Workload(r.id, r.prompt_tokens, r.output_tokens, r.prefix_hit, r.rate_per_s, r.ttft_s, r.tpot_s,
                    r.description or "")


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
    for key, scale, unit in (("rate_per_s", 1, "/s"), ("ttft_s", 1e3, " ms"), ("tpot_s", 1e3, " ms")):
        if key in changes and not (changes[key] > 0 and math.isfinite(changes[key])):
            raise PdroofError(f"--{key.split('_')[0]} must be positive, not {changes[key] * scale:g}{unit}")
    if changes:
        base = replace(base, **changes, id=base.id if set(changes) <= {"rate_per_s"} else f"{base.id}*")
    return base
