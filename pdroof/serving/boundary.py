"""The three boundary decisions for one prefill/decode pairing: compute placement, KV
representation (hard gate, then convert and/or redistribute, placed where cheapest) and KV
ownership (transient footprint, how long the source stays pinned, decode admission capacity).

``plan`` evaluates one configuration with the same stage tables, handoff columns and serving
equations that ``rank`` uses over the whole grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..cost.inputs import model_inputs
from ..cost.parallelism import Parallelism, split_reason
from ..cost.precision import Precision, default_activations, infeasible_reason, kv_encoding
from ..spec.errors import PdroofError
from ..spec.schema import Record
from .choices import pair_links
from .columns import BINDINGS, PLACEMENTS, handoff_columns, serving_columns
from .handoff import path_reach, path_reason
from .space import Candidates, decode_stage, prefill_stage
from .stage import tp_reason
from .workload import Workload

SCALES = ("tensor", "head", "token", "group")
ORDERS = ("token_major", "head_major")


@dataclass(frozen=True)
class Layout:
    """How one pool stores KV: format and scale granularity, page size, order, TP partitioning."""

    format: str
    scale: str = "tensor"
    page_tokens: int = 16
    order: str = "token_major"
    kv_shards: int = 1

    def to_dict(self) -> dict:
        return {"format": self.format, "scale": self.scale, "page_tokens": self.page_tokens, "order": self.order,
                "kv_shards": self.kv_shards}


@dataclass(frozen=True)
class Pool:
    """One side of the boundary: accelerator, instances, TP, precision, KV layout, engine limits."""

    accelerator: Record
    tp: int = 1
    count: int = 1
    dp: int = 1                 # attention data-parallel replicas per instance (DP attention)
    moe_tp: int | None = None   # the routed experts' split (default: over all tp·dp devices)
    moe_ep: int = 1
    weights: str = "bf16"
    activations: str | None = None
    kv: str = "bf16"
    kv_scale: str = "tensor"
    page_tokens: int = 16
    order: str = "token_major"
    max_context: int | None = None
    model: Record | None = None  # a different model or revision than the deployment's: a gate failure
    rope_theta: float | None = None  # position-encoding override (engine flag): must match the other side
    tier: str = "hbm"
    runtime: Record | None = None  # the runtime profile (engine) this pool runs; None: the plan's

    @property
    def split(self) -> Parallelism:
        return Parallelism(self.tp, self.dp, self.moe_tp, self.moe_ep)

    @property
    def replicas(self) -> int:
        """Attention replicas in the pool: the units its load spreads over."""
        return self.count * self.dp

    def precision(self) -> Precision:
        implied = default_activations(self.accelerator, self.weights)
        if self.activations and self.activations != implied:
            raise PdroofError(f"{self.accelerator.id}: activations {self.activations} with {self.weights} weights "
                              f"are not planned; the executable path there is {implied}")
        return Precision(self.weights, implied, self.kv)


@dataclass
class Plan:
    feasible: bool
    reasons: list[str] = field(default_factory=list)
    doc: dict = field(default_factory=dict)
    decode_tier: dict = field(default_factory=dict)  # the serving inputs of the decode step's tier fetches
    # requests/s a decode replica's admitted batch serves at its step, or at the pace memory admits it
    # (``decode_batch_capacity``: before the ingress limit)
    decode_batch_capacity: float = float("nan")


def gate(model: Record, prefill: Pool, decode: Pool, w: Workload) -> list[dict]:
    """Hard gate: what no transformation can fix. Each check: name, passed, detail."""
    checks = []
    pm, dm = prefill.model or model, decode.model or model
    checks.append({"check": "model identity", "passed": pm.id == dm.id == model.id,
                   "detail": f"prefill {pm.id}, decode {dm.id}"})
    pos_p, pos_d = _position(pm, prefill), _position(dm, decode)
    checks.append({"check": "position encoding and scaling", "passed": pos_p == pos_d,
                   "detail": "same rope and scaling" if pos_p == pos_d else f"prefill {pos_p} vs decode {pos_d}"})
    limit_p = prefill.max_context or pm.max_context or 10**9
    limit_d = decode.max_context or dm.max_context or 10**9
    need = w.prompt_tokens + w.output_tokens
    ok = w.prompt_tokens <= limit_p and need <= limit_d
    le = lambda a, b: "≤" if a <= b else ">"  # noqa: E731
    checks.append({"check": "token range", "passed": ok,
                   "detail": f"prompt {w.prompt_tokens:,} {le(w.prompt_tokens, limit_p)} prefill {limit_p:,}; "
                             f"prompt + output {need:,} {le(need, limit_d)} decode {limit_d:,}"})
    return checks


def _position(model: Record, pool: Pool) -> dict:
    """Position encoding as the pool's engine applies it: the model's, with any override."""
    pos = model.position.to_dict() if model.position else {}
    return pos | ({"theta": pool.rope_theta} if pool.rope_theta else {})


def plan(model: Record, prefill: Pool, decode: Pool, path: Record, tiers: list[Record], runtime: Record,
         w: Workload, retained_bytes: float = 0.0) -> Plan:
    """The three decisions for one pairing, with every cost and the binding constraint."""
    reasons: list[str] = []
    for side, pool in (("prefill", prefill), ("decode", decode)):
        if pool.tp < 1 or pool.count < 1 or pool.page_tokens < 1:
            raise PdroofError(f"{side}: tp, instance count and page tokens must be at least 1, not {pool.tp}, "
                              f"{pool.count} and {pool.page_tokens}")
        r = split_reason(model, pool.accelerator, pool.split)
        if r:
            reasons.append(f"{side}: {r}")
    if not (retained_bytes >= 0 and math.isfinite(retained_bytes)):
        raise PdroofError(f"retained cache must be a finite, non-negative size, not {retained_bytes}")
    checks = gate(model, prefill, decode, w)
    reasons += [f"gate: {c['check']}: {c['detail']}" for c in checks if not c["passed"]]
    pp, dp = prefill.precision(), decode.precision()
    for side, pool, prec in (("prefill", prefill, pp), ("decode", decode, dp)):
        r = infeasible_reason(pool.accelerator, prec)
        if r:
            reasons.append(f"{side}: {r}")
    r = path_reason(path, prefill.accelerator, decode.accelerator)
    if r:
        reasons.append(f"path: {r}")
    together = prefill.count * prefill.split.devices + decode.count * decode.split.devices
    reach = path_reach(path, prefill.accelerator)
    if not r and together > reach:
        reasons.append(f"path: {path.id} stays inside {reach:g} devices (one node or scale-up domain); "
                       f"the two pools take {together}")
    tier = next((t for t in tiers if t.id == decode.tier), None)
    if tier is None:
        raise PdroofError(f"unknown KV tier {decode.tier!r}; known: {', '.join(t.id for t in tiers)}")
    accs = [prefill.accelerator] + ([decode.accelerator] if decode.accelerator.id != prefill.accelerator.id else [])
    c = Candidates(model, accs, [path], [tier], runtime, w, tp=tuple(sorted({prefill.tp, decode.tp})),
                   retained_bytes=retained_bytes, runtimes=_runtimes(prefill, decode, runtime),
                   given_splits=tuple(dict.fromkeys(pool.split.for_model(model) for pool in (prefill, decode))))
    placement = {
        "prefill": {"accelerator": prefill.accelerator.id, **_split_doc(model, prefill),
                    "precision": f"W{pp.weights}/A{pp.activations}", "kv": pp.kv,
                    "runtime": c.runtime_of(prefill.accelerator).id},
        "decode": {"accelerator": decode.accelerator.id, **_split_doc(model, decode),
                   "precision": f"W{dp.weights}/A{dp.activations}", "kv": dp.kv, "tier": tier.id,
                   "runtime": c.runtime_of(decode.accelerator).id},
    }
    doc = {"placement": placement, "representation": {"gate": checks}}
    if reasons:
        return Plan(False, reasons, doc)
    pre, dec = prefill_stage(c), decode_stage(c)
    ids = [a.id for a in accs]  # by id: a spec given as a file is another record than the catalogue's
    pi = _row(pre, ids.index(prefill.accelerator.id), prefill.split.for_model(model), weights=pp.weights)
    di = _row(dec, ids.index(decode.accelerator.id), decode.split.for_model(model), weights=dp.weights, kv=dp.kv,
              tier=0)
    for side, pool, st, i in (("prefill", prefill, pre, pi), ("decode", decode, dec, di)):
        if i is None:
            reasons.append(f"{side}: {tp_reason(model, pool.accelerator, pool.tp)}")
        elif st.reasons[i]:
            reasons.append(f"{side}: {st.reasons[i]}")
    if reasons:
        return Plan(False, reasons, doc)
    mi = model_inputs(model)
    wires = [pp.kv]
    links = pair_links(c)
    pr, dr = np.array([pi]), np.array([di])
    acc_p = np.array([pre.labels["acc"][pi]])
    acc_d = np.array([dec.labels["acc"][di]])
    shards = lambda tp: int(min(tp, mi["kv_shardable"]))  # noqa: E731
    # formats by their exact encoding: FP8 on an MI300 is not FP8 on an H100
    lay_p = Layout(kv_encoding(prefill.accelerator, pp.kv), prefill.kv_scale, prefill.page_tokens, prefill.order,
                   shards(prefill.tp))
    lay_d = Layout(kv_encoding(decode.accelerator, dp.kv), decode.kv_scale, decode.page_tokens, decode.order,
                   shards(decode.tp))
    h = handoff_columns(c, pre, dec, links, wires, pr, dr, np.array([0]), np.array([0]), acc_p, acc_d, mi,
                        convert=np.array([float(lay_p.format != lay_d.format or lay_p.scale != lay_d.scale)]),
                        redistribute=np.array([float((lay_p.page_tokens, lay_p.order, lay_p.kv_shards)
                                                     != (lay_d.page_tokens, lay_d.order, lay_d.kv_shards))]))
    dv = dec.values
    nan = float("nan")
    serv = serving_columns(c, pre, dec, h, pr, dr, prefill.accelerator.price_usd_per_hour or nan,
                           decode.accelerator.price_usd_per_hour or nan, prefill.accelerator.power_w or nan,
                           decode.accelerator.power_w or nan)
    f = {k: float(v[0]) for k, v in {**h, **serv}.items()}
    chosen = PLACEMENTS[int(h["placement"][0])]
    actions = [a for a, on in (("convert", h["needs_convert"][0]), ("redistribute", h["needs_redistribute"][0])) if on]
    boundary = {k: float(v[0]) for k, v in h.items() if k.endswith("_option_s")}
    doc["representation"].update({
        "producer_layout": lay_p.to_dict(), "consumer_layout": lay_d.to_dict(),
        "actions": actions or ["consume directly"],
        "placement_costs_s": {p: boundary.get(f"{p}_option_s") for p in PLACEMENTS[:3]} if actions else {},
        "chosen_placement": chosen,
        "wire_format": lay_d.format if chosen == "producer" and "convert" in actions else lay_p.format,
        "wire_bytes": f["transfer_bytes"], "transfer_s": f["transfer_s"], "exposed_transfer_s": f["exposed_transfer_s"],
        "transform_s": f["convert_s"], "handoff_s": f["handoff_s"], "validation": "metadata only (no byte pass)",
    })
    doc["ownership"] = {
        "source_bytes": f["kv_src_bytes"], "staging_bytes": f["staging_bytes"], "destination_bytes": f["kv_dst_bytes"],
        "transient_bytes": f["transient_bytes"],
        "source_pinned_s": f["prefill_s"] + f["handoff_s"] + f["step_s"],  # until the admitted batch's next step
        # preallocated before the first streamed layer moves, until the transfer commits
        "destination_reserved_s": f["overlap_s"] + f["handoff_s"],
        "lifecycle": ["pin source", "reserve destination", "transfer", "commit", "release", "clean up"],
        "prefill_slots": f["prefill_slots"], "prefill_hold_capacity": f["hold_capacity"],
        "decode_admission": {
            "kv_capacity_bytes": float(dv["kv_capacity_bytes"][dr][0]),
            "tier_capacity_bytes": float(dv["tier_capacity_bytes"][dr][0]),  # inf (JSON null): no size given
            "active_kv_bytes": f["admission_batch"] * float(dv["kv_request_bytes"][dr][0]),
            "tier_kv_bytes": f["tier_kv_bytes"],
            "in_flight_reservations_bytes": f["reservation_bytes"],
            "retained_cache_bytes": retained_bytes,
            "admitted_batch": f["admission_batch"], "batch_before_ownership": f["batch_before_ownership"],
            "headroom_bytes": round(f["kv_headroom_bytes"]),  # whole bytes (no float residue beside a paced batch)
            # where even one sequence's arrivals, at its own step, would reserve more than HBM holds: the
            # pace per output token at which it admits them, memory and not the step setting the rate
            "memory_pace_s": f["pace_s"] if f["pace_s"] > f["decode_tpot_s"] else None,  # the pace applied
        },
    }
    c_p = min(f["prefill_capacity"], f["link_capacity"], f["hold_capacity"])
    doc["serving"] = {
        # capacities and the batch are one attention replica's: an instance holds dp of them
        "per": {"prefill": "instance" if prefill.dp == 1 else f"attention replica ({prefill.dp} per instance)",
                "decode": "instance" if decode.dp == 1 else f"attention replica ({decode.dp} per instance)"},
        "ttft_s": f["ttft_s"], "ttft_stat": w.ttft_stat, "ttft_unloaded_s": f["ttft_unloaded_s"],
        "tpot_s": f["decode_tpot_s"], "tpot_stat": w.tpot_stat, "prefill_s": f["prefill_s"],
        "request_s": f["request_s"],
        "ingress_capacity": f["ingress_capacity"],
        "decode_batch": f["admission_batch"], "prefill_capacity": c_p, "decode_capacity": f["decode_capacity"],
        "link_capacity": f["link_capacity"], "prefill_device_share": f["prefill_device_share"],
        "tokens_per_s_per_device": f["tokens_per_s_per_device"],
        "usd_per_million_tokens": f["usd_per_million_tokens"], "joules_per_token": f["joules_per_token"],
        "binding": BINDINGS[int(serv["binding"][0])],
    }
    # what ``check`` needs to charge a batch's fetches from the tier as the plan does: the sequences
    # HBM holds beside the retained cache and the reservations (the rest come from the tier)
    tier_values = {"hbm_batch": f["hbm_sequences"], **{k: float(dv[k][dr][0]) for k in ("tier_bytes_per_s",
                                                                                          "kv_request_bytes")}}
    reasons = ([] if c_p > 0 else ["prefill misses its TTFT target even unloaded"]) + (
        [] if f["admission_batch"] >= 1 else ["no decode admission room after reservations and retained cache"])
    return Plan(not reasons, reasons, doc, tier_values, f["decode_batch_capacity"])


def _runtimes(prefill: Pool, decode: Pool, runtime: Record) -> dict[str, Record]:
    """Accelerator id -> the runtime each pool runs (the plan's where a pool names none)."""
    pre, dec = prefill.runtime or runtime, decode.runtime or runtime
    if prefill.accelerator.id == decode.accelerator.id and pre is not dec:
        raise PdroofError(f"prefill and decode both on {decode.accelerator.id} run one runtime here, "
                          f"not {pre.id} and {dec.id}")
    return {prefill.accelerator.id: pre, decode.accelerator.id: dec}


def _row(st, acc: int, par: Parallelism, **labels) -> int | None:
    labels = {"acc": acc, "tp": par.tp, "dp": par.dp, "moe_ep": par.moe_ep, **labels}
    for i in range(len(st)):
        if all(st.labels[k][i] == v for k, v in labels.items()):
            return i
    return None


def _split_doc(model: Record, pool: Pool) -> dict:
    par = pool.split.for_model(model)
    return {"tp": par.tp, "dp": par.dp, "moe_tp": par.experts_tp, "moe_ep": par.moe_ep, "devices": par.devices,
            "instances": pool.count}
