"""Ranking the evaluated design space: the library function behind ``pdroof rank``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..spec.errors import PdroofError
from .columns import BINDINGS, MODES, PLACEMENTS
from .evaluate import OBJECTIVES, Results, pareto_mask, ranked, run
from .launch import engine_conversion
from .space import Candidates

# Result columns in output order: (key, meaning). CSV/JSON use these keys with raw SI values.
COLUMNS = (
    ("rank", "position under the objective"),
    ("mode", "disaggregated (separate pools) or aggregated (colocated baseline)"),
    ("prefill_hw", "prefill accelerator"), ("prefill_tp", "attention tensor-parallel degree of a prefill replica"),
    ("prefill_dp", "attention data-parallel replicas per prefill instance (DP attention)"),
    ("prefill_moe_ep", "expert-parallel groups the prefill instance spreads its routed experts over"),
    ("prefill_instances", "prefill instances (whole): for the offered rate, else within the device budget or "
                          "the inventory, else the smallest balanced deployment"),
    ("prefill_devices", "devices in the prefill pool (instances × tp × dp)"),
    ("prefill_precision", "prefill weights/activations"),
    ("decode_hw", "decode accelerator (aggregated: the one pool)"),
    ("decode_tp", "attention tensor-parallel degree of a decode replica"),
    ("decode_dp", "attention data-parallel replicas per decode instance (DP attention)"),
    ("decode_moe_ep", "expert-parallel groups the decode instance spreads its routed experts over"),
    ("decode_instances", "decode instances (whole), sized as prefill_instances"),
    ("decode_devices", "devices in the decode pool (instances × tp × dp)"),
    ("hw", "aggregated: the accelerator of the one pool"),
    ("instances", "aggregated: instances of the one pool (whole), sized as prefill_instances"),
    ("devices", "devices the deployment takes (both pools)"),
    ("requests_per_s", "requests/s the deployment sustains within the targets (with --rate: the rate)"),
    ("decode_weights", "decode weight format"), ("kv_format", "KV storage format on the decode side"),
    ("prefill_kv", "KV format the prefill pool writes"),
    ("wire_format", "KV format on the wire"), ("path", "KV path between the pools"), ("tier", "KV residency"),
    ("kv_placement", "where the KV conversion/redistribution runs: producer, transport, consumer, or direct"),
    ("kv_conversion", "a KV conversion between exact encodings (FP8 e4m3fn and e4m3fnuz) that no engine's "
                      "transfer makes, so pdroof deploy refuses the row; null where none"),
    ("prefill_runtime", "runtime profile (engine) the prefill pool runs"),
    ("decode_runtime", "runtime profile (engine) the decode pool runs (aggregated: the one pool)"),
    ("ttft_s", "time to first token, the statistic ttft_stat names, at the load each instance runs at "
               "(M/D/1 queueing of prefill, exposed transfer and conversion)"),
    ("ttft_stat", "statistic the TTFT target bounds and ttft_s reports: mean, p50, p90 or p99"),
    ("ttft_unloaded_s", "time to first token of a request that finds the prefill idle"),
    ("tpot_s", "time per output token, the statistic tpot_stat names, at the chosen decode batch"),
    ("tpot_stat", "statistic the TPOT target bounds and tpot_s reports"),
    ("decode_batch", "sequences per decode instance (aggregated: concurrency)"),
    ("prefill_capacity", "C_P: requests/s per prefill instance within the TTFT target"),
    ("decode_capacity", "C_D: requests/s per decode instance within the TPOT target"),
    ("link_capacity", "requests/s one prefill instance's KV link can move"),
    ("ingress_capacity", "requests/s one decode instance's network ingress can take in"),
    ("prefill_device_share", "fraction of devices in the prefill pool (N_P·t_P / all)"),
    ("tokens_per_s_per_device", "output tokens/s per device: of the deployment built for --rate, --devices or "
                                "--inventory; without them, of pools at scale (fractional instances)"),
    ("usd_per_million_tokens", "$ per million output tokens (device-hour prices), as tokens_per_s_per_device"),
    ("joules_per_token", "energy per output token (device power), as tokens_per_s_per_device"),
    ("devices_for_rate", "devices for the offered rate (whole instances; with --rate, as devices)"),
    ("max_rate_for_devices", "largest request rate whole instances within the device budget or the inventory "
                             "sustain (without --rate, as requests_per_s)"),
    ("transfer_s", "KV transfer time of one request"), ("exposed_transfer_s", "transfer not hidden by prefill"),
    ("convert_s", "KV conversion or redistribution on the TTFT path (at the chosen placement)"),
    ("transient_bytes", "per request in flight: source + staging + reserved destination (bytes per rank)"),
    ("kv_headroom_bytes", "decode HBM left per device after the retained cache, in-flight reservations and the "
                          "active KV HBM holds"),
    ("tier_kv_bytes", "KV per decode device the slower tier holds (fetched every step)"),
    ("hold_capacity", "requests/s the prefill instance's memory allows while KV waits for transfer and admission"),
    ("binding", "constraint that sets the pool sizes"),
)


@dataclass
class Ranking:
    rows: list[dict]
    results: Results
    stages: dict
    candidates: Candidates
    objective: str
    mode: str | None = None  # the one mode kept, if one was asked for

    def summary(self) -> str:
        r = self.results
        best = {m: next((x for x in self.rows if x["mode"] == m), None) for m in ("disaggregated", "aggregated")}
        infeasible = sum(r.infeasible.values())
        parts = [f"{r.total:,} configurations: {r.feasible:,} feasible, {r.dominated:,} skipped as provably no "
                 f"better than one evaluated, {infeasible:,} infeasible"
                 + (f", {r.filtered:,} excluded by filters" if r.filtered else "")]
        if r.infeasible:
            top = ", ".join(f"{n:,} {k}" for k, n in r.infeasible.most_common(3) if n)
            parts.append(f"({top})")
        col, larger = OBJECTIVES[self.objective]
        unpriced = [x for x in self.rows if x.get(col) is None]
        if unpriced:  # never silently: which rows the objective could not weigh, and where they went
            priced = {acc.id for acc in self.candidates.accelerators if self.candidates.price_of(acc)}
            ids = sorted({x[k] for x in unpriced for k in ("prefill_hw", "decode_hw") if x[k]} - priced) \
                if self.objective == "cost" else []
            parts.append(f"; {len(unpriced):,} rows have no {col.replace('_', ' ')}"
                         + (f" (no price for {', '.join(ids)})" if ids else "")
                         + ": ranked after the others, by output per device")
        stuck = [str(x["rank"]) for x in self.rows if x.get("kv_conversion")]
        if stuck:  # a plan an engine cannot deploy as it is: said, not hidden
            which = f"row {stuck[0]} converts" if len(stuck) == 1 else (
                f"rows {', '.join(stuck[:8])}{', ...' if len(stuck) > 8 else ''} convert")
            parts.append(f"; {which} KV between encodings no engine's transfer converts (kv_conversion): pdroof "
                         "deploy refuses them")
        d, a = best["disaggregated"], best["aggregated"]
        if d and a and d[col] is not None and a[col] is not None:
            better = d[col] > a[col] if larger else d[col] < a[col]
            parts.append(f"; best disaggregated {'beats' if better else 'does not beat'} the best aggregated "
                         f"on {self.objective}")
        return " ".join(parts)


def rank(c: Candidates, objective: str = "cost", top: int = 20, pareto: bool = False,
         progress: Callable[[int, int], None] | None = None, prune: bool = True, mode: str | None = None) -> Ranking:
    """Enumerate, evaluate and order the design space of ``c`` (see ``evaluate.run``); ``top`` 0
    keeps every feasible row; ``mode`` (disaggregated or aggregated) keeps that mode's rows only."""
    if mode is not None and mode not in MODES:
        raise PdroofError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if top < 0:
        raise PdroofError(f"--top must not be negative (0: all rows), not {top}")
    # every row is kept only where every row is listed: a front (or its first rows) is in the
    # union of the blocks' fronts
    keep = max(top, 50) if top or pareto else sys.maxsize
    res, stages = run(c, objective, keep=keep, pareto=pareto, progress=progress, prune=prune)
    if res.total == 0:
        raise PdroofError(
            f"nothing to rank: no candidate accelerator runs {c.model.id} with TP in {list(c.tp)}"
            + (f", weights in {list(c.weights)}" if c.weights else "")
            + (f", KV in {list(c.kv)}" if c.kv else "") + " on an executable path")
    cols = res.columns
    if not cols:
        return Ranking([], res, stages, c, objective, mode)
    order = ranked(cols, objective)
    if mode is not None:
        order = order[cols["mode"][order] == MODES.index(mode)]
    if pareto:  # the front of the rows kept (one mode's own front, where a mode is asked for)
        kept = np.sort(order)
        front = kept[pareto_mask({k: v[kept] for k, v in cols.items()})]
        order = order[np.isin(order, front)]
    if top:
        order = order[:top]
    # every column converted once, in rank order; each row then takes its labels
    template = dict.fromkeys(k for k, _ in COLUMNS)
    keys = [k for k in template if k in cols]
    numbers = zip(*(_numbers(cols[k][order]) for k in keys), strict=True)
    ints = zip(*(cols[k][order].astype(np.int64).tolist() for k in INDEX_KEYS), strict=True)
    rows = [_row(c, stages, {**template, **dict(zip(keys, values, strict=True))},
                 dict(zip(INDEX_KEYS, idx, strict=True)), pos)
            for pos, (values, idx) in enumerate(zip(numbers, ints, strict=True))]
    return Ranking(rows, res, stages, c, objective, mode)


