"""The design space as flat numpy columns: per-stage tables (prefill instances, decode instances,
aggregated instances) evaluated once, and the joint disaggregated grid as index columns into them.

A stage row is one accelerator × precision × split (TP; for MoE models also expert parallelism
and DP attention, ``splits``) × KV tier for decode; its numbers are those of one attention replica
(tp devices) as it runs inside its instance of tp·dp devices. The joint grid pairs
every feasible prefill row with every feasible decode row, KV wire format and physically possible
KV path. Infeasible stage rows carry a reason and are counted, not evaluated further.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np

from ..cost.numeric import evaluate
from ..cost.parallelism import Parallelism, split_reason
from ..cost.precision import Precision, default_activations, infeasible_reason
from ..spec.schema import Record
from .load import admitted_sequences, aggregated_load
from .stage import context_reason, decode_alone, prefill_passes, stage_inputs, tp_reason
from .workload import Workload

TP_CHOICES = (1, 2, 4, 8)
# MoE models also run with DP attention: replicas of one device, the routed experts spread over all
# of them (the wide-EP form engines deploy), up to four nodes of eight
DP_CHOICES = (2, 4, 8, 16, 32)
# Decode/aggregated batch sizes tried: dense at small batch, geometric above.
BATCHES = np.array(sorted({*range(1, 17), *(round(16 * 1.2 ** k) for k in range(1, 35))}), dtype=float)


@dataclass
class Stage:
    """One stage table: descriptive columns (lists) and numeric columns (arrays), row-aligned."""

    labels: dict[str, list] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    reasons: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.reasons)

    @property
    def feasible(self) -> np.ndarray:
        return np.array([r is None for r in self.reasons], dtype=bool)


@dataclass
class Candidates:
    """What to enumerate: the model, the candidate accelerators and links, the runtime and the
    workload, and optional format filters. ``runtime`` is the profile asked for; ``runtimes``
    (accelerator id -> profile, ``cost.runtime.runtimes_for``) the one each accelerator runs where
    it differs, as when the default ``engine`` resolves per accelerator."""

    model: Record
    accelerators: list[Record]
    paths: list[Record]
    tiers: list[Record]
    runtime: Record
    workload: Workload
    weights: tuple[str, ...] | None = None
    kv: tuple[str, ...] | None = None
    tp: tuple[int, ...] = TP_CHOICES
    dp: tuple[int, ...] | None = None       # restrict attention data parallelism (MoE; dense: 1)
    moe_ep: tuple[int, ...] | None = None   # restrict the experts' expert-parallel degree (MoE)
    prefill_ids: frozenset[str] | None = None  # restrict the prefill pool's accelerators
    decode_ids: frozenset[str] | None = None   # restrict the decode pool's accelerators
    devices: int | None = None                  # device budget: report the largest rate it sustains
    retained_bytes: float = 0.0                 # prefix cache retained per decode device (not a tier)
    runtimes: dict[str, Record] = field(default_factory=dict)  # accelerator id -> its runtime (default: runtime)
    given_splits: tuple[Parallelism, ...] | None = None  # exactly these splits (a deployment's), not the enumeration
    prices: dict[str, float] = field(default_factory=dict)  # accelerator id -> USD per device-hour, over the spec's
    inventory: dict[str, int] | None = None  # accelerator id -> devices on hand: deployments must fit them

    def stock(self) -> np.ndarray | None:
        """Devices on hand of each candidate accelerator (the inventory's order), or None."""
        return None if self.inventory is None else np.array(
            [float(self.inventory.get(a.id, 0)) for a in self.accelerators])

    def runtime_of(self, acc: Record) -> Record:
        """The runtime profile ``acc`` runs."""
        return self.runtimes.get(acc.id, self.runtime)

    def price_of(self, acc: Record) -> float | None:
        """USD per device-hour of ``acc``: the price given over the spec's, else the spec's (None: unknown)."""
        return self.prices.get(acc.id) or acc.price_usd_per_hour


def splits(c: Candidates, acc: Record) -> list[Parallelism]:
    """How an instance of ``acc`` may split the model: TP alone; for MoE models also TP with the
    experts expert-parallel over the same devices (moe_ep = tp), and DP attention over one-device
    replicas with the experts over all of them (moe_ep = dp), across nodes where the accelerator has
    a scale-out NIC. ``c.dp`` and ``c.moe_ep`` filter them."""
    if c.given_splits is not None:
        out = list(c.given_splits)
    else:
        out = [Parallelism(t) for t in c.tp]
        if c.model.moe is not None:
            out += [Parallelism(t, 1, 1, t) for t in c.tp if t > 1]
            out += [Parallelism(1, d, 1, d) for d in DP_CHOICES]
        out = [par for par in out
               if (c.dp is None or par.dp in c.dp) and (c.moe_ep is None or par.moe_ep in c.moe_ep)]
    return [par for par in out if tp_reason(c.model, acc, par.tp) is None and split_reason(c.model, acc, par) is None]


def stack_rows(rows: list[dict]) -> dict[str, np.ndarray]:
    """Columns of rows that share their keys: one matrix, read row by row in C (itemgetter)."""
    keys = list(rows[0])
    get = itemgetter(*keys)
    matrix = np.array([get(r) for r in rows], dtype=float).reshape(len(rows), len(keys))
    return {k: np.ascontiguousarray(matrix[:, j]) for j, k in enumerate(keys)}


def _precisions(c: Candidates, acc: Record, kv: bool):
    for w in acc.precision_paths.weights:
        if c.weights and w not in c.weights:
            continue
        for k in (acc.precision_paths.kv if kv else ("bf16",)):
            if kv and c.kv and k not in c.kv:
                continue
            p = Precision(w, default_activations(acc, w), k if kv else acc.precision_paths.kv[0])
            yield p, infeasible_reason(acc, p)


@dataclass(frozen=True)
class Instances:
    """Every accelerator × executable precision × TP of one stage: the rows' equation inputs as
    columns (to be completed with the workload), their labels, and why each is infeasible (None
    if it is not). The decode and aggregated tables share one (``kv=True``)."""

    labels: dict[str, list]
    reasons: list[str | None]
    cols: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.reasons)


