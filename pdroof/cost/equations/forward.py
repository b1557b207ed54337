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
from .comm import allreduce_time, alltoall_bytes, alltoall_time, gather_scatter_bytes, gather_scatter_time
from .moe import ep_imbalance, experts_touched
from .roofline import compute_time, gemm_efficiency, memory_time, roofline


def kv_shards(tp=None):
    """KV of a layer splits across the ``tp`` ranks of a replica (default: the stage's) by KV head,
    never finer (MLA's latent: not at all)."""
    return sp.Min(S("tp") if tp is None else tp, S("kv_shardable"))


def linear_shards(tp=None):
    """A linear layer's heads, state and convolution channels split across TP ranks by key head."""
    return sp.Min(S("tp") if tp is None else tp, S("state_shardable"))


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
    grouped-GEMM layer with its own efficiencies η_XC (by the width of a device's expert slice,
    ``moe_compute_efficiency``), η_XW and fixed time τ_X; their rows per expert are few wherever
    compute could bind below η_XC's batches, so no M½ applies."""
    bytes_ = weight_bytes + act_elems * S("act_bytes")
    if moe:  # η_XC is measured over the batches at which the grouped GEMMs are compute-bound at all
        eff, eta_w = moe_compute_efficiency(), S("eff_moe_weights")
    else:
        eff, eta_w = gemm_efficiency(rows, S("eff_compute"), S("gemm_half_rows")), S("eff_weights")
    c = compute_time(flops, S("peak_flops_per_s"), eff) * (1 + S("dequant_overhead"))
    m = memory_time(bytes_, S("mem_bytes_per_s"), eta_w)
    one = roofline(c, m) + S("moe_latency_s") if moe else kernels_of(roofline(c, m), kernels)
    return {"flops": layers * flops, "bytes": layers * bytes_, "compute_s": layers * c, "memory_s": layers * m,
            "seconds": layers * one}


def moe_compute_efficiency():
    """Grouped-GEMM efficiency of the routed experts: η_XC·w/(w + w½), w = f_X/t_X the columns of
    one expert a device holds. Narrow slices (experts split many ways) leave the tiles short, so the
    kernels reach a fraction of what whole experts (expert parallelism) do; measured per engine and
    accelerator over the split widths of the kernel tables (``benchmarks/engine_factors.py``)."""
    w = sp.Max(1, S("expert_ffn_size") / S("moe_tp"))  # a dense model has none: one column keeps it defined
    return S("eff_moe_compute") * w / (w + S("moe_half_width"))


def _pass(tokens, seqs, attention, prompt_share):
    """All operations of one pass of ``tokens`` tokens from ``seqs`` sequences; ``prompt_share``: the
    share of such passes that carry prompt tokens in some DP-attention replica."""
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
    # group's): dispatched in the experts' input format, combined in 16-bit; DP attention's gather
    # and scatter carry the replica's activations, x_G times over in a pass that carries prompt tokens
    routed = T * k * h / t  # a device's share of its replica's routed elements, on average
    routed_elems = routed * ep_imbalance()  # ... the busiest group's
    exchanges = 1 + (S("dp_prompt_exchanges") - 1) * prompt_share
    a2a = S("moe_layers") * (alltoall_time(routed_elems * S("dispatch_bytes"), routed_elems * ba)
                             + gather_scatter_time(T * h * ba, exchanges))
    moved = S("moe_layers") * (alltoall_bytes(routed * S("dispatch_bytes"), routed * ba)
                               + gather_scatter_bytes(T * h * ba, exchanges))
    ops["ep_comm"] = {"flops": sp.Integer(0), "bytes": moved, "compute_s": sp.Integer(0), "memory_s": a2a,
                      "seconds": a2a}

    # LM head: only the last position of each prompt in prefill; kept in 16-bit weights.
    V = S("vocab")
    ops["lm_head"] = _head(seqs, V, h, t, ba)

    ops["layer_latency"] = _latency(S("layers") * S("layer_latency_s") * (1 + S("extra_kernel_share")))
    # the engine's CPU work per pass outside the layers, fixed and per sequence in it (scheduling,
    # input preparation, sampling), where it does not overlap the previous pass
    ops["step_latency"] = _latency(S("step_latency_s") + seqs * S("sequence_latency_s"))
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


