"""Spec records → the named inputs of the equations (SI numbers, one per symbol).

Everything here is selection and unit bookkeeping; all physics is in ``pdroof.cost.equations``.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from ..spec.schema import Record
from ..spec.units import format_bytes
from .architecture import conv_channels, shape_of
from .parallelism import Parallelism, host_devices, scale_up_domain
from .precision import Precision, attention_peak_format
from .runtime import AllReduce, Efficiency
from .symbols import GATHER_ALLREDUCE, TP_ALLREDUCE

ACT_BYTES = 2.0  # activations between kernels are 16-bit
# Per-hop collective latency when a spec gives none: the slowest hop the catalogue cites (NCCL's
# latency model per network ring step), so that a missing figure never makes a link look fast.
DEFAULT_HOP_LATENCY_S = 2.7e-6


@cache
def collective_bandwidth(acc: Record, devices: int | None = None) -> float | None:
    """Bandwidth per device that collectives among ``devices`` devices run over: the scale-up link
    (on a full mesh only the direct links among them: MI300X TP2 gets one 64 GB/s link of the 7),
    or for cards without one the host link (PCIe peer traffic); None when neither is known (then
    TP > 1 is refused). ``devices`` None: the whole domain's."""
    su, host = acc.scale_up, acc.host_link
    if su and su.bandwidth_bytes_per_s:
        n = su.domain_size or 1
        if su.topology == "full_mesh" and n > 1 and devices is not None:
            return su.bandwidth_bytes_per_s * (min(max(devices, 2), n) - 1) / (n - 1)
        return su.bandwidth_bytes_per_s
    if host and host.bandwidth_bytes_per_s:
        return host.bandwidth_bytes_per_s
    return None


def group_bandwidth(acc: Record, devices: int) -> float | None:
    """Bandwidth per device of an exchange among ``devices`` devices that may span nodes: within
    the scale-up domain ``collective_bandwidth``; beyond it, a device's traffic to the other
    domain − 1 devices of its node crosses the scale-up link and to the devices − domain others its
    scale-out NIC, concurrently, so the slower share sets the time."""
    domain = scale_up_domain(acc)
    local = collective_bandwidth(acc, min(devices, domain))
    if devices <= domain or local is None:
        return local
    nic = acc.scale_out_bytes_per_s
    if not nic:
        return None
    return (devices - 1) / max((domain - 1) / local, (devices - domain) / nic)


def model_inputs(model: Record, layers: int | None = None) -> dict[str, float]:
    """Model inputs; ``layers`` truncates the stack to its first n layers. Computed once per spec
    record (records are immutable); callers get their own copy."""
    return dict(_model_inputs(model, layers))


@cache
def _model_inputs(model: Record, layers: int | None) -> dict[str, float]:
    s = shape_of(model, layers)
    att, moe = model.attention, model.moe
    if att.kind == "mla":
        m = att.mla
        dim_prefill = m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim
        dim_decode = 2 * m.kv_lora_rank + m.qk_rope_head_dim  # absorbed: q·[c;k_rope], p·c
        shardable, tensors = 1, 1
    else:
        dim_prefill = dim_decode = 2 * model.head_dim
        shardable, tensors = model.kv_heads, 2
    layers_kv = max(s.full_attention_layers + s.sliding_layers + s.sparse_layers, 1)
    # attention projections as a mean per layer: linear layers have their own (and shard by head, so
    # none of theirs replicates); the totals, all the equations use, are exact
    n = max(s.layers, 1)
    attn_params = (s.attention_layers * s.attention_params + s.linear_layers * s.linear_attention_params) / n
    kv_proj_params = s.attention_layers * s.kv_projection_params / n
    return {
        "layers": s.layers,
        "dense_layers": s.dense_layers,
        "moe_layers": s.moe_layers,
        "full_layers": s.full_attention_layers,
        "sliding_layers": s.sliding_layers,
        "window_tokens": s.sliding_window_tokens or 1,
        **_sparse_inputs(model, s),
        **_linear_inputs(model, s),
        "hidden": model.hidden_size,
        "heads": model.attention_heads,
        "attn_params": attn_params,
        "kv_proj_params": kv_proj_params,
        "ffn_params": s.dense_ffn_params,
        "ffn_size": model.ffn_size or 0,
        "experts": s.routed_experts or 1,
        "experts_per_token": s.experts_per_token,
        "expert_params": s.expert_params,
        "expert_ffn_size": moe.expert_ffn_size if moe else 0,
        "shared_params": s.shared_expert_params + s.router_params,
        "shared_ffn_size": moe.shared_experts * moe.expert_ffn_size if moe else 0,
        "vocab": model.vocab_size,
        "embed_params": s.embedding_params + s.lm_head_params,
        "attn_dim_prefill": dim_prefill,
        "attn_dim_decode": dim_decode,
        "kv_elems": (s.kv_elements_per_token_full + s.kv_elements_per_token_sliding) / layers_kv,
        "kv_shardable": shardable,
        "kv_tensors": tensors,
    }


