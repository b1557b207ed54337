"""One forward pass on one device of a tensor-parallel instance, operation by operation.

Prefill (B prompts of S new tokens after an optional cached prefix p) and a decode step
(B sequences at context L, one new token each) are the same pass with different token counts
and attention spans. Every operation's time is the roofline of its FLOPs and bytes at achieved
rates, summed over the layers that have it, plus a fixed latency per layer. Each kernel also
costs the stack's per-kernel latency τ_K on top of its roofline (launch, ramp-up and tail, a few
µs): negligible in a prefill, most of a decode step's small GEMMs after tensor-parallel sharding.
"""

from __future__ import annotations

import sympy as sp

from ..ops import OPS
from . import S
from .comm import allreduce_time, alltoall_time, gather_scatter_time
from .moe import ep_imbalance, experts_touched
from .roofline import compute_time, gemm_efficiency, memory_time, roofline


def kv_shards():
    """KV of a layer splits across TP ranks by KV head, never finer (MLA's latent: not at all)."""
    return sp.Min(S("tp"), S("kv_shardable"))


def attn_params_per_rank():
    """Attention projection parameters on one TP rank: Q and O split t ways; K and V split by KV
    head only, so they replicate when the KV heads are fewer than t (MLA's down-projections: kept
    whole on every rank)."""
    W_A, W_KV = S("attn_params"), S("kv_proj_params")
    return (W_A - W_KV) / S("tp") + W_KV / kv_shards()


def kernels_of(seconds, kernels):
    """An operation run as ``kernels`` kernels: its roofline time plus their fixed latency."""
    return seconds + kernels * S("kernel_latency_s")


def gemm_group(flops, weight_bytes, act_elems, layers, rows, kernels, moe=False):
    """A GEMM group over ``layers`` layers of ``kernels`` GEMMs with ``rows`` rows each: weights
    streamed at η_W, compute at η_C·rows/(rows + M½) (weight-only formats pay a dequantisation
    overhead q), plus the kernels' fixed latency. The routed experts (``moe``) run as one fused
    grouped-GEMM layer with its own efficiencies η_XC, η_XW and fixed time τ_X; their rows per
    expert are few wherever compute could bind below η_XC's batches, so no M½ applies."""
    bytes_ = weight_bytes + act_elems * S("act_bytes")
    if moe:  # η_XC is measured over the batches at which the grouped GEMMs are compute-bound at all
        eff, eta_w = S("eff_moe_compute"), S("eff_moe_weights")
    else:
        eff, eta_w = gemm_efficiency(rows, S("eff_compute"), S("gemm_half_rows")), S("eff_weights")
    c = compute_time(flops, S("peak_flops_per_s"), eff) * (1 + S("dequant_overhead"))
    m = memory_time(bytes_, S("mem_bytes_per_s"), eta_w)
    one = roofline(c, m) + S("moe_latency_s") if moe else kernels_of(roofline(c, m), kernels)
    return {"flops": layers * flops, "bytes": layers * bytes_, "compute_s": layers * c, "memory_s": layers * m,
            "seconds": layers * one}


