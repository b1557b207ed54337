"""Fit a runtime profile to measured serving runs (``pdroof calibrate RUNS``): the few factors such
runs determine, each within physical bounds; every other factor stays the base profile's.

A serving run measures whole requests (TTFT, TPOT), so a factor can be fitted only where the runs
move with it and it can be told apart from the others: weight streaming from decode steps at few
sequences, decode attention from long contexts at many, GEMM compute from long prompts, the
per-step overhead from two or more loads, the per-request overhead from TTFTs at few clients. Each
is judged by the sensitivity of the predicted TTFT and TPOT to it (d log prediction per step of the
factor, by finite differences) at the base profile: a factor the runs barely move, or one whose
effect is nearly a combination of better-determined ones, keeps the base's value, and the report
names the kind of run that would determine it; no more factors are fitted than half the
measurements of their metric. The decode factors are fitted to TPOT, then the prefill and request
ones to TTFT (median where measured, else mean) by coordinate search on grids refined around the
best point, each step a factor moves from the base's value costing a point of error (a prior: the
base's values come from kernel measurements). Each candidate is evaluated by ``predict`` — the same
closed-loop load model — on a profile written to a scratch catalogue, so that what is written is
exactly what was evaluated. Last, each run is predicted by a fit to the others: a metric those fits
predict worse than the base does is one the runs do not determine as chosen after all, and of its
factors fitted the one the runs depend on least keeps the base's value (TPOT's first where both
metrics are worse); the choice is made again without it, until every metric fitted predicts its
runs left out better than the base.
"""

from __future__ import annotations

import copy
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

from ..cost.precision import default_activations
from ..cost.runtime import resolved_entry
from ..serving.predict import predict
from ..serving.runs import Run
from ..spec.catalog import Catalog
from ..spec.errors import PdroofError
from ..spec.profile import stated_over_tiers
from ..spec.schema import Record
from ..spec.view import percent
from ..spec.yamlio import json_spec_text
from .measurements import digest as file_digest
from .serving_factors import Factor, base_value, factors_for

SENSITIVE = 0.01  # a factor's step must move the predictions by 1% (rms) to be fitted
SEPARABLE = 0.3  # ... and that much of its effect must be its own, not the others' combination
# each step a factor moves away from the base's value (a step of ``Factor.step``) costs this much mean
# absolute log error: the base's factors come from kernel measurements, and a few serving runs fit
# noise as readily as signal. Chosen, before the cross-validated choice of factors, by the
# leave-one-out error over the shared set's 17 groups (benchmarks/calibrate_groups.py): TPOT 12.4%,
# TTFT 25.0% without it; 11.1%, 23.2% at 0.01; 11.2%, 22.1% at 0.02; 0.04 shrinks too far. Nested
# (calibrate_groups.py --nested) with the choice, 2026-12-07: 11.0%/22.8% at 0.005, 10.5%/21.9% at
# 0.01, 11.1%/23.0% at 0.02
PRIOR_PER_STEP = 0.01
GRID, ROUNDS, SWEEPS, ALTERNATIONS = 7, 3, 2, 3
METRICS = ("tpot", "ttft")


