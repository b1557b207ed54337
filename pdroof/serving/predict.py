"""``predict``: what each serving run should measure — TTFT and TPOT statistics and the
deployment's output tokens per second — vectorised over all runs, with the relative error
against what a run measured and the mean absolute error per group.

A run's ``engine`` picks its runtime profile (``runtime`` overrides); a run whose KV format is not
given takes the profile's default for its weights. A deployment's split (tp, dp, moe_tp, moe_ep) is
taken as the run gives it; under DP attention each replica carries its share of the clients.
Aggregated runs take the closed loop of one engine (``load.aggregated_load``), disaggregated ones
the loop over their prefill and decode pools with the KV hand-off between them (``pool_loop``).
Runs this model cannot predict (unknown specs, a split the model or accelerator cannot run) carry
the reason in ``error``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..cost.parallelism import Parallelism, split_reason
from ..cost.precision import Precision, default_activations, infeasible_reason
from ..cost.runtime import GENERIC, engine_id, engine_profile_id, own_profile_id
from ..spec.catalog import Catalog
from ..spec.errors import PdroofError
from ..spec.schema import Record
from .handoff import layerwise_overlap, path_bandwidth, path_reason, transfer_columns
from .load import admitted_sequences, aggregated_load
from .pool_loop import pool_loop
from .runs import Pool, Run
from .space import stack_rows
from .stage import context_reason, prefill_passes, stage_inputs, tp_reason

STATS = {"mean": "mean", "median": "p50", "p90": "p90", "p99": "p99"}  # schema name -> model statistic


@dataclass
class Prediction:
    run: Run
    runtime: str | None = None
    predicted: dict | None = None
    vs_measured: dict | None = None
    error: str | None = None
    stand_in: bool = False  # the run's engine has no profile: the accelerator's default engine's stood in

    def to_dict(self) -> dict:
        return {"id": self.run.id, "runtime": self.runtime, "predicted": self.predicted,
                "vs_measured": self.vs_measured, "error": self.error}


def group_key(run: Run) -> str:
    pool = run.pools.get("deployment") or run.pools.get("decode")
    acc = pool.accelerator if pool else "?"
    return " · ".join(str(x) for x in (run.model, acc, run.engine or "-", run.engine_version or "-", run.weights,
                                       run.mode))


def _runtime_id(cat: _Specs, run: Run, pool: Pool, override: str | None) -> str:
    """``override``, else the profile that stands for the run's engine at its version (or what the
    default resolves to on the pool's accelerator, as ``rank`` does; so does an override of
    ``engine``)."""
    if override and override != GENERIC:
        return override
    acc = cat.get("accelerator", pool.accelerator)
    if override:
        return engine_id(cat.cat, acc)
    return engine_profile_id(cat.cat, run.engine, run.engine_version, acc)


class _Specs:
    """The catalogue's specs, each looked up once for a whole file of runs."""

    def __init__(self, cat: Catalog):
        self.cat, self.memo = cat, {}

    def get(self, kind: str, ref: str):
        key = (kind, ref)
        if key not in self.memo:
            try:
                self.memo[key] = self.cat.get(kind, ref)
            except PdroofError as exc:
                self.memo[key] = exc
        found = self.memo[key]
        if isinstance(found, PdroofError):
            raise found
        return found


def _configuration(cat: _Specs, run: Run, override: str | None):
    """(model, {pool name: (runtime, accelerator, precision, stage inputs)}) of a run's pools, or
    raise PdroofError with the reason it cannot be predicted; the same for every run of one
    configuration."""
    model = cat.get("model", run.model)
    stages = {name: _pool_stage(cat, run, model, pool, override) for name, pool in run.pools.items()}
    if run.mode == "disaggregated":
        stages["path"] = _kv_path(cat, stages["prefill"][1], stages["decode"][1])
    return model, stages


