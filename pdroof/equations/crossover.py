"""Thresholds solved symbolically from the same expressions the numbers come from."""

from __future__ import annotations

import sympy as sp

from . import S
from .forward import gemm_group, prefill
from .transfer import transfer_seconds


def decode_compute_batch() -> sp.Expr:
    """Decode batch at which the dense GEMMs of a step (attention projections and dense FFN,
    every layer) turn compute-bound: where their compute and weight-streaming terms are equal.
    Routed experts are left out: the experts a step touches grow with the batch, so their
    crossover has no closed form."""
    B = sp.Symbol("batch", positive=True)
    t, h = S("tp"), S("hidden")
    W_A, W_F, f = S("attn_params"), S("ffn_params"), S("ffn_size")
    attn = gemm_group(2 * B * W_A / t, W_A * S("weight_bytes") / t, B * (2 * h + W_A / h / t), S("layers"), B)
    ffn = gemm_group(2 * B * W_F / t, W_F * S("weight_bytes") / t, B * (2 * h + 3 * f / t), S("dense_layers"), B)
    (sol,) = sp.solve(sp.Eq(attn["compute_s"] + ffn["compute_s"], attn["memory_s"] + ffn["memory_s"]), B)
    return sol


def _prefill_parts(n):
    """Prefill of one prompt of n tokens (no prefix, full-attention layers at their long-prompt
    efficiency): its compute to second order, k0 + c1·n + c2·n² (k0 from the small-GEMM
    efficiency term), and the weight-streaming floor c0 (memory terms of the weight GEMMs at one
    token)."""
    pre = prefill()
    fix = {S("batch"): 1, S("prefix_tokens"): 0, S("sliding_layers"): 0, S("attn_half_tokens"): 0}
    compute = sum(pre[f"{op}_compute_s"] for op in ("attn_proj", "ffn", "experts", "attention")).subs(fix)
    floor = sum(pre[f"{op}_memory_s"] for op in ("attn_proj", "ffn", "experts", "lm_head")).subs(fix).subs(
        S("new_tokens"), 1)
    compute = compute.subs(S("new_tokens"), n)
    return compute.subs(n, 0), sp.diff(compute, n).subs(n, 0), sp.diff(compute, n, 2).subs(n, 0) / 2, floor


def transfer_prompt_tokens() -> sp.Expr:
    """Prompt length up to which moving a request's KV (bulk per layer, no overlap) can take
    longer than its prefill. Transfer is a0 + a1·S; prefill is at least its compute, k0 + c1·S +
    c2·S² (projections, dense FFN, experts, causal attention). The threshold is the positive root
    of c2·S² + (c1 − a1)·S + (k0 − a0) = 0; ``transfer_floor_tokens`` says from which length the
    transfer also exceeds the weight-streaming floor of prefill (below it, prefill is weight-bound)."""
    n = sp.Symbol("new_tokens", positive=True)
    move = transfer_seconds().subs({S("transfer_tokens"): n, S("page_tokens"): n, S("sliding_layers"): 0})
    a0, a1 = move.subs(n, 0), sp.diff(move, n)
    k0, c1, c2, _ = _prefill_parts(n)
    b = c1 - a1
    return (-b + sp.sqrt(b**2 - 4 * c2 * (k0 - a0))) / (2 * c2)


def transfer_floor_tokens() -> sp.Expr:
    """Prompt length at which the transfer reaches prefill's weight-streaming floor c0: a0 + a1·S = c0."""
    n = sp.Symbol("new_tokens", positive=True)
    move = transfer_seconds().subs({S("transfer_tokens"): n, S("page_tokens"): n, S("sliding_layers"): 0})
    a0, a1 = move.subs(n, 0), sp.diff(move, n)
    *_, c0 = _prefill_parts(n)
    return (c0 - a0) / a1


def hiding_bandwidth() -> sp.Expr:
    """KV-path bandwidth at which layer-wise streaming hides the whole transfer behind the
    prefill time it overlaps: messages·α + bytes/(β·η) = t_O, solved for β."""
    beta = S("path_bytes_per_s")
    (sol,) = sp.solve(sp.Eq(transfer_seconds(), S("overlap_s")), beta)
    return sol


def expressions() -> dict[str, sp.Expr]:
    return {
        "decode_compute_batch": decode_compute_batch(),
        "transfer_prompt_tokens": transfer_prompt_tokens(),
        "transfer_floor_tokens": transfer_floor_tokens(),
        "hiding_bandwidth": hiding_bandwidth(),
    }

