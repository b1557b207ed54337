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
from .choices import Combos, PairLinks, combos, handoff_classes, pair_links
from .columns import aggregated_rows, handoff_columns, serving_columns
from .load import prefill_utilisation
from .space import Candidates, Stage, aggregated_stage, decode_stage, instances, prefill_stage

OBJECTIVES = {  # column, True when larger is better
    "cost": ("usd_per_million_tokens", False),
    "throughput": ("tokens_per_s_per_device", True),
    # TTFT: the latency floor of an idle instance (at the operating load every pool sized by its
    # TTFT target sits at that target, so the statistic itself does not separate options)
    "ttft": ("ttft_unloaded_s", False),
    "tpot": ("tpot_s", False),
    "energy": ("joules_per_token", False),
    "devices": ("devices", False),               # fewest devices for the offered rate (whole instances)
    "rate": ("max_rate_for_devices", True),      # most requests/s within the device budget or inventory
}
PARETO_AXES = (("tokens_per_s_per_device", True), ("ttft_unloaded_s", False), ("tpot_s", False))
BLOCK = 50_000  # configurations per vectorised block: its temporaries stay in cache (4× 400k was slower)
IMPOSSIBLE = "path or wire format not possible for the pair"
APART = "a KV path inside one node or scale-up domain between pools that do not fit it"


@dataclass
class Results:
    """Kept configurations as columns, with the counts of everything enumerated."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    total: int = 0
    feasible: int = 0
    dominated: int = 0  # not evaluated: provably no better than an evaluated one, or its repeat (a slower
    # tier that turns out as its HBM row: where that row fails, counted under its reason instead)
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
    """Non-dominated rows on PARETO_AXES (throughput per device up, TTFT down, TPOT down), rows
    alike on every axis all kept.

    Rows are visited in lexicographic order, so no row can be dominated by a later one; each
    chunk is checked against the front so far and against itself, vectorised."""
    pts = np.stack([-cols[n] if larger else cols[n] for n, larger in PARETO_AXES], axis=1)
    pts = np.where(np.isnan(pts), np.inf, pts)
    order = np.lexsort(pts.T[::-1])
    order = order[~_dominated_by_anchors(pts[order])]
    keep = np.zeros(len(pts), dtype=bool)
    front = np.empty((0, pts.shape[1]))
    for start in range(0, len(order), 512):
        idx = order[start:start + 512]
        p = pts[idx]
        if len(front):
            dom = _dominates(front, p).any(0)
            idx, p = idx[~dom], p[~dom]
        ok = ~_dominates(p, p).any(0)
        keep[idx[ok]] = True
        front = np.concatenate([front, p[ok]])
    return keep


def _dominates(a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """[i, j]: point a[i] dominates p[j] (no worse on every axis, better on one; lower is better).
    Axis by axis on 2-D planes: numpy reduces a short last axis of a 3-D array ten times slower."""
    no_worse, better = True, False
    for k in range(a.shape[1]):
        x, y = a[:, k, None], p[None, :, k]
        no_worse, better = no_worse & (x <= y), better | (x < y)
    return no_worse & better


def _dominated_by_anchors(s: np.ndarray) -> np.ndarray:
    """Of points in lexicographic order, those dominated by an anchor: each point that improves on
    every earlier one in the second or in the third axis (the two-axis fronts against the first).
    Removing them changes no front (what an anchor dominates, it dominates beside whatever else
    does), and leaves the exact pass few points to compare; where anchors are many (a broad front)
    the pass is left to itself."""
    out = np.zeros(len(s), dtype=bool)
    if len(s) < 2:
        return out
    firsts = [np.concatenate([[True], s[1:, k] < np.minimum.accumulate(s[:, k])[:-1]]) for k in (1, 2)]
    a = s[firsts[0] | firsts[1]]
    if len(a) > 256:
        return out
    step = max(1, 2**20 // len(a))  # about a million pairs a chunk
    for start in range(0, len(s), step):
        out[start:start + step] = _dominates(a, s[start:start + step]).any(0)
    return out


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For items with ``counts`` children each: every child's item and its index among siblings."""
    item = np.repeat(np.arange(len(counts)), counts)
    return item, np.arange(len(item)) - np.repeat(np.cumsum(counts) - counts, counts)


