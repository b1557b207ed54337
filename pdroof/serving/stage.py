"""One stage of an instance: its equation inputs from the specs (model, accelerator, runtime,
precision, TP/EP), whether the stage can exist (TP, EP and context limits), and the steady state
of aggregated serving. Both ``estimate`` and the design space (``space``) build on these."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..cost.inputs import (
    capped_half_rows,
    collective_bandwidth,
    decode_attention_inputs,
    hardware_inputs,
    model_inputs,
    precision_inputs,
)
from ..cost.numeric import evaluate
from ..cost.precision import Precision
from ..cost.runtime import resolve
from ..spec.errors import PdroofError
from ..spec.schema import Record
from .workload import Workload


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


def stage_inputs(model: Record, acc: Record, runtime: Record, p: Precision, tp: int, ep: int = 1):
    """All inputs of one stage except the workload (batch, tokens, context), as a fresh dict the
    caller may complete, and the resolved efficiency they came from."""
    inputs, eff = _stage_inputs(model, acc, runtime, p, tp, ep)
    return dict(inputs), eff


@lru_cache(maxsize=4096)  # bounded: records hash by identity, so reloaded catalogues must not pile up
def _stage_inputs(model: Record, acc: Record, runtime: Record, p: Precision, tp: int, ep: int):
    """Computed once per stage (records are immutable; the design space asks for the same stage
    from its decode and aggregated tables)."""
    eff = resolve(runtime, acc)
    inputs = {**model_inputs(model), **hardware_inputs(acc, eff, p, tp, ep), **precision_inputs(runtime, p),
              "tp": tp, "ep": ep}
    inputs["gemm_half_rows"] = capped_half_rows(inputs)
    inputs.update(decode_attention_inputs(model, eff))
    return inputs, eff


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

    def step_s(prompts):
        return evaluate("mixed", {**base, "prefill_prompts": prompts}, ("seconds",))["seconds"]

    tpot = step_s(mean_load)
    marginal = step_s(mean_load + 1.0) - tpot
    with_prompt = step_s(1.0)
    plain = step_s(0.0)
    chunks = np.ceil(w.new_tokens / chunk_tokens)
    unloaded = with_prompt + (chunks - 1) * plain
    return {"tpot_s": aggregated_tpot(tpot, marginal, C, w.output_tokens, w.tpot_stat),
            "ttft_s": aggregated_ttft(unloaded, marginal, tpot, C, w.output_tokens, w.ttft_stat),
            "tpot_mean_s": tpot, "ttft_unloaded_s": unloaded}
