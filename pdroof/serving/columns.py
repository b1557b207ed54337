"""The result columns of configurations, given their stage rows: the KV handoff (bytes on each
side, the transfer either way, where a conversion runs and what it costs), the serving capacities,
pool sizing, cost and energy, ownership terms and the binding constraint; for disaggregated pairs
and for the aggregated baseline."""

from __future__ import annotations

import numpy as np

from ..cost.numeric import arguments, evaluate
from ..spec.units import FP8_ENCODINGS, format_bytes
from .choices import PairLinks
from .handoff import layerwise_overlap
from .load import prefill_utilisation, ttft_at
from .sizing import whole_instances, whole_pools
from .space import BATCHES, Candidates, Stage

ADMISSION_PASSES = int(BATCHES[-1])  # a bound, never reached: each pass shrinks some row's batch by one at least
_GRID_ABOVE = np.searchsorted(BATCHES, np.arange(int(BATCHES[-1]) + 1))  # whole batch -> first grid point at or above


def _serving(values: dict, c: Candidates) -> dict[str, np.ndarray]:
    w = c.workload
    if "prefill_utilisation" not in values:
        outside = values["handoff_s"] + values.get("request_s", 0.0)
        values = {**values, "prefill_utilisation": prefill_utilisation(values["prefill_s"], outside, w.ttft_s,
                                                                       w.ttft_stat)}
    return evaluate("serving", {**values, "output_tokens": float(w.output_tokens), "tpot_target_s": w.tpot_s})


BINDINGS = ("prefill_compute", "link", "prefill_memory", "decode_bandwidth", "kv_capacity", "colocated_interference",
            "decode_ingress", "sequence_limit", "admission_passes")


MODES = ("disaggregated", "aggregated")


def binding(cols: dict, share: np.ndarray, kv_bound: np.ndarray, limit_bound: np.ndarray,
            admission_bound: np.ndarray) -> np.ndarray:
    """Index into BINDINGS: the pool that needs more devices, and what limits it (the smallest
    of its capacities; for decode, memory when the batch stopped short of the TPOT limit, or the
    engine's running-sequence limit where that, not memory, stopped it, or the engine's own
    admission passes where a larger batch within the target would serve less)."""
    pre = np.argmin(np.stack([cols["prefill_capacity"], cols["link_capacity"], cols["hold_capacity"]]), axis=0)
    crowded = cols["admission_batch"] < cols["batch_before_ownership"]  # by ownership, not the engine's limit
    dec = np.where(kv_bound & limit_bound & ~crowded, 7, 4)
    dec = np.where(kv_bound | crowded, dec, np.where(admission_bound, 8, 3))
    dec = np.where(cols["ingress_capacity"] < cols["decode_batch_capacity"], 6, dec)
    return np.where(share > 0.5, pre, dec).astype(np.int8)


def serving_columns(c: Candidates, pre: Stage, dec: Stage, h: dict, pr, dr, price_p, price_d, power_p,
                    power_d) -> dict[str, np.ndarray]:
    """Capacities, pool sizing, cost and energy, ownership terms and the binding constraint of
    disaggregated configurations, given their handoff columns ``h``."""
    pv, dv = pre.values, dec.values
    values = {"prefill_s": h["prefill_s"], "handoff_s": h["handoff_s"], "request_s": h["request_s"],
              "decode_batch": dv["decode_batch"][dr], "hbm_batch": dv["hbm_batch"][dr],
              "tier_bytes_per_s": dv["tier_bytes_per_s"][dr], "kv_request_bytes": dv["kv_request_bytes"][dr],
              "link_request_s": h["link_request_s"], "ingress_request_s": h["ingress_request_s"],
              "overlap_s": h["overlap_s"], "tp_prefill": pv["tp"][pr], "tp_decode": dv["tp"][dr],
              "dp_prefill": pv["dp"][pr], "dp_decode": dv["dp"][dr], "own_pass_admission": dv["own_pass_admission"][dr],
              "kv_dst_bytes": h["kv_dst_bytes"], "prefill_slots": h["prefill_slots"],
              "kv_capacity_bytes": dv["kv_capacity_bytes"][dr], "pace_s": 0.0,
              "tier_capacity_bytes": dv["tier_capacity_bytes"][dr], "retained_bytes": c.retained_bytes,
              "price_prefill": price_p, "price_decode": price_d, "power_prefill": power_p, "power_decode": power_d,
              **({"prefill_utilisation": h["prefill_utilisation"]} if "prefill_utilisation" in h else {})}
    out = _admitted(c, dec, dr, values)
    # TTFT: the target's statistic at the load each prefill instance runs at (its capacity); TPOT:
    # decode steps carry no prompts, so every statistic is the admitted batch's time per token (its
    # step times its passes per token)
    # (the handoff and the request's own overhead delay its first token, not the prefill server)
    outside = h["handoff_s"] + h["request_s"]
    ttft = ttft_at(out["prefill_rate"], h["prefill_s"], outside, c.workload.ttft_stat)
    out.update({"ttft_s": ttft, "ttft_unloaded_s": h["prefill_s"] + outside, "tpot_s": out["decode_tpot_s"],
                "batch_before_ownership": dv["decode_batch"][dr], "decode_batch": out["admission_batch"]})
    out["binding"] = binding(out, out["prefill_device_share"], dv["kv_bound"][dr], dv["limit_bound"][dr],
                             dv["admission_bound"][dr])
    # whole instances, each of dp attention replicas (the capacities' unit)
    dp_p, dp_d = pv["dp"][pr], dv["dp"][dr]
    stock = c.stock()
    if stock is not None:
        acc_p, acc_d = np.asarray(pre.labels["acc"])[pr], np.asarray(dec.labels["acc"])[dr]
        stock = (stock[acc_p], stock[acc_d], acc_p == acc_d)
    out.update(whole_pools(dp_p * out["prefill_rate"], pv["tp"][pr] * dp_p, dp_d * out["decode_capacity"],
                           dv["tp"][dr] * dp_d, c.workload.rate_per_s, c.devices, stock))
    return _built(c, out, price_p, price_d, power_p, power_d)