def _pass(tokens, head_tokens, attention):
    """All operations of one pass of ``tokens`` tokens from ``seqs`` sequences."""
    t, h = S("tp"), S("hidden")
    T = tokens
    bw, ba = S("weight_bytes"), S("act_bytes")
    ops: dict[str, dict[str, sp.Expr]] = {}

    W_A = attn_params_per_rank()
    ops["attn_proj"] = gemm_group(2 * T * W_A, W_A * bw, T * (2 * h + W_A / h), S("layers"), T, 2)  # QKV, O

    f = S("ffn_size")
    W_F = S("ffn_params")
    ops["ffn"] = gemm_group(2 * T * W_F / t, W_F * bw / t, T * (2 * h + 3 * f / t), S("dense_layers"), T,
                            2)  # gate+up, down

    # Routed experts: compute follows the k experts each token uses; weight traffic follows the
    # distinct experts the step touches (all of them at large batch, few at small batch). The d
    # attention replicas of an instance each send their T tokens to the experts, spread over e_X
    # expert-parallel groups and split t_X ways inside each (t_X·e_X = t·d devices): a device
    # computes its share of the d·T·k routed rows, the busiest group ι times the mean, and streams
    # its group's share of the experts that all d·T tokens touch, 1/t_X of each; each touched expert
    # multiplies d·T·k / touched rows (tokens spread evenly). Shared experts and the router run on
    # the replica's own T rows.
    k, W_X, W_S = S("experts_per_token"), S("expert_params"), S("shared_params")
    d, t_X, e_X = S("dp"), S("moe_tp"), S("moe_ep")
    f_moe = k * S("expert_ffn_size") + S("shared_ffn_size")
    touched = experts_touched(d * T)
    load = d * T * k / (t_X * e_X) * ep_imbalance()  # routed rows' share of the busiest device
    routed = gemm_group(2 * load * W_X, touched / e_X * W_X * bw / t_X, load * 3 * S("expert_ffn_size"),
                        S("moe_layers"), sp.Max(1, d * T * k / sp.Max(1, touched)), 3, moe=True)
    shared = gemm_group(2 * T * W_S / t, W_S * bw / t, T * (2 * h + 3 * S("shared_ffn_size") / t),
                        S("moe_layers"), T, sp.Min(1, W_S) * 2)  # gate+up, down when there are shared experts
    ops["experts"] = {key: routed[key] + shared[key] for key in routed}

    ops["attention"] = attention

    # Elementwise passes over activations: two norms and two residual adds per layer on the
    # hidden state (replicated on every TP rank), the gated activation on the FFN width, and a
    # separate cast before each GEMM input where the stack quantises activations that way.
    hid = T * h * (2 * S("norm_bytes_per_elem") + 2 * S("residual_bytes_per_elem") + 3 * S("cast_bytes_per_elem"))
    ffn_w = S("dense_layers") * f + S("moe_layers") * f_moe
    elem_bytes = S("layers") * hid + T * ffn_w / t * (S("act_fn_bytes_per_elem") + S("cast_bytes_per_elem"))
    # two fused norm(+residual) kernels and the gated activation per layer
    em = kernels_of(memory_time(elem_bytes, S("mem_bytes_per_s"), S("eff_memory")), 3 * S("layers"))
    ops["elementwise"] = {"flops": sp.Integer(0), "bytes": elem_bytes, "compute_s": sp.Integer(0),
                          "memory_s": em, "seconds": em}

    ar = S("layers") * 2 * allreduce_time(T * h * ba)
    ops["tp_comm"] = {"flops": sp.Integer(0), "bytes": S("layers") * 2 * T * h * ba, "compute_s": sp.Integer(0),
                      "memory_s": ar, "seconds": ar}
    # the experts' all-to-all carries a device's share of its replica's routed tokens (the busiest
    # group's), DP attention's gather and scatter the replica's activations
    a2a = S("moe_layers") * (alltoall_time(T * k * h * ba / t * ep_imbalance()) + gather_scatter_time(T * h * ba))
    ops["ep_comm"] = {"flops": sp.Integer(0), "bytes": S("moe_layers") * 2 * T * k * h * ba / t,
                      "compute_s": sp.Integer(0), "memory_s": a2a, "seconds": a2a}

    # LM head: only the last position of each prompt in prefill; kept in 16-bit weights.
    V = S("vocab")
    ops["lm_head"] = _head(head_tokens, V, h, t, ba)

    ops["layer_latency"] = _latency(S("layers") * S("layer_latency_s") * (1 + S("extra_kernel_share")))
    ops["step_latency"] = _latency(S("step_latency_s"))
    return ops


def _latency(seconds):
    zero = sp.Integer(0)
    return {"flops": zero, "bytes": zero, "compute_s": zero, "memory_s": zero, "seconds": seconds}


def _head(tokens, V, h, t, ba):
    flops = 2 * tokens * V * h / t
    bytes_ = V * h * ba / t + tokens * (h * ba + V * 4 / t)
    c = compute_time(flops, S("peak_flops_per_s"), gemm_efficiency(tokens, S("eff_compute"), S("gemm_half_rows")))
    m = memory_time(bytes_, S("mem_bytes_per_s"), S("eff_weights"))
    return {"flops": flops, "bytes": bytes_, "compute_s": c, "memory_s": m, "seconds": kernels_of(roofline(c, m), 1)}


def _flat_read(bytes_):
    return S("eff_attn_decode")


def _attention(flops_full, flops_sliding, bytes_full, bytes_sliding, eff_flops, read_eff=_flat_read):
    """Attention core on full and sliding-window layers: its own kernels' efficiency (KV reads at
    ``read_eff`` of the bytes a layer reads), one kernel per layer."""
    n_F, n_W = S("full_layers"), S("sliding_layers")
    peak = S("attn_peak_flops_per_s")
    cf = compute_time(flops_full, peak, eff_flops)
    cw = compute_time(flops_sliding, peak, eff_flops)
    mf = memory_time(bytes_full, S("mem_bytes_per_s"), read_eff(bytes_full))
    mw = memory_time(bytes_sliding, S("mem_bytes_per_s"), read_eff(bytes_sliding))
    return {
        "flops": n_F * flops_full + n_W * flops_sliding,
        "bytes": n_F * bytes_full + n_W * bytes_sliding,
        "compute_s": n_F * cf + n_W * cw,
        "memory_s": n_F * mf + n_W * mw,
        "seconds": n_F * kernels_of(roofline(cf, mf), 1) + n_W * kernels_of(roofline(cw, mw), 1),
    }