def _layers(count, flops, bytes_, eff_flops, read_eff=_flat_read, kernels=1):
    """``count`` layers each running an attention-core operation of ``flops`` and ``bytes_`` as
    ``kernels`` kernels: its own kernels' efficiency (FLOPs at ``eff_flops`` of the attention peak,
    bytes at ``read_eff`` of what a layer reads)."""
    c = compute_time(flops, S("attn_peak_flops_per_s"), eff_flops)
    m = memory_time(bytes_, S("mem_bytes_per_s"), read_eff(bytes_))
    return {"flops": count * flops, "bytes": count * bytes_, "compute_s": count * c, "memory_s": count * m,
            "seconds": count * kernels_of(roofline(c, m), kernels)}


def _together(*parts):
    return {key: sum(part[key] for part in parts) for key in parts[0]}


# Tokens per chunk of the chunked gated delta rule (FLA's chunk_gated_delta_rule_fwd, which vLLM and
# SGLang run for Gated DeltaNet prefill: chunk_size 64).
DELTA_CHUNK = 64
# Bytes per (query, key) pair the sparse-attention indexer moves besides its keys: the fp32 score it
# writes and the top-k selection reads back (vLLM's DSA indexer materialises the logits).
INDEX_SCORE_BYTES = 8


def _index_pair_flops():
    """Indexer FLOPs per (query, past token) pair: I = Σ_j w_j·ReLU(q_j·k) over H_I heads, a d_I-wide
    dot product and a weighted sum per head (DeepSeek-V3.2 paper, eq. 1)."""
    return 2 * S("index_heads") * (S("index_head_dim") + 1)


def _linear_io_per_token():
    """Activation bytes a linear layer's core moves per token: the convolution reads and writes q, k
    and v (c_C channels) and the delta rule reads them, and writes one output per value channel."""
    return (3 * S("conv_dim") + S("linear_heads") * S("linear_value_dim")) * S("act_bytes")


def linear_prefill(prompts, eff):
    """Linear-attention layers over ``prompts`` prompts of S new tokens: linear in S.

    Chunked gated delta rule (Yang et al., Parallelizing Linear Transformers with the Delta Rule over
    Sequence Length, NeurIPS 2024, O(L·C·d + L·d²); the WY form of FLA's chunk_gated_delta_rule_fwd),
    derived per chunk of C tokens and value head (multiply-add = 2 FLOPs): K·Kᵀ 2C²d_k, the
    triangular solve C³/3, W and U 2C²(d_k + d_v), U − W·S and the state update 4C·d_k·d_v, the
    output Q·S 2C·d_k·d_v plus the masked intra-chunk (Q·Kᵀ)·V 2C²(d_k + d_v): per token
    H_R·(6·d_k·d_v + C·(6·d_k + 4·d_v) + C²/3), plus the causal convolution 2·K_C·c_C. Bytes: q, k,
    v and the output (``_linear_io_per_token``), the per-chunk states the kernels write and read back
    (2·H_R·d_k·d_v activations per chunk), and each prompt's state read and written once. Seven
    kernels per layer (convolution, gate cumsum, K·Kᵀ, solve, W/U, states, output)."""
    T = prompts * S("new_tokens")
    C = DELTA_CHUNK
    H, dk, dv = S("linear_heads"), S("linear_key_dim"), S("linear_value_dim")
    per_token = H * (6 * dk * dv + C * (6 * dk + 4 * dv) + sp.Rational(C * C, 3)) + 2 * S("conv_kernel") * S("conv_dim")
    chunk_states = T / C * 2 * H * dk * dv * S("act_bytes")
    bytes_ = T * _linear_io_per_token() + chunk_states + prompts * 2 * S("state_bytes")
    shards = linear_shards()
    return _layers(S("linear_layers"), T * per_token / shards, bytes_ / shards, eff, kernels=7)


