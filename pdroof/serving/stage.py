"""One stage of an instance: its equation inputs from the specs (model, accelerator, runtime,
precision, TP/EP) and whether the stage can exist (TP, EP and context limits). ``estimate``,
``predict`` and the design space (``space``) build on these; aggregated serving's load is
``load.aggregated_load``."""

from __future__ import annotations

from functools import lru_cache

from ..cost.inputs import (
    capped_half_rows,
    collective_bandwidth,
    decode_attention_inputs,
    hardware_inputs,
    model_inputs,
    precision_inputs,
)
from ..cost.precision import Precision
from ..cost.runtime import resolve
from ..spec.errors import PdroofError
from ..spec.schema import Record


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
