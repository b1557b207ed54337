"""``predict``: what each serving run should measure — TTFT and TPOT statistics and the
deployment's output tokens per second — vectorised over all runs, with the relative error
against what a run measured and the mean absolute error per group.

A run's ``engine`` picks its runtime profile (``runtime`` overrides); a run whose KV format is not
given takes the profile's default for its weights. Runs this model cannot predict yet (unknown
specs, expert parallelism, DP attention, disaggregated pools) carry the reason in ``error``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..cost.precision import Precision, default_activations, infeasible_reason
from ..cost.runtime import GENERIC, engine_id, engine_profile_id
from ..spec.catalog import Catalog
from ..spec.errors import PdroofError
from .load import admitted_sequences, aggregated_load
from .runs import Run
from .stage import context_reason, stage_inputs, tp_reason

STATS = {"mean": "mean", "median": "p50", "p90": "p90", "p99": "p99"}  # schema name -> model statistic
UNSUPPORTED = "not supported yet (expert parallelism, DP attention and disaggregated pools come with the MoE work)"


@dataclass
class Prediction:
    run: Run
    runtime: str | None = None
    predicted: dict | None = None
    vs_measured: dict | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return {"id": self.run.id, "runtime": self.runtime, "predicted": self.predicted,
                "vs_measured": self.vs_measured, "error": self.error}


def group_key(run: Run) -> str:
    pool = run.pools.get("deployment") or run.pools.get("decode")
    acc = pool.accelerator if pool else "?"
    return " · ".join(str(x) for x in (run.model, acc, run.engine or "-", run.engine_version or "-", run.weights,
                                       run.mode))


def _runtime_id(cat: _Specs, run: Run, override: str | None) -> str:
    """``override``, else the profile that stands for the run's engine at its version (or what the
    default resolves to on its accelerator, as ``rank`` does; so does an override of ``engine``)."""
    if override and override != GENERIC:
        return override
    acc = cat.get("accelerator", run.pools["deployment"].accelerator)
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
    """(runtime, model, stage inputs) of a run's deployment, or raise PdroofError with the reason
    it cannot be predicted; the same for every run of one configuration."""
    if run.mode != "aggregated":
        raise PdroofError(f"disaggregated runs are {UNSUPPORTED}")
    pool = run.pools["deployment"]
    model, acc = cat.get("model", run.model), cat.get("accelerator", pool.accelerator)
    rt = cat.get("runtime", _runtime_id(cat, run, override))
    if pool.dp > 1:
        raise PdroofError(f"DP attention (dp {pool.dp}) is {UNSUPPORTED}")
    if model.moe is not None and pool.moe_ep > 1:
        raise PdroofError(f"expert parallelism (moe_ep {pool.moe_ep}) is {UNSUPPORTED}")
    reason = tp_reason(model, acc, pool.tp)
    if reason:
        raise PdroofError(reason)
    kv = run.kv or rt.structure.default_kv.get(run.weights) or ("fp8" if run.weights in ("fp8", "fp4") else "bf16")
    if kv not in acc.precision_paths.kv:
        kv = acc.precision_paths.kv[0]
    p = Precision(run.weights, default_activations(acc, run.weights), kv)
    reason = infeasible_reason(acc, p)
    if reason:
        raise PdroofError(reason)
    inputs, _ = stage_inputs(model, acc, rt, p, pool.tp)
    return rt, model, inputs


def _scalars(model, run: Run) -> dict[str, float]:
    """The run's own load and lengths, or raise PdroofError."""
    reason = context_reason(model, run.isl + run.osl, "isl + osl")
    if reason:
        raise PdroofError(reason)
    pool = run.pools["deployment"]
    load = run.concurrency if run.concurrency is not None else pool.batch
    if load is None:
        raise PdroofError("neither concurrency nor the deployment's batch gives the load")
    return {"clients": max(1.0, load / pool.instances), "prompt": run.isl * run.length_mean,
            "output": run.osl * run.length_mean, "instances": float(pool.instances), "drift": float(run.lengths_vary)}


def _stack(dicts: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.array([d[k] for d in dicts], dtype=float) for k in dicts[0]}


def predict(cat: Catalog, runs: list[Run], runtime: str | None = None, waves: float = 10.0) -> list[Prediction]:
    """Predictions for ``runs`` (in order); the ones that can be predicted are evaluated together.
    ``waves``: requests per client in each benchmark (its first wave queues)."""
    if not (np.isfinite(waves) and waves >= 1):
        raise PdroofError(f"--waves must be a number of at least 1, not {waves!r}")
    if runtime:  # an override that does not resolve is the command's error, not each run's
        cat.get("runtime", runtime)
    out = [Prediction(r) for r in runs]
    specs = _Specs(cat)
    ok, inputs, scalars = [], [], []
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
            rt, model, inp = seen[key]
            sc = _scalars(model, run)
        except PdroofError as exc:
            out[i].error = str(exc)
            continue
        out[i].runtime = rt.id
        ok.append(i)
        inputs.append(inp)
        scalars.append(sc)
    if not ok:
        return out
    cols, sc = _stack(inputs), _stack(scalars)
    admitted = admitted_sequences(cols, sc["prompt"], sc["output"])
    res = aggregated_load(cols, sc["clients"], sc["prompt"], sc["output"], arrivals="closed", admitted=admitted,
                          waves=waves, drift=sc["drift"])
    for j, i in enumerate(ok):
        if admitted[j] < 1:
            out[i].error = "the weights leave no KV memory for one sequence"
            continue
        tpot = float(res["tpot_s"][j]) * 1e3
        pred = {"tpot_ms": {"mean": tpot, "median": tpot},
                "ttft_ms": {name: float(res[f"ttft_{stat}_s"][j]) * 1e3 for name, stat in STATS.items()},
                "output_tokens_per_s": float(res["requests_per_s"][j] * sc["output"][j] * sc["instances"][j]),
                "requests_per_s": float(res["requests_per_s"][j] * sc["instances"][j]),
                "load": {"admitted_per_instance": int(res["admitted"][j]),
                         "decode_batch": float(res["decode_batch"][j]), "job_prompts": int(res["job_prompts"][j]),
                         "prefill_utilisation": float(res["utilisation"][j])}}
        out[i].predicted = pred
        out[i].vs_measured = vs_measured(pred, runs[i].measured)
    return out


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
            "tpot_median_error": _median(errs["tpot_ms"]), "ttft_median_error": _median(errs["ttft_ms"])}


def _mae(v: list[float]) -> float | None:
    return float(np.mean(np.abs(v))) if v else None


def _median(v: list[float]) -> float | None:
    return float(np.median(v)) if v else None
