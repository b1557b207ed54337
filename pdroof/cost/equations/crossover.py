"""Thresholds solved symbolically from the same expressions the numbers come from."""

from __future__ import annotations

import sympy as sp

from . import S
from .forward import attn_params_per_rank, gemm_group, prefill
from .moe import ep_imbalance
from .transfer import transfer_seconds


def decode_compute_batch() -> sp.Expr:
    """Decode batch at which the dense GEMMs of a step (attention projections and dense FFN,
    every layer) turn compute-bound: where their compute and weight-streaming terms are equal.
    Routed experts are left out: the experts a step touches grow with the batch, so their
    crossover has no closed form."""
    B = sp.Symbol("batch", positive=True)
    t, h = S("tp"), S("hidden")
    W_A, W_F, f = attn_params_per_rank(), S("ffn_params"), S("ffn_size")
    attn = gemm_group(2 * B * W_A, W_A * S("weight_bytes"), B * (2 * h + W_A / h), S("layers"), B, 2)
    ffn = gemm_group(2 * B * W_F / t, W_F * S("weight_bytes") / t, B * (2 * h + 3 * f / t), S("dense_layers"), B, 2)
    (sol,) = sp.solve(sp.Eq(attn["compute_s"] + ffn["compute_s"], attn["memory_s"] + ffn["memory_s"]), B)
    return sp.Max(0, sol)  # 0: compute-bound even at one sequence


def _prefill_parts(n):
    """Prefill of one prompt of n tokens (no prefix, full-attention layers at their long-prompt
    efficiency, every routed expert touched as at long prompts): its compute, exactly
    k0 + c1·n + c2·n² (k0 from the small-GEMM term), and its weight-streaming floor c0 (the
    memory terms of the weight GEMMs at one token). Sparse layers attend to every earlier token (as
    they do while n ≤ k_I); linear layers are linear in n."""
    pre = prefill()
    fix = {S("batch"): 1, S("prefix_tokens"): 0, S("sliding_layers"): 0, S("attn_half_tokens"): 0,
           S("topk_tokens"): n}
    dense = sum(pre[f"{op}_compute_s"] for op in ("attn_proj", "ffn", "attention")).subs(fix)
    t, d, k, E = S("tp"), S("dp"), S("experts_per_token"), S("experts")
    # every expert touched: d·n·k/E rows each (Max(1, k) keeps dense models, k = 0, well defined);
    # a device's share of the routed rows, d·n·k/(t_X·e_X), is n·k/t where the experts span the instance
    routed = d * n * k / (S("moe_tp") * S("moe_ep")) * ep_imbalance()
    experts = gemm_group(2 * (routed * S("expert_params") + n * S("shared_params") / t), 0, 0, S("moe_layers"),
                         d * n * sp.Max(1, k) / E, 2)["compute_s"]
    compute = sp.expand(sp.cancel(dense.subs(S("new_tokens"), n) + experts))
    poly = sp.Poly(compute, n)
    k0, c1, c2 = (poly.coeff_monomial(n**i) for i in range(3))
    floor = sum(pre[f"{op}_memory_s"] for op in ("attn_proj", "ffn", "experts", "lm_head")).subs(fix).subs(
        S("new_tokens"), 1)
    return k0, c1, c2, floor


def _move(n):
    """Bulk transfer of n tokens between instances of the same TP (sender and receiver shards
    equal), full-attention layers only: linear in n."""
    return transfer_seconds().subs({S("transfer_tokens"): n, S("page_tokens"): n, S("sliding_layers"): 0,
                                    S("tp_consumer"): S("tp")})


def transfer_prompt_tokens() -> sp.Expr:
    """Prompt length up to which moving a request's KV (bulk per layer, no overlap) takes longer
    than its prefill compute. Transfer is a0 + a1·S; prefill compute is k0 + c1·S + c2·S²
    (projections, dense FFN, experts, causal attention). The threshold is the larger root of
    c2·S² + (c1 − a1)·S + (k0 − a0) = 0, and 0 where there is none (the transfer never exceeds
    it). ``transfer_floor_tokens`` says from which length the transfer also exceeds prefill's
    weight-streaming floor (below it, prefill is weight-bound)."""
    n = sp.Symbol("new_tokens", positive=True)
    move = _move(n)
    a0, a1 = move.subs(n, 0), sp.diff(move, n)
    k0, c1, c2, _ = _prefill_parts(n)
    b = c1 - a1
    disc = b**2 - 4 * c2 * (k0 - a0)
    root_disc = sp.sqrt(sp.Max(0, disc))
    # the larger root, written so that it never subtracts nearly equal numbers: for b > 0 it is
    # 2·(a0 − k0)/(b + √disc) (a fixed transfer cost, such as a linear layer's state, above k0 makes
    # it a small difference of large ones in the textbook form)
    root = sp.Piecewise((2 * (a0 - k0) / (b + root_disc), b > 0), ((-b + root_disc) / (2 * c2), True))
    return sp.Max(0, root) * sp.Heaviside(disc, 1)


def transfer_floor_tokens() -> sp.Expr:
    """Prompt length at which the transfer reaches prefill's weight-streaming floor c0: a0 + a1·S = c0."""
    n = sp.Symbol("new_tokens", positive=True)
    move = _move(n)
    a0, a1 = move.subs(n, 0), sp.diff(move, n)
    *_, c0 = _prefill_parts(n)
    return sp.Max(0, (c0 - a0) / a1)


def hiding_bandwidth() -> sp.Expr:
    """KV-path bandwidth at which layer-wise streaming hides the whole transfer behind the
    prefill time it overlaps: messages·α + bytes/(β·η) = t_O, solved for β."""
    beta = S("path_bytes_per_s")
    (sol,) = sp.solve(sp.Eq(transfer_seconds().subs(S("tp_consumer"), S("tp")), S("overlap_s")), beta)
    return sol


def expressions() -> dict[str, sp.Expr]:
    return {
        "decode_compute_batch": decode_compute_batch(),
        "transfer_prompt_tokens": transfer_prompt_tokens(),
        "transfer_floor_tokens": transfer_floor_tokens(),
        "hiding_bandwidth": hiding_bandwidth(),
    }