def instances(c: Candidates, kv: bool) -> Instances:
    """A stage whose tokens exceed the model's context limit is infeasible on every row: prefill
    by its prompt, decode and aggregated by prompt plus output."""
    w = c.workload
    too_long = (context_reason(c.model, w.prompt_tokens + w.output_tokens, "prompt + output") if kv
                else context_reason(c.model, w.prompt_tokens, "the prompt"))
    labels: dict[str, list] = {"acc": [], "weights": [], "activations": [], "kv": [], "tp": [], "dp": [], "moe_ep": []}
    reasons, rows = [], []
    for ai, acc in enumerate(c.accelerators):
        options = splits(c, acc)
        for p, reason in _precisions(c, acc, kv=kv):
            for par in options:
                for key, value in zip(labels, (ai, p.weights, p.activations, p.kv, par.tp, par.dp, par.moe_ep),
                                      strict=True):
                    labels[key].append(value)
                inputs, eff = stage_inputs(c.model, acc, c.runtime_of(acc), p, par.tp, par)
                # a row whose GEMM factors were inferred ranks after an otherwise equal measured one
                inputs["inferred"] = float(eff.inferred(f"compute.{p.activations}", f"weights.{p.weights}"))
                rows.append(inputs)
                reasons.append(reason or too_long)
    return Instances(labels, reasons, stack_rows(rows) if rows else {})


def _stage(inst: Instances, keys: tuple[str, ...], repeat: int = 1) -> Stage:
    """An empty-valued stage table over ``inst``'s rows, each repeated ``repeat`` times."""
    labels = {k: [v for v in inst.labels[k] for _ in range(repeat)] for k in keys}
    return Stage(labels, {}, [r for r in inst.reasons for _ in range(repeat)])


def prefill_stage(c: Candidates) -> Stage:
    """Prefill instances: one request's prompt (its new tokens after the prefix hit), in the passes
    its replica's budget takes it in."""
    w = c.workload
    inst = instances(c, kv=False)
    st = _stage(inst, ("acc", "weights", "activations", "tp", "dp", "moe_ep"))
    if not len(inst):
        return st
    cols = {**inst.cols, "batch": 1.0, "new_tokens": float(w.new_tokens), "prefix_tokens": float(w.prefix_tokens),
            "context_tokens": float(w.prompt_tokens)}
    prefill_s = prefill_passes(inst.cols, 1.0, float(w.new_tokens), float(w.prefix_tokens))["seconds"]
    mem = evaluate("memory", cols)
    per_elem = evaluate("memory", {**cols, "kv_bytes": 1.0})["kv_sequence_bytes"]
    host = np.array([_host_bw(a) for a in c.accelerators])
    st.values = {"prefill_s": prefill_s, "tp": cols["tp"], "dp": cols["dp"], "slots": mem["max_batch"],
                 "inferred": cols["inferred"],
                 "kv_capacity_bytes": mem["kv_capacity_bytes"], "kv_bytes_per_elem": per_elem,
                 "mem_bytes_per_s": cols["mem_bytes_per_s"], "eff_memory": cols["eff_memory"],
                 "host_bytes_per_s": host[st.labels["acc"]],
                 "request_s": cols["disaggregated_request_s"]}
    for i in range(len(st)):
        if st.reasons[i] is None and mem["max_batch"][i] < 1:
            st.reasons[i] = "weights and one prompt's KV do not fit"
    return st


