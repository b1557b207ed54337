"""Device memory: weights, KV per sequence, activation workspace, and the largest batch."""

from __future__ import annotations

import sympy as sp

from . import S
from .forward import attn_params_per_rank, kv_shards


def weights_bytes():
    """Weights per device: sharded by the replica's TP (K/V projections only by KV head; every
    attention replica holds its own copy), routed experts over all t_X·e_X devices of the
    instance; embeddings and LM head in 16-bit."""
    t = S("tp")
    body = S("dense_layers") * S("ffn_params") + S("moe_layers") * S("shared_params")
    experts = S("moe_layers") * S("experts") * S("expert_params") / (S("moe_tp") * S("moe_ep"))
    layers = body / t + experts + S("layers") * attn_params_per_rank()
    return layers * S("weight_bytes") + S("embed_params") * S("act_bytes") / t


def kv_sequence_bytes(tokens, element_bytes):
    """KV bytes per device of one sequence of ``tokens``: full layers grow with it, sliding layers
    stop at the window; split across TP ranks by KV head."""
    per_layer = S("kv_elems") * element_bytes / kv_shards()
    return (S("full_layers") * tokens + S("sliding_layers") * sp.Min(tokens, S("window_tokens"))) * per_layer


def workspace_bytes():
    """Activation workspace of the largest pass (chunk_tokens tokens) plus fp32 logits."""
    t = S("tp")
    widest = sp.Max(S("ffn_size"), S("experts_per_token") * S("expert_ffn_size") + S("shared_ffn_size"))
    return S("chunk_tokens") * (4 * S("hidden") + 3 * widest / t) * S("act_bytes") + S("batch") * S("vocab") * 4 / t


def expressions() -> dict[str, sp.Expr]:
    w = weights_bytes()
    ws = workspace_bytes()
    kv_seq = kv_sequence_bytes(S("context_tokens"), S("kv_bytes"))
    capacity = S("hbm_bytes") * (1 - S("mem_reserve")) - w - ws
    return {
        "weights_bytes": w,
        "workspace_bytes": ws,
        "kv_sequence_bytes": kv_seq,
        "kv_capacity_bytes": capacity,
        "max_batch": sp.floor(sp.Max(0, capacity) / kv_seq),
    }
