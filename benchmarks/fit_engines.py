"""The two per-engine constants that kernel tables cannot give, fitted to measured serving runs,
and the error with each group of runs left out of the fit.

    python benchmarks/fit_engines.py [RUNS.json] [--engines trtllm,vllm,sglang] [--yaml]

Kernel factors come from per-op measurements (``benchmarks/engine_factors.py``); what an engine
adds around its kernels does not show there:

- ``step_latency_us``: the time a forward pass costs beyond its kernels (scheduling, sampling,
  input preparation, graph launch), as far as the engine does not overlap it with the previous
  pass;
- ``request_latency_us``: the time a request spends outside the forward passes before its first
  token reaches the client (HTTP, tokenisation, hand-off to the scheduler, streaming back).

Each engine's pair is the point of a grid that minimises the mean absolute relative error of
TPOT and TTFT together (median where measured, else mean) over that engine's runs in RUNS
(default ``../shared/calibration/serving/fit.json``). Leave-one-group-out: for every group
(model · accelerator · engine · version · weights · mode) the engine's pair is fitted again
without it and the group is predicted with that pair; the table prints both errors. ``--yaml``
prints the fitted pairs as runtime-profile structure entries.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from pdroof.serving.predict import group_key, predict
from pdroof.serving.runs import read_runs
from pdroof.spec.catalog import Catalog, builtin_root

HERE = Path(__file__).resolve().parent.parent
RUNS = HERE.parent / "shared" / "calibration" / "serving" / "fit.json"
STEP_US = (0, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000)
REQUEST_US = (0, 2500, 5000, 10000, 15000, 20000, 30000, 50000, 75000, 100000)


def _catalog(tmp: Path, engine: str, step_us: float, request_us: float) -> Catalog:
    """The built-in catalogue with ``engine``'s profile carrying this pair (a user catalogue
    overrides the built-in file; version profiles that inherit it see the pair too)."""
    src = builtin_root() / "hardware" / "runtimes" / f"{engine}.yaml"
    data = yaml.safe_load(src.read_text())
    note = "benchmarks/fit_engines.py grid point"
    data["structure"]["step_latency_us"] = {"value": step_us, "basis": "fitted", "source": note}
    data["structure"]["request_latency_us"] = {"value": request_us, "basis": "fitted", "source": note}
    d = tmp / f"{engine}-{step_us}-{request_us}" / "hardware" / "runtimes"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{engine}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return Catalog([d.parent.parent], use_env=False)


def _errors(preds) -> dict[str, dict[str, list[float]]]:
    """group -> metric (tpot_ms, ttft_ms) -> absolute relative errors of its runs."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"tpot_ms": [], "ttft_ms": []})
    for p in preds:
        for metric, v in (p.vs_measured or {}).items():
            out[group_key(p.run)][metric].append(abs(v["error"]))
    return out


def _grid(runs, engine: str, tmp: Path) -> dict[tuple, dict]:
    """(step_us, request_us) -> group -> metric -> errors, for every grid point."""
    return {(s, r): _errors(predict(_catalog(tmp, engine, s, r), runs))
            for s, r in itertools.product(STEP_US, REQUEST_US)}


def _best(grid: dict, leave_out: str | None = None) -> tuple:
    """The grid point with the least mean error of TPOT and TTFT over the groups kept."""
    def score(errs: dict) -> float:
        kept = [e for g, m in errs.items() if g != leave_out for v in m.values() for e in v]
        return float(np.mean(kept)) if kept else 0.0
    return min(grid, key=lambda k: (score(grid[k]), k))


def _mae(values: list[float]) -> str:
    return f"{np.mean(values):.1%}" if values else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="?", default=str(RUNS))
    ap.add_argument("--engines", default="trtllm,vllm,sglang")
    ap.add_argument("--yaml", action="store_true", help="print the fitted pairs as profile structure entries")
    args = ap.parse_args()
    runs = [r for r in read_runs(args.runs) if r.measured]
    held_out: dict[str, list[float]] = {"tpot_ms": [], "ttft_ms": []}
    with tempfile.TemporaryDirectory() as t:
        for engine in args.engines.split(","):
            grid = _grid([r for r in runs if r.engine == engine], engine, Path(t))
            step, request = _best(grid)
            groups = sorted({g for errs in grid.values() for g in errs})
            n = sum(len(grid[(step, request)][g]["tpot_ms"]) for g in groups)
            if args.yaml:
                src = f"benchmarks/fit_engines.py on {Path(args.runs).name}: {n} runs, {len(groups)} groups"
                print(f"# {engine}\n  step_latency_us: {{value: {step}, basis: fitted, source: \"{src}\"}}\n"
                      f"  request_latency_us: {{value: {request}, basis: fitted, source: \"{src}\"}}")
                continue
            print(f"{engine}: step_latency_us {step}, request_latency_us {request} ({n} runs)")
            print(f"  {'group':84} {'TPOT fitted':>11} {'left out':>8} {'TTFT fitted':>11} {'left out':>8}  "
                  "pair without it")
            for g in groups:
                held = _best(grid, leave_out=g)
                cells = []
                for metric in ("tpot_ms", "ttft_ms"):
                    held_out[metric] += grid[held][g][metric]
                    cells += [_mae(grid[(step, request)][g][metric]), _mae(grid[held][g][metric])]
                print(f"  {g:84} {cells[0]:>11} {cells[1]:>8} {cells[2]:>11} {cells[3]:>8}  {held}")
    if not args.yaml:
        fitted = set(args.engines.split(","))
        for m in _errors(predict(Catalog(use_env=False), [r for r in runs if r.engine not in fitted])).values():
            for metric, errs in m.items():  # the other engines' runs, with their shipped profiles
                held_out[metric] += errs
        print(f"every group left out of its engine's fit (other engines as shipped): TPOT MAE "
              f"{_mae(held_out['tpot_ms'])}, TTFT {_mae(held_out['ttft_ms'])} over {len(held_out['tpot_ms'])} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
