"""Stage tables + joint grid → result columns: TTFT, TPOT, pool capacities and sizing, cost,
energy and the binding constraint, for every configuration, in vectorised blocks.

Only the configurations a ranking can return are kept (the best ``keep`` by the objective and the
Pareto candidates of each block); every configuration is counted, and infeasible stage rows are
counted with their reason times the partners they would have had.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..cost.inputs import model_inputs
from ..cost.numeric import evaluate
from ..spec.units import format_bytes
from .handoff import layerwise_overlap
from .load import prefill_utilisation, ttft_at
from .space import Candidates, PairLinks, Stage, aggregated_stage, decode_stage, pair_links, prefill_stage

OBJECTIVES = {  # column, True when larger is better
    "cost": ("usd_per_million_tokens", False),
    "throughput": ("tokens_per_s_per_device", True),
    # TTFT: the latency floor of an idle instance (at the operating load every pool sized by its
    # TTFT target sits at that target, so the statistic itself does not separate options)
    "ttft": ("ttft_unloaded_s", False),
    "tpot": ("tpot_s", False),
    "energy": ("joules_per_token", False),
}
PARETO_AXES = (("tokens_per_s_per_device", True), ("ttft_unloaded_s", False), ("tpot_s", False))
BLOCK = 400_000  # configurations per vectorised block
IMPOSSIBLE = "path or wire format not possible for the pair"


@dataclass
class Results:
    """Kept configurations as columns, with the counts of everything enumerated."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    total: int = 0
    feasible: int = 0
    dominated: int = 0  # feasible but provably no better than an evaluated one; not expanded
    filtered: int = 0   # excluded by --prefill-hw / --decode-hw
    evaluated: int = 0  # configurations evaluated in the vectorised grid
    infeasible: Counter = field(default_factory=Counter)


def score(cols: dict[str, np.ndarray], objective: str) -> np.ndarray:
    """Lower is better; NaN (unknown price or power) ranks last."""
    name, larger = OBJECTIVES[objective]
    v = cols[name].astype(float)
    v = -v if larger else v
    return np.where(np.isnan(v), np.inf, v)