class _Evaluator:
    """Predictions of the runs under candidate values, on a profile written to a scratch catalogue
    (memoised by value)."""

    def __init__(self, cat: Catalog, base_doc: dict, profile_id: str, runs: list[Run]):
        self.base_doc, self.id, self.runs = base_doc, profile_id, runs
        self.tmp = tempfile.TemporaryDirectory(prefix="pdroof-calibrate-")
        self.dir = Path(self.tmp.name) / "hardware" / "runtimes"
        self.dir.mkdir(parents=True)
        self.cat = cat  # candidates are looked up by path: the caller's catalogue resolves what they inherit
        self.memo: dict[tuple, np.ndarray] = {}
        self.written = 0
        self.start: dict[Factor, float] = {}  # the base profile's values (set once they are read)

    def _write(self, values: dict[Factor, float]) -> str:
        """The candidate as a file of its own (the catalogue caches profiles by file and time)."""
        self.written += 1
        path = self.dir / f"{self.id}-candidate-{self.written}.yaml"
        path.write_text(json_spec_text(self.document(values)), encoding="utf-8")
        return str(path)

    def document(self, values: dict[Factor, float], sources: dict[Factor, str] | None = None) -> dict:
        doc = copy.deepcopy(self.base_doc)
        doc["id"] = self.id
        doc.pop("up_to_version", None)
        for f, v in values.items():
            if f.path == AMOUNT:  # the amount the engine keeps: shifted alike on every device (see _shift_amount)
                _shift_amount(doc, _written(f, v) - self.start.get(f, float(v)), sources[f] if sources else None)
                continue
            node = doc
            for key in f.path[:-1]:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise PdroofError(f"base profile: {'.'.join(f.path)} is not a mapping")
            value = _written(f, v)
            node[f.path[-1]] = ({"value": value, "basis": "fitted", "source": sources[f]} if sources else value)
        # a fitted budget or share holds on every device, the tiers the base gives for smaller ones included
        stated = {f.path[1]: None for f in values if f.path[0] == "structure" and f.path != AMOUNT}
        return stated_over_tiers(doc, stated)

    def record(self, values: dict[Factor, float]) -> Record:
        """The candidate profile as the catalogue loads it."""
        return self.cat.get("runtime", self._write(values))

    def log_ratios(self, values: dict[Factor, float]) -> np.ndarray:
        """log(predicted / measured) per run and metric (nan where a run measured none). A candidate
        under which a run cannot be served (its memory reserve leaves no room for the weights) is
        infinitely wrong for it; the base profile is not allowed that."""
        key = tuple(sorted((f.path, round(float(v), 6)) for f, v in values.items()))
        if key not in self.memo:
            preds = predict(self.cat, self.runs, runtime=self._write(values))
            out = np.full((len(preds), 2), np.nan)
            for i, p in enumerate(preds):
                if p.error and values and any(v != self.start.get(f) for f, v in values.items()):
                    out[i] = np.inf
                    continue
                if p.error:
                    raise PdroofError(f"run {p.run.id}: {p.error}")
                for j, metric in enumerate(f"{m}_ms" for m in METRICS):
                    v = (p.vs_measured or {}).get(metric)
                    if v:
                        out[i, j] = np.log(v["predicted"] / v["measured"])
            self.memo[key] = out
        return self.memo[key]

    def error(self, values: dict[Factor, float], metric: int, rows=None) -> float:
        """Mean |log error| of TPOT (``metric`` 0) or of TTFT (1); 0 where no run measured it."""
        r = self.log_ratios(values)[:, metric]
        r = r if rows is None else r[rows]
        # nan: not measured; inf: a run the candidate cannot serve (never a loss of 0)
        return float(np.nanmean(np.abs(r))) if (~np.isnan(r)).any() else 0.0

    def loss(self, values: dict[Factor, float], metric: int, rows=None, tpot_cap: float = np.inf) -> float:
        """What the search minimises: the metric's error, plus the cost of the factors' distance
        from the base (``penalty``), plus for TTFT a steep penalty for TPOT beyond ``tpot_cap``."""
        out = self.error(values, metric, rows) + self.penalty(values)
        return out + 10 * max(0.0, self.error(values, 0, rows) - tpot_cap) if metric else out

    def penalty(self, values: dict[Factor, float]) -> float:
        """The cost of moving the factors from the base profile's values (``PRIOR_PER_STEP``)."""
        return PRIOR_PER_STEP * sum(_steps(f, v, self.start[f]) for f, v in values.items() if f in self.start)


AMOUNT = ("structure", "memory_reserve_gib")


def _shift_amount(doc: dict, delta_gib: float, source: str | None) -> None:
    """Add ``delta_gib`` to the amount the engine keeps, the structure's and each tier's alike: what
    the runs show beyond the engine's heuristic on one device (its CUDA context, buffers the
    heuristic leaves out) is taken to be the same on the others, which keep their heuristic's
    differences (SGLang's scale with its chunk)."""
    st = doc.setdefault("structure", {})
    tiers = [t for t in st.get("smaller_devices") or () if isinstance(t, dict) and "memory_reserve_gib" in t]
    for node in (st, *tiers):
        was = node.get("memory_reserve_gib", 0.0)
        value = round(max(float(was["value"] if isinstance(was, dict) else was) + delta_gib, 0.0), 1)
        # with provenance, the structure's value carries its own; a tier names one source for all its values
        fitted = source is not None and node is st
        node["memory_reserve_gib"] = {"value": value, "basis": "fitted", "source": source} if fitted else value
        if source is not None and node is not st:
            node["source"] = f"{node.get('source', '')}; its amount shifted by {delta_gib:+.1f} GiB ({source})"


