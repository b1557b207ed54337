"""A deployment file and its check: does this heterogeneous deployment meet its targets at the
offered rate, by the model's numbers? Used by ``pdroof check`` in CI pipelines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cost.parallelism import split_reason
from ..cost.precision import infeasible_reason
from ..cost.runtime import runtime_for
from ..spec.catalog import Catalog
from ..spec.errors import as_field_of
from ..spec.kinds import FMT
from ..spec.schema import F, Map, Num, Record, Str, validate
from ..spec.units import GB
from ..spec.yamlio import read_yaml
from .boundary import ORDERS, SCALES, Plan, Pool, plan
from .load import admitted_sequences, aggregated_load, decode_in_flight, ttft_at
from .stage import context_reason, decode_tpot, stage_inputs
from .workload import Workload, target_fields, targets_of
from .workload import resolve as resolve_workload


def _one_per_metric(r: Record):
    for metric, given in targets_of(r).items():
        if not given:
            return (f"{metric}_ms", f"give at least one {metric.upper()} target: {metric}_ms (mean), "
                                    f"{metric}_p50_ms, {metric}_p90_ms or {metric}_p99_ms")
    return None


def _tokens_or_preset(r: Record):
    if r.preset is None and (r.prompt_tokens is None or r.output_tokens is None):
        return ("prompt_tokens", "give prompt_tokens and output_tokens, or a preset")
    return None


def _one_instance_count(r: Record):
    if r.instances is not None and r.count is not None:
        return ("count", "give instances (count is its older name), not both")
    return None


POOL = Map(checks=(_one_instance_count,), fields=(
    F("accelerator", Str(), required=True, doc="accelerator id or YAML file"),
    F("instances", Num(integer=True, maximum=100_000), doc="instances in the pool (default 1)"),
    F("count", Num(integer=True, maximum=100_000), doc="instances in the pool: the older name of instances"),
    F("tp", Num(integer=True), default=1, doc="attention tensor parallelism: devices per attention replica"),
    F("dp", Num(integer=True), default=1, doc="attention data-parallel replicas per instance (DP attention); "
                                              "devices per instance tp × dp"),
    F("moe_tp", Num(integer=True), doc="MoE: tensor-parallel split of each routed expert (default tp × dp / "
                                       "moe_ep)"),
    F("moe_ep", Num(integer=True), default=1, doc="MoE: expert-parallel groups the routed experts spread over"),
    F("weights", FMT, default="bf16"),
    F("activations", FMT),
    F("kv", FMT, default="bf16", doc="KV storage format"),
    F("kv_scale", Str(choices=SCALES), default="tensor", doc="KV quantisation scale granularity"),
    F("page_tokens", Num(integer=True), default=16, doc="KV page size in tokens"),
    F("kv_order", Str(choices=ORDERS), attr="order", default="token_major"),
    F("max_context", Num(integer=True), doc="the engine's context limit on this pool"),
    F("model", Str(), doc="only if this pool serves another model or revision (a hard-gate failure)"),
    F("rope_theta", Num(), doc="position-encoding override set on this pool's engine"),
    F("tier", Str(), default="hbm", doc="decode: KV residency tier"),
))

MODES = ("disaggregated", "aggregated")


def _pools_of_mode(r: Record):
    """Disaggregated: prefill, decode and kv_path; aggregated: one pool."""
    if r.mode == "aggregated":
        for key in ("prefill", "decode", "kv_path"):
            if r.get(key) is not None:
                return (key, "an aggregated deployment has one pool: give pool, not prefill, decode or kv_path")
        if r.pool is None:
            return ("pool", "an aggregated deployment needs its pool")
        return None
    if r.pool is not None:
        return ("pool", "a disaggregated deployment has prefill and decode pools, not pool (or set mode: aggregated)")
    for key in ("prefill", "decode", "kv_path"):
        if r.get(key) is None:
            return (key, f"a disaggregated deployment needs {key}")
    return None


DEPLOYMENT = Map(title="deployment", checks=(_pools_of_mode,), fields=(
    F("mode", Str(choices=MODES), default="disaggregated",
      doc="disaggregated (prefill and decode pools joined by kv_path) or aggregated (one pool serves both)"),
    F("model", Str(), required=True, doc="model id or YAML file"),
    F("runtime", Str(), default="engine", doc="runtime profile id or YAML file for both pools; engine (the "
                                              "default): on each pool's accelerator the engine best supported there"),
    F("workload", Map(fields=(
        F("preset", Str(), doc="start from a preset (chat, summarization, ...), then override"),
        F("prompt_tokens", Num(integer=True)),
        F("output_tokens", Num(integer=True)),
        F("prefix_hit", Num(positive=False, minimum=0, maximum=0.999)),
        F("rate_per_s", Num(minimum=1e-9, maximum=1e7), doc="offered request rate the targets must hold at"),
    ), checks=(_tokens_or_preset,)), required=True),
    F("targets", Map(fields=target_fields(), checks=(_one_per_metric,),
                     doc="any of ttft_ms (mean), ttft_p50_ms (median), ttft_p90_ms, ttft_p99_ms and the same for "
                         "TPOT; at least one per metric, each checked"), required=True),
    F("prefill", POOL, doc="disaggregated: the prefill pool"),
    F("decode", POOL, doc="disaggregated: the decode pool"),
    F("pool", POOL, doc="aggregated: the one pool (its kv the KV format it stores; tier hbm)"),
    F("kv_path", Str(), doc="disaggregated: KV path id or YAML file"),
    F("retained_cache_gb", Num(scale=GB, positive=False, minimum=0), attr="retained_bytes", default=0.0,
      doc="prefix cache retained per decode device"),
))


@dataclass
class Check:
    name: str
    passed: bool
    value: float
    limit: float
    unit: str
    detail: str


@dataclass
class Verdict:
    passed: bool
    checks: list[Check] = field(default_factory=list)
    plan: Plan | None = None
    deployment: dict = field(default_factory=dict)


def load(path: str | Path, cat: Catalog | None = None) -> Record:
    """The deployment file, checked (``checked``)."""
    return checked(read_yaml(path), path, cat)


def checked(data, path: str | Path, cat: Catalog | None = None) -> Record:
    """A deployment file's data, read from ``path``, checked; with a catalogue, every id it names
    too (an unknown one is the file's error, naming its field)."""
    d = validate(DEPLOYMENT, data, str(path))
    if cat is not None:
        pools = (("pool", d.pool),) if d.mode == "aggregated" else (("prefill", d.prefill), ("decode", d.decode))
        refs = [("model", "model", d.model), ("runtime", "runtime", d.runtime)]
        if d.mode != "aggregated":
            refs.append(("path", "kv_path", d.kv_path))
        for name, pool in pools:
            refs += [("accelerator", f"{name}.accelerator", pool.accelerator), ("model", f"{name}.model", pool.model)]
        for kind, where, ref in refs:
            if ref is not None:
                with as_field_of(path, where):
                    cat.get(kind, ref)
        with as_field_of(path, "workload.preset"):
            resolve_workload(d.workload.preset)
    return d


def _pool(cat: Catalog, spec: Record, runtime: str) -> Pool:
    """One pool of the file, running ``runtime`` (``engine``: the engine best supported on its accelerator)."""
    acc = cat.get("accelerator", spec.accelerator)
    count = spec.instances if spec.instances is not None else spec.count if spec.count is not None else 1
    return Pool(acc, tp=spec.tp, count=count, dp=spec.dp, moe_tp=spec.moe_tp, moe_ep=spec.moe_ep, weights=spec.weights,
                activations=spec.activations, kv=spec.kv, kv_scale=spec.kv_scale, page_tokens=spec.page_tokens,
                order=spec.order, max_context=spec.max_context,
                model=cat.get("model", spec.model) if spec.model else None, rope_theta=spec.rope_theta,
                tier=spec.tier, runtime=runtime_for(cat, runtime, acc))


def _workload(d: Record) -> Workload:
    """The deployment's workload, planned against its highest-percentile target of each metric
    (``check`` then verifies every target it gives)."""
    wl = d.workload
    t = targets_of(d.targets)
    (ttft_stat, ttft_s), (tpot_stat, tpot_s) = t["ttft"][-1], t["tpot"][-1]
    return resolve_workload(wl.preset, prompt_tokens=wl.prompt_tokens, output_tokens=wl.output_tokens,
                            prefix_hit=wl.prefix_hit, rate_per_s=wl.rate_per_s, ttft_s=ttft_s, tpot_s=tpot_s,
                            ttft_stat=ttft_stat, tpot_stat=tpot_stat)


def check(path: str | Path, cat: Catalog) -> Verdict:
    """Every constraint of the deployment at its offered rate: feasibility (gates, formats, fit),
    TTFT with queueing at the prefill pool, TPOT at the batch the decode pool must run, and the
    link and memory capacities of the handoff."""
    d = load(path, cat)
    model = cat.get("model", d.model)
    w = _workload(d)
    if d.mode == "aggregated":
        return _check_aggregated(d, cat, model, w)
    pre, dec = _pool(cat, d.prefill, d.runtime), _pool(cat, d.decode, d.runtime)
    p = plan(model, pre, dec, cat.get("path", d.kv_path), cat.all("tier"), cat.get("runtime", d.runtime), w,
             retained_bytes=d.retained_bytes)
    v = Verdict(False, plan=p, deployment=d.to_dict())
    if not p.feasible:
        v.checks = [Check("feasible", False, 0, 1, "", r) for r in p.reasons]
        return v
    s = p.doc["serving"]
    targets = targets_of(d.targets)
    rate = w.rate_per_s
    if rate is None:
        for stat, limit in targets["ttft"]:
            v.checks.append(Check(f"unloaded TTFT ({stat} target)", s["ttft_unloaded_s"] <= limit,
                                  s["ttft_unloaded_s"], limit, "s", "no offered rate: every statistic is the unloaded"))
        for stat, limit in targets["tpot"]:
            v.checks.append(Check(f"TPOT {stat}", s["tpot_s"] <= limit, s["tpot_s"], limit, "s", "no offered rate"))
        v.passed = all(c.passed for c in v.checks)
        return v
    per_p = rate / pre.replicas  # each attention replica serves its share (DP attention: dp per instance)
    t_p = s["prefill_s"]
    rho = per_p * t_p
    outside = p.doc["representation"]["handoff_s"] + s["request_s"]  # delays the first token, not the server
    for stat, limit in targets["ttft"]:
        ttft = float(ttft_at(per_p, t_p, outside, stat))
        v.checks.append(Check(f"TTFT {stat} at the offered rate", ttft <= limit, ttft, limit, "s",
                              f"M/D/1 at {per_p:.3g} req/s per prefill {_unit(pre)} (utilisation {rho:.0%})"))
    for name, cap in (("KV link capacity", s["link_capacity"]),
                      ("prefill memory (KV held until handoff)", p.doc["ownership"]["prefill_hold_capacity"])):
        v.checks.append(Check(name, per_p <= cap, per_p, cap, "req/s", f"per prefill {_unit(pre)}"))
    per_d = rate / dec.replicas
    v.checks.append(Check("decode ingress capacity", per_d <= s["ingress_capacity"], per_d, s["ingress_capacity"],
                          "req/s", f"per decode {_unit(dec)}: the prefill instances feeding it share its NICs"))
    batch = s["decode_batch"]
    # the batch the rate holds at the step that batch runs: B = λ·O·t(B), the least fixed point,
    # reached from below (t grows with B, so the iterates rise to it); past the most the pool
    # admits, it does not fit
    tpot = _decode_tpot(p, model, dec, cat, d, w, 1.0)
    need = float(decode_in_flight(per_d, w.output_tokens, tpot))
    for _ in range(60):
        if need > batch:
            break
        tpot = _decode_tpot(p, model, dec, cat, d, w, need)
        moved, need = need, float(decode_in_flight(per_d, w.output_tokens, tpot))
        if abs(need - moved) <= 1e-6 * max(need, 1e-9):
            break
    fits = need <= batch
    v.checks.append(Check("decode batch that fits", fits, need, batch, "sequences",
                          f"{per_d:.3g} req/s × {w.output_tokens} tokens × {tpot * 1e3:.1f} ms per token"))
    if not fits:  # past the batch the pool admits the queue grows without bound: no TPOT to report
        v.passed = False
        return v
    admission = p.doc["ownership"]["decode_admission"]
    if admission["memory_pace_s"] is not None:  # memory paces admissions (else the batch that fits implies they fit)
        cap = p.decode_batch_capacity  # the admitted batch over O paces
        v.checks.append(Check("decode memory beside transfers in flight", per_d <= cap, per_d, cap, "req/s",
                              f"per decode {_unit(dec)}: each arrival reserves "
                              f"{p.doc['ownership']['destination_bytes'] / GB:.3g} GB for "
                              f"{p.doc['ownership']['destination_reserved_s'] * 1e3:.0f} ms before its KV lands, "
                              "beside the one sequence it runs"))
    for stat, limit in targets["tpot"]:
        v.checks.append(Check(f"TPOT {stat} at that batch", tpot <= limit, tpot, limit, "s",
                              f"per decode {_unit(dec)}; decode steps carry no prompts, so every statistic is the "
                              "same"))
    v.passed = all(c.passed for c in v.checks)
    return v


def _unit(pool: Pool) -> str:
    return "attention replica" if pool.dp > 1 else "instance"


def _decode_tpot(p: Plan, model, dec: Pool, cat: Catalog, d: Record, w: Workload, batch: float) -> float:
    """The time per output token at ``batch`` sequences: the decode step, with any KV beyond HBM
    fetched from the tier, times the passes per token (``admission_passes``)."""
    b = max(1.0, float(np.ceil(batch)))
    rt = dec.runtime or runtime_for(cat, d.runtime, dec.accelerator)
    inputs, _ = stage_inputs(model, dec.accelerator, rt, dec.precision(), dec.tp, dec.split)
    return float(decode_tpot(inputs, b, w.mean_context, float(w.output_tokens), tier=p.decode_tier))


def _check_aggregated(d: Record, cat: Catalog, model: Record, w: Workload) -> Verdict:
    """One pool serving prompts and steps together under Poisson arrivals, as ``rank``'s aggregated
    rows: the concurrency the offered rate holds each replica at (C = λ·O·t̄(C), by bisection), and
    every target at it; the KV memory must admit that many sequences."""
    pool = _pool(cat, d.pool, d.runtime)
    v = Verdict(False, deployment=d.to_dict())
    reasons = [r for r in (split_reason(model, pool.accelerator, pool.split),
                           infeasible_reason(pool.accelerator, pool.precision()),
                           context_reason(model, w.prompt_tokens + w.output_tokens, "prompt + output"))
               if r]
    if pool.tier != "hbm":
        reasons.append(f"an aggregated pool keeps its KV in HBM, not {pool.tier}")
    if reasons:
        v.checks = [Check("feasible", False, 0, 1, "", r) for r in reasons]
        return v
    inputs, _ = stage_inputs(model, pool.accelerator, pool.runtime, pool.precision(), pool.tp, pool.split)
    admitted = float(admitted_sequences(inputs, float(w.prompt_tokens), float(w.output_tokens)))
    if admitted < 1:
        v.checks = [Check("feasible", False, 0, 1, "", "weights and one sequence's KV do not fit")]
        return v
    targets = targets_of(d.targets)

    def load_at(concurrency: float, ttft_stat: str = "mean", tpot_stat: str = "mean") -> dict:
        return aggregated_load(inputs, np.array([concurrency]), w.new_tokens, w.output_tokens,
                               prefix_tokens=w.prefix_tokens, arrivals="poisson", ttft_stat=ttft_stat,
                               tpot_stat=tpot_stat)

    rate = w.rate_per_s
    unit = _unit(pool)
    at = 1.0  # no offered rate: one request alone
    if rate is not None:
        per, most = rate / pool.replicas, float(load_at(admitted)["requests_per_s"][0])
        v.checks.append(Check("request rate the KV memory admits", per <= most, per, most, "req/s",
                              f"per {unit}: at most {admitted:g} sequences in flight"))
        if per > most:  # past the most the pool admits, the queue grows without bound
            return v
        lo, hi = 0.0, admitted
        for _ in range(60):  # requests/s rises with concurrency: the least C carrying the rate
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if float(load_at(mid)["requests_per_s"][0]) < per else (lo, mid)
        at = hi
    for metric, key in (("ttft", "ttft_s"), ("tpot", "tpot_s")):
        for stat, limit in targets[metric]:
            value = float(load_at(at, stat, stat)[key][0])
            v.checks.append(Check(f"{metric.upper()} {stat} at that load", value <= limit, value, limit, "s",
                                  f"aggregated, per {unit}, {at:.3g} requests in flight: prompts queue for the "
                                  "engine's prefill work"))
    v.passed = all(c.passed for c in v.checks)
    return v


def _round_down(x: float, digits: int = 3) -> float:
    """``x`` to ``digits`` significant digits, never up (a rate written so stays within the claim)."""
    scale = 10.0 ** (math.floor(math.log10(x)) + 1 - digits)
    return math.floor(x / scale * (1 + 1e-12)) * scale


def from_row(row: dict, w: Workload, model: str, runtime: str, rate: float | None = None,
             retained_gb: float = 0.0) -> dict:
    """A ranked row (``rank.COLUMNS``) as a deployment document that ``check`` reads: its pools'
    whole instances, formats and splits, the workload and targets it was ranked for, at ``rate``
    (default: the rate the row sustains, to three significant digits, rounded down)."""
    rate = rate or _round_down(row["requests_per_s"])
    key = {"mean": "{}_ms"}
    targets = {key.get(w.ttft_stat, f"{{}}_{w.ttft_stat}_ms").format("ttft"): round(w.ttft_s * 1e3, 6),
               key.get(w.tpot_stat, f"{{}}_{w.tpot_stat}_ms").format("tpot"): round(w.tpot_s * 1e3, 6)}
    workload = {"prompt_tokens": w.prompt_tokens, "output_tokens": w.output_tokens,
                **({"prefix_hit": w.prefix_hit} if w.prefix_hit else {}), "rate_per_s": rate}

    def pool(side: str, weights: str, kv: str, activations: str | None = None) -> dict:
        out = {"accelerator": row[f"{side}_hw"], "instances": row[f"{side}_instances"], "tp": row[f"{side}_tp"]}
        if row[f"{side}_dp"] > 1:
            out["dp"] = row[f"{side}_dp"]
        if row[f"{side}_moe_ep"] > 1:
            out["moe_ep"] = row[f"{side}_moe_ep"]
        return {**out, "weights": weights, **({"activations": activations} if activations else {}), "kv": kv}

    doc = {"model": model, "runtime": runtime, "workload": workload, "targets": targets}
    if row["mode"] == "aggregated":
        return {"mode": "aggregated", **doc, "pool": pool("decode", row["decode_weights"], row["kv_format"])}
    weights, activations = row["prefill_precision"].split("/")
    decode = pool("decode", row["decode_weights"], row["kv_format"])
    if row["tier"] != "hbm":
        decode["tier"] = row["tier"]
    return {**doc, "prefill": pool("prefill", weights, row["prefill_kv"], activations), "decode": decode,
            "kv_path": row["path"], **({"retained_cache_gb": retained_gb} if retained_gb else {})}
