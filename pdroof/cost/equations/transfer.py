"""KV handoff of one request from a prefill instance to a decode instance over a KV path."""

from __future__ import annotations

import sympy as sp

from . import S
from .forward import kv_shards
from .memory import kv_sequence_bytes


def transfer_bytes():
    """Bytes each sender rank moves: the request's KV in the wire format, its TP shard."""
    return kv_sequence_bytes(S("transfer_tokens"), S("wire_bytes"))


def receiver_bytes():
    """Bytes each receiving rank takes in: the same KV over the consumer's shards (a decode
    instance of fewer KV shards than the prefill's receives more per NIC)."""
    return transfer_bytes() * kv_shards() / sp.Min(S("tp_consumer"), S("kv_shardable"))


def messages():
    """Per-layer, per-tensor messages of page_tokens tokens (bulk per layer: page = all tokens);
    a sliding-window layer holds, and sends, at most its window."""
    n, P = S("transfer_tokens"), S("page_tokens")
    sliding = S("sliding_layers") * sp.ceiling(sp.Min(n, S("window_tokens")) / P)
    return S("kv_tensors") * (S("full_layers") * sp.ceiling(n / P) + sliding)


def transfer_seconds():
    """time = messages · α + bytes / (β · η), the bytes of the slower end: each sender rank's
    shard or each receiver rank's, whichever is larger."""
    wire = sp.Max(transfer_bytes(), receiver_bytes())
    return messages() * S("path_latency_s") + wire / (S("path_bytes_per_s") * S("eff_path"))


def exposed(transfer_s):
    """Part of a transfer on the TTFT path when it streams layer by layer behind t_O of prefill:
    what the overlap does not hide, and never less than the last layer's share, which exists only
    once prefill ends (t_O = 0: the whole transfer)."""
    return sp.Max(transfer_s / S("layers"), transfer_s - S("overlap_s"))


def expressions() -> dict[str, sp.Expr]:
    t = transfer_seconds()
    return {
        "bytes": transfer_bytes(),
        "receiver_bytes": receiver_bytes(),
        "messages": messages(),
        "seconds": t,
        "exposed_seconds": exposed(t),
    }
