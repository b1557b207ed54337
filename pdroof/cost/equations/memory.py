"""Device memory: weights, KV per sequence, activation workspace, and the largest batch."""

from __future__ import annotations

import sympy as sp

from . import S
from .forward import DELTA_CHUNK, attn_params_per_rank, kv_shards, linear_shards


def weights_bytes():
    """Weights per device: sharded by the replica's TP (K/V projections only by KV head; every
    attention replica holds its own copy), routed experts over all t_X·e_X devices of the
    instance; embeddings and LM head in 16-bit."""
    t = S("tp")
    body = S("dense_layers") * S("ffn_params") + S("moe_layers") * S("shared_params")
    experts = S("moe_layers") * S("experts") * S("expert_params") / (S("moe_tp") * S("moe_ep"))
    layers = body / t + experts + S("layers") * attn_params_per_rank()
    return layers * S("weight_bytes") + S("embed_params") * S("act_bytes") / t


def kv_sequence_bytes(tokens, element_bytes, tp=None):
    """KV bytes per device of one sequence of ``tokens`` on a replica of ``tp`` devices (default: the
    stage's): full and sparse layers grow with it, sliding layers stop at the window, split across TP
    ranks by KV head; a sparse layer adds its indexer's key per token (own format, whole on every
    rank: DSA sits on MLA); a linear layer holds its fixed state, in its own formats, split by key
    head."""
    shards = kv_shards(tp)
    per_layer = S("kv_elems") * element_bytes / shards
    grows = S("full_layers") + S("sparse_layers")
    kv = (grows * tokens + S("sliding_layers") * sp.Min(tokens, S("window_tokens"))) * per_layer
    index = S("sparse_layers") * tokens * S("index_key_bytes") / shards
    state = S("linear_layers") * S("state_bytes") / linear_shards(tp)
    return kv + index + state


def workspace_bytes():
    """Activation workspace of the largest pass (chunk_tokens tokens) plus fp32 logits, plus the
    per-chunk states a linear layer's chunked prefill keeps (one H_R·d_k·d_v matrix of activations
    per chunk of 64 tokens, on its rank's share of the heads)."""
    t = S("tp")
    widest = sp.Max(S("ffn_size"), S("experts_per_token") * S("expert_ffn_size") + S("shared_ffn_size"))
    chunk_states = (S("chunk_tokens") / DELTA_CHUNK * S("linear_heads") * S("linear_key_dim") * S("linear_value_dim")
                    * S("act_bytes") / linear_shards())
    return (S("chunk_tokens") * (4 * S("hidden") + 3 * widest / t) * S("act_bytes") + S("batch") * S("vocab") * 4 / t
            + chunk_states)


def expressions() -> dict[str, sp.Expr]:
    w = weights_bytes()
    ws = workspace_bytes()
    kv_seq = kv_sequence_bytes(S("context_tokens"), S("kv_bytes"))
    # the engine keeps a share of the device beside the workspace (vLLM's gpu_memory_utilization), an
    # amount that stands for both (SGLang's reserved_mem), or a share of what the weights and the
    # workspace leave (TensorRT-LLM's free_gpu_memory_fraction), whichever is more
    left = S("hbm_bytes") - w - ws
    kept = sp.Max(S("hbm_bytes") * S("mem_reserve") + ws, S("mem_reserve_bytes"), ws + S("mem_reserve_free") * left)
    capacity = S("hbm_bytes") - w - kept
    kv_batch = sp.floor(sp.Max(0, capacity) / kv_seq)
    return {
        "weights_bytes": w,
        "workspace_bytes": ws,
        "kv_sequence_bytes": kv_seq,
        "kv_capacity_bytes": capacity,
        "kv_batch": kv_batch,  # what KV memory holds
        "max_batch": sp.Min(kv_batch, S("max_sequences")),  # ... at most what the engine's scheduler runs at once
    }
