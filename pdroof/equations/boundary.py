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


def _exposed(transfer_s):
    return sp.Max(0, transfer_s - S("overlap_s"))


def placements() -> dict[str, sp.Expr]:
    src, dst = S("kv_src_bytes"), S("kv_dst_bytes")
    conv, redis = S("needs_convert"), S("needs_redistribute")
    work = sp.Max(conv, redis)  # one pass does both
    one_pass = src + dst  # read one representation, write the other
    producer = work * one_pass / S("prod_bytes_per_s") + _exposed(
        conv * S("transfer_dst_s") + (1 - conv) * S("transfer_src_s"))
    consumer = _exposed(S("transfer_src_s")) + work * one_pass / S("cons_bytes_per_s")
    transport = (_exposed(S("transfer_src_s")) + work * one_pass / S("host_bytes_per_s")
                 + work * S("host_bounce") * one_pass / S("host_bytes_per_s"))
    return {"producer_s": producer, "transport_s": transport, "consumer_s": consumer}


def expressions() -> dict[str, sp.Expr]:
    p = placements()
    return {**p, "handoff_s": sp.Min(*p.values())}
