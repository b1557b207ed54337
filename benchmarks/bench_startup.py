"""Start-up cost of the commands users run in loops and in CI, as ratios to a bare numpy start
measured in the same run (this machine is shared and noisy: medians of several runs).

    python benchmarks/bench_startup.py [--runs 7]

Targets (issue 10): ``estimate --format json`` ≤ 1.6×, default ``rank`` ≤ 4×, ``equations`` and
``equations crossover`` ≤ 5× the bare ``python -c "import numpy"``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# the console script beside this interpreter (the baseline runs on the same one)
_SCRIPT = Path(sys.executable).with_name("pdroof")
PDROOF = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pdroof"]
COMMANDS = {
    "estimate --format json": (PDROOF + ["estimate", "--model", "llama-3.1-8b", "--hardware", "h100-sxm",
                                         "--format", "json"], 1.6),
    "rank (default)": (PDROOF + ["rank"], 4.0),
    "equations": (PDROOF + ["equations"], 5.0),
    "equations crossover": (PDROOF + ["equations", "crossover", "--model", "llama-3.1-70b", "--hardware",
                                      "h100-sxm", "--link", "roce-400"], 5.0),
    "--help": (PDROOF + ["--help"], None),
}


# An installed package has its bytecode compiled (pip does it at install); so may the checkout
# this runs from, whatever PYTHONDONTWRITEBYTECODE says: one untimed warm-up run writes it.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=ENV)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    runs = ap.parse_args().runs
    base_cmd = [sys.executable, "-c", "import numpy"]
    times: dict[str, list[float]] = {"python -c 'import numpy'": []}
    for name in COMMANDS:
        times[name] = []
    for cmd, _ in COMMANDS.values():
        wall(cmd)
    for _ in range(runs):  # interleaved, so drifts in machine load hit every command alike
        times["python -c 'import numpy'"].append(wall(base_cmd))
        for name, (cmd, _) in COMMANDS.items():
            times[name].append(wall(cmd))
    base = statistics.median(times["python -c 'import numpy'"])
    print(f"bare numpy start: {base * 1e3:.0f} ms (median of {runs})")
    ok = True
    for name, (_, target) in COMMANDS.items():
        t = statistics.median(times[name])
        ratio = t / base
        verdict = "" if target is None else (f"  target ≤ {target:g}×: " + ("ok" if ratio <= target else "MISSED"))
        ok &= target is None or ratio <= target
        print(f"{name:24s} {t * 1e3:7.0f} ms = {ratio:5.2f}× numpy{verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