def _pool_stage(cat: _Specs, run: Run, model, pool: Pool, override: str | None):
    acc = cat.get("accelerator", pool.accelerator)
    rt = cat.get("runtime", _runtime_id(cat, run, pool, override))
    par = Parallelism(pool.tp, pool.dp, pool.moe_tp, pool.moe_ep)
    if par.experts_tp * par.moe_ep != par.devices and par.devices % par.moe_ep == 0:
        # a source that fills moe_tp with 1 (or leaves it): every device of the instance holds experts
        par = Parallelism(pool.tp, pool.dp, None, pool.moe_ep)
    reason = tp_reason(model, acc, pool.tp) or split_reason(model, acc, par, given=True)
    if reason:
        raise PdroofError(reason)
    kv = run.kv or rt.structure.default_kv.get(run.weights) or ("fp8" if run.weights in ("fp8", "fp4") else "bf16")
    if kv not in acc.precision_paths.kv:
        kv = acc.precision_paths.kv[0]
    p = Precision(run.weights, default_activations(acc, run.weights), kv)
    reason = infeasible_reason(acc, p)
    if reason:
        raise PdroofError(reason)
    inputs, _ = stage_inputs(model, acc, rt, p, pool.tp, par)
    return rt, acc, p, inputs


def _scalars(model, run: Run) -> dict[str, float]:
    """The run's own load and lengths per attention replica, or raise PdroofError."""
    reason = context_reason(model, run.isl + run.osl, "isl + osl")
    if reason:
        raise PdroofError(reason)
    lengths = {"prompt": run.isl * run.length_mean, "output": run.osl * run.length_mean,
               "drift": float(run.lengths_vary)}
    if run.mode == "aggregated":
        pool = run.pools["deployment"]
        load = run.concurrency if run.concurrency is not None else pool.batch
        if load is None:
            raise PdroofError("neither concurrency nor the deployment's batch gives the load")
        replicas = pool.instances * pool.dp  # each attention replica runs its share of the clients
        # fewer clients than replicas leave some idle: a fractional share, not one each
        return {"clients": load / replicas, "instances": float(replicas), "dp": float(pool.dp), **lengths}
    pre, dec = run.pools["prefill"], run.pools["decode"]
    replicas = {"prefill": pre.instances * pre.dp, "decode": dec.instances * dec.dp}
    if run.concurrency is None and dec.batch is None:
        raise PdroofError("neither concurrency nor the decode pool's batch gives the load")
    # without a concurrency the decode pool's batch (per attention replica) is the load; with one,
    # each pool's batch is its engine's cap (a prefill job's prompts, a decode replica's sequences)
    clients = run.concurrency if run.concurrency is not None else dec.batch * replicas["decode"]
    return {"clients": float(clients), "prefill_replicas": float(replicas["prefill"]),
            "decode_replicas": float(replicas["decode"]),
            "job_cap": float(pre.batch) if pre.batch is not None else np.inf,
            "batch_cap": float(dec.batch) if dec.batch is not None else np.inf, **lengths}


def _stack(dicts: list[dict]) -> dict[str, np.ndarray]:
    """Columns of ``dicts``; runs of one configuration share their inputs' dict, stacked once."""
    first: dict[int, int] = {}
    index = np.array([first.setdefault(id(d), len(first)) for d in dicts])
    return {k: v[index] for k, v in stack_rows(list({id(d): d for d in dicts}.values())).items()}


def predict(cat: Catalog, runs: list[Run], runtime: str | None = None, waves: float = 10.0) -> list[Prediction]:
    """Predictions for ``runs`` (in order); the ones that can be predicted are evaluated together,
    aggregated and disaggregated runs each in one pass. ``waves``: requests per client in each
    benchmark (its first wave queues)."""
    if not (np.isfinite(waves) and waves >= 1):
        raise PdroofError(f"--waves must be a number of at least 1, not {waves!r}")
    if runtime:  # an override that does not resolve is the command's error, not each run's
        cat.get("runtime", runtime)
    out = [Prediction(r) for r in runs]
    specs = _Specs(cat)
    ready: dict[str, list] = {"aggregated": [], "disaggregated": []}  # (index, model, stages, scalars)
    seen: dict[tuple, tuple | PdroofError] = {}  # runs of one configuration resolve their specs once
    for i, run in enumerate(runs):
        try:
            if run.error:
                raise PdroofError(run.error)
            key = (run.mode, run.model, run.engine, run.engine_version, run.weights, run.kv,
                   tuple(sorted(run.pools.items())))
            if key not in seen:
                try:
                    seen[key] = _configuration(specs, run, runtime)
                except PdroofError as exc:
                    seen[key] = exc
            if isinstance(seen[key], PdroofError):
                raise seen[key]
            model, stages = seen[key]
            sc = _scalars(model, run)
        except PdroofError as exc:
            out[i].error = str(exc)
            continue
        out[i].runtime = stages.get("deployment", stages.get("decode"))[0].id
        out[i].stand_in = runtime is None and bool(run.engine) and own_profile_id(cat, run.engine,
                                                                                  run.engine_version) is None
        ready[run.mode].append((i, model, stages, sc))
    if ready["aggregated"]:
        _aggregated(ready["aggregated"], out, waves)
    if ready["disaggregated"]:
        _disaggregated(ready["disaggregated"], out, waves)
    for p in out:
        if p.predicted is not None:
            p.vs_measured = vs_measured(p.predicted, p.run.measured)
    return out


