"""Efficiency of an accelerator running a given software stack, resolved from a runtime profile
(``pdroof.spec.profile``), the accelerator's own spec and the profile's fallback; ``resolve``
says which source each factor took, and ``resolved_entry`` writes what it resolves as a profile
entry. ``runtime_for`` says which profile an accelerator runs when the default, ``engine``, is
asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from ..spec.schema import Record
from ..spec.units import FORMATS

if TYPE_CHECKING:
    from ..spec.catalog import Catalog

GENERIC = "engine"
# What the default runtime, ``engine``, stands for on an accelerator: the first of these engine
# profiles with its own entry for it (factors measured for that engine there), else the generic
# ``engine`` profile. On NVIDIA parts trtllm, sglang and vllm are measured on the same
# accelerators and TensorRT-LLM is NVIDIA's own engine; SGLang next, the engine of the public AMD runs
# (DeepSeek-R1 on MI300X, MI325X, MI355X); then vLLM; ATOM, AMD's own engine, last, its scheduler
# defaults being stand-ins taken from SGLang. README ("Runtimes") states this order.
ENGINE_PREFERENCE = ("trtllm", "sglang", "vllm", "atom")


def engine_id(cat: Catalog, accelerator: Record) -> str:
    """The runtime id ``engine`` resolves to on ``accelerator``: the first of ENGINE_PREFERENCE
    whose own file states an entry for it (an entry it only inherits from ``engine`` does not
    count, and a version profile, which stands for an engine's older releases, is never one),
    else ``engine``."""
    for rid in ENGINE_PREFERENCE:
        if accelerator.id in cat.stated_profiles(rid) and cat.get("runtime", rid).up_to_version is None:
            return rid
    return GENERIC


def engine_profile_id(cat: Catalog, engine: str | None, version: str | None, accelerator: Record) -> str:
    """The runtime id a run of ``engine`` at ``version`` on ``accelerator`` takes: its own profile
    (``own_profile_id``), else what the default, ``engine``, resolves to there (``engine_id``)."""
    return own_profile_id(cat, engine, version) or engine_id(cat, accelerator)


def own_profile_id(cat: Catalog, engine: str | None, version: str | None) -> str | None:
    """The profile of ``engine`` at ``version``: the one with the lowest ``up_to_version`` at or
    above the version, else the engine's own (its latest release); None where it has neither."""
    from ..spec.profile import version_key

    key = version_key(version)
    if key is not None:
        for bound, rid in cat.version_profiles().get(engine or "", []):
            if key <= bound:
                return rid
    return engine if engine and engine in cat.files("runtime") else None


def runtimes_for(cat: Catalog, ref: str, accelerators: list[Record]) -> dict[str, Record]:
    """Accelerator id -> the runtime profile it runs when ``ref`` is asked for: ``engine`` (the
    default) per accelerator as ``engine_id`` says; any other id or YAML file on every one."""
    ids = {a.id: engine_id(cat, a) if ref == GENERIC else ref for a in accelerators}
    records = {rid: cat.get("runtime", rid) for rid in dict.fromkeys(ids.values())}
    return {aid: records[rid] for aid, rid in ids.items()}


def runtime_for(cat: Catalog, ref: str, accelerator: Record) -> Record:
    """The runtime profile ``accelerator`` runs when ``ref`` is asked for (see ``runtimes_for``)."""
    return runtimes_for(cat, ref, [accelerator])[accelerator.id]


@dataclass(frozen=True)
class AllReduce:
    """The all-reduce's factors at one party count: the stack's own kernel (per-call latency, link
    efficiency) up to ``switch_bytes``, its second algorithm above (None: the own kernel at every size)."""

    latency_s: float
    link: float
    switch_bytes: float | None = None
    large_latency_s: float | None = None
    link_large: float | None = None


@dataclass(frozen=True)
class Efficiency:
    """Resolved factors for one accelerator under one runtime; ``origin`` names each one's source.
    The per-format maps cover every format (see ``resolve`` for how missing ones are filled)."""

    compute: dict[str, float]
    gemm_half_rows: dict[str, float]
    weights: dict[str, float]
    memory: float
    attention_prefill: float
    attention_prefill_half_tokens: float
    attention_decode: float
    link: float
    layer_latency_s: float
    kernel_latency_s: float
    allreduce_latency_s: float
    alltoall_latency_s: float
    attention_decode_half_bytes: float
    attention_decode_mla: float | None
    attention_decode_mla_half_bytes: float | None
    moe_compute: dict[str, float]
    moe_half_width: dict[str, float]
    moe_weights: dict[str, float]
    moe_latency_s: dict[str, float]
    host_latency_s: float | None
    host_bytes_per_s: float | None
    # the all-reduce's factors (allreduce_latency_s, allreduce_link or link, and the entry's
    # allreduce_large: the regime above the own kernel's largest message), at the largest TP measured
    allreduce: AllReduce
    origin: dict[str, str]
    own_formats: frozenset[str] = frozenset()  # per-format keys ("weights.fp8") given for that format itself
    allreduce_link: float | None = None  # the stack's own all-reduce kernel's link efficiency (None: link)
    # the all-reduce measured at other party counts (an entry's allreduce_parties)
    allreduce_parties: dict[int, AllReduce] = field(default_factory=dict)

    def allreduce_at(self, parties: int) -> AllReduce:
        """The all-reduce's factors among ``parties`` devices: measured at that count, else its own."""
        return self.allreduce_parties.get(parties) or self.allreduce

    def inferred(self, *keys: str) -> bool:
        """Whether any of these per-format factors was taken from another format or silicon (a
        sibling, a family entry or a fallback) rather than given for its own format."""
        return any(k not in self.own_formats for k in keys)

    def compute_for(self, fmt: str) -> float:
        return self.compute[fmt]

    def half_rows_for(self, fmt: str) -> float:
        """M½ of GEMMs in ``fmt`` (0, the plain roofline, only where nothing anywhere gives one)."""
        return self.gemm_half_rows.get(fmt, 0.0)

    def weights_for(self, fmt: str) -> float:
        return self.weights[fmt]


# Factors of the silicon (an accelerator's own measured value beats a runtime's generic fallback)
# and of the software stack (the runtime's fallback beats a stack-agnostic spec value).
_SILICON = ("memory", "attention_prefill", "attention_prefill_half_tokens", "attention_decode")
_STACK = ("link", "layer_latency_s")
# Stack factors a profile may leave out: none of these terms then (the plain roofline); MLA decode
# then takes the stack's decode-attention efficiency, the all-reduce the stack's link efficiency.
_OPTIONAL_STACK = {"kernel_latency_s": 0.0, "allreduce_latency_s": 0.0, "alltoall_latency_s": 0.0,
                   "allreduce_link": None, "attention_decode_half_bytes": 0.0,
                   "attention_decode_mla": None, "attention_decode_mla_half_bytes": None}
# Formats that run on the same tensor-core path of one silicon, at the same rate and with the same
# tiles and bytes (int8 and fp8 on Hopper and later; fp16 and bf16): the nearest measured sibling.
SIBLINGS = {"int8": ("fp8",), "fp8": ("int8",), "fp16": ("bf16",), "bf16": ("fp16",), "fp4": ("fp8",)}
# Per-format maps, and which way is conservative: efficiencies low, M½ (small-GEMM penalty) high.
_PER_FORMAT = {"compute": min, "gemm_half_rows": max, "weights": min}


@cache
def resolve(runtime: Record, accelerator: Record) -> Efficiency:
    """Efficiency of ``accelerator`` under ``runtime``. Scalar factors: profile entry, else the
    accelerator's own spec, else the runtime's fallback. A per-format factor never takes an
    optimistic default: the format's own value or its sibling format's on the same accelerator
    (int8 from fp8), the runtime's entry before the spec's stack-agnostic values; else, for an
    accelerator the runtime has not profiled, the most conservative value the runtime measured on
    the same silicon family (an H20 from the H100/H200 entries); else the runtime's fallback, never
    better than any value this accelerator has for that factor. For an accelerator the runtime has
    not profiled, a spec value marked assumed yields to a less favourable one the runtime measured
    on the same family (an H800's assumed GEMM efficiency to the H200's measured one)."""
    prof = runtime.profiles.get(accelerator.id)
    spec = accelerator.efficiency
    fb = runtime.fallback
    origin: dict[str, str] = {}
    own, theirs, generic = (f"runtime {runtime.id}", prof), (f"spec {accelerator.id}", spec), \
        (f"runtime {runtime.id} fallback", fb)
    layers = [own, theirs, generic]

    def pick(name: str, order):
        for label, src in order:
            if src is not None and name in src:
                origin[name] = label
                return src.get(name)
        raise KeyError(name)

    family = [] if prof is not None else [
        (f"runtime {runtime.id} {pid} (same family)", entry) for pid, entry in runtime.profiles.items()
        if entry.family is not None and entry.family == accelerator.family]

    def no_better_than_family(key: str, value: float, conservative, family_values) -> float:
        """A spec value marked assumed yields to a less favourable measured value of the family."""
        if origin.get(key) != theirs[0] or not family_values:
            return value
        if accelerator.provenance.get(f"efficiency.{key}", {}).get("basis") != "assumed":
            return value
        label, v = conservative(family_values, key=lambda lv: lv[1])
        if conservative(v, value) == value:
            return value
        origin[key] = f"{label}, below this spec's assumed {value:g}"
        return v

    values = {}
    for name in _SILICON:
        conservative = max if name == "attention_prefill_half_tokens" else min
        values[name] = no_better_than_family(name, pick(name, layers), conservative,
                                             [(label, e.get(name)) for label, e in family if name in e])
    values.update({name: pick(name, [own, generic, theirs]) for name in _STACK})
    for name, default in _OPTIONAL_STACK.items():
        try:
            values[name] = pick(name, [own, generic, theirs])
        except KeyError:
            values[name] = default
    measured: set[str] = set()
    maps = {name: _per_format(name, conservative, [own, theirs], family, generic, origin, no_better_than_family,
                              measured)
            for name, conservative in _PER_FORMAT.items()}
    host = prof.host_link if prof is not None else None
    own_kernel = values["link"] if values["allreduce_link"] is None else values["allreduce_link"]
    large = prof.allreduce_large if prof is not None else None
    allreduce = _allreduce(values["allreduce_latency_s"], own_kernel, large)
    parties = {item.parties: _allreduce(item.latency_s, item.link, item.large)
               for item in (prof.allreduce_parties if prof is not None else ())}
    # the routed experts' own kernels: this accelerator's entry only (else the dense GEMMs' factors)
    moe = {name: dict(prof.get(name) or {}) if prof is not None else {}
           for name in ("moe_compute", "moe_half_width", "moe_weights", "moe_latency_s")}
    for found in moe.values():  # a format the experts' kernels were not measured in takes its sibling's
        for fmt, siblings in SIBLINGS.items():
            sib = next((s for s in siblings if s in found), None)
            if fmt not in found and sib is not None:
                found[fmt] = found[sib]
    return Efficiency(
        **maps, **moe,
        host_latency_s=host.latency_s if host else None, host_bytes_per_s=host.bytes_per_s if host else None,
        allreduce=allreduce, allreduce_parties=parties, origin=origin, own_formats=frozenset(measured), **values,
    )


def _allreduce(latency_s: float, link: float, large: Record | None) -> AllReduce:
    if large is None:
        return AllReduce(latency_s, link)
    return AllReduce(latency_s, link, large.above_bytes, large.latency_s, large.link)


def _allreduce_entry(ar: AllReduce) -> dict:
    """``ar`` as profile keys: the own kernel's, and ``large`` where a second algorithm takes over."""
    out = {"latency_us": ar.latency_s * 1e6, "link": ar.link}
    if ar.switch_bytes is not None:
        out["large"] = {"above_mib": ar.switch_bytes / 2**20, "latency_us": ar.large_latency_s * 1e6,
                        "link": ar.link_large}
    return out


def _per_format(name: str, conservative, mine, family, generic, origin: dict, no_better_than_family,
                measured: set) -> dict[str, float]:
    def at(src, fmt):
        return (src.get(name) or {}).get(fmt) if src is not None else None

    known = [v for _, src in mine for v in ((src.get(name) or {}).values() if src is not None else ())]
    out: dict[str, float] = {}
    for fmt in FORMATS:
        key = f"{name}.{fmt}"
        # the stack's own entry first, its sibling format included, then the spec's stack-agnostic values
        order = [(label, src, f) for label, src in mine for f in (fmt, *SIBLINGS.get(fmt, ()))]
        hit = next(((label, v, f) for label, src, f in order if (v := at(src, f)) is not None), None)
        found = None if hit is None else (hit[0] if hit[2] == fmt else f"{hit[0]} as {hit[2]} (same tensor path)",
                                          hit[1])
        vals = [(label, v) for label, src in family for f in (fmt, *SIBLINGS.get(fmt, ()))
                if (v := at(src, f)) is not None]
        if found is not None:
            origin[key] = found[0]
            value = no_better_than_family(key, found[1], conservative, vals)
            if hit[2] == fmt and value == found[1]:
                measured.add(key)  # this accelerator's own value for this format
            found = (origin[key], value)
        elif vals:
            found = conservative(vals, key=lambda lv: lv[1])
        if found is None and (v := at(generic[1], fmt)) is not None:
            capped = conservative([v, *known])
            found = (generic[0] if capped == v else f"{generic[0]}, capped at this accelerator's own values", capped)
        if found is not None:
            origin[key], out[fmt] = found
    return out


def resolved_entry(rt: Record, acc: Record) -> dict:
    """Every factor ``rt`` resolves for ``acc`` (from its family, the spec or its fallback), as a
    profile entry: written where the base has no entry of its own, so that the fitted factors are
    the only ones that change (an entry of its own stops the family and fallback resolution)."""
    eff = resolve(rt, acc)
    us = {k: v * 1e6 for k, v in eff.moe_latency_s.items()}
    entry = {"compute": dict(eff.compute), "gemm_half_rows": dict(eff.gemm_half_rows), "weights": dict(eff.weights),
             "moe_compute": dict(eff.moe_compute), "moe_half_width": dict(eff.moe_half_width),
             "moe_weights": dict(eff.moe_weights), "moe_latency_us": us,
             "memory": eff.memory, "attention_prefill": eff.attention_prefill,
             "attention_prefill_half_tokens": eff.attention_prefill_half_tokens,
             "attention_decode": eff.attention_decode, "link": eff.link,
             "layer_latency_us": eff.layer_latency_s * 1e6, "kernel_latency_us": eff.kernel_latency_s * 1e6,
             "allreduce_latency_us": eff.allreduce_latency_s * 1e6,
             "alltoall_latency_us": eff.alltoall_latency_s * 1e6,
             "attention_decode_half_mb": eff.attention_decode_half_bytes / 1e6,
             "source": f"as {rt.id} resolves it for {acc.id} (its family, spec and fallback), where it has no entry"}
    if eff.attention_decode_mla is not None:
        entry["attention_decode_mla"] = eff.attention_decode_mla
        entry["attention_decode_mla_half_mb"] = (eff.attention_decode_mla_half_bytes or 0.0) / 1e6
    if eff.host_latency_s is not None:
        entry["host_link"] = {"latency_us": eff.host_latency_s * 1e6, "gb_per_s": eff.host_bytes_per_s / 1e9}
    if eff.allreduce_link is not None:
        entry["allreduce_link"] = eff.allreduce_link
    if eff.allreduce.switch_bytes is not None:
        entry["allreduce_large"] = _allreduce_entry(eff.allreduce)["large"]
    if eff.allreduce_parties:
        entry["allreduce_parties"] = [{"parties": n, **_allreduce_entry(ar)} for n, ar in eff.allreduce_parties.items()]
    if acc.family:
        entry["family"] = acc.family
    return entry
