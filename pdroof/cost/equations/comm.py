"""Collectives: tensor-parallel all-reduce, the experts' all-to-all, and DP attention's gather and
scatter around the experts."""

from __future__ import annotations

import sympy as sp

from ..symbols import GATHER_ALLREDUCE, TP_ALLREDUCE
from . import S


def _active(degree):
    """1 when the degree is above 1, else 0 (no collective at all on one device)."""
    return sp.Min(1, degree - 1)


def _allreduce(message_bytes, parties, link_bytes_per_s, factors=TP_ALLREDUCE):
    """All-reduce of ``message_bytes`` among ``parties`` devices over links of ``link_bytes_per_s``:
    the bytes of a ring (reduce-scatter, then all-gather: 2(p−1) steps of a 1/p share each) behind
    a latency at least the ring's 2(p−1) hops α_N. Up to the switch size M_AR the stack's own
    kernel, whose per-call latency α_AR is a synchronisation (one-shot at small messages), at η_AR
    of the link; above it the stack's second algorithm (NCCL's ring or NVLS) with its own α_AR,L
    and η_N,L: m ≤ M_AR: max(α_AR, 2(p−1)·α_N) + 2(p−1)·m / (p·N·η_AR), else
    max(α_AR,L, 2(p−1)·α_N) + 2(p−1)·m / (p·N·η_N,L). ``factors`` names those five symbols: the TP
    group's (TP_ALLREDUCE) or DP attention's gather's (GATHER_ALLREDUCE), each measured at its own
    party count."""
    p, m = parties, message_bytes
    alpha, eta, switch, alpha_large, eta_large = (S(name) for name in factors)
    hops = 2 * (p - 1) * S("link_latency_s")
    ring = 2 * (p - 1) * m / (p * link_bytes_per_s)
    own = sp.Max(alpha, hops) + ring / eta
    large = sp.Max(alpha_large, hops) + ring / eta_large
    return _active(p) * sp.Piecewise((own, m <= switch), (large, True))


def allreduce_time(bytes_):
    """All-reduce of ``bytes_`` across the tp devices of a replica."""
    return _allreduce(bytes_, S("tp"), S("link_bytes_per_s"))


def alltoall_time(dispatch_bytes, combine_bytes):
    """Dispatch of ``dispatch_bytes`` routed activations per device across the e_X expert-parallel
    groups, then the combine of ``combine_bytes``: each phase sends (e_X−1)/e_X of its bytes,
    behind the larger of the stack's per-call latency α_A and e_X−1 pairwise exchange hops:
    Σ_phases max(α_A, (e_X−1)·α_N) + (e_X−1)·bytes/(e_X·N_E·η_N)."""
    e = S("moe_ep")
    bw = S("ep_link_bytes_per_s") * S("eff_link")
    latency = sp.Max(S("alltoall_latency_s"), (e - 1) * S("link_latency_s"))
    return _active(e) * (2 * latency + (e - 1) * (dispatch_bytes + combine_bytes) / (e * bw))


def alltoall_bytes(dispatch_bytes, combine_bytes):
    """What the experts' all-to-all carries per device: its dispatch and combine (none on one group)."""
    return _active(S("moe_ep")) * (dispatch_bytes + combine_bytes)


def _gathered():
    """g = t_X/t: the replicas an expert's t_X-way split spans (1 where it stays within one)."""
    return sp.Max(1, S("moe_tp") / S("tp"))


def gather_scatter_time(bytes_, exchanges=1):
    """DP attention around the experts: where an expert's t_X-way split spans g replicas, those
    replicas all-gather their tokens before the experts and reduce-scatter the outputs after
    (``bytes_``: one replica's activations); each phase moves (g−1)/g of the gathered g·bytes over
    g−1 hops: the traffic and time of one all-reduce of g·bytes among g parties. ``exchanges`` such
    exchanges (2 where the stack all-reduces the gathered buffer before the experts and again after,
    as SGLang does in a pass that carries prompt tokens; between 1 and 2 on average over passes), at
    the gather's own all-reduce factors (GATHER_ALLREDUCE)."""
    g = _gathered()
    return exchanges * _allreduce(g * bytes_, g, S("dp_link_bytes_per_s"), GATHER_ALLREDUCE)


def gather_scatter_bytes(bytes_, exchanges=1):
    """What DP attention's gather and scatter carry per device: a replica's activations each way,
    ``exchanges`` times (none where the experts' split stays within a replica)."""
    return exchanges * _active(_gathered()) * 2 * bytes_