def _sparse_inputs(model: Record, s) -> dict[str, float]:
    """DeepSeek sparse attention's sizes (inert values where there are no sparse layers)."""
    dsa = model.attention.sparse_attention
    if not s.sparse_layers:
        return {"sparse_layers": 0, "topk_tokens": 1, "index_heads": 0, "index_head_dim": 0, "index_key_bytes": 0}
    return {"sparse_layers": s.sparse_layers, "topk_tokens": dsa.topk_tokens, "index_heads": dsa.index_heads,
            "index_head_dim": dsa.index_head_dim, "index_key_bytes": s.index_key_bytes_per_token / s.sparse_layers}


def _linear_inputs(model: Record, s) -> dict[str, float]:
    """Linear attention's sizes (inert values where there are no linear layers)."""
    lin = model.attention.linear_attention
    if not s.linear_layers:
        return {"linear_layers": 0, "linear_heads": 0, "linear_key_dim": 0, "linear_value_dim": 0, "conv_dim": 0,
                "conv_kernel": 0, "state_bytes": 0, "state_shardable": 1}
    return {"linear_layers": s.linear_layers, "linear_heads": lin.value_heads, "linear_key_dim": lin.key_head_dim,
            "linear_value_dim": lin.value_head_dim, "conv_dim": conv_channels(lin), "conv_kernel": lin.conv_kernel,
            "state_bytes": s.state_bytes_per_layer, "state_shardable": lin.key_heads}


def half_rows_for(eff: Efficiency, p: Precision) -> float:
    """M½ of this precision's GEMMs before the GEMV cap: the activation format's; weight-only GEMMs
    run their own (dequantising) kernels on the activations' MMA, so the weight format's where
    measured, never below the activation format's."""
    own = eff.half_rows_for(p.activations)
    return max(own, eff.half_rows_for(p.weights)) if p.weight_only else own


def hardware_inputs(acc: Record, eff: Efficiency, p: Precision, par: Parallelism = Parallelism()) -> dict[str, float]:
    """The accelerator's and the stack's factors for a stage split as ``par`` (already resolved for
    the model: ``Parallelism.for_model``)."""
    peaks = acc.dense_flops_per_s
    su = acc.scale_up
    tp = par.tp
    return {
        "peak_flops_per_s": peaks.get(p.activations),
        "attn_peak_flops_per_s": peaks.get(attention_peak_format(acc)),
        "mem_bytes_per_s": acc.memory.bandwidth_bytes_per_s,
        "hbm_bytes": acc.memory.capacity_bytes,
        # unknown only where TP > 1 is refused (tp_reason); at TP 1 the collective term is multiplied by 0
        "link_bytes_per_s": collective_bandwidth(acc, tp) or 1.0,
        "ep_link_bytes_per_s": group_bandwidth(acc, par.devices) or 1.0,
        "dp_link_bytes_per_s": group_bandwidth(acc, par.experts_tp) or 1.0,
        "link_latency_s": su.latency_s if su and su.latency_s else DEFAULT_HOP_LATENCY_S,
        "eff_compute": eff.compute_for(p.activations),
        "gemm_half_rows": half_rows_for(eff, p),
        "eff_weights": eff.weights_for(p.weights),
        "eff_memory": eff.memory,
        "eff_attn_prefill": eff.attention_prefill,
        "attn_half_tokens": eff.attention_prefill_half_tokens,
        "eff_attn_decode": eff.attention_decode,
        "eff_link": eff.link,
        "layer_latency_s": eff.layer_latency_s,
        "kernel_latency_s": eff.kernel_latency_s,
        "eff_moe_compute": eff.moe_compute.get(p.activations, eff.compute_for(p.activations)),
        # the width dependence belongs to a measured expert factor; the dense factor stands alone
        "moe_half_width": eff.moe_half_width.get(p.activations, 0.0) if p.activations in eff.moe_compute else 0.0,
        "eff_moe_weights": eff.moe_weights.get(p.weights, eff.weights_for(p.weights)),
        "moe_latency_s": eff.moe_latency_s.get(p.weights, 3 * eff.kernel_latency_s),
        # the TP group's all-reduce and DP attention's gather among the g replicas an expert spans
        **_allreduce_inputs(eff.allreduce_at(tp), TP_ALLREDUCE),
        **_allreduce_inputs(_gather_allreduce(acc, eff, par), GATHER_ALLREDUCE),
        "alltoall_latency_s": eff.alltoall_latency_s,
        "attn_decode_half_bytes": eff.attention_decode_half_bytes,
    }