def _written(f: Factor, v: float) -> float:
    """The value as the profile holds it (and the report prints it)."""
    return round(float(v), 4 if f.multiplicative else 1)


def _steps(f: Factor, v: float, v0: float) -> float:
    """How many of the factor's search steps ``v`` lies from ``v0``."""
    if f.multiplicative:
        return abs(np.log(max(v, 1e-12) / max(v0, 1e-12))) / np.log(f.step)
    return abs(v - v0) / f.step


def _moved(f: Factor, v: float, sign: float = 1.0) -> float:
    return float(np.clip(v * f.step ** sign if f.multiplicative else v + sign * f.step, f.lo, f.hi))


def determined(ev: _Evaluator, factors: list[Factor], values: dict[Factor, float], metric: int) -> dict[Factor, str]:
    """Each factor the runs cannot determine, with the reason. A factor's column is the change of
    every log prediction for one step of it; it is determined when that moves the predictions by
    ``SENSITIVE`` (rms), ``SEPARABLE`` of its column is not a combination of the columns already
    accepted (taken in order of their size), and the runs measured this metric at least twice for
    every factor accepted (fewer would fit noise: two or three runs determine one factor)."""
    cols = _columns(ev, factors, values, metric)
    if cols is None:
        what = METRICS[metric].upper()
        return {f: f"no run measured the {what} mean or median it moves; needs {f.needs}" for f in factors}
    reasons, accepted = {}, []
    for f in sorted(factors, key=lambda f: -np.sqrt(np.mean(cols[f] ** 2))):
        c = cols[f]
        size = float(np.sqrt(np.mean(c ** 2)))
        if size < SENSITIVE:
            reasons[f] = f"these runs hardly depend on it (a step moves them {size:.1%}); needs {f.needs}"
            continue
        if accepted:
            basis = np.column_stack([cols[a] for a in accepted])
            own = c - basis @ np.linalg.lstsq(basis, c, rcond=None)[0]
            if np.sqrt(np.mean(own ** 2)) < SEPARABLE * size:
                names = ", ".join(a.name for a in accepted)
                reasons[f] = f"these runs cannot tell it apart from {names}; needs {f.needs}"
                continue
        if len(accepted) + 1 > len(c) // 2:  # two measurements per fitted factor, at least
            more = f" and {', '.join(a.name for a in accepted)} move them more" if accepted else ""
            reasons[f] = (f"{len(c)} measurement(s) determine at most {len(c) // 2} factor(s){more}; "
                          f"needs more runs: {f.needs}")
            continue
        accepted.append(f)
    return reasons


def _columns(ev: _Evaluator, factors: list[Factor], values: dict[Factor, float],
             metric: int) -> dict[Factor, np.ndarray] | None:
    """Each factor's column: the change of every measured log prediction of ``metric`` for one step
    of it from ``values`` (None where no run measured the metric)."""
    base = ev.log_ratios(values)[:, metric]
    ok = ~np.isnan(base)
    if not ok.any():
        return None
    cols = {}
    for f in factors:
        v = values[f]
        up = _moved(f, v) if _moved(f, v) != v else _moved(f, v, -1.0)
        cols[f] = (ev.log_ratios({**values, f: up})[:, metric] - base)[ok]
    return cols


