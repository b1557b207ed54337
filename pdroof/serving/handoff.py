"""Moving one request's KV from a prefill instance to a decode instance: which paths are
physically possible for a pair of accelerators, and what the transfer costs."""

from __future__ import annotations

import math

from ..cost.inputs import model_inputs
from ..cost.numeric import evaluate
from ..cost.parallelism import scale_up_domain
from ..spec.errors import PdroofError
from ..spec.schema import Record
from ..spec.units import check_format, format_bytes


def layerwise_overlap(prefill_s, layers):
    """Prefill time a layer-wise transfer hides behind: layer i's KV moves while layers > i
    compute, so all but the last layer's share overlaps."""
    return prefill_s * (layers - 1) / layers


def path_reason(path: Record, src: Record, dst: Record) -> str | None:
    """``None`` if ``path`` can carry KV from ``src`` to ``dst``, else why not."""
    if path.kind in ("nvlink", "scale_up"):
        for acc in (src, dst):
            kind = acc.scale_up.kind if acc.scale_up else None
            if kind != path.scale_up_kind:
                return f"{path.id} needs {path.scale_up_kind} on both sides; {acc.id} has {kind or 'none'}"
        if src.id != dst.id:
            return f"{path.id} joins one scale-up domain, which holds one kind of accelerator ({src.id} vs {dst.id})"
    if not path.cross_node and src.id != dst.id and not (src.form_factor == dst.form_factor == "pcie"):
        return (f"{path.id} stays inside one node, and a node holds one kind of accelerator module "
                f"({src.id}, {dst.id}) unless both are PCIe cards")
    if src.vendor != dst.vendor and not path.cross_vendor:
        return f"{path.id} does not cross vendors ({src.vendor} to {dst.vendor})"
    if path.requires_gpudirect:
        for acc in (src, dst):
            if not acc.gpudirect_rdma:
                return f"{path.id} needs GPU-direct RDMA, which {acc.id} lacks"
    return None


NODE_DEVICES = 8  # devices of a node where the spec gives no scale-up domain (PCIe cards): assumed


def path_reach(path: Record, acc: Record) -> float:
    """Devices a KV path can join, both pools together: any number across nodes; a scale-up path
    its domain; another path inside one node (host-staged PCIe, local NVMe) one node."""
    if path.cross_node:
        return math.inf
    domain = scale_up_domain(acc)
    return domain if path.kind in ("nvlink", "scale_up") or domain > 1 else NODE_DEVICES


def path_bandwidth(path: Record, *ends: Record) -> float:
    """Nominal bandwidth of ``path`` between ``ends``: a scale-up path runs no faster than either
    device's own scale-up port (an H800's NVLink is narrower than an H100's)."""
    bw = path.bandwidth_bytes_per_s
    if path.kind in ("nvlink", "scale_up"):
        for acc in ends:
            if acc.scale_up and acc.scale_up.bandwidth_bytes_per_s:
                bw = min(bw, acc.scale_up.bandwidth_bytes_per_s)
    return bw


def transfer(model: Record, path: Record, kv: str, tokens: int, *, page_tokens: int | None = None,
             tp: int = 1, overlap_s: float | None = None, ends: tuple[Record, ...] = (),
             dst_tp: int | None = None) -> dict:
    """Bytes, messages and time of moving ``tokens`` tokens of KV in format ``kv`` over ``path``.

    ``page_tokens`` None moves each layer's tensors in bulk; else one message per page per layer
    per tensor. ``overlap_s`` is the prefill time the transfer can hide behind (None: unknown,
    and whether it hides is not judged). ``dst_tp``: devices of the receiving instance (default
    ``tp``): the slower end's share sets the time."""
    check_format(kv, "--kv")
    if tokens < 1:
        raise PdroofError(f"--tokens must be at least 1, not {tokens}")
    if page_tokens is not None and page_tokens < 1:
        raise PdroofError(f"--page-tokens must be at least 1, not {page_tokens}")
    for flag, v in (("--tp", tp), ("--dst-tp", dst_tp)):
        if v is not None and v < 1:
            raise PdroofError(f"{flag} must be at least 1, not {v}")
    m = model_inputs(model)
    bandwidth = path_bandwidth(path, *ends)
    out = transfer_columns(m, path, bandwidth, format_bytes(kv), tokens, page_tokens or tokens, tp, dst_tp or tp,
                           overlap_s or 0.0)
    secs, exposed = float(out["seconds"]), float(out["exposed_seconds"])
    return {
        "model": model.id, "path": path.id, "kv": kv, "tokens": tokens,
        "granularity": "per-layer bulk" if page_tokens is None else f"pages of {page_tokens} tokens",
        "bytes": float(out["bytes"]), "receiver_bytes": float(out["receiver_bytes"]),
        "messages": int(out["messages"]), "seconds": secs,
        "latency_seconds": float(out["messages"]) * path.latency_s,
        "path_bytes_per_s": bandwidth,
        "overlap_seconds": overlap_s, "exposed_seconds": exposed if overlap_s is not None else None,
        # hidden: nothing exposed beyond the last layer's share, which no overlap can hide
        "hidden": exposed <= secs / m["layers"] * (1 + 1e-9) if overlap_s is not None else None,
    }


def transfer_columns(model_cols: dict, path: Record, bandwidth, wire_bytes, tokens, page_tokens, tp, dst_tp,
                     overlap_s) -> dict:
    """The ``transfer`` equations over columns (scalars or arrays broadcasting together): ``tokens``
    of KV in elements of ``wire_bytes`` over ``path`` at ``bandwidth``, from ``tp`` to ``dst_tp``
    shards, hiding behind ``overlap_s``."""
    return evaluate("transfer", {**model_cols, "tp": tp, "tp_consumer": dst_tp, "transfer_tokens": tokens,
                                 "page_tokens": page_tokens, "wire_bytes": wire_bytes,
                                 "path_latency_s": path.latency_s, "path_bytes_per_s": bandwidth,
                                 "eff_path": path.efficiency, "overlap_s": overlap_s})