def _host_bw(acc: Record) -> float:
    """Device<->host bandwidth: the host link (PCIe or a coherent link); unknown: no host path."""
    return acc.host_link.bandwidth_bytes_per_s if acc.host_link and acc.host_link.bandwidth_bytes_per_s else 1e-9


def _tier_capacity(tier: Record, acc: Record) -> float:
    """KV bytes a tier holds per device beyond HBM: its own figure, for host DRAM the
    accelerator's host memory per device, else unbounded (no source gives one)."""
    if tier.kind == "hbm":
        return 0.0
    if tier.capacity_bytes:
        return tier.capacity_bytes
    if tier.kind == "host_dram" and acc.host_memory_bytes:
        return acc.host_memory_bytes
    return np.inf


def _tier_bandwidth(tier: Record, acc: Record) -> float:
    if tier.kind == "hbm":
        return np.inf
    bw = tier.bandwidth_bytes_per_s or np.inf
    if tier.kind == "host_dram" and acc.host_link and acc.host_link.bandwidth_bytes_per_s:
        bw = min(bw, acc.host_link.bandwidth_bytes_per_s)
    return bw


def decode_stage(c: Candidates, inst: Instances | None = None) -> Stage:
    """Decode instances: the batch that serves the most among those whose time per token meets TPOT
    and whose KV fits (in HBM, or spilling to a slower tier that is fetched from every step): the
    largest such, but where the engine's own admission passes grow faster than the batch.
    ``inst``: ``instances(c, kv=True)`` when the caller has it."""
    w = c.workload
    inst = instances(c, kv=True) if inst is None else inst
    T = len(c.tiers)
    # rows: instance × tier, tiers innermost
    st = _stage(inst, ("acc", "weights", "kv", "tp", "dp", "moe_ep"), repeat=T)
    st.labels["tier"] = list(range(T)) * len(inst)  # _hbm_rows relies on this order
    if not len(st):
        return st
    acc = np.asarray(st.labels["acc"])
    tier_bw = np.array([[_tier_bandwidth(t, a) for t in c.tiers] for a in c.accelerators]).ravel()
    tier_cap = np.array([[_tier_capacity(t, a) for t in c.tiers] for a in c.accelerators]).ravel()
    tiers = {"tier_bytes_per_s": tier_bw[acc * T + np.asarray(st.labels["tier"])],
             "tier_capacity_bytes": tier_cap[acc * T + np.asarray(st.labels["tier"])]}
    # the step and the memory do not depend on the tier: evaluated once per instance, then repeated
    base = {**inst.cols, "new_tokens": 1.0, "prefix_tokens": 0.0, "context_tokens": float(w.mean_context)}
    mem_i = evaluate("memory", {**base, "batch": 1.0})
    b = BATCHES[None, :]
    grid = {k: (v[:, None] if np.ndim(v) else v) for k, v in base.items()}
    step = np.repeat(evaluate("decode", {**grid, "batch": b}, ("seconds",))["seconds"], T, axis=0)
    cols = {k: np.repeat(inst.cols[k], T) for k in ("inferred", "tp", "dp", "mem_bytes_per_s", "eff_memory",
                                                     "kv_bytes", "own_pass_admission")}
    mem = {k: np.repeat(mem_i[k], T) for k in ("kv_batch", "kv_sequence_bytes", "kv_capacity_bytes")}
    n = len(st)
    hbm_batch = mem["kv_batch"]
    kv_seq = mem["kv_sequence_bytes"]
    # a slower tier holds KV beyond HBM, never weights: without room for the weights, nothing fits; the
    # engine runs no more sequences than its limit, wherever their KV lives
    limit = np.repeat(np.broadcast_to(inst.cols["max_sequences"], np.shape(mem_i["kv_batch"])), T)
    beyond = np.floor(tiers["tier_capacity_bytes"] / kv_seq)
    cap_batch = np.where(mem["kv_capacity_bytes"] > 0, np.minimum(hbm_batch + beyond, limit), 0)
    # the time per output token: the step, with the tier's fetches, times the passes per token
    replica = {"own_pass": cols["own_pass_admission"][:, None], "dp": cols["dp"][:, None],
               "output_tokens": float(w.output_tokens)}
    tiered = decode_alone(("decode_tpot_s",), step=step, batch=b, **replica,
                          tier={"hbm_batch": hbm_batch[:, None], "tier_bytes_per_s": tiers["tier_bytes_per_s"][:, None],
                                "kv_request_bytes": kv_seq[:, None]})["decode_tpot_s"]
    # in HBM alone the time per token is the step times the passes per token, which depend on the row
    # only through its admission and attention replicas: evaluated once per kind of row (a step of 1)
    kinds: dict[tuple, int] = {}
    kind = np.array([kinds.setdefault(k, len(kinds)) for k in zip(cols["own_pass_admission"].tolist(),
                                                                   cols["dp"].tolist(), strict=True)], dtype=int)
    by_kind = np.array(list(kinds), dtype=float)  # (own_pass, dp) per kind
    passes = decode_alone(("decode_tpot_s",), step=1.0, batch=b, own_pass=by_kind[:, :1], dp=by_kind[:, 1:],
                          output_tokens=float(w.output_tokens))["decode_tpot_s"]
    # what a batch serves, sequences per second of the time per token its passes give (a slower tier's
    # fetches aside: whether they pay is ``columns``' choice against the HBM row)
    served = b / (step * passes[kind])
    ok = (tiered <= w.tpot_s) & (b <= cap_batch[:, None])
    has = ok.any(axis=1)
    largest = _largest(ok)
    best = np.maximum(_most_served(ok, served), 0)
    rows_idx = np.arange(n)
    batch = np.where(has, BATCHES[best], 0.0)
    step_best = np.where(has, step[rows_idx, best], np.nan)
    # the batch the same instance runs with its KV in HBM alone, whichever tier the row names (a slower
    # tier's row falls back to it where fetching serves fewer requests/s: ``columns``)
    in_hbm = np.where(mem["kv_capacity_bytes"] > 0, np.minimum(hbm_batch, limit), 0)
    alone_ok = (step * passes[kind] <= w.tpot_s) & (b <= in_hbm[:, None])
    alone = _most_served(alone_ok, served)
    # a slower tier whose batch is no larger than its HBM row's turns out as that row wherever it ends up
    # holding no KV (``tier_kv_bytes``): it can hold some only where ownership (the reservations of
    # arriving transfers, a retained cache) crowds HBM and the TPOT target leaves time to fetch a
    # sequence every step: the sequences it could take off HBM within that slack at the fastest step a
    # batch ownership admits can take (one sequence's)
    hbm_row = _hbm_rows(np.asarray(st.labels["tier"]), [t.kind for t in c.tiers])
    no_gain = (batch <= batch[hbm_row]) & (hbm_row != rows_idx)
    holds = decode_alone(("tier_sequences",), step=np.where(has, step[:, 0], 1.0), batch=batch,
                         own_pass=cols["own_pass_admission"], dp=cols["dp"], output_tokens=float(w.output_tokens),
                         tier={"hbm_batch": hbm_batch, "kv_request_bytes": kv_seq, **tiers},
                         tpot_target=w.tpot_s)["tier_sequences"]
    st.values = {
        "decode_batch": batch, "inferred": cols["inferred"], "step_s": step_best,
        "step_by_batch": step,  # the step at each of BATCHES: ownership may admit fewer than the batch
        "hbm_alone_batch": np.where(alone >= 0, BATCHES[alone], 0.0), "hbm_alone_step_s": step[rows_idx, alone],
        "hbm_batch": hbm_batch, "kv_request_bytes": kv_seq, "tier_bytes_per_s": tiers["tier_bytes_per_s"],
        "tier_capacity_bytes": tiers["tier_capacity_bytes"],
        "tp": cols["tp"], "dp": cols["dp"], "own_pass_admission": cols["own_pass_admission"],
        "mem_bytes_per_s": cols["mem_bytes_per_s"],
        "eff_memory": cols["eff_memory"], "host_bytes_per_s": np.array([_host_bw(a) for a in c.accelerators])[acc],
        "kv_capacity_bytes": mem["kv_capacity_bytes"],
        "kv_elem_bytes": cols["kv_bytes"],
        "hbm_row": hbm_row, "tier_no_gain": no_gain,
        "tier_dominated": no_gain & (holds < 1),  # can hold nothing: every configuration is its HBM row's
        "kv_bound": _capacity_bound(has, best, tiered <= w.tpot_s, cap_batch, served),
        "admission_bound": has & (best < largest),  # a larger batch within the target would serve less
        "limit_bound": limit < hbm_batch + beyond,  # the engine's limit, not memory, caps the batch
    }
    for i in range(n):
        if st.reasons[i] is None and not has[i]:
            st.reasons[i] = ("weights and one sequence's KV do not fit" if cap_batch[i] < 1
                             else f"misses TPOT {w.tpot_s * 1e3:g} ms even at batch 1")
    return st