def fit(ev: _Evaluator, factors: list[Factor], start: dict[Factor, float], rows=None,
        sweeps: int = SWEEPS) -> dict[Factor, float]:
    """Coordinate search: each factor over a grid across its bounds, then grids refined around the
    best point, for ``sweeps`` passes. The decode factors come first, on TPOT alone (it measures
    them cleanly); then the prefill and request ones with those fixed, on TTFT, as far as TPOT
    stays within a point of its fit (prefill jobs also lengthen the steps decodes see, and a TTFT
    the model cannot follow must not pull the decode back off)."""
    values = dict(start)
    for _ in range(ALTERNATIONS):  # the stages again until neither moves: prefill jobs shape TPOT too
        before = dict(values)
        values = _fit_metric(ev, [f for f in factors if f.metric == 0], values, 0, rows, sweeps)
        cap = ev.error(values, 0, rows) + 0.01  # the prefill factors may not undo the decode fit
        values = _fit_metric(ev, [f for f in factors if f.metric == 1], values, 1, rows, sweeps, cap)
        if values == before:
            break
    return values


def _fit_metric(ev: _Evaluator, factors: list[Factor], values: dict[Factor, float], metric: int, rows,
                sweeps: int, tpot_cap: float = np.inf) -> dict[Factor, float]:
    values = dict(values)
    for _ in range(sweeps):
        for f in factors:
            lo, hi = f.lo, f.hi
            for _ in range(ROUNDS):
                axis = (np.geomspace(max(lo, 1e-3), hi, GRID) if f.multiplicative else np.linspace(lo, hi, GRID))
                losses = [ev.loss({**values, f: float(x)}, metric, rows, tpot_cap) for x in axis]
                i = int(np.argmin(losses))
                if losses[i] < ev.loss(values, metric, rows, tpot_cap):
                    values[f] = float(axis[i])
                lo, hi = float(axis[max(i - 1, 0)]), float(axis[min(i + 1, GRID - 1)])
    return values


def calibrate_serving(cat: Catalog, runs: list[Run], runs_path: str | Path, acc: Record, base_doc: dict,
                      profile_id: str) -> tuple[dict, dict]:
    """A runtime document (YAML-ready) fitted to ``runs`` on ``acc``, starting from the raw runtime
    document ``base_doc``, and a report: per factor fitted or kept (with why), predicted against
    measured for every run, and the error with each run left out of the fit."""
    if not runs:
        raise PdroofError(f"{runs_path}: no run carries measurements to fit")
    models = [cat.get("model", m) for m in dict.fromkeys(r.model for r in runs)]
    weights = {r.weights for r in runs}
    activations = {default_activations(acc, w) for w in weights}
    ev = _Evaluator(cat, base_doc, profile_id, runs)
    base = ev.record({})
    if acc.id not in base.profiles:  # write what it resolves to, so that only the fitted factors change
        ev.base_doc = copy.deepcopy(base_doc)
        ev.base_doc["profiles"] = {**(base_doc.get("profiles") or {}), acc.id: resolved_entry(base, acc)}
        base = ev.record({})
    factors = factors_for(acc, models, weights, activations, base)
    start = {f: base_value(f, base, acc) for f in factors}
    ev.start = start
    try:
        before = ev.log_ratios(start)
    except PdroofError as exc:  # a run the base cannot serve as given: the file's
        raise PdroofError(f"{runs_path}: {exc}") from None
    mae_before = _mae(before)
    # cross-validation: a metric that fits to the other runs predict worse, each run left out, than the
    # base does is one these runs do not determine as chosen; of its factors fitted, the one the runs
    # depend on least keeps the base's value (TPOT's first where both are worse: the TTFT fit stands on
    # the TPOT one), and the choice is made again without it until every metric fitted predicts its runs
    # left out better
    rejected: dict[Factor, str] = {}
    while True:
        candidates = [f for f in factors if f not in rejected]
        kept = {**determined(ev, [f for f in candidates if f.metric == 0], start, 0),
                **determined(ev, [f for f in candidates if f.metric == 1], start, 1)}
        values, fitted = _fit_free(ev, [f for f in candidates if f not in kept], start, kept)
        loo = _left_out(ev, len(runs), fitted, start, before)
        left = _mae(loo)
        worse = {m for m in (0, 1) if any(f.metric == m for f in fitted) and left[METRICS[m]] is not None
                 and left[METRICS[m]] > mae_before[METRICS[m]]}
        if not worse:
            break
        metric = min(worse)
        mine = [f for f in fitted if f.metric == metric]
        cols = _columns(ev, mine, start, metric)
        f = min(mine, key=lambda f: float(np.sqrt(np.mean(cols[f] ** 2))))
        m, others = METRICS[metric], ", ".join(o.name for o in mine if o is not f)
        least = f" (of the {m.upper()} factors fitted with {others}, the one they depend on least)" if others else ""
        rejected[f] = (f"with each run left out, a fit to the others predicted its {m.upper()} worse than "
                       f"the base ({left[m]:.2%} against {mae_before[m]:.2%}): these runs do not determine "
                       f"it{least}; needs {f.needs}")
    kept.update(rejected)
    after = ev.log_ratios(values)
    name, digest = Path(runs_path).name, file_digest(runs_path)
    mae_after = _mae(after)
    sources = {f: (f"pdroof calibrate on {name} (sha256 {digest[:12]}), {len(runs)} runs: {METRICS[f.metric].upper()} "
                   f"mean absolute error {percent(mae_before[METRICS[f.metric]])} with {base_doc.get('id', '?')}, "
                   f"{percent(mae_after[METRICS[f.metric]])} fitted") for f in fitted}
    doc = ev.document(fitted, sources)
    origin = base_doc.get("id", "?")
    doc["name"] = f"{base.name} calibrated on {acc.id}"
    doc["description"] = (f"{origin} with the factors {len(runs)} measured serving runs on {acc.id} determine "
                          f"fitted ({', '.join(f.name for f in fitted) or 'none'}); the rest as {origin}.")
    doc["engine"] = base.engine or origin
    doc["provenance"] = {**(doc.get("provenance") or {}),
                         "serving_runs": f"{name} (sha256 {digest}), {len(runs)} runs on {acc.id}, fitted "
                                         f"{date.today().isoformat()} by pdroof calibrate from {origin}"}
    report = {"hardware": acc.id, "base": origin, "profile": profile_id,
              "fitted": {f.name: {"value": _written(f, values[f]), "base": start[f]} for f in fitted},
              "kept": {f.name: {"value": start[f], "why": kept[f]} for f in kept},
              "runs": [_row(r, before[i], after[i], loo[i]) for i, r in enumerate(runs)],
              "mae": {"before": mae_before, "fitted": mae_after, "left_out": _mae(loo)}}
    return doc, report


