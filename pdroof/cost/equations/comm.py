"""Collectives over the scale-up link: tensor-parallel all-reduce, expert-parallel all-to-all."""

from __future__ import annotations

import sympy as sp

from . import S


def _active(degree):
    """1 when the degree is above 1, else 0 (no collective at all on one device)."""
    return sp.Min(1, degree - 1)


def allreduce_time(bytes_):
    """All-reduce of ``bytes_`` across tp devices: the bytes of a ring (reduce-scatter, then
    all-gather: 2(t−1) steps of a 1/t share each) behind a latency that is the larger of the
    ring's 2(t−1) hops α_N and the stack's per-call latency α_AR (the one-shot all-reduce engines
    use for small messages, whose cost is a synchronisation, not hops):
    max(α_AR, 2(t−1)·α_N) + 2(t−1)·bytes / (t·N·η_N)."""
    t = S("tp")
    bw = S("link_bytes_per_s") * S("eff_link")
    latency = sp.Max(S("allreduce_latency_s"), 2 * (t - 1) * S("link_latency_s"))
    return _active(t) * (latency + 2 * (t - 1) * bytes_ / (t * bw))


def alltoall_time(bytes_):
    """Dispatch plus combine of ``bytes_`` routed activations across ep devices: each phase sends
    (e−1)/e of them, in e−1 pairwise exchange steps of one hop each."""
    e = S("ep")
    bw = S("ep_link_bytes_per_s") * S("eff_link")
    return _active(e) * 2 * (e - 1) * (S("link_latency_s") + bytes_ / (e * bw))