def linear_decode(seqs, read_eff):
    """Linear-attention layers for one new token of each of ``seqs`` sequences: flat in context. The
    recurrent gated delta rule per value head (FLA's fused_recurrent_gated_delta_rule): decay the
    state d_k·d_v, Sᵀk 2·d_k·d_v, the rank-one update 2·d_k·d_v, Sᵀq 2·d_k·d_v, so 7·H_R·d_k·d_v
    FLOPs, plus the convolution step 2·K_C·c_C; every sequence's state is read and written back
    (2·b_R). Two kernels (convolution update, recurrent step)."""
    H, dk, dv = S("linear_heads"), S("linear_key_dim"), S("linear_value_dim")
    flops = seqs * (7 * H * dk * dv + 2 * S("conv_kernel") * S("conv_dim"))
    bytes_ = seqs * (2 * S("state_bytes") + _linear_io_per_token())
    shards = linear_shards()
    return _layers(S("linear_layers"), flops / shards, bytes_ / shards, S("eff_attn_prefill"), read_eff, kernels=2)


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


def _capped_pairs(prompts, cap):
    """Query-key pairs of ``prompts`` prompts of S new tokens after p cached ones when a query sees at
    most ``cap`` positions: Σᵢ min(cap, p + i), the first m = min(S, max(0, cap − p)) new tokens see
    p + i positions, the rest ``cap``."""
    Sn, p = S("new_tokens"), S("prefix_tokens")
    m = sp.Min(Sn, sp.Max(0, cap - p))
    return prompts * (m * p + m * (m + 1) / 2 + (Sn - m) * cap)


def prefill_attention(prompts):
    """Attention of ``prompts`` prompts of S new tokens after a cached prefix of p tokens.

    Causal: new token i attends to p + i positions, so a layer scores prompts·(S·p + S(S+1)/2)
    query-key pairs (quadratic in S). A sliding layer scores Σᵢ min(w, p + i). A sparse layer's
    indexer scores every causal pair and its attention min(k_I, p + i) per query; linear layers are
    linear in S (``linear_prefill``)."""
    Sn, p, t, w = S("new_tokens"), S("prefix_tokens"), S("tp"), S("window_tokens")
    pairs_full = prompts * (Sn * p + Sn * (Sn + 1) / 2)
    pairs_slide = _capped_pairs(prompts, w)
    per_pair = 2 * S("attn_dim_prefill") * S("heads") / t
    kv_rw = S("kv_elems") * S("kv_bytes") / kv_shards()
    io = prompts * Sn * 2 * S("hidden") * S("act_bytes") / t
    eff = S("eff_attn_prefill") * Sn / (Sn + S("attn_half_tokens"))
    full = _layers(S("full_layers"), per_pair * pairs_full, prompts * (p + Sn) * kv_rw + io, eff)
    sliding = _layers(S("sliding_layers"), per_pair * pairs_slide,
                      prompts * sp.Min(S("window_tokens"), p + Sn) * kv_rw + io, eff)
    return _together(full, sliding, sparse_prefill(prompts, pairs_full, eff), linear_prefill(prompts, eff))


