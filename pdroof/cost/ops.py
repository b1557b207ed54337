"""The operations of a forward pass, and the kind of resource each one uses (plain data, so
the numeric path can name them without importing sympy)."""

OP_KIND = {
    "attn_proj": "gemm",
    "attention": "attention",
    "ffn": "gemm",
    "experts": "gemm",
    "elementwise": "memory",
    "tp_comm": "link",
    "ep_comm": "link",
    "lm_head": "gemm",
    "layer_latency": "latency",
    "step_latency": "latency",
}
OPS = tuple(OP_KIND)