def _gather_allreduce(acc: Record, eff: Efficiency, par: Parallelism) -> AllReduce:
    """The factors of DP attention's gather among the g = t_X/t replicas an expert spans
    (``comm._gathered``): measured at that count where g is whole, else the entry's own; where the
    replicas span hosts the stack's own kernel (its peers' buffers mapped within one host) never
    runs, so its second algorithm (NCCL's) at every size, where the profile gives one."""
    g = max(1.0, par.experts_tp / par.tp)
    ar = eff.allreduce_at(int(g)) if g.is_integer() else eff.allreduce
    if par.experts_tp > host_devices(acc) and ar.switch_bytes is not None:
        return replace(ar, switch_bytes=0.0)
    return ar


def _allreduce_inputs(ar: AllReduce, names: tuple[str, ...]) -> dict[str, float]:
    """``ar`` as the symbols ``names`` (symbols.TP_ALLREDUCE or GATHER_ALLREDUCE): one algorithm at
    every size where the profile gives no second one (its regime then equals the first)."""
    one = ar.switch_bytes is None
    values = (ar.latency_s, ar.link, ar.switch_bytes or 0.0,
              ar.latency_s if one else ar.large_latency_s, ar.link if one else ar.link_large)
    return dict(zip(names, values, strict=True))


def decode_attention_inputs(model: Record, eff: Efficiency) -> dict[str, float]:
    """KV-read efficiency of decode attention and the bytes at which it is half that: absorbed-MLA
    kernels have their own where the profile gives them."""
    if model.attention.kind == "mla" and eff.attention_decode_mla is not None:
        half = eff.attention_decode_mla_half_bytes
        return {"eff_attn_decode": eff.attention_decode_mla,
                "attn_decode_half_bytes": eff.attention_decode_half_bytes if half is None else half}
    return {"eff_attn_decode": eff.attention_decode, "attn_decode_half_bytes": eff.attention_decode_half_bytes}


def gemv_ridge_rows(inputs: dict) -> float:
    """GEMM rows at which a GEMM's compute (at its large-GEMM efficiency, dequantisation included)
    takes as long as streaming its weights: 2·rows·(1 + q) / (P·η_C) = b_W / (M·η_W)."""
    peak = inputs["peak_flops_per_s"] or 0.0
    stream = inputs["mem_bytes_per_s"] * inputs["eff_weights"]
    return peak * inputs["eff_compute"] * inputs["weight_bytes"] / (2 * stream * (1 + inputs["dequant_overhead"]))


def capped_half_rows(inputs: dict) -> float:
    """M½ such that a one-row GEMM stays weight-bound: at most the ridge less one row. Below the
    ridge engines run GEMV and split-K kernels at weight-streaming speed, so a small-GEMM penalty
    taken from other silicon (an H100's M½ on a compute-light H20) cannot make them slower."""
    return min(inputs["gemm_half_rows"], max(0.0, gemv_ridge_rows(inputs) - 1))


