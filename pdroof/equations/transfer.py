"""KV handoff of one request from a prefill instance to a decode instance over a KV path."""

from __future__ import annotations

import sympy as sp

from . import S
from .memory import kv_sequence_bytes


def transfer_bytes():
    """Bytes each sender rank moves: the request's KV in the wire format, its TP shard."""
    return kv_sequence_bytes(S("transfer_tokens"), S("wire_bytes"))


def messages():
    """Per-layer, per-tensor messages of page_tokens tokens (bulk per layer: page = all tokens)."""
    return S("layers") * S("kv_tensors") * sp.ceiling(S("transfer_tokens") / S("page_tokens"))


def transfer_seconds():
    """time = messages · α + bytes / (β · η)."""
    return messages() * S("path_latency_s") + transfer_bytes() / (S("path_bytes_per_s") * S("eff_path"))


def expressions() -> dict[str, sp.Expr]:
    t = transfer_seconds()
    return {
        "bytes": transfer_bytes(),
        "messages": messages(),
        "seconds": t,
        "exposed_seconds": sp.Max(0, t - S("overlap_s")),
    }
