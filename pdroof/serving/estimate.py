"""``estimate``: prefill time, one decode step, and memory for one model on one accelerator."""

from __future__ import annotations

import math

from ..cost.architecture import shape_of
from ..cost.inputs import half_rows_for
from ..cost.numeric import evaluate
from ..cost.ops import OP_KIND, OPS
from ..cost.parallelism import Parallelism, nodes
from ..cost.precision import Precision
from ..spec.errors import PdroofError
from ..spec.schema import Record
from .stage import check_context, check_parallelism, prefill_passes, stage_inputs
from .workload import Workload

BOUNDS = ("compute", "memory", "link", "latency")


# what one instance can physically be asked: sequences in flight, tokens a request
LIMITS = {"batch": 10**6, "concurrency": 10**6, "prompt": 10**7, "output": 10**7}

def half_rows_origin(eff, p: Precision, inputs: dict) -> str:
    """Where the M½ the GEMMs of this stage use came from (``inputs["gemm_half_rows"]``)."""
    keys = [f"gemm_half_rows.{p.activations}"] + ([f"gemm_half_rows.{p.weights}"] if p.weight_only else [])
    parts = [f"{k.split('.')[1]}: {eff.origin[k]}" for k in keys if k in eff.origin] or ["none known: 0"]
    text = ("weight-only, the larger of " if p.weight_only else "") + "; ".join(parts)
    if inputs["gemm_half_rows"] < half_rows_for(eff, p):
        text += f"; capped at {inputs['gemm_half_rows']:.4g} rows so that a one-row GEMM stays weight-bound"
    return text


def op_bound(kind: str, compute_s: float, memory_s: float) -> str:
    if kind == "link":
        return "link"
    if kind == "latency":
        return "latency"
    return "compute" if compute_s > memory_s else "memory"


def breakdown(out: dict, index=()) -> tuple[list[dict], str]:
    """Per-operation rows (zero-time operations left out) and the bound that takes most time."""
    rows, per_bound = [], dict.fromkeys(BOUNDS, 0.0)
    for op in OPS:
        secs = float(out[f"{op}_seconds"][index])
        if secs <= 0:
            continue
        c, m = float(out[f"{op}_compute_s"][index]), float(out[f"{op}_memory_s"][index])
        bound = op_bound(OP_KIND[op], c, m)
        per_bound[bound] += secs
        rows.append({"name": op, "kind": OP_KIND[op], "seconds": secs, "flops": float(out[f"{op}_flops"][index]),
                     "bytes": float(out[f"{op}_bytes"][index]), "compute_seconds": c, "memory_seconds": m,
                     "bound": bound})
    return rows, max(per_bound, key=per_bound.get)


def estimate(model: Record, acc: Record, runtime: Record, p: Precision, *, tp: int = 1, batch: int = 1,
             prompt: int = 2048, context: int | None = None, prefix: int = 0, dp: int = 1, moe_tp: int | None = None,
             moe_ep: int = 1) -> dict:
    """The JSON contract of ``pdroof estimate``: prefill, decode step, memory, inputs, for an
    instance of tp·dp devices (``Parallelism``) carrying ``batch`` sequences. Times are those of
    its busiest attention replica (⌈batch/dp⌉ sequences; the experts see all of them), bytes and
    FLOPs per device, the batch and the decode rate the instance's. The prefill is its prompts in
    the passes the replica's token budget takes them in (``passes``), as predict, rank, plan and
    check take them."""
    par = Parallelism(tp, dp, moe_tp, moe_ep)
    check_parallelism(model, acc, par)
    for name, v in (("batch", batch), ("prompt", prompt)):
        if not 1 <= v <= LIMITS[name]:
            raise PdroofError(f"--{name} must be from 1 to {LIMITS[name]:,}, not {v}")
    if prefix < 0:
        raise PdroofError(f"--prefix must not be negative, not {prefix}")
    context = context if context is not None else prefix + prompt
    if context < 1:
        raise PdroofError(f"--context must be at least 1, not {context}")
    check_context(model, prefix + prompt, "--prefix + --prompt")
    check_context(model, context, "--context")
    base, eff = stage_inputs(model, acc, runtime, p, tp, par)
    replica = math.ceil(batch / dp)
    work = {"batch": replica, "new_tokens": prompt, "prefix_tokens": prefix, "context_tokens": context}
    inputs = {**base, **work}
    # the prompts in the passes the replica's token budget takes them in, as the engine runs them
    pre = prefill_passes(base, replica, prompt, prefix, None)
    dec = evaluate("decode", inputs)
    mem = evaluate("memory", inputs)
    pre_ops, pre_bound = breakdown(pre)
    dec_ops, dec_bound = breakdown(dec)
    shape = shape_of(model)
    max_batch = int(mem["max_batch"]) * dp
    kv_batch = int(mem["kv_batch"]) * dp
    return {
        "prefill": {"seconds": float(pre["seconds"]), "flops": float(pre["flops"]), "bytes": float(pre["bytes"]),
                    "passes": int(pre["passes"]), "bound": pre_bound, "ops": pre_ops},
        "decode": {"step_seconds": float(dec["seconds"]), "tokens_per_second": batch / float(dec["seconds"]),
                   "flops": float(dec["flops"]), "bytes": float(dec["bytes"]), "bound": dec_bound, "ops": dec_ops},
        "memory": {
            "weights_bytes": float(mem["weights_bytes"]),
            "workspace_bytes": float(mem["workspace_bytes"]),
            "kv_bytes_per_token": shape.kv_bytes_per_token(p.kv) / min(tp, base["kv_shardable"]),
            "kv_sequence_bytes": float(mem["kv_sequence_bytes"]),
            "kv_capacity_bytes": float(mem["kv_capacity_bytes"]),
            "max_batch": max_batch,
            "kv_batch": kv_batch,  # what KV memory alone holds; max_batch is at most the engine's limit too
            "fits": max_batch >= batch,
        },
        "inputs": {
            "model": model.id, "hardware": acc.id, "runtime": runtime.id,
            "weights": p.weights, "activations": p.activations, "kv": p.kv,
            "tp": tp, "dp": dp, "moe_tp": int(base["moe_tp"]), "moe_ep": int(base["moe_ep"]),
            "devices": par.devices, "nodes": nodes(acc, par.devices),
            "batch": batch, "prompt": prompt, "context": context, "prefix": prefix,
            "efficiency": {k: base[k] for k in ("eff_compute", "gemm_half_rows", "eff_weights", "eff_memory",
                                                 "eff_attn_prefill",
                                                 "attn_half_tokens", "eff_attn_decode", "eff_link",
                                                 "layer_latency_s")},
            "efficiency_origin": {**eff.origin, "gemm_half_rows": half_rows_origin(eff, p, base)},
        },
    }