def pareto_mask(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Non-dominated rows on PARETO_AXES (throughput per device up, TTFT down, TPOT down).

    Rows are visited in lexicographic order, so no row can be dominated by a later one; each
    chunk is checked against the front so far and against itself, vectorised."""
    pts = np.stack([-cols[n] if larger else cols[n] for n, larger in PARETO_AXES], axis=1)
    pts = np.where(np.isnan(pts), np.inf, pts)
    order = np.lexsort(pts.T[::-1])
    keep = np.zeros(len(pts), dtype=bool)
    front = np.empty((0, pts.shape[1]))
    for start in range(0, len(order), 512):
        idx = order[start:start + 512]
        p = pts[idx]
        if len(front):
            dom = (np.all(front[:, None, :] <= p[None], axis=2) & np.any(front[:, None, :] < p[None], axis=2)).any(0)
            idx, p = idx[~dom], p[~dom]
        inner = np.all(p[:, None, :] <= p[None], axis=2) & np.any(p[:, None, :] < p[None], axis=2)
        ok = ~inner.any(0)
        keep[idx[ok]] = True
        front = np.concatenate([front, p[ok]])
    return keep


def _serving(values: dict, c: Candidates, price, power) -> dict[str, np.ndarray]:
    w = c.workload
    if "prefill_utilisation" not in values:
        values = {**values, "prefill_utilisation": prefill_utilisation(values["prefill_s"], values["handoff_s"],
                                                                       w.ttft_s, w.ttft_stat)}
    return evaluate("serving", {**values, "output_tokens": float(w.output_tokens),
                                "request_rate": w.rate_per_s or 1.0, "device_budget": float(c.devices or 1),
                                **price, **power})


BINDINGS = ("prefill_compute", "link", "prefill_memory", "decode_bandwidth", "kv_capacity", "colocated_interference",
            "decode_ingress")
MODES = ("disaggregated", "aggregated")


def binding(cols: dict, share: np.ndarray, kv_bound: np.ndarray) -> np.ndarray:
    """Index into BINDINGS: the pool that needs more devices, and what limits it (the smallest
    of its capacities; for decode, memory when the batch stopped short of the TPOT limit)."""
    pre = np.argmin(np.stack([cols["prefill_capacity"], cols["link_capacity"], cols["hold_capacity"]]), axis=0)
    dec = np.where(kv_bound | (cols["admission_batch"] < cols["batch_before_ownership"]), 4, 3)
    dec = np.where(cols["ingress_capacity"] < cols["decode_batch_capacity"], 6, dec)
    return np.where(share > 0.5, pre, dec).astype(np.int8)


@dataclass
class Combos:
    """For each (prefill accelerator, decode accelerator, decode KV format): the useful
    (prefill KV format, path) choices, stored contiguously; and how many were physically possible."""

    start: np.ndarray      # [A, A, F] offset into wire/path
    count: np.ndarray      # [A, A, F] useful choices
    possible: np.ndarray   # [A, A] possible choices (before pruning), independent of the KV format
    wire: np.ndarray       # index into the prefill KV formats
    path: np.ndarray
    formats: list[str]     # decode KV formats, indexed by F


def combos(c: Candidates, links: PairLinks, wires: list[str], formats: list[str], prune: bool = True) -> Combos:
    """Useful choices: a path not dominated for the pair, and a prefill KV format the prefill side
    can write. A format other than the decode pool's is dominated when the prefill side could
    write the decode pool's own format and it is no narrower (more bytes and a conversion).
    Without ``prune``, every possible choice."""
    A = len(c.accelerators)
    wire_b = np.array([format_bytes(x) for x in wires])
    producible = np.array([[wf in a.precision_paths.kv for wf in wires] for a in c.accelerators])
    start = np.zeros((A, A, len(formats)), dtype=np.int64)
    count = np.zeros_like(start)
    possible = np.zeros((A, A), dtype=np.int64)
    ws, ks = [], []
    for i in range(A):
        for j in range(A):
            possible[i, j] = int(producible[i].sum()) * int(links.ok[i, j].sum())
            for f, fmt in enumerate(formats):
                start[i, j, f] = len(ws)
                own = fmt in wires and producible[i, wires.index(fmt)]
                dominated = own & (np.array(wires) != fmt) & (wire_b >= format_bytes(fmt))
                for wi in np.flatnonzero(producible[i] & ~(dominated & prune)):
                    for k in np.flatnonzero(links.useful[i, j] if prune else links.ok[i, j]):
                        ws.append(wi)
                        ks.append(k)
                count[i, j, f] = len(ws) - start[i, j, f]
    return Combos(start, count, possible, np.array(ws, dtype=np.int64), np.array(ks, dtype=np.int64), formats)


def disaggregated_block(c: Candidates, pre: Stage, dec: Stage, links: PairLinks, wires: list[str], cb: Combos,
                        p_rows: np.ndarray, d_rows: np.ndarray, prices, powers, mi: dict):
    """Every useful combination of the given prefill rows, decode rows, wire formats and paths,
    evaluated. Returns the columns (with stage and choice indices) and (possible, useful) counts."""
    acc_p = np.asarray(pre.labels["acc"])[p_rows]
    acc_d = np.asarray(dec.labels["acc"])[d_rows]
    f_d = np.array([cb.formats.index(dec.labels["kv"][d]) for d in d_rows], dtype=np.int64)
    P, D = len(p_rows), len(d_rows)
    pp, dd = (a.ravel() for a in np.meshgrid(np.arange(P), np.arange(D), indexing="ij"))
    n_possible = int(cb.possible[acc_p[pp], acc_d[dd]].sum())
    key = (acc_p[pp], acc_d[dd], f_d[dd])
    n = cb.count[key]
    ip, idd = np.repeat(pp, n), np.repeat(dd, n)
    first = np.repeat(cb.start[key], n)
    local = np.arange(len(ip)) - np.repeat(np.cumsum(n) - n, n)
    iw, ik = cb.wire[first + local], cb.path[first + local]
    counts = (n_possible, len(ip))
    pr, dr = p_rows[ip], d_rows[idd]
    cols = handoff_columns(c, pre, dec, links, wires, pr, dr, iw, ik, acc_p[ip], acc_d[idd], mi)
    cols.update(serving_columns(c, pre, dec, cols, pr, dr, prices[acc_p[ip]], prices[acc_d[idd]],
                                powers[acc_p[ip]], powers[acc_d[idd]]))
    cols.update({"mode": np.zeros(len(pr), dtype=np.int8), "prefill_row": pr, "decode_row": dr, "wire": iw, "path": ik,
                 "inferred": pre.values["inferred"][pr] + dec.values["inferred"][dr]})
    # the prefill pool is sized to its target (its TTFT statistic meets it at capacity by construction):
    # a positive capacity is the TTFT condition
    cols["feasible"] = (cols["prefill_rate"] > 0) & (cols["admission_batch"] >= 1)
    return cols, counts


def serving_columns(c: Candidates, pre: Stage, dec: Stage, h: dict, pr, dr, price_p, price_d, power_p,
                    power_d) -> dict[str, np.ndarray]:
    """Capacities, pool sizing, cost and energy, ownership terms and the binding constraint of
    disaggregated configurations, given their handoff columns ``h``."""
    pv, dv = pre.values, dec.values
    out = _serving({"prefill_s": h["prefill_s"], "handoff_s": h["handoff_s"], "step_s": dv["step_s"][dr],
                    "decode_batch": dv["decode_batch"][dr], "hbm_batch": dv["hbm_batch"][dr],
                    "tier_bytes_per_s": dv["tier_bytes_per_s"][dr], "kv_request_bytes": dv["kv_request_bytes"][dr],
                    "link_request_s": h["link_request_s"], "ingress_request_s": h["ingress_request_s"],
                    "overlap_s": h["overlap_s"], "tp_prefill": pv["tp"][pr], "tp_decode": dv["tp"][dr],
                    "kv_dst_bytes": h["kv_dst_bytes"], "prefill_slots": h["prefill_slots"],
                    "admission_wait_s": dv["step_s"][dr], "kv_capacity_bytes": dv["kv_capacity_bytes"][dr],
                    "retained_bytes": c.retained_bytes},
                   c, {"price_prefill": price_p, "price_decode": price_d},
                   {"power_prefill": power_p, "power_decode": power_d})
    # TTFT: the target's statistic at the load each prefill instance runs at (its capacity); TPOT:
    # decode steps carry no prompts, so every statistic is the step at the admitted batch
    ttft = ttft_at(out["prefill_rate"], h["prefill_s"], h["handoff_s"], c.workload.ttft_stat)
    out.update({"ttft_s": ttft, "ttft_unloaded_s": h["prefill_s"] + h["handoff_s"], "tpot_s": out["tiered_step_s"],
                "batch_before_ownership": dv["decode_batch"][dr], "decode_batch": out["admission_batch"]})
    out["binding"] = binding(out, out["prefill_device_share"], dv["kv_bound"][dr])
    return out


PLACEMENTS = ("producer", "transport", "consumer", "direct")


def handoff_columns(c: Candidates, pre: Stage, dec: Stage, links: PairLinks, wires: list[str], pr, dr, iw, ik,
                    acc_p, acc_d, mi: dict, convert=None, redistribute=None) -> dict[str, np.ndarray]:
    """The KV handoff of each configuration: bytes each side holds, the transfer in either
    format, where a conversion or redistribution runs (the cheapest placement), and its cost.
    Without ``convert``/``redistribute`` they follow from the formats and the TP partitioning
    (both pools of one runtime share its page layout)."""
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
        dst_fmt = np.array([wires.index(k) if k in wires else -1 for k in dec.labels["kv"]])[dr]
        convert = (dst_fmt != iw).astype(float)
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
                    "tp_prefill": 0.0, "tp_decode": av["tp"][rows], "kv_dst_bytes": 0.0, "prefill_slots": 1.0,
                    "admission_wait_s": 0.0, "kv_capacity_bytes": np.inf, "retained_bytes": 0.0},
                   c, {"price_prefill": 0.0, "price_decode": prices[acc]},
                   {"power_prefill": 0.0, "power_decode": powers[acc]})
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
        "binding": np.where(av["kv_bound"][rows], 4, 5).astype(np.int8),
        "feasible": np.ones(n, dtype=bool),
    })
    return cols


def _only(c: Candidates, st: Stage, ids) -> np.ndarray:
    if not ids:
        return np.ones(len(st), dtype=bool)
    allowed = {i for i, a in enumerate(c.accelerators) if a.id in ids}
    return np.array([a in allowed for a in st.labels["acc"]], dtype=bool)


def _take(cols: dict, idx: np.ndarray) -> dict:
    return {k: v[idx] for k, v in cols.items()}


def _concat(parts: list[dict]) -> dict:
    parts = [p for p in parts if p and len(p["mode"])]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _best(v: np.ndarray, k: int) -> np.ndarray:
    if len(v) <= k:
        return np.arange(len(v))
    return np.argpartition(v, k)[:k]


def _select(cols: dict, objective: str, keep: int, pareto: bool) -> dict:
    """The best ``keep`` feasible rows by the objective (ties broken towards the faster
    handoff), plus every Pareto-optimal row when ``pareto``. Only the chosen rows are copied."""
    feas = np.flatnonzero(cols["feasible"])
    if len(feas) == 0:
        return {}
    name, _ = OBJECTIVES[objective]
    s = score({name: cols[name][feas]}, objective)
    cand = _best(s, 8 * keep)
    # ties: the configuration whose factors were measured for its formats, then the faster handoff
    top = cand[np.lexsort((cols["transfer_s"][feas[cand]], cols["inferred"][feas[cand]], s[cand]))][:keep]
    if not pareto:
        return _take(cols, feas[top])
    axes = {n: cols[n][feas] for n, _ in PARETO_AXES}
    pts = np.stack(list(axes.values()), axis=1)
    _, first = np.unique(pts, axis=0, return_index=True)  # identical outcomes: one representative
    front = first[pareto_mask(_take(axes, first))]
    return _take(cols, feas[np.union1d(top, front)])


def run(c: Candidates, objective: str = "cost", keep: int = 200, pareto: bool = False,
        progress: Callable[[int, int], None] | None = None, include_aggregated: bool = True,
        prune: bool = True) -> tuple[Results, dict]:
    """Enumerate and evaluate the whole design space; returns the kept results and the stage
    tables (for reporting infeasible stage rows). ``prune`` skips configurations provably no
    better than one evaluated (a slower path, a wider wire format, a tier that adds no batch);
    without it every feasible configuration is evaluated."""
    res = Results()
    pre, dec = prefill_stage(c), decode_stage(c)
    agg = aggregated_stage(c) if include_aggregated else Stage()
    wires = sorted({k for a in c.accelerators for k in a.precision_paths.kv if not c.kv or k in c.kv})
    if "bf16" in wires and "fp16" in wires:
        wires.remove("fp16")  # the same bytes on the wire
    prices = np.array([a.price_usd_per_hour if a.price_usd_per_hour else np.nan for a in c.accelerators])
    powers = np.array([a.power_w if a.power_w else np.nan for a in c.accelerators])
    mi = model_inputs(c.model)

    A = len(c.accelerators)
    combos_n = len(wires) * len(c.paths)
    res.total = len(pre) * len(dec) * combos_n + len(agg)
    # prefill rows: infeasible, excluded by --prefill-hw, or carried on
    p_allowed = _only(c, pre, c.prefill_ids)
    p_ok = np.flatnonzero(pre.feasible & p_allowed)
    for reason, n in Counter(r for r in pre.reasons if r).items():
        res.infeasible[f"prefill: {reason}"] += n * len(dec) * combos_n
    res.filtered += int((pre.feasible & ~p_allowed).sum()) * len(dec) * combos_n
    # decode rows against the prefill rows carried on
    d_allowed = _only(c, dec, c.decode_ids)
    for reason, n in Counter(r for r in dec.reasons if r).items():
        res.infeasible[f"decode: {reason}"] += n * len(p_ok) * combos_n
    res.filtered += int((dec.feasible & ~d_allowed).sum()) * len(p_ok) * combos_n
    tier_dominated = dec.values.get("tier_dominated", np.zeros(len(dec), bool)) if prune else np.zeros(len(dec), bool)
    d_ok = np.flatnonzero(dec.feasible & d_allowed & ~tier_dominated)
    d_skip = np.flatnonzero(dec.feasible & d_allowed & tier_dominated)
    links = pair_links(c)
    cb = combos(c, links, wires, sorted(set(dec.labels["kv"])), prune)
    if len(d_skip) and len(p_ok):  # a slower tier that adds no batch: same outcome as its HBM row
        count_p = np.bincount(np.asarray(pre.labels["acc"])[p_ok], minlength=A)
        count_d = np.bincount(np.asarray(dec.labels["acc"])[d_skip], minlength=A)
        possible = int(count_p @ cb.possible @ count_d)
        res.dominated += possible
        res.infeasible[IMPOSSIBLE] += len(p_ok) * len(d_skip) * combos_n - possible
    # aggregated rows
    a_allowed = _only(c, agg, (c.prefill_ids or frozenset()) | (c.decode_ids or frozenset()))
    for reason, n in Counter(r for r in agg.reasons if r).items():
        res.infeasible[f"aggregated: {reason}"] += n
    parts = []
    if include_aggregated and len(agg):
        res.filtered += int((agg.feasible & ~a_allowed).sum())
        a_cols = aggregated_rows(c, agg, prices, powers, agg.feasible & a_allowed)
        res.feasible += int(a_cols["feasible"].sum())
        res.evaluated += len(a_cols["feasible"])
        parts.append(_select(a_cols, objective, keep, pareto))
    if len(p_ok) == 0 or len(d_ok) == 0:
        p_ok = p_ok[:0]
    per_p = max(1, len(d_ok) * combos_n)
    step = max(1, BLOCK // max(1, len(d_ok) * 4))
    done = 0
    for start in range(0, len(p_ok), step):
        rows = p_ok[start:start + step]
        n_all = len(rows) * len(d_ok) * combos_n
        cols, (n_possible, n_useful) = disaggregated_block(c, pre, dec, links, wires, cb, rows, d_ok, prices,
                                                          powers, mi)
        res.infeasible[IMPOSSIBLE] += n_all - n_possible
        res.dominated += n_possible - n_useful
        ttft_ok = cols["prefill_rate"] > 0
        res.infeasible["misses TTFT (prefill, queueing margin and handoff)"] += int((~ttft_ok).sum())
        res.infeasible["no decode admission room after reservations and retained cache"] += int(
            (ttft_ok & ~cols["feasible"]).sum())
        res.feasible += int(cols["feasible"].sum())
        res.evaluated += n_useful
        parts.append(_select(cols, objective, keep, pareto))
        done += n_all
        if progress:
            progress(done, len(p_ok) * per_p)
    res.columns = _concat(parts)
    stages = {"prefill": pre, "decode": dec, "aggregated": agg, "links": links, "wires": wires}
    return res, stages
