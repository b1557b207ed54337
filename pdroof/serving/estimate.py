"""``estimate``: prefill time, one decode step, and memory for one model on one accelerator."""

from __future__ import annotations

import numpy as np

from ..cost.architecture import shape_of
from ..cost.inputs import (
    capped_half_rows,
    collective_bandwidth,
    half_rows_for,
    hardware_inputs,
    model_inputs,
    precision_inputs,
)
from ..cost.numeric import evaluate
from ..cost.ops import OP_KIND, OPS
from ..cost.precision import Precision
from ..cost.runtime import resolve
from ..spec.errors import PdroofError
from ..spec.schema import Record
from .workload import Workload

BOUNDS = ("compute", "memory", "link", "latency")


def check_tp(model: Record, acc: Record, tp: int) -> None:
    if tp < 1:
        raise PdroofError(f"--tp must be at least 1, not {tp}")
    reason = tp_reason(model, acc, tp)
    if reason:
        raise PdroofError(f"infeasible: {reason}")


def tp_reason(model: Record, acc: Record, tp: int) -> str | None:
    """Why ``tp`` devices of ``acc`` cannot form one instance of ``model``, or None."""
    if tp < 1:
        return f"tp must be at least 1, not {tp}"
    domain = acc.scale_up.domain_size if acc.scale_up and acc.scale_up.domain_size else 1
    if tp > domain:
        return f"tp {tp} exceeds the scale-up domain of {acc.id} ({domain} devices)"
    if tp > 1 and collective_bandwidth(acc) is None:
        return f"tp {tp} needs a link bandwidth for collectives, and {acc.id}'s spec has none"
    if model.attention_heads % tp:
        return f"tp {tp} does not divide the {model.attention_heads} attention heads of {model.id}"
    return None


def stage_inputs(model: Record, acc: Record, runtime: Record, p: Precision, tp: int, ep: int = 1) -> dict:
    """All inputs of one stage except the workload (batch, tokens, context)."""
    eff = resolve(runtime, acc)
    inputs = {**model_inputs(model), **hardware_inputs(acc, eff, p, tp, ep), **precision_inputs(runtime, p),
              "tp": tp, "ep": ep}
    inputs["gemm_half_rows"] = capped_half_rows(inputs)
    return inputs, eff


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


def context_reason(model: Record, tokens: int, what: str) -> str | None:
    """Why ``tokens`` positions exceed the model's maximum context, or None."""
    limit = model.max_context
    if limit is not None and tokens > limit:
        return f"{what} of {tokens:,} tokens exceeds {model.id}'s maximum context of {limit:,}"
    return None


def check_context(model: Record, tokens: int, what: str) -> None:
    """Refuse positions beyond the model's maximum context (rank excludes them, plan gates them)."""
    reason = context_reason(model, tokens, what)
    if reason:
        raise PdroofError(f"infeasible: {reason}")


def check_ep(model: Record, acc: Record, tp: int, ep: int) -> None:
    """Expert parallelism: routed experts split over ``ep`` groups of ``tp`` devices (attention
    data-parallel across the groups), all inside one scale-up domain."""
    if ep < 1:
        raise PdroofError(f"--ep must be at least 1, not {ep}")
    if ep == 1:
        return
    if model.moe is None:
        raise PdroofError(f"infeasible: --ep {ep} needs a mixture-of-experts model; {model.id} is dense")
    if model.moe.routed_experts % ep:
        raise PdroofError(f"infeasible: ep {ep} does not divide the {model.moe.routed_experts} experts of {model.id}")
    reason = tp_reason(model, acc, tp * ep) if tp * ep > 1 else None
    if reason and "exceeds" in reason:
        raise PdroofError(f"infeasible: tp {tp} × ep {ep} devices exceed the scale-up domain of {acc.id}")


def estimate(model: Record, acc: Record, runtime: Record, p: Precision, *, tp: int = 1, batch: int = 1,
             prompt: int = 2048, context: int | None = None, prefix: int = 0, ep: int = 1) -> dict:
    """The JSON contract of ``pdroof estimate``: prefill, decode step, memory, inputs. Numbers
    are per device of an instance of tp × ep devices."""
    check_tp(model, acc, tp)
    check_ep(model, acc, tp, ep)
    for name, v in (("batch", batch), ("prompt", prompt)):
        if v < 1:
            raise PdroofError(f"--{name} must be at least 1, not {v}")
    if prefix < 0:
        raise PdroofError(f"--prefix must not be negative, not {prefix}")
    context = context if context is not None else prefix + prompt
    if context < 1:
        raise PdroofError(f"--context must be at least 1, not {context}")
    check_context(model, prefix + prompt, "--prefix + --prompt")
    check_context(model, context, "--context")
    base, eff = stage_inputs(model, acc, runtime, p, tp, ep)
    work = {"batch": batch, "new_tokens": prompt, "prefix_tokens": prefix, "context_tokens": context}
    inputs = {**base, **work}
    pre = evaluate("prefill", inputs)
    dec = evaluate("decode", inputs)
    mem = evaluate("memory", inputs)
    pre_ops, pre_bound = breakdown(pre)
    dec_ops, dec_bound = breakdown(dec)
    shape = shape_of(model)
    max_batch = int(mem["max_batch"])
    return {
        "prefill": {"seconds": float(pre["seconds"]), "flops": float(pre["flops"]), "bytes": float(pre["bytes"]),
                    "bound": pre_bound, "ops": pre_ops},
        "decode": {"step_seconds": float(dec["seconds"]), "tokens_per_second": float(dec["tokens_per_second"]),
                   "flops": float(dec["flops"]), "bytes": float(dec["bytes"]), "bound": dec_bound, "ops": dec_ops},
        "memory": {
            "weights_bytes": float(mem["weights_bytes"]),
            "workspace_bytes": float(mem["workspace_bytes"]),
            "kv_bytes_per_token": shape.kv_bytes_per_token(p.kv) / min(tp, base["kv_shardable"]),
            "kv_sequence_bytes": float(mem["kv_sequence_bytes"]),
            "kv_capacity_bytes": float(mem["kv_capacity_bytes"]),
            "max_batch": max_batch,
            "fits": max_batch >= batch,
        },
        "inputs": {
            "model": model.id, "hardware": acc.id, "runtime": runtime.id,
            "weights": p.weights, "activations": p.activations, "kv": p.kv,
            "tp": tp, "ep": ep, "batch": batch, "prompt": prompt, "context": context, "prefix": prefix,
            "efficiency": {k: base[k] for k in ("eff_compute", "gemm_half_rows", "eff_weights", "eff_memory",
                                                 "eff_attn_prefill",
                                                 "attn_half_tokens", "eff_attn_decode", "eff_link",
                                                 "layer_latency_s")},
            "efficiency_origin": {**eff.origin, "gemm_half_rows": half_rows_origin(eff, p, base)},
        },
    }