def _aggregated(rows: list, out: list[Prediction], waves: float) -> None:
    cols, sc = _stack([st["deployment"][3] for _, _, st, _ in rows]), _stack([s for *_, s in rows])
    admitted = admitted_sequences(cols, sc["prompt"], sc["output"])
    res = aggregated_load(cols, sc["clients"], sc["prompt"], sc["output"], arrivals="closed", admitted=admitted,
                          waves=waves, drift=sc["drift"])
    per_run = _per_run(res, sc["output"], sc["instances"], {
        "admitted_per_instance": np.floor(res["admitted"] * sc["dp"]), "decode_batch": res["decode_batch"] * sc["dp"],
        "job_prompts": np.round(res["job_prompts"], 2), "prefill_utilisation": res["utilisation"]})
    for j, (i, *_) in enumerate(rows):
        if admitted[j] < 1:
            out[i].error = "the weights leave no KV memory for one sequence"
        else:
            out[i].predicted = per_run[j]
            out[i].predicted["load"]["admitted_per_instance"] = int(out[i].predicted["load"]["admitted_per_instance"])


def _disaggregated(rows: list, out: list[Prediction], waves: float) -> None:
    pre = _stack([st["prefill"][3] for _, _, st, _ in rows])
    dec = _stack([st["decode"][3] for _, _, st, _ in rows])
    sc = _stack([s for *_, s in rows])
    admitted = admitted_sequences(dec, sc["prompt"], sc["output"])  # a decode replica's KV memory
    handoff = _handoff_s(rows, pre, dec, sc)
    res = pool_loop(pre, dec, sc["clients"], sc["prompt"], sc["output"], prefill_replicas=sc["prefill_replicas"],
                    decode_replicas=sc["decode_replicas"], job_cap=sc["job_cap"],
                    batch_cap=np.minimum(admitted, sc["batch_cap"]), handoff_s=handoff,
                    request_s=pre["disaggregated_request_s"], drift=sc["drift"], waves=waves)
    bound = np.where(res["prefill_bound"], "prefill", np.where(res["decode_bound"], "decode", ""))
    per_run = _per_run(res, sc["output"], np.ones_like(sc["output"]), {
        "decode_batch_per_replica": res["decode_batch"], "job_prompts": np.round(res["job_prompts"], 2),
        "prefill_utilisation": res["utilisation"], "handoff_ms": handoff * 1e3})
    for j, (i, *_) in enumerate(rows):
        if admitted[j] < 1:
            out[i].error = "the decode pool's weights leave no KV memory for one sequence"
        else:
            out[i].predicted = per_run[j]
            out[i].predicted["load"]["bound"] = str(bound[j]) or None


def _per_run(res: dict, output, instances, load: dict[str, np.ndarray]) -> list[dict]:
    """Each run's prediction (ms, tokens/s and the load's internals), from the columns as Python
    numbers (converted once, not element by element)."""
    tpot = (res["tpot_s"] * 1e3).tolist()
    ttft = {name: (res[f"ttft_{stat}_s"] * 1e3).tolist() for name, stat in STATS.items()}
    rate = (res["requests_per_s"] * instances).tolist()
    tokens = (res["requests_per_s"] * output * instances).tolist()
    loads = {k: np.asarray(v, dtype=float).tolist() for k, v in load.items()}
    return [{"tpot_ms": {"mean": tpot[j], "median": tpot[j]}, "ttft_ms": {name: v[j] for name, v in ttft.items()},
             "output_tokens_per_s": tokens[j], "requests_per_s": rate[j],
             "load": {k: v[j] for k, v in loads.items()}} for j in range(len(tpot))]


