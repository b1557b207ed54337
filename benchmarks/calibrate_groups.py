"""``pdroof calibrate`` on each group of measured serving runs, with each run left out in turn.

    python benchmarks/calibrate_groups.py [RUNS.json] [--markdown] [--nested]

A group is what one profile stands for: model · accelerator · engine · version · weights · mode
(``predict.group_key``). For every group of RUNS (default ``../shared/calibration/serving/fit.json``),
aggregated or disaggregated, the runs ``predict`` can answer are fitted from the profile their
engine and release resolve to, and each run is predicted by a fit to the others.
Prints, per group, the factors fitted and the mean absolute TPOT and TTFT error: with the base
profile, fitted (in-sample) and left out. calibrate's own left-out error refits the factors it
chose on all the runs; it also uses that error to choose them (a metric that a fit predicts worse
left out keeps the base), so ``--nested`` adds the honest figure: each run predicted by the
profile ``calibrate`` writes from the others alone, choice included (n calibrations a group).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

from pdroof.calibration.serving_fit import calibrate_serving
from pdroof.calibration.serving_runs import default_base
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
    ap.add_argument("--markdown", action="store_true", help="a Markdown table (as README quotes it)")
    ap.add_argument("--nested", action="store_true", help="also each run predicted by calibrate on the others")
    args = ap.parse_args()
    stages = ("before", "fitted", "left_out") + (("nested",) if args.nested else ())
    titles = {"before": "base", "fitted": "fitted", "left_out": "left out", "nested": "nested"}
    heads = [f"{metric} {titles[stage]}" if k == 0 else titles[stage] for metric in ("TPOT", "TTFT")
             for k, stage in enumerate(stages)]
    widths = [max(len(h), 6) for h in heads]

    def row(name: str, n: int, cells: list, factors: str) -> str:
        if args.markdown:
            return f"| {name} | {n} | " + " | ".join(percent(c) for c in cells) + f" | {factors} |"
        text = " ".join(percent(c, w) for c, w in zip(cells, widths, strict=True))
        return f"{name:88} {n:4}  {text}  {factors}"

    cat = Catalog()
    groups = defaultdict(list)
    runs = [r for r in read_runs(args.runs) if r.measured and not r.error]
    for p in predict(cat, runs):  # the runs predict can answer
        if p.error is None:
            groups[group_key(p.run)].append(p.run)
    totals = defaultdict(list)
    if args.markdown:
        print("| group | runs | " + " | ".join(heads) + " | factors fitted |\n|" + "---|" * (len(heads) + 3))
    else:
        print(f"{'group':88} {'runs':>4}  " + " ".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True))
              + "  factors fitted")
    for key, runs in groups.items():
        pool = runs[0].pools.get("deployment") or runs[0].pools["decode"]  # the one group_key names
        acc = cat.get("accelerator", pool.accelerator)
        try:
            base_id = default_base(cat, runs, acc)
            base_doc = cat.runtime_document(base_id)
            _, rep = calibrate_serving(cat, runs, args.runs, acc, base_doc, "calibrated")
            errors = {(stage, metric): [r[f"{metric}_{stage}"] for r in rep["runs"]]
                      for stage in ("before", "fitted", "left_out") for metric in ("tpot", "ttft")}
            if args.nested:
                for metric, values in _nested(cat, runs, args.runs, acc, base_doc).items():
                    # a group of one run: calibrated from none, the profile is the base
                    errors[("nested", metric)] = [b if v is None else v
                                                  for v, b in zip(values, errors[("before", metric)], strict=True)]
        except PdroofError as exc:
            print(f"| {key} | {len(runs)} | not calibrated: {exc} |" if args.markdown
                  else f"{key:88} {len(runs):4}  not calibrated: {exc}")
            continue
        cells = []
        for metric in ("tpot", "ttft"):
            for stage in stages:
                known = [abs(e) for e in errors[(stage, metric)] if e is not None]
                totals[(stage, metric)] += known
                cells.append(sum(known) / len(known) if known else None)
        print(row(key, len(runs), cells, ", ".join(rep["fitted"]) or "—"))
    mean = {k: sum(v) / len(v) if v else None for k, v in totals.items()}
    print(row("all runs", len(totals[("before", "tpot")]), [mean[(stage, metric)] for metric in ("tpot", "ttft")
                                                             for stage in stages], ""))
    return 0


def _nested(cat: Catalog, runs: list, path: str, acc, base_doc: dict) -> dict[str, list]:
    """Each run's relative error under the profile calibrate writes from the group's other runs."""
    out: dict[str, list] = {"tpot": [], "ttft": []}
    for i, run in enumerate(runs):
        others = [r for j, r in enumerate(runs) if j != i]
        if not others:
            out["tpot"].append(None)
            out["ttft"].append(None)
            continue
        doc, _ = calibrate_serving(cat, others, path, acc, base_doc, "calibrated")
        with tempfile.TemporaryDirectory() as tmp:
            profile = Path(tmp) / "calibrated.yaml"
            profile.write_text(json.dumps(doc))
            vs = predict(cat, [run], runtime=str(profile))[0].vs_measured or {}
        for metric in ("tpot", "ttft"):
            v = vs.get(f"{metric}_ms")
            out[metric].append(None if v is None else float(v["error"]))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