def disaggregated_block(c: Candidates, pre: Stage, dec: Stage, links: PairLinks, wires: list[str], cb: Combos,
                        p_rows: np.ndarray, d_rows: np.ndarray, prices, powers, mi: dict, classes=None):
    """Every useful combination of the given prefill rows, decode rows, wire formats and paths,
    evaluated. Returns the columns (with stage and choice indices) and (possible, useful) counts.
    The handoff is computed once per decode handoff class (``classes``: ``handoff_classes`` of
    ``d_rows``, when the caller has it) and shared by its rows."""
    acc_p = np.asarray(pre.labels["acc"])[p_rows]
    acc_d = np.asarray(dec.labels["acc"])[d_rows]
    n_possible = int(cb.possible[acc_p][:, acc_d].sum())
    f_d, first, members, start, size = handoff_classes(dec, d_rows, cb.formats) if classes is None else classes
    P, K = len(p_rows), len(first)
    pp, kk = (a.ravel() for a in np.meshgrid(np.arange(P), np.arange(K), indexing="ij"))
    key = (acc_p[pp], acc_d[first][kk], f_d[first][kk])
    pair, local = _expand(cb.count[key])
    choice = cb.start[key][pair] + local
    iw, ik, ip, ik_class = cb.wire[choice], cb.path[choice], pp[pair], kk[pair]
    pr = p_rows[ip]
    h = handoff_columns(c, pre, dec, links, wires, pr, d_rows[first][ik_class], iw, ik, acc_p[ip],
                        acc_d[first][ik_class], mi)
    h["prefill_utilisation"] = prefill_utilisation(h["prefill_s"], h["handoff_s"] + h["request_s"], c.workload.ttft_s,
                                                   c.workload.ttft_stat)
    # every class-level configuration once per decode row of its class
    e, m = _expand(size[ik_class])
    dr = d_rows[members[start[ik_class[e]] + m]]
    cols = {k: v[e] for k, v in h.items()}
    pr, iw, ik, ip = pr[e], iw[e], ik[e], ip[e]
    ad = np.asarray(dec.labels["acc"])[dr]
    cols.update(serving_columns(c, pre, dec, cols, pr, dr, prices[acc_p[ip]], prices[ad], powers[acc_p[ip]],
                                powers[ad]))
    cols.update({"mode": np.zeros(len(pr), dtype=np.int8), "prefill_row": pr, "decode_row": dr, "wire": iw, "path": ik,
                 "inferred": pre.values["inferred"][pr] + dec.values["inferred"][dr]})
    # a path inside a node (or a scale-up domain) joins pools that fit it: a prefill and a decode
    # instance, and where a rate sizes them, the whole pools
    reach = links.reach[acc_p[ip], ik]
    together = pre.values["tp"][pr] * pre.values["dp"][pr] + dec.values["tp"][dr] * dec.values["dp"][dr]
    cols["path_fits"] = np.maximum(together, cols["devices"]) <= reach
    cols["within_budget"] = within_budget(c, cols, acc_p[ip], ad)
    # the prefill pool is sized to its target (its TTFT statistic meets it at capacity by construction):
    # a positive capacity is the TTFT condition
    cols["feasible"] = ((cols["prefill_rate"] > 0) & (cols["admission_batch"] >= 1) & cols["path_fits"]
                        & cols["within_budget"])
    return cols, (n_possible, len(pr))


def within_budget(c: Candidates, cols: dict, acc_p=None, acc_d=None) -> np.ndarray:
    """Rows whose whole instances fit the device budget or the inventory (every row without
    either); ``acc_p``/``acc_d``: each row's pool accelerators (aggregated rows: ``acc_p`` None)."""
    if c.devices:
        return (cols["devices"] <= c.devices) & (cols["max_rate_for_devices"] > 0)
    stock = c.stock()
    if stock is None:
        return np.ones(len(cols["devices"]), dtype=bool)
    if acc_p is None:
        return (cols["devices"] <= stock[acc_d]) & (cols["max_rate_for_devices"] > 0)
    same = acc_p == acc_d
    fits = np.where(same, cols["devices"] <= stock[acc_p],
                    (cols["devices_p"] <= stock[acc_p]) & (cols["devices_d"] <= stock[acc_d]))
    return fits & (cols["max_rate_for_devices"] > 0)


def budget_reason(c: Candidates, pools: str = "one instance of each pool") -> str:
    """Why a row does not fit the device budget or the inventory."""
    have = f"{c.devices:,} devices" if c.devices else "the inventory"
    return (f"needs more than {have} for {c.workload.rate_per_s:g} req/s" if c.workload.rate_per_s
            else f"{pools} needs more than {have}")


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


