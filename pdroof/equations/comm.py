"""Collectives over the scale-up link: tensor-parallel all-reduce, expert-parallel all-to-all."""

from __future__ import annotations

import sympy as sp

from . import S


def _active(degree):
    """1 when the degree is above 1, else 0 (no collective at all on one device)."""
    return sp.Min(1, degree - 1)


def allreduce_time(bytes_):
    """Ring all-reduce of ``bytes_`` across tp devices: 2(t−1)/t · bytes / (N·η_N) + α_N."""
    t = S("tp")
    bw = S("link_bytes_per_s") * S("eff_link")
    return _active(t) * (2 * (t - 1) / t * bytes_ / bw + S("link_latency_s"))


def alltoall_time(bytes_):
    """Dispatch plus combine of ``bytes_`` routed activations across ep devices."""
    e = S("ep")
    bw = S("link_bytes_per_s") * S("eff_link")
    return _active(e) * (2 * (e - 1) / e * bytes_ / bw + 2 * S("link_latency_s"))
