"""Collectives over the scale-up link: tensor-parallel all-reduce, expert-parallel all-to-all."""

from __future__ import annotations

import sympy as sp

from . import S


def _active(degree):
    """1 when the degree is above 1, else 0 (no collective at all on one device)."""
    return sp.Min(1, degree - 1)


def allreduce_time(bytes_):
    """Ring all-reduce of ``bytes_`` across tp devices: 2(t−1) dependent steps (reduce-scatter,
    then all-gather), each one hop α_N plus a 1/t share of the bytes:
    2(t−1)·(α_N + bytes / (t·N·η_N))."""
    t = S("tp")
    bw = S("link_bytes_per_s") * S("eff_link")
    return _active(t) * 2 * (t - 1) * (S("link_latency_s") + bytes_ / (t * bw))


def alltoall_time(bytes_):
    """Dispatch plus combine of ``bytes_`` routed activations across ep devices: each phase sends
    (e−1)/e of them, in e−1 pairwise exchange steps of one hop each."""
    e = S("ep")
    bw = S("ep_link_bytes_per_s") * S("eff_link")
    return _active(e) * 2 * (e - 1) * (S("link_latency_s") + bytes_ / (e * bw))