def aggregated_step(inputs: dict, w: Workload, concurrency, chunk_tokens: float):
    """Steady state of continuous batching at ``concurrency``: each step decodes C sequences and
    carries the average prefill load of the requests that join (C/O prompts of S new tokens).
    Returns the TPOT and TTFT statistics the workload's targets name (``pdroof.serving.load``: prompts
    queue for the prefill budget; a request's steps carry a Poisson number of other prompts),
    with the mean TPOT and the unloaded TTFT (one step carrying a whole new prompt, in chunks of
    ``chunk_tokens``)."""
    from .load import aggregated_tpot, aggregated_ttft

    C = concurrency
    base = {**inputs, "batch": C, "new_tokens": w.new_tokens, "prefix_tokens": w.prefix_tokens,
            "context_tokens": w.mean_context}
    mean_load = C / w.output_tokens
    tpot = evaluate("mixed", {**base, "prefill_prompts": mean_load})["seconds"]
    marginal = evaluate("mixed", {**base, "prefill_prompts": mean_load + 1.0})["seconds"] - tpot
    with_prompt = evaluate("mixed", {**base, "prefill_prompts": 1.0})["seconds"]
    plain = evaluate("mixed", {**base, "prefill_prompts": 0.0})["seconds"]
    chunks = np.ceil(w.new_tokens / chunk_tokens)
    unloaded = with_prompt + (chunks - 1) * plain
    return {"tpot_s": aggregated_tpot(tpot, marginal, C, w.output_tokens, w.tpot_stat),
            "ttft_s": aggregated_ttft(unloaded, marginal, tpot, C, w.output_tokens, w.ttft_stat),
            "tpot_mean_s": tpot, "ttft_unloaded_s": unloaded}


def aggregated(model: Record, acc: Record, runtime: Record, p: Precision, *, tp: int = 1, concurrency: int = 32,
               prompt: int = 2048, output: int = 256, prefix: int = 0, ttft_stat: str = "p90",
               tpot_stat: str = "p99") -> dict:
    """Colocated serving in the steady state of continuous batching at ``concurrency``: each step
    decodes C sequences and carries the prefill of the requests that join on average (C·S/O new
    tokens in the same forward pass, weights read once). The mean TPOT and the unloaded TTFT (one
    step carrying a whole new prompt, chunked at the runtime's token budget), and the statistics
    ``ttft_stat`` and ``tpot_stat`` under the load that concurrency implies."""
    check_tp(model, acc, tp)
    for name, v in (("concurrency", concurrency), ("prompt", prompt), ("output", output)):
        if v < 1:
            raise PdroofError(f"--{name} must be at least 1, not {v}")
    if not 0 <= prefix < prompt:
        raise PdroofError(f"--prefix must be in [0, prompt), not {prefix}")
    check_context(model, prompt + output, "--prompt + --output")
    w = Workload("aggregated", prompt, output, prefix_hit=prefix / prompt, ttft_stat=ttft_stat, tpot_stat=tpot_stat)
    base, eff = stage_inputs(model, acc, runtime, p, tp)
    step = aggregated_step(base, w, float(concurrency), runtime.structure.chunk_tokens)
    step = {k: float(v) for k, v in step.items()}
    mem = evaluate("memory", {**base, "batch": 1.0, "context_tokens": w.mean_context})
    tpot = step["tpot_mean_s"]
    return {
        "aggregated": {
            "tpot_seconds": tpot, "ttft_seconds": step["ttft_unloaded_s"],
            f"tpot_{tpot_stat}_seconds": step["tpot_s"], f"ttft_{ttft_stat}_seconds": step["ttft_s"],
            "tokens_per_second": concurrency / tpot,
            "requests_per_second": concurrency / (output * tpot),
            "step_tokens": concurrency * (1 + w.new_tokens / output),
            "concurrency": concurrency, "max_concurrency": int(mem["max_batch"]),
            "fits": int(mem["max_batch"]) >= concurrency,
        },
        "inputs": {"model": model.id, "hardware": acc.id, "runtime": runtime.id, "weights": p.weights,
                   "activations": p.activations, "kv": p.kv, "tp": tp, "concurrency": concurrency,
                   "prompt": prompt, "output": output, "prefix": prefix, "efficiency_origin": eff.origin},
    }