# The KV path between a run's pools, which runs do not name: the first of these both ends can use
# (GPU-direct RDMA at the NICs the measured systems carry, then plain RoCE, then TCP)
KV_PATHS = ("ib-ndr-400", "roce-400", "tcp-100g")


def _handoff_s(rows: list, pre: dict, dec: dict, sc: dict) -> np.ndarray:
    """Exposed time of each run's prompt KV crossing from a prefill replica to a decode replica,
    moved layer by layer behind its prefill (all runs in one evaluation)."""
    paths = [st["path"] for _, _, st, _ in rows]
    bandwidth = np.array([path_bandwidth(st["path"], st["prefill"][1], st["decode"][1]) for _, _, st, _ in rows])
    prefill_s = prefill_passes(pre, 1.0, sc["prompt"])["seconds"]
    tokens = np.maximum(1.0, np.round(sc["prompt"]))
    exposed = np.empty(len(rows))
    for path in dict.fromkeys(paths):  # one evaluation per path (its latency and efficiency are scalars)
        on = np.array([p is path for p in paths])
        sub = {k: (v[on] if np.ndim(v) else v) for k, v in pre.items()}
        exposed[on] = transfer_columns(sub, path, bandwidth[on], pre["kv_bytes"][on], tokens[on], tokens[on],
                                       pre["tp"][on], dec["tp"][on],
                                       layerwise_overlap(prefill_s[on], pre["layers"][on]))["exposed_seconds"]
    return exposed


def _kv_path(specs: _Specs, src: Record, dst: Record) -> Record:
    """The first of ``KV_PATHS`` both ends can use."""
    for pid in KV_PATHS:
        path = specs.get("path", pid)
        if path_reason(path, src, dst) is None:
            return path
    raise PdroofError(f"no KV path joins {src.id} and {dst.id}")
def vs_measured(pred: dict, measured: dict) -> dict | None:
    """Relative error (predicted / measured − 1) per metric, on the median where measured, else the mean."""
    if not measured:
        return None
    res = {}
    for metric in ("tpot_ms", "ttft_ms"):
        m = measured.get(metric, {})
        stat = "median" if "median" in m else "mean" if "mean" in m else None
        if stat is None or stat not in pred[metric]:
            continue
        res[metric] = {"stat": stat, "measured": m[stat], "predicted": pred[metric][stat],
                       "error": pred[metric][stat] / m[stat] - 1}
    return res or None


def group_errors(preds: list[Prediction]) -> list[dict]:
    """Mean absolute relative error of TPOT and TTFT per group (runs with both a prediction and a measurement)."""
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"tpot_ms": [], "ttft_ms": []})
    for p in preds:
        if not p.vs_measured:
            continue
        g = groups[group_key(p.run)]
        for metric, v in p.vs_measured.items():
            g[metric].append(v["error"])
    rows = []
    for key, g in groups.items():
        rows.append({"group": key, "runs": max(len(g["tpot_ms"]), len(g["ttft_ms"])),
                     "tpot_mae": _mae(g["tpot_ms"]), "ttft_mae": _mae(g["ttft_ms"])})
    return rows


def overall(preds: list[Prediction]) -> dict:
    errs: dict[str, list[float]] = {"tpot_ms": [], "ttft_ms": []}
    for p in preds:
        for metric, v in (p.vs_measured or {}).items():
            errs[metric].append(v["error"])
    return {"runs": len(preds), "predicted": sum(p.error is None for p in preds),
            "tpot_mae": _mae(errs["tpot_ms"]), "ttft_mae": _mae(errs["ttft_ms"]),
            "tpot_median_error": _median(errs["tpot_ms"]), "ttft_median_error": _median(errs["ttft_ms"]),
            "engines_without_profile": sorted({p.run.engine for p in preds if p.stand_in})}


def _mae(v: list[float]) -> float | None:
    return float(np.mean(np.abs(v))) if v else None


def _median(v: list[float]) -> float | None:
    return float(np.median(v)) if v else None