def _largest(ok: np.ndarray) -> np.ndarray:
    """Per row, the last column of ``ok`` that holds (the largest of BATCHES that does), -1 where none."""
    return np.where(ok.any(axis=1), ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1), -1)


SERVED_TIE = 1e-6  # a smaller batch is chosen only where it serves more by more than this share


def _most_served(ok: np.ndarray, served: np.ndarray) -> np.ndarray:
    """Per row, the column of ``ok`` whose ``served`` (sequences per second of time per token) is the
    most, the largest such within ``SERVED_TIE`` of it, -1 where none holds. Where the time per token
    is the step, it grows more slowly than the batch and this is the largest batch that holds; where
    the engine takes arrivals in passes of their own, the passes per token grow with the batch and a
    smaller batch can serve more."""
    score = np.where(ok, served, -np.inf)
    return _largest(ok & (score >= score.max(axis=1, keepdims=True) * (1 - SERVED_TIE)))


def _capacity_bound(has, best, meets_tpot, cap_batch, served) -> np.ndarray:
    """The chosen batch is capacity-bound when the next batch size would still meet TPOT and serve
    more, but does not fit."""
    rows, nxt = np.arange(len(best)), np.minimum(best + 1, len(BATCHES) - 1)
    more = (best + 1 < len(BATCHES)) & (served[rows, nxt] > served[rows, best])
    return has & more & meets_tpot[rows, nxt] & (BATCHES[nxt] > cap_batch)