def ranked(cols: dict, objective: str, rows: np.ndarray | None = None) -> np.ndarray:
    """``rows`` (default all) best first: by the objective, then by output per device (what orders
    rows whose price or power is unknown), then the configuration whose factors were measured for
    its formats, then the faster handoff, then the order of enumeration (mode,
    stage rows, wire format, path), so that equal rows come out in one order however the grid
    was split into blocks."""
    rows = np.arange(len(cols["mode"])) if rows is None else rows
    # the enumeration order as one mixed-radix integer (-1, "none", becomes 0)
    digits = [cols[k][rows].astype(np.int64) + 1 for k in ("mode", "prefill_row", "decode_row", "wire", "path")]
    position = np.zeros(len(rows), dtype=np.int64)
    for d in digits:
        position = position * (int(d.max(initial=0)) + 1) + d
    name = OBJECTIVES[objective][0]
    # rows the objective cannot price (no device price or power) rank after the others, among
    # themselves by output per device (as if their devices cost alike)
    per_device = -np.nan_to_num(cols["tokens_per_s_per_device"][rows].astype(float), nan=-np.inf)
    return rows[np.lexsort((position, cols["transfer_s"][rows], cols["inferred"][rows], per_device,
                            score({name: cols[name][rows]}, objective)))]


def _best(v: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smallest of ``v`` and every row tied with the largest of them."""
    if len(v) <= k:
        return np.arange(len(v))
    return np.flatnonzero(v <= np.partition(v, k - 1)[k - 1])


def _select(cols: dict, objective: str, keep: int, pareto: bool) -> dict:
    """The best ``keep`` feasible rows by the objective (ties broken towards the faster
    handoff), plus every Pareto-optimal row when ``pareto`` (rows alike on its axes included: the
    union of the blocks' fronts holds the whole front, whatever part of it a ranking lists). Only
    the chosen rows are copied."""
    feas = np.flatnonzero(cols["feasible"])
    if len(feas) == 0:
        return {}
    name, _ = OBJECTIVES[objective]
    s = score({name: cols[name][feas]}, objective)
    top = ranked(cols, objective, feas[_best(s, keep)])[:keep]
    if not pareto or len(top) == len(feas):  # every feasible row kept: the front is among them
        return _take(cols, top)
    front = pareto_mask({n: cols[n][feas] for n, _ in PARETO_AXES})
    return _take(cols, np.union1d(top, feas[front]))


def run(c: Candidates, objective: str = "cost", keep: int = 200, pareto: bool = False,
        progress: Callable[[int, int], None] | None = None, include_aggregated: bool = True,
        prune: bool = True) -> tuple[Results, dict]:
    """Enumerate and evaluate the whole design space; returns the kept results and the stage
    tables (for reporting infeasible stage rows). ``pareto`` keeps each block's Pareto front too.
    ``prune`` skips configurations provably no better than one evaluated (a slower path or a wider
    wire format, except for the TPOT objective and the Pareto front; a tier that adds no batch and
    can take no sequence off HBM); without it every feasible configuration is evaluated. Either way
    a tier row that ends up holding no KV is counted as a repeat of its HBM row's configuration,
    not listed."""
    res = Results()
    inst = instances(c, kv=True)
    pre, dec = prefill_stage(c), decode_stage(c, inst)
    agg = aggregated_stage(c, inst) if include_aggregated else Stage()
    wires = sorted({k for a in c.accelerators for k in a.precision_paths.kv if not c.kv or k in c.kv})
    if "bf16" in wires and "fp16" in wires:
        wires.remove("fp16")  # the same bytes on the wire
    prices = np.array([c.price_of(a) or np.nan for a in c.accelerators])
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
    # a slower tier that adds no batch turns out as its HBM row unless ownership crowds HBM and the tier
    # can take sequences off it: skipped where it can hold none, else evaluated only where its HBM row's
    # admission fell short of its batch for some pairing (``waiting``), as the HBM rows show
    none = np.zeros(len(dec), bool)
    dominated = dec.values.get("tier_dominated", none) if prune else none
    waiting = dec.values.get("tier_no_gain", none) & ~dominated if prune else none
    usable = dec.feasible & d_allowed
    d_ok, d_wait = np.flatnonzero(usable & ~dominated & ~waiting), np.flatnonzero(usable & waiting)
    skip = usable & dominated
    links = pair_links(c)
    # a slower path or a wider wire format crowds decode memory with longer reservations: never more
    # requests/s, but a smaller batch whose step can be faster, so the TPOT objective and the Pareto
    # front (TPOT is one of its axes) see every such choice
    cb = combos(c, links, wires, sorted(set(dec.labels["kv"])), prune and objective != "tpot" and not pareto)
    # aggregated rows
    a_allowed = _only(c, agg, (c.prefill_ids or frozenset()) | (c.decode_ids or frozenset()))
    for reason, n in Counter(r for r in agg.reasons if r).items():
        res.infeasible[f"aggregated: {reason}"] += n
    parts = []
    if include_aggregated and len(agg):
        res.filtered += int((agg.feasible & ~a_allowed).sum())
        a_cols = aggregated_rows(c, agg, prices, powers, agg.feasible & a_allowed)
        a_cols["feasible"] &= within_budget(c, a_cols, None, np.asarray(agg.labels["acc"])[a_cols["decode_row"]])
        if c.devices or c.inventory is not None:
            res.infeasible[f"aggregated: {budget_reason(c, 'one instance')}"] += int((~a_cols["feasible"]).sum())
        res.feasible += int(a_cols["feasible"].sum())
        res.evaluated += len(a_cols["feasible"])
        parts.append(_select(a_cols, objective, keep, pareto))
    crowded = np.zeros(len(dec), bool)  # decode rows whose admission fell short of their batch
    failed: dict[str, np.ndarray] = {}  # per reason, the evaluated configurations of each decode row it fails
    total = len(p_ok) * (len(d_ok) + len(d_wait)) * combos_n if len(p_ok) else 0
    done = 0

    siblings = bool(skip.any() or len(d_wait))  # skipped tier rows will need their HBM rows' failures

    def fail(reason: str, mask: np.ndarray, d_row: np.ndarray) -> None:
        res.infeasible[reason] += int(mask.sum())
        if siblings:
            counts = failed.setdefault(reason, np.zeros(len(dec), np.int64))
            counts += np.bincount(d_row[mask], minlength=len(dec))

    def blocks(d_rows: np.ndarray) -> None:
        """Every configuration of the prefill rows carried on with ``d_rows``, in blocks: counted into
        ``res``, the best kept in ``parts``, the decode rows whose admission fell short marked ``crowded``."""
        nonlocal done
        if len(p_ok) == 0 or len(d_rows) == 0:
            return
        step = max(1, BLOCK // max(1, len(d_rows) * 4))
        classes = handoff_classes(dec, d_rows, cb.formats)
        for start in range(0, len(p_ok), step):
            rows = p_ok[start:start + step]
            n_all = len(rows) * len(d_rows) * combos_n
            cols, (n_possible, n_useful) = disaggregated_block(c, pre, dec, links, wires, cb, rows, d_rows, prices,
                                                              powers, mi, classes)
            crowded[cols["decode_row"][cols["admission_batch"] < cols["batch_before_ownership"]]] = True
            res.infeasible[IMPOSSIBLE] += n_all - n_possible
            res.dominated += n_possible - n_useful
            # a slower tier that ended up holding no KV (its sequences fit HBM, or HBM alone serves more):
            # a configuration of its HBM row's, labelled with a tier it does not use, counted as its repeat
            d_row = cols["decode_row"]
            same = cols["feasible"] & (dec.values["hbm_row"][d_row] != d_row) & (cols["tier_kv_bytes"] <= 0)
            res.dominated += int(same.sum())
            cols["feasible"] = cols["feasible"] & ~same
            ttft_ok = cols["prefill_rate"] > 0
            fail("misses TTFT (prefill, queueing margin and handoff)", ~ttft_ok, d_row)
            fail(APART, ttft_ok & ~cols["path_fits"], d_row)
            roomy = ttft_ok & cols["path_fits"] & (cols["admission_batch"] >= 1)
            fail("no decode admission room after reservations and retained cache", ttft_ok & cols["path_fits"] & ~roomy,
                 d_row)
            if c.devices or c.inventory is not None:
                fail(budget_reason(c), roomy & ~cols["within_budget"], d_row)
            res.feasible += int(cols["feasible"].sum())
            res.evaluated += n_useful
            parts.append(_select(cols, objective, keep, pareto))
            done += n_all
            if progress:
                progress(done, total)

    blocks(d_ok)
    if len(d_wait) and len(p_ok):  # the HBM rows are all evaluated by now: ask those that fell short
        sibling = dec.values["hbm_row"][d_wait]
        ask = crowded[sibling] | ~usable[sibling]
        blocks(d_wait[ask])
        skip[d_wait[~ask]] = True
    d_skip = np.flatnonzero(skip)
    if len(d_skip) and len(p_ok):  # a slower tier that turns out as its HBM row, unevaluated: its
        # configurations fail where that row's do, for the same reasons; the rest repeat that row's
        count_p = np.bincount(np.asarray(pre.labels["acc"])[p_ok], minlength=A)
        count_d = np.bincount(np.asarray(dec.labels["acc"])[d_skip], minlength=A)
        possible = int(count_p @ cb.possible @ count_d)
        res.infeasible[IMPOSSIBLE] += len(p_ok) * len(d_skip) * combos_n - possible
        sibling = dec.values["hbm_row"][d_skip]
        as_sibling = {reason: int(counts[sibling].sum()) for reason, counts in failed.items()}
        res.infeasible.update(as_sibling)
        res.dominated += possible - sum(as_sibling.values())
    if progress and total:
        progress(total, total)
    res.columns = _concat(parts)
    stages = {"prefill": pre, "decode": dec, "aggregated": agg, "links": links, "wires": wires}
    return res, stages