def _fit_free(ev: _Evaluator, free: list[Factor], start: dict[Factor, float],
              kept: dict[Factor, str]) -> tuple[dict[Factor, float], dict[Factor, float]]:
    """Every value after fitting ``free`` from the base, and those the fit moved (the others go to
    ``kept``)."""
    values = fit(ev, free, start) if free else dict(start)
    for f in free:
        if _written(f, values[f]) == _written(f, start[f]):  # as the profile would hold them
            kept[f] = "the fit left it at the base's value"
    return values, {f: values[f] for f in free if f not in kept}


def _left_out(ev: _Evaluator, n: int, fitted: dict[Factor, float], start: dict[Factor, float],
              before: np.ndarray) -> np.ndarray:
    """Log errors of each run predicted by a fit of ``fitted``, from the base, to the others; with
    nothing fitted, the base's (it is then the profile); unknown for a single run."""
    if not fitted:
        return before.copy()
    loo = np.full_like(before, np.nan)
    if n > 1:
        for i in range(n):
            loo[i] = ev.log_ratios(fit(ev, list(fitted), start, rows=np.arange(n) != i, sweeps=1))[i]
    return loo


def _row(run: Run, before, after, loo) -> dict:
    row = {"id": run.id, "isl": run.isl, "osl": run.osl, "concurrency": run.concurrency}
    for j, metric in enumerate(METRICS):
        row[f"{metric}_before"], row[f"{metric}_fitted"], row[f"{metric}_left_out"] = (
            _err(before[j]), _err(after[j]), _err(loo[j]))
    return row


def _err(log_ratio) -> float | None:
    return None if np.isnan(log_ratio) else float(np.expm1(log_ratio))


def _mae(log_ratios: np.ndarray) -> dict[str, float | None]:
    out = {}
    for j, metric in enumerate(METRICS):
        v = log_ratios[:, j]
        v = v[~np.isnan(v)]
        out[metric] = float(np.mean(np.abs(np.expm1(v)))) if len(v) else None
    return out
