"""The PD boundary: where a KV transformation runs and what it costs on TTFT.

A request's KV leaves the prefill pool in the producer's format and layout and must arrive in the
consumer's. A format difference is converted; a layout difference (page size, head/token order,
TP partitioning of KV heads) is redistributed; both in one pass when both differ. The pass runs
on the producer (prefill HBM; the smaller format then travels), next to the transport (a host
pass; a host bounce if the path is not host-staged anyway), or on the consumer (decode HBM, the
producer's format travels). Each placement's cost lands on TTFT; the cheapest is chosen.
"""

from __future__ import annotations

import sympy as sp

from . import S
from .transfer import exposed as _exposed


def placements() -> dict[str, sp.Expr]:
    """Cost on TTFT of each placement. A pass reads one representation of a rank's share and
    writes the other: on a prefill rank K_P·(1 + ρ), on a decode rank K_D·(1 + 1/ρ), with ρ the
    consumer/producer bytes-per-element ratio."""
    src, dst, ratio = S("kv_src_bytes"), S("kv_dst_bytes"), S("format_ratio")
    conv, redis = S("needs_convert"), S("needs_redistribute")
    work = sp.Max(conv, redis)  # one pass does both
    at_producer = src * (1 + ratio)
    at_consumer = dst * (1 + 1 / ratio)
    producer = work * at_producer / S("prod_bytes_per_s") + _exposed(
        conv * S("transfer_dst_s") + (1 - conv) * S("transfer_src_s"))
    consumer = _exposed(S("transfer_src_s")) + work * at_consumer / S("cons_bytes_per_s")
    transport = (_exposed(S("transfer_src_s")) + work * at_producer / S("host_bytes_per_s")
                 + work * S("host_bounce") * at_producer / S("host_bytes_per_s"))
    return {"producer_s": producer, "transport_s": transport, "consumer_s": consumer}


def expressions() -> dict[str, sp.Expr]:
    p = placements()
    return {**p, "handoff_s": sp.Min(*p.values())}