def _admitted(c: Candidates, dec: Stage, dr, values: dict) -> dict[str, np.ndarray]:
    """The serving columns at the batch ownership admits. The decode stage's step is that of its batch;
    where the retained cache and the reservations of arriving transfers leave HBM room for fewer
    sequences, those step faster, so their replacements arrive sooner and reserve more: the columns
    are evaluated again at the step of the batch admitted, never above it, until it holds (a faster
    step's longer slack could let a slower tier take more, whose fetches would slow it again).
    Where a step would leave room for no sequence at all (one sequence's replacements could not all
    reserve at its pace), memory, not the step, sets the rate: one sequence at its own step, admitted
    at the pace HBM holds its reservations (``memory_pace``). Where a slower tier holds part of the
    batch, the same instance with its KV in HBM alone (at the batch it would run so, as the tier's HBM
    row does) stands unless the tier serves more requests/s: a tier takes what it can fetch within the
    TPOT target, which can cost more in fetches than it adds."""
    n = len(dr)
    dv = dec.values
    out = _settled(c, dec, dr, values, dv["step_s"][dr])
    tiered = np.flatnonzero(out["tier_kv_bytes"] > 0)
    if not len(tiered):
        return out
    d = dr[tiered]
    alone = _settled(c, dec, d, {**_take(values, tiered, n), "decode_batch": dv["hbm_alone_batch"][d],
                                 "tier_capacity_bytes": 0.0}, dv["hbm_alone_step_s"][d])
    better = alone["decode_capacity"] >= out["decode_capacity"][tiered]  # a tie: HBM's shorter step
    if not better.any():
        return out
    return _replaced(out, tiered[better], {k: np.broadcast_to(v, better.shape)[better] for k, v in alone.items()})


