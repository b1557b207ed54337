"""A deployment file and its check: does this heterogeneous deployment meet its targets at the
offered rate, by the model's numbers? Used by ``pdroof check`` in CI pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cost.numeric import evaluate
from ..cost.runtime import runtime_for
from ..spec.catalog import Catalog
from ..spec.kinds import FMT
from ..spec.schema import F, Map, Num, Record, Str, validate
from ..spec.units import GB
from ..spec.yamlio import read_yaml
from .boundary import ORDERS, SCALES, Plan, Pool, plan
from .load import decode_in_flight, ttft_at
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
    F("instances", Num(integer=True), doc="instances in the pool (default 1)"),
    F("count", Num(integer=True), doc="instances in the pool: the older name of instances"),
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

DEPLOYMENT = Map(title="deployment", fields=(
    F("model", Str(), required=True, doc="model id or YAML file"),
    F("runtime", Str(), default="engine", doc="runtime profile id or YAML file for both pools; engine (the "
                                              "default): on each pool's accelerator the engine best supported there"),
    F("workload", Map(fields=(
        F("preset", Str(), doc="start from a preset (chat, summarization, ...), then override"),
        F("prompt_tokens", Num(integer=True)),
        F("output_tokens", Num(integer=True)),
        F("prefix_hit", Num(positive=False, minimum=0, maximum=0.999)),
        F("rate_per_s", Num(), doc="offered request rate the targets must hold at"),
    ), checks=(_tokens_or_preset,)), required=True),
    F("targets", Map(fields=target_fields(), checks=(_one_per_metric,),
                     doc="any of ttft_ms (mean), ttft_p50_ms (median), ttft_p90_ms, ttft_p99_ms and the same for "
                         "TPOT; at least one per metric, each checked"), required=True),
    F("prefill", POOL, required=True),
    F("decode", POOL, required=True),
    F("kv_path", Str(), required=True, doc="KV path id or YAML file"),
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


def load(path: str | Path) -> Record:
    return validate(DEPLOYMENT, read_yaml(path), str(path))


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
    d = load(path)
    model = cat.get("model", d.model)
    w = _workload(d)
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
    step = _decode_step(p, model, dec, cat, d, w, 1.0)
    need = float(decode_in_flight(per_d, w.output_tokens, step))
    for _ in range(60):
        if need > batch:
            break
        step = _decode_step(p, model, dec, cat, d, w, need)
        moved, need = need, float(decode_in_flight(per_d, w.output_tokens, step))
        if abs(need - moved) <= 1e-6 * max(need, 1e-9):
            break
    tpot = step if need <= batch else float("inf")
    v.checks.append(Check("decode batch that fits", need <= batch, need, batch, "sequences",
                          f"{per_d:.3g} req/s × {w.output_tokens} tokens × {step * 1e3:.1f} ms per step"))
    for stat, limit in targets["tpot"]:
        v.checks.append(Check(f"TPOT {stat} at that batch", tpot <= limit, tpot, limit, "s",
                              f"per decode {_unit(dec)}; decode steps carry no prompts, so every statistic is the "
                              "step"))
    v.passed = all(c.passed for c in v.checks)
    return v


def _unit(pool: Pool) -> str:
    return "attention replica" if pool.dp > 1 else "instance"


def _decode_step(p: Plan, model, dec: Pool, cat: Catalog, d: Record, w: Workload, batch: float) -> float:
    """The decode step at ``batch`` sequences, with any KV beyond HBM fetched from the tier."""
    from .space import SERVING_IDLE
    from .stage import stage_inputs

    b = max(1.0, float(np.ceil(batch)))
    rt = dec.runtime or runtime_for(cat, d.runtime, dec.accelerator)
    inputs, _ = stage_inputs(model, dec.accelerator, rt, dec.precision(), dec.tp, dec.split)
    inputs.update(batch=b, new_tokens=1, prefix_tokens=0, context_tokens=w.mean_context)
    step = float(evaluate("decode", inputs)["seconds"])
    return float(evaluate("serving", {**SERVING_IDLE, **p.decode_tier, "step_s": step,
                                      "decode_batch": b})["tiered_step_s"])