def _hbm_rows(tier: np.ndarray, kinds: list[str]) -> np.ndarray:
    """Each decode row's HBM-only sibling (rows come in groups of one per tier, innermost); a row is
    its own where the candidates have no HBM tier."""
    rows = np.arange(len(tier))
    return rows - tier + kinds.index("hbm") if "hbm" in kinds else rows


def aggregated_stage(c: Candidates, inst: Instances | None = None) -> Stage:
    """Colocated instances: the largest concurrency meeting both targets within memory.
    ``inst``: ``instances(c, kv=True)`` when the caller has it."""
    w = c.workload
    inst = instances(c, kv=True) if inst is None else inst
    st = _stage(inst, ("acc", "weights", "kv", "tp", "dp", "moe_ep"))
    if not len(inst):
        return st
    cols = inst.cols
    mem = evaluate("memory", {**cols, "batch": 1.0, "context_tokens": float(w.mean_context)})
    admitted = admitted_sequences(cols, float(w.prompt_tokens), float(w.output_tokens))  # as the runtime reserves
    grid = {k: (v[:, None] if np.ndim(v) else v) for k, v in cols.items()}
    b = BATCHES[None, :]
    # traffic arrives as a Poisson stream; each accelerator's runtime's token budget and overheads
    step = aggregated_load(grid, b, w.new_tokens, w.output_tokens, prefix_tokens=w.prefix_tokens, arrivals="poisson",
                           ttft_stat=w.ttft_stat, tpot_stat=w.tpot_stat)
    tpot, ttft = step["tpot_s"], step["ttft_s"]
    ok = (tpot <= w.tpot_s) & (ttft <= w.ttft_s) & (b <= admitted[:, None])
    has = ok.any(axis=1)
    best = np.maximum(_largest(ok), 0)
    idx = np.arange(len(inst))
    st.values = {"concurrency": np.where(has, BATCHES[best], 0.0), "inferred": cols["inferred"],
                 "tpot_s": np.where(has, tpot[idx, best], np.nan),
                 "tpot_mean_s": np.where(has, step["tpot_mean_s"][idx, best], np.nan),
                 "ttft_unloaded_s": np.where(has, step["ttft_unloaded_s"][idx, best], np.nan),
                 "ttft_s": np.where(has, ttft[idx, best], np.nan), "tp": cols["tp"], "dp": cols["dp"],
                 "kv_capacity_bytes": mem["kv_capacity_bytes"], "kv_request_bytes": mem["kv_sequence_bytes"],
                 "kv_bound": has & (BATCHES[np.minimum(best + 1, len(BATCHES) - 1)] > admitted),
                 "limit_bound": admitted >= np.broadcast_to(cols["max_sequences"], np.shape(admitted))}
    for i in range(len(inst)):
        if st.reasons[i] is None and not has[i]:
            st.reasons[i] = ("weights and one sequence's KV do not fit" if admitted[i] < 1
                             else "misses the TTFT or TPOT target even at concurrency 1")
    return st