def _totals(ops: dict) -> dict[str, sp.Expr]:
    out = {}
    for name, o in ops.items():
        for key, expr in o.items():
            out[f"{name}_{key}"] = expr
    out["seconds"] = sum(o["seconds"] for o in ops.values())
    out["flops"] = sum(o["flops"] for o in ops.values())
    out["bytes"] = sum(o["bytes"] for o in ops.values())
    assert set(ops) == set(OPS), "pdroof.cost.ops must name every operation"
    return out


def prefill_attention(prompts):
    """Attention of ``prompts`` prompts of S new tokens after a cached prefix of p tokens.

    Causal: new token i attends to p + i positions, so a layer scores prompts·(S·p + S(S+1)/2)
    query-key pairs (quadratic in S). A sliding layer scores Σᵢ min(w, p + i): the first
    m = min(S, max(0, w − p)) new tokens see p + i positions, the rest w."""
    Sn, p, t, w = S("new_tokens"), S("prefix_tokens"), S("tp"), S("window_tokens")
    pairs_full = prompts * (Sn * p + Sn * (Sn + 1) / 2)
    m = sp.Min(Sn, sp.Max(0, w - p))
    pairs_slide = prompts * (m * p + m * (m + 1) / 2 + (Sn - m) * w)
    per_pair = 2 * S("attn_dim_prefill") * S("heads") / t
    kv_rw = S("kv_elems") * S("kv_bytes") / kv_shards()
    io = prompts * Sn * 2 * S("hidden") * S("act_bytes") / t
    eff = S("eff_attn_prefill") * Sn / (Sn + S("attn_half_tokens"))
    return _attention(per_pair * pairs_full, per_pair * pairs_slide,
                      prompts * (p + Sn) * kv_rw + io, prompts * sp.Min(S("window_tokens"), p + Sn) * kv_rw + io, eff)


def decode_attention(seqs):
    """Attention of one new token for each of ``seqs`` sequences at context L: every sequence's
    KV is read (sliding layers: at most the window)."""
    L, t = S("context_tokens"), S("tp")
    per_tok = 2 * S("attn_dim_decode") * S("heads") / t * seqs
    kv_rd = S("kv_elems") * S("kv_bytes") / kv_shards() * seqs
    io = seqs * 2 * S("hidden") * S("act_bytes") / t
    L_w = sp.Min(L, S("window_tokens"))

    def read_eff(bytes_):
        """Decode attention reads KV at η_AD·R/(R + R½): a layer that reads little (few or short
        sequences per device) cannot spread over the whole chip."""
        return S("eff_attn_decode") * bytes_ / (bytes_ + S("attn_decode_half_bytes"))

    return _attention(per_tok * L, per_tok * L_w, kv_rd * L + io, kv_rd * L_w + io, S("eff_attn_prefill"), read_eff)


def prefill() -> dict[str, sp.Expr]:
    """Prefill of B prompts of S new tokens after a cached prefix of p tokens."""
    B = S("batch")
    return _totals(_pass(B * S("new_tokens"), B, prefill_attention(B)))


def decode() -> dict[str, sp.Expr]:
    """One decode step: B sequences at context L each add one token. Weights are read once per
    step; every sequence's KV is read; GEMM compute is 2·active_params·B."""
    B = S("batch")
    out = _totals(_pass(B, B, decode_attention(B)))
    out["tokens_per_second"] = B / out["seconds"]
    return out


def mixed() -> dict[str, sp.Expr]:
    """One step of aggregated serving (continuous batching): B sequences decode one token each and
    the same forward pass carries the prefill of P prompts of S new tokens (P may be fractional:
    the average prefill load per step). Weights are read once for all B + P·S tokens."""
    B, P = S("batch"), S("prefill_prompts")
    att = prefill_attention(P)
    dec = decode_attention(B)
    both = {k: att[k] + dec[k] for k in att}
    out = _totals(_pass(B + P * S("new_tokens"), B + P, both))
    out["tokens_per_second"] = B / out["seconds"]
    return out
