"""One stage of an instance: its equation inputs from the specs (model, accelerator, runtime,
precision, parallelism) and whether the stage can exist (TP, the experts' split and context limits); and a
decode replica's time per output token on its own (``decode_alone``), and a prefill job's time in the
passes its replica's budget takes it in (``prefill_passes``). ``estimate``, ``predict`` and the
design space (``space``) build on these; aggregated serving's load is ``load.aggregated_load``."""

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
    scheduler_inputs,
)
from ..cost.numeric import evaluate
from ..cost.parallelism import Parallelism, degree_reason, scale_up_domain, split_reason
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
    domain = scale_up_domain(acc)
    if tp > domain:
        return f"tp {tp} exceeds the scale-up domain of {acc.id} ({domain} devices)"
    if tp > 1 and collective_bandwidth(acc) is None:
        return f"tp {tp} needs a link bandwidth for collectives, and {acc.id}'s spec has none"
    if model.attention_heads % tp:
        return f"tp {tp} does not divide the {model.attention_heads} attention heads of {model.id}"
    return None


def stage_inputs(model: Record, acc: Record, runtime: Record, p: Precision, tp: int, par: Parallelism | None = None):
    """All inputs of one stage except the workload (batch, tokens, context), as a fresh dict the
    caller may complete, and the resolved efficiency they came from. ``par``: the instance's split
    (default: ``tp`` alone, the experts split as the attention)."""
    par = (par or Parallelism(tp)).for_model(model)
    inputs, eff = _stage_inputs(model, acc, runtime, p, par)
    return dict(inputs), eff


@lru_cache(maxsize=4096)  # bounded: records hash by identity, so reloaded catalogues must not pile up
def _stage_inputs(model: Record, acc: Record, runtime: Record, p: Precision, par: Parallelism):
    """Computed once per stage (records are immutable; the design space asks for the same stage
    from its decode and aggregated tables)."""
    eff = resolve(runtime, acc)
    inputs = {**_silicon_inputs(model, acc, runtime, p.weights, p.activations, par), **precision_inputs(runtime, p),
              **scheduler_inputs(runtime, acc, par.dp)}
    inputs["gemm_half_rows"] = capped_half_rows(inputs)
    return inputs, eff


@lru_cache(maxsize=4096)
def _silicon_inputs(model: Record, acc: Record, runtime: Record, weights: str, activations: str,
                    par: Parallelism) -> dict:
    """The model's, the accelerator's and the split's inputs: the same for every KV format of a
    weight and activation format (the design space asks for each KV format in turn)."""
    eff = resolve(runtime, acc)
    p = Precision(weights, activations, weights)  # the KV format enters none of these: any stands in
    return {**model_inputs(model), **hardware_inputs(acc, eff, p, par), "tp": par.tp, "dp": par.dp,
            "moe_tp": par.experts_tp, "moe_ep": par.moe_ep, "ep_imbalance_32": runtime.structure.ep_imbalance_32,
            **decode_attention_inputs(model, eff)}


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


def check_parallelism(model: Record, acc: Record, par: Parallelism) -> None:
    """Refuse a split the instance cannot run: TP inside a replica (one scale-up domain), the
    experts' split, nodes without a scale-out NIC."""
    check_tp(model, acc, par.tp)
    reason = degree_reason(par)
    if reason:  # named as the flag
        name, rest = reason.split(" ", 1)
        raise PdroofError(f"--{name.replace('_', '-')} {rest}")
    reason = split_reason(model, acc, par)
    if reason:
        raise PdroofError(f"infeasible: {reason}")


# The serving equations' inputs for a decode replica alone: no ownership (KV capacity unbounded, nothing
# retained or in flight, no prefill pool), so the batch given is the batch it runs
_DECODE_ALONE = {"prefill_s": 1.0, "handoff_s": 0.0, "prefill_utilisation": 1.0, "kv_dst_bytes": 0.0,
                 "prefill_slots": 1.0, "admission_wait_s": 0.0, "pace_s": 0.0, "kv_capacity_bytes": np.inf,
                 "retained_bytes": 0.0, "link_request_s": 1.0, "ingress_request_s": 0.0, "overlap_s": 0.0,
                 "tp_prefill": 0.0, "tp_decode": 1.0, "dp_prefill": 1.0, "price_prefill": 0.0, "price_decode": 0.0,
                 "power_prefill": 0.0, "power_decode": 0.0}


