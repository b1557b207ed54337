"""``pdroof calibrate`` on each group of measured serving runs, with each run left out in turn.

    python benchmarks/calibrate_groups.py [RUNS.json]

A group is what one profile stands for: model · accelerator · engine · version · weights · mode
(``predict.group_key``). For every group of RUNS (default ``../shared/calibration/serving/fit.json``),
aggregated or disaggregated, the runs ``predict`` can answer are fitted from the profile their
engine and release resolve to, and each run is predicted by a fit to the others.
Prints, per group, the factors fitted and the mean absolute TPOT and TTFT error: with the base
profile, fitted (in-sample) and left out.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from pdroof.calibration.serving_fit import calibrate_serving, default_base
from pdroof.serving.predict import group_key, predict
from pdroof.serving.runs import read_runs
from pdroof.spec.catalog import Catalog
from pdroof.spec.errors import PdroofError
from pdroof.spec.view import percent

HERE = Path(__file__).resolve().parent.parent
RUNS = HERE.parent / "shared" / "calibration" / "serving" / "fit.json"


def main() -> int:
    widths = (9, 6, 8, 9, 6, 8)

    def row(name: str, n: int, cells: list, factors: str) -> str:
        if args.markdown:
            return f"| {name} | {n} | " + " | ".join(percent(c) for c in cells) + f" | {factors} |"
        text = " ".join(percent(c, w) for c, w in zip(cells, widths, strict=True))
        return f"{name:88} {n:4}  {text}  {factors}"

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="?", default=str(RUNS))
    ap.add_argument("--markdown", action="store_true", help="a Markdown table (as README quotes it)")
    args = ap.parse_args()
    cat = Catalog()
    groups = defaultdict(list)
    runs = [r for r in read_runs(args.runs) if r.measured and not r.error]
    for p in predict(cat, runs):  # the runs predict can answer
        if p.error is None:
            groups[group_key(p.run)].append(p.run)
    totals = defaultdict(list)
    if args.markdown:
        print("| group | runs | TPOT base | fitted | left out | TTFT base | fitted | left out | factors fitted |\n"
              "|---|---|---|---|---|---|---|---|---|")
    else:
        print(f"{'group':88} {'runs':>4}  {'TPOT base':>9} {'fitted':>6} {'left out':>8} {'TTFT base':>9} "
              f"{'fitted':>6} {'left out':>8}  factors fitted")
    for key, runs in groups.items():
        pool = runs[0].pools.get("deployment") or runs[0].pools["decode"]  # the one group_key names
        acc = cat.get("accelerator", pool.accelerator)
        try:
            base_id = default_base(cat, runs, acc)
            base_doc = cat.runtime_document(base_id)
            _, rep = calibrate_serving(cat, runs, args.runs, acc, base_doc, "calibrated")
        except PdroofError as exc:
            print(f"| {key} | {len(runs)} | not calibrated: {exc} |" if args.markdown
                  else f"{key:88} {len(runs):4}  not calibrated: {exc}")
            continue
        m = rep["mae"]
        for stage in ("before", "fitted", "left_out"):
            for metric in ("tpot", "ttft"):
                totals[(stage, metric)] += [abs(r[f"{metric}_{stage}"]) for r in rep["runs"]
                                            if r[f"{metric}_{stage}"] is not None]
        print(row(key, len(runs), [m[stage][metric] for metric in ("tpot", "ttft")
                                   for stage in ("before", "fitted", "left_out")], ", ".join(rep["fitted"]) or "—"))
    mean = {k: sum(v) / len(v) if v else None for k, v in totals.items()}
    print(row("all runs", len(totals[("before", "tpot")]), [mean[(stage, metric)] for metric in ("tpot", "ttft")
                                                             for stage in ("before", "fitted", "left_out")], ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