def _settled(c: Candidates, dec: Stage, dr, values: dict, step) -> dict[str, np.ndarray]:
    """The serving columns at the stage's ``step``, then at the step of the batch admitted until that
    batch holds (``_admitted``), with the step and the pace they take (``step_s``; ``pace_s``, 0 where
    the step sets the rate): each pass admits no more than the batch whose step it takes, so the batch
    only shrinks and the passes end. Rows whose step leaves room for no sequence run one at its own
    step, admitted at the pace memory holds its arrivals' reservations (``memory_pace_s``; none where
    HBM has no room for them at any pace)."""
    n = len(dr)
    out = {**_serving({**values, "step_s": step, "admission_wait_s": step}, c), "step_s": step, "pace_s": np.zeros(n)}
    none = out["admission_batch"] < 1
    rows = np.flatnonzero(~none & (out["admission_batch"] < values["decode_batch"]))
    b, t = out["admission_batch"][rows], step[rows]
    moving = np.arange(len(rows))
    fixed = {"output_tokens": float(c.workload.output_tokens), "tpot_target_s": c.workload.tpot_s}
    sub = _take({k: values[k] for k in arguments("serving", ("admission_batch",)) if k in values}, rows, n)
    for _ in range(ADMISSION_PASSES):
        faster = _step_at(dec, dr[rows[moving]], b[moving])
        moving, faster = moving[faster < t[moving]], faster[faster < t[moving]]
        if not len(moving):
            break
        # at most the batch whose step this is (a faster step's slack may let a slower tier take more)
        part = {**_take(sub, moving, len(rows)), "decode_batch": b[moving]}
        again = evaluate("serving", {**part, **fixed, "step_s": faster}, ("admission_batch",))["admission_batch"]
        room = again >= 1
        none[rows[moving[~room]]] = True
        moving = moving[room]
        b[moving], t[moving] = again[room], faster[room]
    done = np.flatnonzero((t < step[rows]) & ~none[rows])
    paced = np.flatnonzero(none)
    if not len(done) + len(paced):
        return out
    one = np.ones(len(paced))
    alone = _step_at(dec, dr[paced], one)  # one sequence's step: its slack decides whether the tier may hold it
    pace = evaluate("serving", {**_take(values, paced, n), **fixed, "decode_batch": one, "step_s": alone},
                    ("memory_pace_s",))["memory_pace_s"]
    pace = np.where(np.isfinite(pace), pace, 0.0)  # no pace holds a destination: at its own step none fits
    idx = np.concatenate([rows[done], paced])
    steps = np.concatenate([t[done], alone])
    paces = np.concatenate([np.zeros(len(done)), pace])
    # a sequence joins at the next step after its transfer, paced or not (admission_wait_s: the step)
    again = {**_serving({**_take(values, idx, n), "decode_batch": np.concatenate([b[done], one]), "step_s": steps,
                         "pace_s": paces, "admission_wait_s": steps}, c), "step_s": steps, "pace_s": paces}
    return _replaced(out, idx, again)


def _replaced(out: dict, rows: np.ndarray, new: dict) -> dict[str, np.ndarray]:
    """``out``'s columns, each a whole array of its own, with ``rows`` taken from ``new``."""
    n = len(out["step_s"])
    out = {k: np.array(np.broadcast_to(v, (n,)), dtype=float) for k, v in out.items()}
    for k, v in new.items():
        out[k][rows] = v
    return out


def _take(values: dict, idx: np.ndarray, n: int) -> dict:
    """The entries of ``idx`` from each column of ``n`` rows (scalars as they are)."""
    return {k: (v[idx] if np.ndim(v) and len(v) == n else v) for k, v in values.items()}


def _step_at(dec: Stage, d_rows, batch) -> np.ndarray:
    """The decode step of stage rows ``d_rows`` at a whole ``batch`` of sequences (at least one, at most
    the row's batch), interpolated on the batch grid the stage evaluated (exact at its points; between
    them the step is within about 1% of linear)."""
    curve = dec.values["step_by_batch"]
    i = np.clip(_GRID_ABOVE[np.minimum(batch, BATCHES[-1]).astype(np.int64)], 1, len(BATCHES) - 1)
    share = (batch - BATCHES[i - 1]) / (BATCHES[i] - BATCHES[i - 1])
    at = d_rows * curve.shape[1] + i  # flat positions: one gather instead of a two-axis one
    flat = curve.ravel()
    lo = flat[at - 1]
    return lo + share * (flat[at] - lo)


def _built(c: Candidates, out: dict, price_p, price_d, power_p, power_d) -> dict:
    """Rows sized for a rate, a device budget or an inventory: output per device, cost and energy per
    token are the built deployment's (whole instances), not those of pools at scale."""
    if not (c.workload.rate_per_s or c.devices or c.inventory is not None):
        return out
    out.update(evaluate("deployment", {"requests_per_s": out["requests_per_s"],
                                       "output_tokens": float(c.workload.output_tokens),
                                       "devices_prefill": out["devices_p"], "devices_decode": out["devices_d"],
                                       "price_prefill": price_p, "price_decode": price_d,
                                       "power_prefill": power_p, "power_decode": power_d}))
    return out


PLACEMENTS = ("producer", "transport", "consumer", "direct")