def dead_end(rk: Ranking) -> str | None:
    """Why a ranking has no row (None if it has one): its targets and every reason that excluded
    configurations, largest first, the binding one named."""
    if rk.rows:
        return None
    r, w = rk.results, rk.candidates.workload
    if r.feasible:
        return f"no {rk.mode} configuration meets {w.targets_text()}: {r.feasible:,} of the other mode do"
    reasons = [(n, k) for k, n in r.infeasible.most_common() if n]
    if r.filtered:
        reasons.append((r.filtered, "excluded by filters"))
    if not reasons:
        return f"no configuration meets {w.targets_text()}"
    # binding: the target that turned away what passed every other gate (the joint grid's TTFT),
    # else the target that excluded the most
    last = [k for n, k in reasons if k.startswith("misses TTFT")]
    target = (last or [k for _, k in reasons if "TTFT" in k or "TPOT" in k] or [reasons[0][1]])[0]
    counts = "; ".join(f"{n:,} {k}" for n, k in reasons)
    return f"no configuration meets {w.targets_text()} (binding: {target}): {counts}"


def _numbers(values: np.ndarray) -> list[float | None]:
    """A column as plain floats, None where it is not finite (no inf or nan in a result row)."""
    v = np.asarray(values, dtype=float)
    return [x if ok else None for x, ok in zip(v.tolist(), np.isfinite(v).tolist(), strict=True)]