def aggregated(model: Record, acc: Record, runtime: Record, p: Precision, *, tp: int = 1, concurrency: int = 32,
               prompt: int = 2048, output: int = 256, prefix: int = 0, ttft_stat: str = "p90",
               tpot_stat: str = "p99", arrivals: str = "closed", waves: float = 10.0, dp: int = 1,
               moe_tp: int | None = None, moe_ep: int = 1) -> dict:
    """Colocated serving under continuous batching at ``concurrency`` requests in flight, on the
    load model ``predict`` and ``rank`` use (``load.aggregated_load``): a benchmark's closed loop
    of that many clients (``arrivals="closed"``, ``waves`` requests each; KV memory admits at most
    ``max_concurrency`` of them, the others wait) or a Poisson stream keeping that many in flight
    (``"poisson"``). The mean TPOT, the idle TTFT (one step carrying a whole new prompt, chunked at
    the runtime's token budget, and the request's own overhead), the statistics ``ttft_stat`` and
    ``tpot_stat`` under that load, and the throughput. Under DP attention each of the dp replicas
    carries its share of the concurrency and holds its own sequences' KV."""
    from .load import ARRIVALS, admitted_sequences, aggregated_load

    par = Parallelism(tp, dp, moe_tp, moe_ep)
    check_parallelism(model, acc, par)
    for name, v in (("concurrency", concurrency), ("prompt", prompt), ("output", output)):
        if not 1 <= v <= LIMITS[name]:
            raise PdroofError(f"--{name} must be from 1 to {LIMITS[name]:,}, not {v}")
    if not 0 <= prefix < prompt:
        raise PdroofError(f"--prefix must be in [0, prompt), not {prefix}")
    if arrivals not in ARRIVALS:
        raise PdroofError(f"--arrivals must be one of {', '.join(ARRIVALS)}, not {arrivals!r}")
    if not (math.isfinite(waves) and waves >= 1):
        raise PdroofError(f"--waves must be a number of at least 1, not {waves!r}")
    check_context(model, prompt + output, "--prompt + --output")
    w = Workload("aggregated", prompt, output, prefix_hit=prefix / prompt, ttft_stat=ttft_stat, tpot_stat=tpot_stat)
    base, eff = stage_inputs(model, acc, runtime, p, tp, par)
    admitted = int(admitted_sequences(base, float(prompt), float(output)))  # per replica
    if arrivals == "closed" and admitted < 1:
        raise PdroofError("the weights leave no KV memory for one sequence")
    load = {k: float(v) for k, v in aggregated_load(
        base, concurrency / dp, w.new_tokens, float(output), prefix_tokens=w.prefix_tokens, arrivals=arrivals,
        admitted=float(admitted), ttft_stat=ttft_stat, tpot_stat=tpot_stat, waves=waves).items()}
    load["requests_per_s"] *= dp
    admitted *= dp
    return {
        "aggregated": {
            "arrivals": arrivals,
            "tpot_seconds": load["tpot_mean_s"], "ttft_seconds": load["ttft_unloaded_s"],
            f"tpot_{tpot_stat}_seconds": load["tpot_s"], f"ttft_{ttft_stat}_seconds": load["ttft_s"],
            "requests_per_second": load["requests_per_s"],
            "tokens_per_second": load["requests_per_s"] * output,
            "concurrency": concurrency, "max_concurrency": admitted,
            "fits": admitted >= concurrency,
        },
        "inputs": {"model": model.id, "hardware": acc.id, "runtime": runtime.id, "weights": p.weights,
                   "activations": p.activations, "kv": p.kv, "tp": tp, "dp": dp, "moe_tp": int(base["moe_tp"]),
                   "moe_ep": int(base["moe_ep"]), "concurrency": concurrency,
                   "prompt": prompt, "output": output, "prefix": prefix, "arrivals": arrivals,
                   "efficiency_origin": eff.origin},
    }
