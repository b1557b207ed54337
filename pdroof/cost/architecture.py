"""Counting from a model's architecture: parameters per component and KV-cache bytes per token.

These are exact tallies of the tensors in a checkpoint (no physics); the cost model
(``pdroof.cost.equations``) takes them as inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec.schema import Record
from ..spec.units import format_bytes


@dataclass(frozen=True)
class Shape:
    """Parameter tallies of one model, per component, and its KV geometry."""

    layers: int
    dense_layers: int            # layers with a dense FFN (all layers for a dense model)
    moe_layers: int
    attention_params: int        # per attention (full, sliding or sparse) layer, norms included
    kv_projection_params: int    # per attention layer, of attention_params: split across TP only by KV head
    dense_ffn_params: int        # per dense layer
    expert_params: int           # per routed expert (per MoE layer)
    routed_experts: int
    experts_per_token: int
    shared_expert_params: int    # per MoE layer, all shared experts together
    router_params: int           # per MoE layer
    embedding_params: int
    lm_head_params: int          # 0 when tied
    final_norm_params: int
    kv_elements_per_token_full: int     # per token, summed over layers whose KV grows with context
    kv_elements_per_token_sliding: int  # per token, summed over sliding-window layers
    sliding_window_tokens: int          # 0 when there are no sliding layers
    full_attention_layers: int
    sliding_layers: int
    linear_layers: int = 0              # linear-attention layers: a fixed-size state, no KV
    linear_attention_params: int = 0    # per linear layer, norms included
    state_bytes_per_layer: int = 0      # one sequence's recurrent state and convolution window, per linear layer
    sparse_layers: int = 0              # DeepSeek-sparse-attention layers (KV grows with context, as full)
    index_key_bytes_per_token: float = 0.0  # the indexer's cached keys, summed over sparse layers (own format)

    @property
    def attention_layers(self) -> int:
        """Layers with softmax attention and a KV cache: full, sliding and sparse."""
        return self.layers - self.linear_layers

    @property
    def state_bytes_per_sequence(self) -> int:
        """Bytes of one sequence's fixed-size state over all linear layers, whatever its length."""
        return self.linear_layers * self.state_bytes_per_layer

    @property
    def params_total(self) -> int:
        per_moe = self.routed_experts * self.expert_params + self.shared_expert_params + self.router_params
        return (
            self.attention_layers * self.attention_params
            + self.linear_layers * self.linear_attention_params
            + self.dense_layers * self.dense_ffn_params
            + self.moe_layers * per_moe
            + self.embedding_params
            + self.lm_head_params
            + self.final_norm_params
        )

    @property
    def params_inactive(self) -> int:
        """Routed-expert parameters a token does not touch."""
        return self.moe_layers * (self.routed_experts - self.experts_per_token) * self.expert_params

    @property
    def params_active_matmul(self) -> int:
        """Parameters a token multiplies by: active parameters without the input embedding lookup."""
        return self.params_total - self.params_inactive - self.embedding_params

    def kv_bytes_per_token(self, fmt: str) -> float:
        """KV bytes one more token adds to a long sequence (layers whose KV grows with context): the
        KV in ``fmt``, plus a sparse layer's indexer key in its own format."""
        return self.kv_elements_per_token_full * format_bytes(fmt) + self.index_key_bytes_per_token

    def kv_bytes_per_sequence(self, fmt: str, tokens: float) -> float:
        """KV bytes of one sequence of ``tokens``: full and sparse layers grow, sliding layers stop at
        the window, linear layers hold their fixed state."""
        sliding = self.kv_elements_per_token_sliding * min(tokens, self.sliding_window_tokens)
        return ((self.kv_elements_per_token_full * tokens + sliding) * format_bytes(fmt)
                + self.index_key_bytes_per_token * tokens + self.state_bytes_per_sequence)


