"""Thresholds solved symbolically from the same expressions the numbers come from."""

from __future__ import annotations

import sympy as sp

from . import S
from .forward import gemm_group, prefill
from .transfer import transfer_seconds


def decode_compute_batch() -> sp.Expr:
    """Decode batch at which a dense layer's FFN GEMMs turn compute-bound: the batch where the
    compute and weight-streaming terms of the roofline are equal."""
    B = sp.Symbol("batch", positive=True)
    t, h = S("tp"), S("hidden")
    f, W_F = S("ffn_size"), S("ffn_params")
    g = gemm_group(2 * B * W_F / t, W_F * S("weight_bytes") / t, B * (2 * h + 3 * f / t), 1)
    (sol,) = sp.solve(sp.Eq(g["compute_s"], g["memory_s"]), B)
    return sol


def transfer_prompt_tokens() -> sp.Expr:
    """Prompt length below which moving a request's KV (bulk per layer, no overlap) takes longer
    than its prefill. Transfer is a0 + a1·S; prefill's compute terms (projections, dense FFN,
    causal attention at its long-prompt efficiency, no prefix) are c1·S + c2·S²; the threshold is
    the positive root of c2·S² + (c1 − a1)·S − a0 = 0."""
    n = sp.Symbol("new_tokens", positive=True)
    pre = prefill()
    compute = (pre["attn_proj_compute_s"] + pre["ffn_compute_s"] + pre["attention_compute_s"]).subs(
        {S("batch"): 1, S("prefix_tokens"): 0, S("moe_layers"): 0, S("sliding_layers"): 0,
         S("attn_half_tokens"): 0})
    move = transfer_seconds().subs({S("transfer_tokens"): n, S("page_tokens"): n, S("sliding_layers"): 0})
    a0, a1 = move.subs(n, 0), sp.diff(move, n)
    c1, c2 = sp.diff(compute, n).subs(n, 0), sp.diff(compute, n, 2) / 2
    b = c1 - a1
    return (-b + sp.sqrt(b**2 + 4 * c2 * a0)) / (2 * c2)


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
        "hiding_bandwidth": hiding_bandwidth(),
    }