def handoff_columns(c: Candidates, pre: Stage, dec: Stage, links: PairLinks, wires: list[str], pr, dr, iw, ik,
                    acc_p, acc_d, mi: dict, convert=None, redistribute=None) -> dict[str, np.ndarray]:
    """The KV handoff of each configuration: bytes each side holds, the transfer in either
    format, where a conversion or redistribution runs (the cheapest placement), and its cost.
    Without ``convert``/``redistribute`` they follow from the formats and the TP partitioning
    (runtime profiles carry no page layout: both pools share one, whichever engine each runs)."""
    w = c.workload
    pv, dv = pre.values, dec.values
    src_elem = np.array([format_bytes(x) for x in wires])[iw]
    dst_elem = dv["kv_elem_bytes"][dr]
    paths = c.paths
    lat = np.array([p.latency_s for p in paths])[ik]
    eff = np.array([p.efficiency for p in paths])[ik]
    bw = links.bandwidth[acc_p, acc_d, ik]
    prefill_s = pv["prefill_s"][pr]
    overlap = layerwise_overlap(prefill_s, mi["layers"])
    base = {**mi, "tp": pv["tp"][pr], "tp_consumer": dv["tp"][dr], "transfer_tokens": float(w.prompt_tokens),
            "page_tokens": float(w.prompt_tokens), "path_latency_s": lat, "path_bytes_per_s": bw,
            "eff_path": eff, "overlap_s": overlap}
    t_src = evaluate("transfer", {**base, "wire_bytes": src_elem})
    t_dst = evaluate("transfer", {**base, "wire_bytes": dst_elem})
    shards_p = np.minimum(pv["tp"][pr], mi["kv_shardable"])
    shards_d = np.minimum(dv["tp"][dr], mi["kv_shardable"])
    # the request's KV per decode rank, in the consumer's format: the same sequence bytes as the
    # transfer's (sliding layers capped), over the consumer's shards
    kv_dst = t_dst["bytes"] * shards_p / shards_d
    if convert is None:  # a different format, even of the same width (int8 vs fp8), is converted
        if "kv_wire" not in dec.values:  # each decode row's KV format as a wire index, once per stage
            dec.values["kv_wire"] = np.array([wires.index(k) if k in wires else -1 for k in dec.labels["kv"]])
        dst_fmt = dec.values["kv_wire"][dr]
        # so is FP8 between accelerators that mean different bits by it (e4m3fn and e4m3fnuz)
        fp8_bits = np.array([FP8_ENCODINGS.index(a.precision_paths.fp8_encoding) for a in c.accelerators])
        is_fp8 = np.array([x == "fp8" for x in wires])[iw]
        convert = ((dst_fmt != iw) | (is_fp8 & (fp8_bits[acc_p] != fp8_bits[acc_d]))).astype(float)
    redistribute = (shards_p != shards_d).astype(float) if redistribute is None else redistribute
    host_bw = np.minimum(pv["host_bytes_per_s"][pr], dv["host_bytes_per_s"][dr])
    bounce = np.array([0.0 if p.kind in ("host_staged", "tcp") else 1.0 for p in paths])[ik]
    b = evaluate("boundary", {"overlap_s": overlap, "layers": mi["layers"], "kv_src_bytes": t_src["bytes"],
                              "kv_dst_bytes": kv_dst,
                              "format_ratio": dst_elem / src_elem,
                              "transfer_src_s": t_src["seconds"], "transfer_dst_s": t_dst["seconds"],
                              "needs_convert": convert, "needs_redistribute": redistribute,
                              "prod_bytes_per_s": pv["mem_bytes_per_s"][pr] * pv["eff_memory"][pr],
                              "cons_bytes_per_s": dv["mem_bytes_per_s"][dr] * dv["eff_memory"][dr],
                              "host_bytes_per_s": host_bw, "host_bounce": bounce})
    options = np.stack([b["producer_s"], b["transport_s"], b["consumer_s"]])
    choice = np.argmin(options, axis=0).astype(np.int8)
    work = np.maximum(convert, redistribute) > 0
    choice = np.where(work, choice, 3).astype(np.int8)
    via_dst = (choice == 0) & (convert > 0)  # the producer converted: the consumer's format travels
    wire_bytes = np.where(via_dst, t_dst["bytes"], t_src["bytes"])
    received = np.where(via_dst, t_dst["receiver_bytes"], t_src["receiver_bytes"])
    transfer_s = np.where(via_dst, t_dst["seconds"], t_src["seconds"])
    exposed = np.where(via_dst, t_dst["exposed_seconds"], t_src["exposed_seconds"])
    staging = np.where((choice == 1) | (bounce == 0), wire_bytes, 0.0)
    return {
        "prefill_s": prefill_s, "handoff_s": b["handoff_s"], "transfer_s": transfer_s, "exposed_transfer_s": exposed,
        "request_s": pv["request_s"][pr],  # the prefill runtime's time per request outside the passes
        "convert_s": b["handoff_s"] - exposed, "transfer_bytes": wire_bytes, "placement": choice,
        "kv_src_bytes": t_src["bytes"], "kv_dst_bytes": kv_dst, "staging_bytes": staging,
        "transient_bytes": t_src["bytes"] + staging + kv_dst, "link_request_s": wire_bytes / (bw * eff),
        "ingress_request_s": received / (bw * eff), "overlap_s": overlap,
        "needs_convert": convert, "needs_redistribute": redistribute,
        # requests whose producer-format KV the prefill instance can hold at once
        "prefill_slots": np.floor(pv["kv_capacity_bytes"][pr] / (pv["kv_bytes_per_elem"][pr] * src_elem)),
        **{f"{name}_option_s": b[f"{name}_s"] for name in PLACEMENTS[:3]},
    }