def sparse_prefill(prompts, pairs_all, eff):
    """DeepSeek-sparse-attention layers: the indexer scores all ``pairs_all`` causal pairs at
    2·H_I·(d_I + 1) FLOPs each (whole on every TP rank: engines replicate it), moving its keys and
    an fp32 score per pair (written, then read by the top-k selection); the attention then scores
    each query against min(k_I, p + i) selected keys in MLA's MQA (absorbed) mode, the latent
    width d_D per head (DeepSeek-V3.2: DSA is instantiated on MQA-mode MLA; vLLM's FlashMLA sparse
    kernels take 576-wide queries). Indexer: two kernels (scores, top-k); attention: one."""
    Sn, p = S("new_tokens"), S("prefix_tokens")
    index = _layers(S("sparse_layers"), _index_pair_flops() * pairs_all,
                    prompts * (p + Sn) * S("index_key_bytes") / kv_shards() + INDEX_SCORE_BYTES * pairs_all, eff,
                    kernels=2)
    kv_rw = S("kv_elems") * S("kv_bytes") / kv_shards()
    io = prompts * Sn * 2 * S("hidden") * S("act_bytes") / S("tp")
    per_pair = 2 * S("attn_dim_decode") * S("heads") / S("tp")
    attend = _layers(S("sparse_layers"), per_pair * _capped_pairs(prompts, S("topk_tokens")),
                     prompts * (p + Sn) * kv_rw + io, eff)
    return _together(index, attend)


def decode_attention(seqs):
    """Attention of one new token for each of ``seqs`` sequences at context L: every sequence's
    KV is read (sliding layers: at most the window; sparse layers: min(L, k_I) selected tokens of
    latent, and the indexer's keys of all L; linear layers: their fixed state)."""
    L, t = S("context_tokens"), S("tp")
    per_tok = 2 * S("attn_dim_decode") * S("heads") / t * seqs
    kv_rd = S("kv_elems") * S("kv_bytes") / kv_shards() * seqs
    io = seqs * 2 * S("hidden") * S("act_bytes") / t
    L_w = sp.Min(L, S("window_tokens"))
    L_k = sp.Min(L, S("topk_tokens"))

    def read_eff(bytes_):
        """Decode attention reads KV at η_AD·R/(R + R½): a layer that reads little (few or short
        sequences per device) cannot spread over the whole chip."""
        return S("eff_attn_decode") * bytes_ / (bytes_ + S("attn_decode_half_bytes"))

    eff = S("eff_attn_prefill")
    full = _layers(S("full_layers"), per_tok * L, kv_rd * L + io, eff, read_eff)
    sliding = _layers(S("sliding_layers"), per_tok * L_w, kv_rd * L_w + io, eff, read_eff)
    index = _layers(S("sparse_layers"), _index_pair_flops() * L * seqs,
                    (S("index_key_bytes") / kv_shards() + INDEX_SCORE_BYTES) * L * seqs, eff, read_eff, kernels=2)
    attend = _layers(S("sparse_layers"), per_tok * L_k, kv_rd * L_k + io, eff, read_eff)
    return _together(full, sliding, index, attend, linear_decode(seqs, read_eff))


def prefill() -> dict[str, sp.Expr]:
    """Prefill of B prompts of S new tokens after a cached prefix of p tokens."""
    B = S("batch")
    return _totals(_pass(B * S("new_tokens"), B, prefill_attention(B), prompt_share=1))


def decode() -> dict[str, sp.Expr]:
    """One decode step: B sequences at context L each add one token. Weights are read once per
    step; every sequence's KV is read; GEMM compute is 2·active_params·B."""
    B = S("batch")
    out = _totals(_pass(B, B, decode_attention(B), prompt_share=0))
    out["tokens_per_second"] = B / out["seconds"]
    return out


def mixed() -> dict[str, sp.Expr]:
    """One step of aggregated serving (continuous batching): B sequences decode one token each and
    the same forward pass carries the prefill of P prompts of S new tokens (P may be fractional:
    the average prefill load per step). Weights are read once for all B + P·S tokens. Some replica
    carries prompt tokens in 1 − e^(−d·P) of the passes (the d replicas' prompts arriving apart)."""
    B, P = S("batch"), S("prefill_prompts")
    att = prefill_attention(P)
    dec = decode_attention(B)
    both = {k: att[k] + dec[k] for k in att}
    out = _totals(_pass(B + P * S("new_tokens"), B + P, both, prompt_share=1 - sp.exp(-S("dp") * P)))
    out["tokens_per_second"] = B / out["seconds"]
    return out