def shape_of(model: Record, layers: int | None = None) -> Shape:
    """Tally a validated model spec; ``layers`` keeps only the first n decoder layers (a truncated
    stack, as benchmarks of large models on one device run them)."""
    h, att = model.hidden_size, model.attention
    heads, kvh = model.attention_heads, model.kv_heads
    norms = 2 * h  # pre-attention and pre-FFN RMSNorm
    if att.kind == "mla":
        m = att.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * heads * qk
        else:
            q = h * heads * qk
        kv = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
        # the low-rank down-projections (and their norms) produce the one latent every rank needs
        replicated = kv + (h * m.q_lora_rank + m.q_lora_rank if m.q_lora_rank else 0)
        kv += m.kv_lora_rank * heads * (m.qk_nope_head_dim + m.v_head_dim)
        o = heads * m.v_head_dim * h
        attn = q + kv + o
        kv_per_layer = m.kv_lora_rank + m.qk_rope_head_dim  # latent + decoupled rope key
    else:
        d = model.head_dim
        attn = h * heads * d + 2 * h * kvh * d + heads * d * h
        replicated = 2 * h * kvh * d + (2 * kvh * d if att.qkv_bias else 0)  # K and V: one KV head per rank at least
        if att.qkv_bias:
            attn += heads * d + 2 * kvh * d
        if att.o_bias:
            attn += h
        if att.qk_norm:
            attn += 2 * d
        if att.sinks:
            attn += heads
        if att.output_gate:
            attn += h * heads * d  # q_proj's second half: a sigmoid gate per head and channel
        kv_per_layer = 2 * kvh * d
    index_key_bytes = 0.0
    dsa = att.sparse_attention
    if dsa is not None:
        # the lightning indexer (DeepSeek-V3.2 Indexer, GLM-5's GlmMoeDsaIndexer): wq_b from the query
        # latent, one key head wk with a LayerNorm (weight and bias), a weight per head; engines keep it
        # whole on every TP rank (vLLM: "No tensor parallel, just replicated")
        H_I, d_I = dsa.index_heads, dsa.index_head_dim
        indexer = att.mla.q_lora_rank * H_I * d_I + h * d_I + 2 * d_I + h * H_I
        attn += indexer
        replicated += indexer
        # cached key: d_I elements in key_format plus one fp32 scale per scale_block (vLLM's indexer
        # cache: head_dim + head_dim // quant_block_size * 4 = 132 B for d_I = 128)
        index_key_bytes = d_I * format_bytes(dsa.key_format) + 4 * -(-d_I // dsa.scale_block)
    attention_params = attn + norms

    layers = model.layers if layers is None else layers
    sw, lin = att.sliding_window, att.linear_attention
    if sw is not None:
        pattern = sw.pattern
        sliding = sum(1 for i in range(layers) if pattern[i % len(pattern)] == "sliding")
        window = sw.window_tokens
    else:
        sliding, window = 0, 0
    linear, linear_params, state_bytes = 0, 0, 0
    if lin is not None:
        linear = sum(1 for i in range(layers) if lin.pattern[i % len(lin.pattern)] == "linear")
        linear_params = _linear_attention_params(h, lin) + norms
        state_bytes = _state_bytes(lin)
    sparse = layers - sliding - linear if dsa is not None else 0
    full = layers - sliding - linear - sparse

    moe = model.moe
    if moe is None:
        dense_layers, moe_layers = layers, 0
        expert = shared = router = experts = k = 0
    else:
        dense_layers = min(moe.dense_layers, layers)
        moe_layers = layers - dense_layers
        f = moe.expert_ffn_size
        expert = 3 * h * f + ((2 * f + h) if moe.expert_bias else 0)
        shared = moe.shared_experts * 3 * h * f
        router = moe.routed_experts * h + (moe.routed_experts if moe.router_bias else 0)
        router += h if moe.shared_experts and moe.shared_expert_gate else 0
        experts, k = moe.routed_experts, moe.experts_per_token
    dense_ffn = 3 * h * model.ffn_size if dense_layers else 0

    emb = model.vocab_size * h
    return Shape(
        layers=layers,
        dense_layers=dense_layers,
        moe_layers=moe_layers,
        attention_params=attention_params,
        kv_projection_params=replicated,
        dense_ffn_params=dense_ffn,
        expert_params=expert,
        routed_experts=experts,
        experts_per_token=k,
        shared_expert_params=shared,
        router_params=router,
        embedding_params=emb,
        lm_head_params=0 if model.tied_embeddings else emb,
        final_norm_params=h,
        kv_elements_per_token_full=kv_per_layer * (full + sparse),
        kv_elements_per_token_sliding=kv_per_layer * sliding,
        sliding_window_tokens=window,
        full_attention_layers=full,
        sliding_layers=sliding,
        linear_layers=linear,
        linear_attention_params=linear_params,
        state_bytes_per_layer=state_bytes,
        sparse_layers=sparse,
        index_key_bytes_per_token=index_key_bytes * sparse,
    )


def conv_channels(lin: Record) -> int:
    """Channels of a linear layer's short convolution: q and k (key heads) and v (value heads)."""
    return 2 * lin.key_heads * lin.key_head_dim + lin.value_heads * lin.value_head_dim


def _linear_attention_params(h: int, lin: Record) -> int:
    """One Gated DeltaNet layer (Qwen3.5's Qwen3_5MoeGatedDeltaNet): in_proj_qkv and in_proj_z,
    in_proj_b and in_proj_a (one per value head), the depthwise conv1d (no bias), dt_bias and A_log
    per value head, the gated RMSNorm over a value head, out_proj."""
    value = lin.value_heads * lin.value_head_dim
    conv = conv_channels(lin)
    return (h * (conv + value) + 2 * h * lin.value_heads + conv * lin.conv_kernel + 2 * lin.value_heads
            + lin.value_head_dim + value * h)


def _state_bytes(lin: Record) -> int:
    """One sequence's state in one linear layer, as vLLM allocates it
    (MambaStateShapeCalculator.gated_delta_net_state_shape): a key_head_dim x value_head_dim matrix per
    value head in state_format, and the last conv_kernel - 1 inputs of every convolution channel in
    conv_format."""
    recurrent = lin.value_heads * lin.key_head_dim * lin.value_head_dim * format_bytes(lin.state_format)
    window = conv_channels(lin) * (lin.conv_kernel - 1) * format_bytes(lin.conv_format)
    return int(recurrent + window)


def params_active(model: Record, shape: Shape | None = None) -> int:
    """Active parameters per token, counted as the publisher counts them (embedding or not)."""
    s = shape or shape_of(model)
    active = s.params_total - s.params_inactive
    return active if model.active_params_count_embedding else active - s.embedding_params


def summary(model: Record, kv_formats: tuple[str, ...]) -> dict:
    """The derived quantities ``models show`` prints (and its JSON contract)."""
    s = shape_of(model)
    out = {
        "id": model.id,
        "name": model.name,
        "params_total": s.params_total,
        "params_active": params_active(model, s),
        "weights_bytes": {f: s.params_total * format_bytes(f) for f in ("bf16", "fp8", "int8", "int4")},
        "kv_bytes_per_token": {f: _int_if_whole(s.kv_bytes_per_token(f)) for f in kv_formats},
        "layers": s.layers,
        "full_attention_layers": s.full_attention_layers,
    }
    if s.linear_layers:
        out["linear_attention_layers"] = s.linear_layers
        out["state_bytes_per_sequence"] = s.state_bytes_per_sequence
    if s.sparse_layers:
        out["sparse_attention_layers"] = s.sparse_layers
        out["topk_tokens"] = model.attention.sparse_attention.topk_tokens
        out["index_key_bytes_per_token"] = _int_if_whole(s.index_key_bytes_per_token)
    if s.sliding_layers:
        out["sliding_layers"] = s.sliding_layers
        out["sliding_window_tokens"] = s.sliding_window_tokens
        out["kv_bytes_sliding_max"] = {
            f: _int_if_whole(s.kv_elements_per_token_sliding * s.sliding_window_tokens * format_bytes(f))
            for f in kv_formats
        }
    return out


def _int_if_whole(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x
