"""Spec records → the named inputs of the equations (SI numbers, one per symbol).

Everything here is selection and unit bookkeeping; all physics is in ``pdroof.equations``.
"""

from __future__ import annotations

from functools import cache

from .architecture import shape_of
from .precision import Precision, attention_peak_format
from .runtime import Efficiency
from .schema import Record
from .units import format_bytes

ACT_BYTES = 2.0  # activations between kernels are 16-bit
# Collective latency when a spec gives none: aiconfigurator's p2p default (specs_hardware.yaml, nvlink4).
DEFAULT_LINK_LATENCY_S = 10e-6


def tp_link_bandwidth(acc: Record) -> float | None:
    """Bandwidth tensor-parallel collectives run over: the scale-up link, or for cards without one
    the host link (PCIe peer traffic); None when neither is known (then TP > 1 is refused)."""
    su, host = acc.scale_up, acc.host_link
    if su and su.bandwidth_bytes_per_s:
        return su.bandwidth_bytes_per_s
    if host and host.bandwidth_bytes_per_s:
        return host.bandwidth_bytes_per_s
    return None


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
    layers_kv = max(s.full_attention_layers + s.sliding_layers, 1)
    return {
        "layers": s.layers,
        "dense_layers": s.dense_layers,
        "moe_layers": s.moe_layers,
        "full_layers": s.full_attention_layers,
        "sliding_layers": s.sliding_layers,
        "window_tokens": s.sliding_window_tokens or 1,
        "hidden": model.hidden_size,
        "heads": model.attention_heads,
        "attn_params": s.attention_params,
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


def hardware_inputs(acc: Record, eff: Efficiency, p: Precision) -> dict[str, float]:
    peaks = acc.dense_flops_per_s
    su = acc.scale_up
    return {
        "peak_flops_per_s": peaks.get(p.activations),
        "attn_peak_flops_per_s": peaks.get(attention_peak_format(acc)),
        "mem_bytes_per_s": acc.memory.bandwidth_bytes_per_s,
        "hbm_bytes": acc.memory.capacity_bytes,
        # unknown only where TP > 1 is refused (tp_reason); at TP 1 the collective term is multiplied by 0
        "link_bytes_per_s": tp_link_bandwidth(acc) or 1.0,
        "link_latency_s": su.latency_s if su and su.latency_s else DEFAULT_LINK_LATENCY_S,
        "eff_compute": eff.compute_for(p.activations),
        # weight-only GEMMs run their own (dequantising) kernels: their M½ is looked up by weight format
        "gemm_half_rows": eff.half_rows_for(p.weights if p.weight_only else p.activations),
        "eff_weights": eff.weights_for(p.weights),
        "eff_memory": eff.memory,
        "eff_attn_prefill": eff.attention_prefill,
        "attn_half_tokens": eff.attention_prefill_half_tokens,
        "eff_attn_decode": eff.attention_decode,
        "eff_link": eff.link,
        "layer_latency_s": eff.layer_latency_s,
    }


def precision_inputs(runtime: Record, p: Precision) -> dict[str, float]:
    st = runtime.structure
    return {
        "weight_bytes": format_bytes(p.weights),
        "kv_bytes": format_bytes(p.kv),
        "act_bytes": ACT_BYTES,
        "dequant_overhead": st.weight_only_dequant_overhead if p.weight_only else 0.0,
        "norm_bytes_per_elem": st.norm_bytes_per_element,
        "residual_bytes_per_elem": st.residual_bytes_per_element,
        "act_fn_bytes_per_elem": st.activation_fn_bytes_per_element,
        "cast_bytes_per_elem": st.activation_cast_bytes_per_element if p.quantized_activations else 0.0,
        "extra_kernel_share": st.cast_kernels_per_layer / st.kernels_per_layer if p.quantized_activations else 0.0,
        "mem_reserve": st.memory_reserve_fraction,
        "chunk_tokens": st.chunk_tokens,
        "step_latency_s": st.step_latency_s,
    }