def precision_inputs(runtime: Record, p: Precision) -> dict[str, float]:
    st = runtime.structure
    return {
        "weight_bytes": format_bytes(p.weights),
        "kv_bytes": format_bytes(p.kv),
        "act_bytes": ACT_BYTES,
        # DeepEP and TensorRT-LLM dispatch FP8 tokens (with their block scales) to FP8 experts and
        # combine in BF16; nothing dispatches narrower than 8 bits
        "dispatch_bytes": min(ACT_BYTES, max(1.0, format_bytes(p.activations))) if p.quantized_activations
        else ACT_BYTES,
        "dequant_overhead": st.weight_only_dequant_overhead if p.weight_only else 0.0,
        "norm_bytes_per_elem": st.norm_bytes_per_element,
        "residual_bytes_per_elem": st.residual_bytes_per_element,
        "act_fn_bytes_per_elem": st.activation_fn_bytes_per_element,
        "cast_bytes_per_elem": st.activation_cast_bytes_per_element if p.quantized_activations else 0.0,
        "extra_kernel_share": st.cast_kernels_per_layer / st.kernels_per_layer if p.quantized_activations else 0.0,
        "step_latency_s": st.step_latency_s,
        "sequence_latency_s": st.sequence_latency_s,
        "own_pass_admission": 1.0 if st.disaggregated_admission == "own_pass" else 0.0,
        "dp_prompt_exchanges": 2.0 if st.dp_prompt_gather == "all_reduce" else 1.0,
        # the scheduler's, read by the load models (serving.load, serving.pool_loop through predict and
        # the prefill stage), not by the equations: a request's own time outside the passes, and a
        # disaggregated one's with the PD dispatch, handshake and pickup
        "request_latency_s": st.request_latency_s,
        "disaggregated_request_s": st.request_latency_s + st.disaggregation_latency_s,
        "prefill_first": 1.0 if st.prefill_schedule == "prefill_first" else 0.0,
        "kv_reserve_full": 1.0 if st.kv_reservation == "full" else 0.0,
        "drifting_arrivals": 1.0 if st.arrivals == "drifting" else 0.0,
    }


def device_tier(runtime: Record, acc: Record) -> Record | None:
    """The first of the runtime's ``smaller_devices`` tiers ``acc`` falls in (by its memory as the
    engine sees it, or its id or name), or None."""
    names = f"{acc.id} {acc.name}".lower()
    for tier in runtime.structure.smaller_devices:
        if acc.memory.capacity_bytes < tier.below_bytes or any(n.lower() in names for n in tier.names_containing):
            return tier
    return None


def scheduler_inputs(runtime: Record, acc: Record, dp: int = 1) -> dict[str, float]:
    """The engine's step budget, running-sequence limit and memory reserve on ``acc``: its
    structure's, or what the device's tier gives instead (engines pick their defaults by the
    device's memory, vLLM and SGLang among them); no limit (inf) where it gives none. The budget
    sizes the activation workspace (``chunk_tokens``); ``replica_chunk_tokens`` is the prompt tokens
    one of the instance's ``dp`` attention replicas takes in a pass, the load models' budget; the
    amount kept grows by the engine's reserve per replica where dp > 1."""
    st, tier = runtime.structure, device_tier(runtime, acc)

    def pick(name):
        own = getattr(tier, name) if tier is not None else None
        return own if own is not None else getattr(st, name)

    most, chunk = pick("max_sequences"), pick("chunk_tokens")
    replica_chunk = max(1, chunk // dp) if st.dp_attention_chunk == "divided" else chunk
    kept = pick("memory_reserve_bytes") + (dp if dp > 1 else 0) * pick("dp_attention_reserve_bytes")
    return {"chunk_tokens": chunk, "replica_chunk_tokens": float(replica_chunk),
            "max_sequences": float(most) if most is not None else float("inf"),
            "mem_reserve": st.memory_reserve_fraction, "mem_reserve_bytes": kept,
            "mem_reserve_free": st.memory_reserve_free_fraction}
