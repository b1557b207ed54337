"""KV handoff of one request from a prefill instance to a decode instance over a KV path."""

from __future__ import annotations

import sympy as sp

from . import S
from .memory import kv_sequence_bytes


def transfer_bytes():
    """Bytes each sender rank moves: the request's KV in the wire format, its TP shard (a sparse
    layer's indexer keys and a linear layer's state travel in their own formats)."""
    return kv_sequence_bytes(S("transfer_tokens"), S("wire_bytes"))


def receiver_bytes():
    """Bytes each receiving rank takes in: the same KV over the consumer's shards (a decode
    instance of fewer KV shards than the prefill's receives more per NIC)."""
    return kv_sequence_bytes(S("transfer_tokens"), S("wire_bytes"), S("tp_consumer"))


# Tensors of a linear layer's state, each sent as one message: the recurrent matrices and the
# convolution window (vLLM's Gated DeltaNet state: conv_state, ssm_state).
STATE_TENSORS = 2


def messages():
    """Per-layer, per-tensor messages of page_tokens tokens (bulk per layer: page = all tokens);
    a sliding-window layer holds, and sends, at most its window; a sparse layer also sends its
    indexer keys; a linear layer sends its state's tensors whole."""
    n, P = S("transfer_tokens"), S("page_tokens")
    sliding = S("sliding_layers") * sp.ceiling(sp.Min(n, S("window_tokens")) / P)
    sparse = S("sparse_layers") * (S("kv_tensors") + 1) * sp.ceiling(n / P)
    return S("kv_tensors") * (S("full_layers") * sp.ceiling(n / P) + sliding) + sparse + STATE_TENSORS * S(
        "linear_layers")


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
