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

from .inputs import model_inputs
from .numeric import evaluate
from .space import Candidates, PairLinks, Stage, aggregated_stage, decode_stage, pair_links, prefill_stage
from .units import format_bytes

OBJECTIVES = {  # column, True when larger is better
    "cost": ("usd_per_million_tokens", False),
    "throughput": ("tokens_per_s_per_device", True),
    "ttft": ("ttft_s", False),
    "tpot": ("tpot_s", False),
    "energy": ("joules_per_token", False),
}
PARETO_AXES = (("tokens_per_s_per_device", True), ("ttft_s", False), ("tpot_s", False))
BLOCK = 400_000  # configurations per vectorised block


@dataclass
class Results:
    """Kept configurations as columns, with the counts of everything enumerated."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    total: int = 0
    feasible: int = 0
    dominated: int = 0  # feasible but never better than a kept alternative; not expanded
    evaluated: int = 0  # configurations evaluated in the vectorised grid
    infeasible: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason -> one configuration it excludes

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


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
    return evaluate("serving", {**values, "ttft_target_s": w.ttft_s, "output_tokens": float(w.output_tokens),
                                "request_rate": w.rate_per_s or 1.0, "device_budget": float(c.devices or 1),
                                **price, **power})


BINDINGS = ("prefill_compute", "link", "decode_bandwidth", "kv_capacity", "colocated_interference")
MODES = ("disaggregated", "aggregated")


def _binding(cols: dict, share: np.ndarray, kv_bound: np.ndarray) -> np.ndarray:
    """Index into BINDINGS: the pool that needs more devices, and what limits it."""
    pre = np.where(cols["link_capacity"] < cols["prefill_capacity"], 1, 0)
    dec = np.where(kv_bound, 3, 2)
    return np.where(share > 0.5, pre, dec).astype(np.int8)


@dataclass
class Combos:
    """For each (prefill accelerator, decode accelerator, decode KV storage bytes): the useful
    (wire format, path) choices, stored contiguously; and how many were physically possible."""

    start: np.ndarray      # [A, A, F] offset into wire/path
    count: np.ndarray      # [A, A, F] useful choices
    possible: np.ndarray   # [A, A] possible choices (before pruning), independent of the KV format
    wire: np.ndarray
    path: np.ndarray
    store_bytes: np.ndarray  # [F] distinct KV storage sizes


def combos(c: Candidates, links: PairLinks, wires: list[str], store_bytes: np.ndarray, prune: bool = True) -> Combos:
    """Useful choices: a path not dominated for the pair, a wire format the prefill side can
    write and no wider than what the decode side stores (more bytes, then a conversion).
    Without ``prune``, every possible choice."""
    A = len(c.accelerators)
    wire_b = np.array([format_bytes(x) for x in wires])
    producible = np.array([[wf in a.precision_paths.kv for wf in wires] for a in c.accelerators])
    start = np.zeros((A, A, len(store_bytes)), dtype=np.int64)
    count = np.zeros_like(start)
    possible = np.zeros((A, A), dtype=np.int64)
    ws, ks = [], []
    for i in range(A):
        for j in range(A):
            possible[i, j] = int(producible[i].sum()) * int(links.ok[i, j].sum())
            for f, sb in enumerate(store_bytes):
                start[i, j, f] = len(ws)
                for wi in np.flatnonzero(producible[i] & ((wire_b <= sb) | (not prune))):
                    for k in np.flatnonzero(links.useful[i, j] if prune else links.ok[i, j]):
                        ws.append(wi)
                        ks.append(k)
                count[i, j, f] = len(ws) - start[i, j, f]
    return Combos(start, count, possible, np.array(ws, dtype=np.int64), np.array(ks, dtype=np.int64), store_bytes)


def disaggregated_block(c: Candidates, pre: Stage, dec: Stage, links: PairLinks, wires: list[str], cb: Combos,
                        p_rows: np.ndarray, d_rows: np.ndarray, prices, powers, mi: dict):
    """Every useful combination of the given prefill rows, decode rows, wire formats and paths,
    evaluated. Returns the columns (with stage and choice indices) and (possible, useful) counts."""
    w = c.workload
    acc_p = np.asarray(pre.labels["acc"])[p_rows]
    acc_d = np.asarray(dec.labels["acc"])[d_rows]
    f_d = np.searchsorted(cb.store_bytes, dec.values["kv_elem_bytes"][d_rows])
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
    dv_kv = dec.values["kv_elem_bytes"]
    pr, dr = p_rows[ip], d_rows[idd]
    pv, dv = pre.values, dec.values
    wire_b = np.array([format_bytes(x) for x in wires])[iw]
    store_b = dv_kv[dr]
    path_lat = np.array([p.latency_s for p in c.paths])[ik]
    path_eff = np.array([p.efficiency for p in c.paths])[ik]
    path_bw = links.bandwidth[acc_p[ip], acc_d[idd], ik]
    layers = mi["layers"]
    prefill_s = pv["prefill_s"][pr]
    tr = evaluate("transfer", {**mi, "tp": pv["tp"][pr], "transfer_tokens": float(w.prompt_tokens),
                               "page_tokens": float(w.prompt_tokens), "wire_bytes": wire_b,
                               "path_latency_s": path_lat, "path_bytes_per_s": path_bw, "eff_path": path_eff,
                               "overlap_s": prefill_s * (layers - 1) / layers})
    # A wire format other than the decode pool's storage format is converted on arrival: one pass
    # reading the wire bytes and writing the stored ones at the decode device's HBM bandwidth.
    kv_prompt_store = dv["kv_request_bytes"][dr] * w.prompt_tokens / w.mean_context
    convert_s = np.where(wire_b != store_b, kv_prompt_store * (1 + wire_b / store_b)
                         / (dv["mem_bytes_per_s"][dr] * dv["eff_memory"][dr]), 0.0)
    handoff = tr["exposed_seconds"] + convert_s
    link_s = tr["bytes"] / (path_bw * path_eff)
    out = _serving({"prefill_s": prefill_s, "handoff_s": handoff, "step_s": dv["step_s"][dr],
                    "decode_batch": dv["decode_batch"][dr], "hbm_batch": dv["hbm_batch"][dr],
                    "tier_bytes_per_s": dv["tier_bytes_per_s"][dr], "kv_request_bytes": dv["kv_request_bytes"][dr],
                    "link_request_s": link_s, "tp_prefill": pv["tp"][pr], "tp_decode": dv["tp"][dr]},
                   c, {"price_prefill": prices[acc_p[ip]], "price_decode": prices[acc_d[idd]]},
                   {"power_prefill": powers[acc_p[ip]], "power_decode": powers[acc_d[idd]]})
    cols = dict(out)
    cols.update({
        "mode": np.zeros(len(pr), dtype=np.int8), "prefill_row": pr, "decode_row": dr, "wire": iw, "path": ik,
        "prefill_s": prefill_s, "transfer_s": tr["seconds"], "exposed_transfer_s": tr["exposed_seconds"],
        "convert_s": convert_s, "transfer_bytes": tr["bytes"],
        "ttft_s": prefill_s + handoff, "tpot_s": out["tiered_step_s"], "decode_batch": dv["decode_batch"][dr],
    })
    cols["binding"] = _binding(cols, out["prefill_device_share"], dv["kv_bound"][dr])
    cols["feasible"] = (out["prefill_rate"] > 0) & (cols["ttft_s"] <= w.ttft_s)
    return cols, counts


def aggregated_rows(c: Candidates, agg: Stage, prices, powers) -> dict[str, np.ndarray]:
    rows = np.flatnonzero(agg.feasible)
    av = agg.values
    acc = np.asarray(agg.labels["acc"])[rows]
    out = _serving({"prefill_s": 1.0, "handoff_s": 0.0, "step_s": av["tpot_s"][rows],
                    "decode_batch": av["concurrency"][rows], "hbm_batch": av["concurrency"][rows],
                    "tier_bytes_per_s": np.inf, "kv_request_bytes": 0.0, "link_request_s": 1.0,
                    "tp_prefill": 0.0, "tp_decode": av["tp"][rows]},
                   c, {"price_prefill": 0.0, "price_decode": prices[acc]},
                   {"power_prefill": 0.0, "power_decode": powers[acc]})
    cols = dict(out)
    n = len(rows)
    cols.update({
        "mode": np.ones(n, dtype=np.int8), "prefill_row": np.full(n, -1), "decode_row": rows,
        "wire": np.full(n, -1), "path": np.full(n, -1), "prefill_s": np.full(n, np.nan),
        "transfer_s": np.zeros(n), "exposed_transfer_s": np.zeros(n), "convert_s": np.zeros(n),
        "transfer_bytes": np.zeros(n), "ttft_s": av["ttft_s"][rows], "tpot_s": av["tpot_s"][rows],
        "decode_batch": av["concurrency"][rows],
        "binding": np.where(av["kv_bound"][rows], 3, 4).astype(np.int8),
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
    handoff), plus every Pareto-optimal row when ``pareto``."""
    feas = np.flatnonzero(cols["feasible"])
    if len(feas) == 0:
        return {}
    sub = _take(cols, feas)
    s = score(sub, objective)
    cand = _best(s, 8 * keep)
    top = cand[np.lexsort((sub["transfer_s"][cand], s[cand]))][:keep]
    if not pareto:
        return _take(cols, feas[top])
    pts = np.stack([sub[n] for n, _ in PARETO_AXES], axis=1)
    _, first = np.unique(pts, axis=0, return_index=True)  # identical outcomes: one representative
    front = first[pareto_mask(_take(sub, first))]
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
    links = pair_links(c)
    wires = sorted({k for a in c.accelerators for k in a.precision_paths.kv if not c.kv or k in c.kv})
    if "bf16" in wires and "fp16" in wires:
        wires.remove("fp16")  # the same bytes on the wire
    prices = np.array([a.price_usd_per_hour if a.price_usd_per_hour else np.nan for a in c.accelerators])
    powers = np.array([a.power_w if a.power_w else np.nan for a in c.accelerators])
    mi = model_inputs(c.model)

    p_ok = np.flatnonzero(pre.feasible & _only(c, pre, c.prefill_ids))
    d_feasible = dec.feasible & _only(c, dec, c.decode_ids)
    dominated_tier = dec.values.get("tier_dominated", np.zeros(len(dec), bool)) if prune else np.zeros(len(dec), bool)
    d_ok = np.flatnonzero(d_feasible & ~dominated_tier)
    d_dominated = int(d_feasible.sum()) - len(d_ok)
    combos_n = len(wires) * len(c.paths)
    res.total = len(pre) * len(dec) * combos_n + len(agg)
    for reason, n in Counter(r for r in pre.reasons if r).items():
        res.infeasible[f"prefill: {reason}"] += n * len(dec) * combos_n
    for reason, n in Counter(r for r in dec.reasons if r).items():
        res.infeasible[f"decode: {reason}"] += n * len(p_ok) * combos_n
    for reason, n in Counter(r for r in agg.reasons if r).items():
        res.infeasible[f"aggregated: {reason}"] += n

    parts = []
    if include_aggregated and len(agg):
        a_cols = aggregated_rows(c, agg, prices, powers)
        res.feasible += int(a_cols["feasible"].sum())
        res.evaluated += len(a_cols["feasible"])
        parts.append(_select(a_cols, objective, keep, pareto))
    cb = combos(c, links, wires, np.unique(dec.values["kv_elem_bytes"]) if len(dec) else np.zeros(0), prune)
    per_p = max(1, len(d_ok) * combos_n)
    step = max(1, BLOCK // max(1, len(d_ok) * 4))
    done = 0
    for start in range(0, len(p_ok), step):
        rows = p_ok[start:start + step]
        n_all = len(rows) * len(d_ok) * combos_n
        cols, (n_possible, n_useful) = disaggregated_block(c, pre, dec, links, wires, cb, rows, d_ok, prices,
                                                          powers, mi)
        res.infeasible["path or wire format not possible for the pair"] += n_all - n_possible
        res.dominated += n_possible - n_useful + d_dominated * len(rows) * combos_n
        missed = n_useful - int(cols["feasible"].sum())
        res.infeasible["misses TTFT (prefill plus handoff)"] += missed
        res.feasible += n_possible - missed + d_dominated * len(rows) * combos_n
        res.evaluated += n_useful
        parts.append(_select(cols, objective, keep, pareto))
        done += n_all
        if progress:
            progress(done, len(p_ok) * per_p)
    res.columns = _concat(parts)
    stages = {"prefill": pre, "decode": dec, "aggregated": agg, "links": links, "wires": wires}
    return res, stages