def decode_alone(outputs: tuple[str, ...], *, step, batch, own_pass, dp, output_tokens, tier: dict | None = None,
                 tpot_target=np.inf) -> dict[str, np.ndarray]:
    """The serving equations' ``outputs`` for a decode replica alone: ``batch`` sequences of
    ``output_tokens`` each stepping in ``step``, its engine's admission (``own_pass``: 1 where it
    takes arrivals in passes of their own) and its instance's ``dp`` attention replicas, the KV
    beyond HBM in ``tier`` (``hbm_batch``, ``tier_bytes_per_s``, ``kv_request_bytes`` and
    ``tier_capacity_bytes``; none: all in HBM). ``decode_tpot_s`` is its time per output token."""
    tier = {"hbm_batch": batch, "tier_bytes_per_s": np.inf, "kv_request_bytes": 1.0, "tier_capacity_bytes": 0.0,
            **(tier or {})}
    return evaluate("serving", {**_DECODE_ALONE, **tier, "step_s": step, "decode_batch": batch,
                                "own_pass_admission": own_pass, "dp_decode": dp, "output_tokens": output_tokens,
                                "tpot_target_s": tpot_target}, outputs)


def prefill_passes(inputs: dict, prompts, new_tokens, prefix_tokens=0.0,
                   outputs: tuple[str, ...] | None = ("seconds",)) -> dict[str, np.ndarray]:
    """The prefill equations' ``outputs`` (all where None; every one adds up over passes) for a
    replica of stage ``inputs`` taking a job of g = ``prompts`` prompts of S = ``new_tokens`` new
    tokens after P = ``prefix_tokens`` cached, in the passes its budget K (``replica_chunk_tokens``)
    takes them in, and ``passes``, how many. Prompts that fit the budget share passes by their
    tokens, ⌈g·S/K⌉ passes of g/n prompts each; a longer prompt goes alone in m = ⌈S/K⌉ chunks of
    S/m tokens, each taken at the chunks' mean prefix P + S(m − 1)/(2m): their causal pairs then sum
    to the whole prompt's (exact for full attention; at most the sum where a layer caps the keys a
    query sees, as a sliding window does), and each pass reads the weights and pays its latencies
    again. (Engines pack a long prompt's last chunk with the next prompt's first: for g > 1 long
    prompts this counts up to one pass more each, an upper bound; only ``estimate`` asks for such
    a job, the load models' jobs of long prompts holding one.)"""
    g, S, P = (np.asarray(v, dtype=float) for v in (prompts, new_tokens, prefix_tokens))
    K = inputs["replica_chunk_tokens"]
    m = np.maximum(np.ceil(S / K), 1.0)  # chunks of one prompt
    whole = m <= 1
    n = np.where(whole, np.maximum(np.ceil(g * S / K), 1.0), g * m)
    chunk = S / m
    before = P + S * (m - 1) / (2 * m)
    per_pass = evaluate("prefill", {**inputs, "batch": np.where(whole, g / n, 1.0), "new_tokens": chunk,
                                    "prefix_tokens": before, "context_tokens": before + chunk}, outputs)
    shape = np.shape(next(iter(per_pass.values())))
    return {**{k: n * np.asarray(v, dtype=float) for k, v in per_pass.items()}, "passes": np.broadcast_to(n, shape)}


def decode_tpot(inputs: dict, batch, context, output_tokens, tier: dict | None = None) -> np.ndarray:
    """A decode replica's time per output token at ``batch`` sequences of ``context`` tokens, each
    staying for ``output_tokens`` decode steps: the step of its stage ``inputs`` (any KV beyond HBM
    fetched from ``tier``, as ``decode_alone``) times the passes it makes per token."""
    step = evaluate("decode", {**inputs, "batch": batch, "new_tokens": 1.0, "prefix_tokens": 0.0,
                               "context_tokens": context}, ("seconds",))["seconds"]
    return decode_alone(("decode_tpot_s",), step=step, batch=batch, own_pass=inputs["own_pass_admission"],
                        dp=inputs["dp"], output_tokens=output_tokens, tier=tier)["decode_tpot_s"]
