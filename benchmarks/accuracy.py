"""Predicted against measured for every end-to-end point in a calibration file.

    python benchmarks/accuracy.py [MEASUREMENTS.json ...] [--runtime pytorch] [--hardware h100-sxm]

Defaults to the H100 file shipped with the tests, with ``--runtime pytorch``. Prints one line
per point and the mean absolute error; exit 1 if it exceeds 8% or any point is beyond ±15%.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pdroof.calibration.calibrate import e2e_table
from pdroof.calibration.measurements import read_measurements
from pdroof.spec.catalog import Catalog

HERE = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", default=[str(HERE / "tests" / "data" / "h100-sxm.json")])
    ap.add_argument("--runtime", default="pytorch")
    ap.add_argument("--hardware", default=None, help="accelerator id (default: from the file name)")
    args = ap.parse_args()
    cat = Catalog()
    rt = cat.get("runtime", args.runtime)
    worst, failed = 0.0, False
    for f in args.files:
        hw = args.hardware or Path(f).stem
        rows = read_measurements(f)["e2e"]
        if not rows:
            print(f"{f}: no end-to-end points")
            continue
        table = e2e_table(rows, rt, cat.get("accelerator", hw), lambda i: cat.get("model", i))
        print(f"{f} on {hw}, runtime {rt.id}")
        print(f"  {'model':14s} {'phase':8s} {'dtype':5s} {'B':>4s} {'S/L':>7s} {'measured':>11s} {'predicted':>11s} "
              f"{'error':>7s}")
        for r in table:
            n = r["S"] or r["L"]
            print(f"  {r['model']:14s} {r['phase']:8s} {r['dtype']:5s} {r['B']:4d} {n:7d} "
                  f"{r['measured_s'] * 1e3:9.2f}ms "
                  f"{r['predicted_s'] * 1e3:9.2f}ms {r['error']:+7.1%}")
            worst = max(worst, abs(r["error"]))
        mape = sum(abs(r["error"]) for r in table) / len(table)
        print(f"  mean absolute error {mape:.1%}, worst {worst:.1%}")
        failed |= mape > 0.08 or worst > 0.15
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
