"""Wall time of the ``pdroof estimate`` command, as a user runs it (a fresh process each time).

    python benchmarks/bench_estimate.py [--runs 10]

Target: at most 0.3 s wall on the 2-core reference machine. Prints the median and the worst and
exits 1 when the median is over the target.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

TARGET_S = 0.3
ARGS = ["estimate", "--model", "llama-3.1-70b", "--hardware", "h100-sxm", "--tp", "4", "--batch", "16",
        "--prompt", "4096", "--weights", "fp8", "--kv", "fp8", "--format", "json"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    exe = shutil.which("pdroof")
    cmd = [exe, *ARGS] if exe else [sys.executable, "-m", "pdroof", *ARGS]
    subprocess.run(cmd, check=True, capture_output=True)  # warm the file cache
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"pdroof {' '.join(ARGS)}")
    print(f"{args.runs} runs: median {med:.3f} s, worst {max(times):.3f} s (target {TARGET_S} s)")
    return 0 if med <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
