"""``pdroof predict`` on a file of 5,000 runs against one ``pdroof estimate`` process, both as a
user runs them (fresh processes, the same interpreter, interleaved; medians).

    python benchmarks/bench_predict.py [--runs 5] [--n 5000]

Target (issue 11): predict on 5,000 runs at most about 3x one estimate process. The runs are
synthetic but span what the shared serving set holds: models, accelerators, engines, TP degrees,
DP attention with expert parallelism, disaggregated pools, loads and lengths (the cost is the same
whatever the runs measured).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SCRIPT = Path(sys.executable).with_name("pdroof")
PDROOF = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pdroof"]
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
TARGET = 3.0
SPACE = [  # (model, accelerator, engine, weights, tp; DP-attention replicas with the experts over them where dp > 1)
    ("llama-3.1-8b", "h100-sxm", "trtllm", "bf16", 1), ("llama-3.1-70b", "h200-sxm", "trtllm", "fp8", 4),
    ("llama-3.1-70b", "b200", "vllm", "fp8", 8), ("qwen3-32b", "h100-sxm", "sglang", "bf16", 2),
    ("qwen3-32b", "h100-sxm", "vllm", "bf16", 4), ("gpt-oss-120b", "b200", "trtllm", "fp4", 2),
    ("deepseek-v3", "h200-sxm", "sglang", "fp8", 8), ("deepseek-v3", "mi355x", "sglang", "fp4", 8),
    ("deepseek-v3", "mi300x", "sglang", "fp8", 8), ("deepseek-v3", "h200-sxm", "sglang", "fp8", -8),
]
DISAGGREGATED_EVERY = 5  # one run in five over prefill and decode pools


def runs(n: int) -> list[dict]:
    """``n`` distinct runs (no two alike, so nothing is shared between them but their specs)."""
    grid = itertools.cycle(itertools.product(SPACE, ((1024, 1024), (1024, 8192), (8192, 1024))))
    out = []
    for i, ((model, acc, engine, weights, tp), (isl, osl)) in zip(range(n), grid, strict=False):
        c = 1 + i % 256
        isl += i // (len(SPACE) * 3 * 256)  # a different length once the loads repeat
        dp = -tp if tp < 0 else 1
        pool = {"accelerator": acc, "instances": 1, "tp": max(tp, 1), "dp": dp, "moe_tp": max(tp, 1), "moe_ep": dp}
        run = {"id": f"r{i}", "model": model, "engine": engine, "weights": weights, "kv": None,
               "isl": isl, "osl": osl, "concurrency": c}
        if i % DISAGGREGATED_EVERY == DISAGGREGATED_EVERY - 1:
            run.update(mode="disaggregated", prefill=pool, decode={**pool, "instances": 2})
        else:
            run.update(mode="aggregated", deployment=pool)
        out.append(run)
    return out


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=ENV)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "runs.json"
        f.write_text(json.dumps({"runs": runs(args.n)}))
        predict = PDROOF + ["predict", str(f), "--format", "json"]
        estimate = PDROOF + ["estimate", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--format", "json"]
        wall(predict), wall(estimate)  # warm the bytecode and file caches
        tp, te = [], []
        for _ in range(args.runs):
            tp.append(wall(predict))
            te.append(wall(estimate))
    p, e = statistics.median(tp), statistics.median(te)
    ratio = p / e
    print(f"predict on {args.n:,} runs: {p * 1e3:.0f} ms; one estimate: {e * 1e3:.0f} ms; "
          f"ratio {ratio:.2f}x (target <= {TARGET:g}x): {'ok' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
