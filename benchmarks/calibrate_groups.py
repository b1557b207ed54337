"""``pdroof calibrate`` on each group of measured serving runs, with each run left out in turn.

    python benchmarks/calibrate_groups.py [RUNS.json]

A group is what one profile stands for: model · accelerator · engine · version · weights · mode
(``predict.group_key``). For every aggregated group of RUNS (default
``../shared/calibration/serving/fit.json``) that ``predict`` can answer, the runs are fitted from
the profile their engine and release resolve to, and each run is predicted by a fit to the others
(runs ``predict`` cannot answer yet, with expert parallelism or DP attention, are left out).
Prints, per group, the factors fitted and the mean absolute TPOT and TTFT error: with the base
profile, fitted (in-sample) and left out.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import yaml

from pdroof.calibration.serving_fit import calibrate_serving, default_base
from pdroof.serving.predict import group_key, predict
from pdroof.serving.runs import read_runs
from pdroof.spec.catalog import Catalog
from pdroof.spec.errors import PdroofError
from pdroof.spec.view import percent

HERE = Path(__file__).resolve().parent.parent
RUNS = HERE.parent / "shared" / "calibration" / "serving" / "fit.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="?", default=str(RUNS))
    args = ap.parse_args()
    cat = Catalog()
    groups = defaultdict(list)
    runs = [r for r in read_runs(args.runs) if r.measured and not r.error and r.mode == "aggregated"]
    for p in predict(cat, runs):  # the runs predict can answer (no EP or DP attention yet)
        if p.error is None:
            groups[group_key(p.run)].append(p.run)
    totals = defaultdict(list)
    print(f"{'group':88} {'runs':>4}  {'TPOT base':>9} {'fitted':>6} {'left out':>8}  {'TTFT base':>9} "
          f"{'fitted':>6} {'left out':>8}  factors fitted")
    for key, runs in groups.items():
        acc = cat.get("accelerator", runs[0].pools["deployment"].accelerator)
        try:
            base_id = default_base(cat, runs, acc)
            base_doc = yaml.safe_load(cat.files("runtime")[base_id].read_text())
            _, rep = calibrate_serving(cat, runs, args.runs, acc, base_doc, "calibrated")
        except PdroofError as exc:
            print(f"{key:88} {len(runs):4}  not calibrated: {exc}")
            continue
        m = rep["mae"]
        for stage in ("before", "fitted", "left_out"):
            for metric in ("tpot", "ttft"):
                totals[(stage, metric)] += [abs(r[f"{metric}_{stage}"]) for r in rep["runs"]
                                            if r[f"{metric}_{stage}"] is not None]
        print(f"{key:88} {len(runs):4}  {percent(m['before']['tpot']):>9} {percent(m['fitted']['tpot'])} "
              f"{percent(m['left_out']['tpot']):>8}  {percent(m['before']['ttft']):>9} {percent(m['fitted']['ttft'])} "
              f"{percent(m['left_out']['ttft']):>8}  {', '.join(rep['fitted']) or '—'}")
    mean = {k: sum(v) / len(v) if v else None for k, v in totals.items()}
    cells = [percent(mean[(stage, metric)], w) for metric in ("tpot", "ttft")
             for stage, w in (("before", 9), ("fitted", 6), ("left_out", 8))]
    print(f"{'all runs':88} {len(totals[('before', 'tpot')]):4}  {' '.join(cells[:3])}  {' '.join(cells[3:])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