# integer columns a row reads (indices into the stage tables and the name lists, whole counts)
INDEX_KEYS = ("mode", "binding", "placement", "prefill_row", "decode_row", "wire", "path", "decode_batch",
              "prefill_instances", "decode_instances", "devices")


def _row(c: Candidates, stages: dict, row: dict, ix: dict, pos: int) -> dict:
    """Result row ranked at ``pos`` (from 0): ``row`` holds its numeric columns (``_numbers``), keyed
    and ordered as COLUMNS, ``ix`` its INDEX_KEYS; the labels and whole counts are filled in here."""
    pre, dec, agg = stages["prefill"], stages["decode"], stages["aggregated"]
    accs = c.accelerators
    row.update(rank=pos + 1, mode=MODES[ix["mode"]], binding=BINDINGS[ix["binding"]],
               kv_placement=PLACEMENTS[ix["placement"]])
    if row["mode"] == "aggregated":
        a = ix["decode_row"]
        row.update(prefill_hw=None, prefill_tp=None, prefill_dp=None, prefill_moe_ep=None,
                   prefill_precision=None, prefill_runtime=None,
                   decode_hw=accs[agg.labels["acc"][a]].id, **_split("decode", agg, a),
                   decode_runtime=c.runtime_of(accs[agg.labels["acc"][a]]).id,
                   decode_weights=agg.labels["weights"][a], kv_format=agg.labels["kv"][a],
                   prefill_kv=None, wire_format=None, path=None, tier="hbm", kv_placement=None, kv_conversion=None,
                   hold_capacity=None)
    else:
        p, d, wire = ix["prefill_row"], ix["decode_row"], stages["wires"][ix["wire"]]
        row.update(prefill_hw=accs[pre.labels["acc"][p]].id, **_split("prefill", pre, p),
                   prefill_precision=f"{pre.labels['weights'][p]}/{pre.labels['activations'][p]}",
                   prefill_runtime=c.runtime_of(accs[pre.labels["acc"][p]]).id,
                   decode_hw=accs[dec.labels["acc"][d]].id, **_split("decode", dec, d),
                   decode_runtime=c.runtime_of(accs[dec.labels["acc"][d]]).id,
                   decode_weights=dec.labels["weights"][d], kv_format=dec.labels["kv"][d],
                   prefill_kv=wire, wire_format=dec.labels["kv"][d] if row["kv_placement"] == "producer" else wire,
                   path=c.paths[ix["path"]].id, tier=c.tiers[dec.labels["tier"][d]].id,
                   kv_conversion=engine_conversion(accs[pre.labels["acc"][p]], wire, accs[dec.labels["acc"][d]],
                                                   dec.labels["kv"][d]))
    # the evaluation's unit is one attention replica: an instance holds dp of them
    for pool, keys in (("prefill", ("prefill_capacity", "link_capacity", "hold_capacity")),
                       ("decode", ("decode_capacity", "ingress_capacity"))):
        for key in keys:
            if row[key] is not None and row[f"{pool}_dp"]:
                row[key] *= row[f"{pool}_dp"]
    row["decode_batch"] = ix["decode_batch"] * row["decode_dp"]
    row["ttft_stat"], row["tpot_stat"] = c.workload.ttft_stat, c.workload.tpot_stat
    for pool in ("prefill", "decode"):
        if row[f"{pool}_hw"] is not None:
            row[f"{pool}_instances"] = ix[f"{pool}_instances"]
            row[f"{pool}_devices"] = row[f"{pool}_instances"] * row[f"{pool}_tp"] * row[f"{pool}_dp"]
    row["devices"] = ix["devices"]
    if row["mode"] == "aggregated":
        row.update(prefill_instances=None, prefill_devices=None, hw=row["decode_hw"],
                   instances=row["decode_instances"])
    row["devices_for_rate"] = row["devices"] if c.workload.rate_per_s else None
    return row