def aggregated_rows(c: Candidates, agg: Stage, prices, powers, allowed: np.ndarray) -> dict[str, np.ndarray]:
    rows = np.flatnonzero(allowed)
    av = agg.values
    acc = np.asarray(agg.labels["acc"])[rows]
    # no prefill pool: its capacities are infinite (and reported as not applicable), its devices zero
    out = _serving({"prefill_s": 0.0, "handoff_s": 0.0, "prefill_utilisation": 1.0, "step_s": av["tpot_mean_s"][rows],
                    "decode_batch": av["concurrency"][rows], "hbm_batch": av["concurrency"][rows],
                    "tier_bytes_per_s": np.inf, "kv_request_bytes": 1.0, "link_request_s": 0.0,
                    "ingress_request_s": 0.0, "overlap_s": 0.0,
                    "tp_prefill": 0.0, "tp_decode": av["tp"][rows], "dp_prefill": 1.0, "dp_decode": av["dp"][rows],
                    "kv_dst_bytes": 0.0, "prefill_slots": 1.0, "own_pass_admission": 0.0,  # no hand-off to take in
                    "admission_wait_s": 0.0, "pace_s": 0.0, "kv_capacity_bytes": np.inf, "tier_capacity_bytes": 0.0,
                    "retained_bytes": 0.0, "price_prefill": 0.0, "price_decode": prices[acc],
                    "power_prefill": 0.0, "power_decode": powers[acc]}, c)
    cols = dict(out)
    n = len(rows)
    for key in ("prefill_capacity", "link_capacity", "hold_capacity", "ingress_capacity"):
        cols[key] = np.full(n, np.nan)
    cols.update({
        "mode": np.ones(n, dtype=np.int8), "prefill_row": np.full(n, -1), "decode_row": rows,
        "inferred": av["inferred"][rows],
        "wire": np.full(n, -1), "path": np.full(n, -1), "prefill_s": np.full(n, np.nan),
        "transfer_s": np.zeros(n), "exposed_transfer_s": np.zeros(n), "convert_s": np.zeros(n),
        "transfer_bytes": np.zeros(n), "ttft_s": av["ttft_s"][rows], "tpot_s": av["tpot_s"][rows],
        "ttft_unloaded_s": av["ttft_unloaded_s"][rows],
        "handoff_s": np.zeros(n), "placement": np.full(n, 3, dtype=np.int8), "kv_src_bytes": np.zeros(n),
        "kv_dst_bytes": np.zeros(n), "staging_bytes": np.zeros(n), "transient_bytes": np.zeros(n),
        "link_request_s": np.zeros(n), "ingress_request_s": np.zeros(n), "overlap_s": np.zeros(n),
        "needs_convert": np.zeros(n), "needs_redistribute": np.zeros(n),
        "decode_batch": av["concurrency"][rows],
        "kv_headroom_bytes": av["kv_capacity_bytes"][rows] - av["concurrency"][rows] * av["kv_request_bytes"][rows],
        "binding": np.where(av["kv_bound"][rows], np.where(av["limit_bound"][rows], 7, 4), 5).astype(np.int8),
    })
    stock = c.stock()
    sized = whole_instances(av["dp"][rows] * out["decode_capacity"], av["tp"][rows] * av["dp"][rows],
                            c.workload.rate_per_s, c.devices if stock is None else stock[acc])
    cols.update(prefill_instances=np.zeros(n), decode_instances=sized.pop("instances"), **sized,
                devices_p=np.zeros(n), devices_d=sized["devices"], feasible=sized["requests_per_s"] > 0)
    return _built(c, cols, 0.0, prices[acc], 0.0, powers[acc])