def _split(pool: str, st, i: int) -> dict:
    tp, dp = st.labels["tp"][i], st.labels["dp"][i]
    return {f"{pool}_tp": tp, f"{pool}_dp": dp, f"{pool}_moe_ep": st.labels["moe_ep"][i]}


def infeasible_rows(rk: Ranking) -> list[dict]:
    """Stage rows excluded, each with its reason (for ``--show-infeasible``), as far as the ranking's
    filters reach (the accelerators each pool may use, the mode); decode rows that differ only in
    the KV tier are listed once with their tiers."""
    c = rk.candidates
    accs = c.accelerators
    pools = {"prefill": c.prefill_ids, "decode": c.decode_ids,
             "aggregated": (c.prefill_ids or frozenset()) | (c.decode_ids or frozenset()) or None}
    stages = {None: ("prefill", "decode", "aggregated"), "aggregated": ("aggregated",),
              "disaggregated": ("prefill", "decode")}[rk.mode]
    grouped: dict[tuple, list[str]] = {}
    for stage_name in stages:
        st = rk.stages[stage_name]
        for i, reason in enumerate(st.reasons):
            if reason and (pools[stage_name] is None or accs[st.labels["acc"][i]].id in pools[stage_name]):
                labels = {k: v[i] for k, v in st.labels.items()}
                what = f"{accs[labels['acc']].id} TP{labels['tp']}"
                what += (f" DP{labels['dp']}" if labels["dp"] > 1 else "") + (
                    f" EP{labels['moe_ep']}" if labels["moe_ep"] > 1 else "") + f" W{labels['weights']}"
                if "kv" in labels:
                    what += f" KV{labels['kv']}"
                tiers = grouped.setdefault((stage_name, what, reason), [])
                if "tier" in labels:
                    tiers.append(rk.candidates.tiers[labels["tier"]].id)
    out = [{"stage": stage, "configuration": what + (f" (tiers {', '.join(tiers)})" if tiers else ""),
            "reason": reason} for (stage, what, reason), tiers in grouped.items()]
    links = rk.stages["links"]
    seen = set()
    for (i, j, k), reason in links.reasons.items() if rk.mode != "aggregated" else ():
        if (c.prefill_ids and accs[i].id not in c.prefill_ids) or (c.decode_ids and accs[j].id not in c.decode_ids):
            continue
        key = (accs[i].vendor, accs[j].vendor, rk.candidates.paths[k].id)
        if key not in seen:
            seen.add(key)
            out.append({"stage": "link", "configuration": f"{accs[i].id} -> {accs[j].id} over "
                                                          f"{rk.candidates.paths[k].id}", "reason": reason})
    return out
