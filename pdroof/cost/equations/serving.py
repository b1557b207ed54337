"""Serving capacity of the two pools, their sizing, and what a request costs.

Prefill instances serve requests one at a time (compute-bound: batching prompts adds little);
with Poisson arrivals the M/D/1 queue (``pdroof.cost.queueing``: its wait's mean and percentiles) gives
the highest utilisation that keeps the target's statistic of TTFT within it.
Decode instances run a batch B_D whose step time meets the TPOT target; each request occupies a
slot for O steps. Under DP attention the unit of these capacities is one attention replica, d of
them to an instance. Pools are sized so that N_P·C_P ≈ N_D·C_D (the study's sizing rule), and the
KV link of each prefill instance is a third capacity (and the ingress of each decode instance a
fourth). Whole instance counts are an integer search over these capacities (``serving.sizing``).
"""

from __future__ import annotations

import sympy as sp

from . import S

SLACK_FLOOR_S = 1e-12  # a TPOT slack just above zero: no tier sequence, and never 0 × an infinite bandwidth
TINY_BYTES = 1e-9  # a reservation of next to nothing: no bound from reservations alone


def wait_budget():
    """The wait a request may spend queued, in units of its service time: (T_FT − t_P − t_H)/t_P
    (negative: the target is missed even unloaded)."""
    return (S("ttft_target_s") - S("prefill_s") - S("handoff_s")) / S("prefill_s")


def prefill_capacity():
    """Requests/s one prefill instance sustains with the TTFT statistic ≤ target: C_P = ρ*/t_P,
    ρ* the highest M/D/1 utilisation whose wait statistic fits the budget (mean: ρ* = 2b/(1+2b))."""
    return S("prefill_utilisation") / S("prefill_s")


def ttft_at_load():
    """TTFT (the statistic whose wait factor is given) of a queue of service t_P: service, the
    wait W(ρ)·t_P, then the handoff."""
    return S("prefill_s") + S("handoff_s") + S("wait_factor") * S("prefill_s")


def hold_capacity():
    """Requests/s the prefill instance's memory allows: each request's KV stays pinned there from
    the start of its prefill until it is transferred and admitted (Little's law over its slots)."""
    return S("prefill_slots") / (S("prefill_s") + S("handoff_s") + S("admission_wait_s"))


def turnover_s():
    """Time per output token at which a decode slot takes its next sequence: the step, or the slower
    pace ``pace_s`` at which the instance admits arrivals where HBM cannot hold the reservations of
    faster ones (``memory_pace``)."""
    return sp.Max(S("step_s"), S("pace_s"))


def reservation_per_sequence():
    """Destination bytes reserved on a decode device for transfers in flight, per sequence its batch
    runs: each admitted sequence is replaced every O turnovers (arrivals B/(O·max(t_D, p))), and each
    arrival's destination is held for its whole transfer window (Little's law). The destination is
    allocated before the first byte moves (engines preallocate it): from the first streamed layer
    (the overlapped prefill t_O) through the exposed handoff t_H."""
    return (S("overlap_s") + S("handoff_s")) * S("kv_dst_bytes") / (S("output_tokens") * turnover_s())


def tier_sequences():
    """Sequences a slower KV tier may hold for a decode device: as many as it has room for, and as its
    link can fetch every step within the TPOT target's slack over the step, (T_PT/k − t_D)·BW_T, k
    the passes per token at the stage's batch B_D (at least the admitted batch's: within the target
    after ownership too; every sequence beyond HBM is fetched each step; the slack is floored just
    above zero so that HBM, an infinitely fast tier of no size, holds none)."""
    slack = S("tpot_target_s") / passes_per_token(S("decode_batch")) - S("step_s")  # per pass, at B_D ≥ admitted
    fetchable = sp.Max(SLACK_FLOOR_S, slack) * S("tier_bytes_per_s")
    return sp.floor(sp.Min(S("tier_capacity_bytes"), fetchable) / S("kv_request_bytes"))


def memory_pace():
    """The fastest pace at which memory holds one admitted sequence beside the reservations its
    arrivals bring: beside it (or, where the slower tier may hold it, in all of C_K − R) HBM has room
    for n = ⌊room/K_D⌋ whole destinations, each held for its transfer window, so arrivals come at
    n/(t_O + t_H) and a slot's turnover per output token is p = (t_O + t_H)/(O·n). Where even one
    sequence stepping at its own step brings more reservations than that, the instance admits at
    this pace, memory and not the step setting its rate; one sequence is then its best batch, since
    each more would leave less room for reservations. Unbounded (none admitted) where the room holds
    no whole destination. (The engine could still alternate, each destination where the finished
    sequence was, at one request per window and O steps; that is not modelled.)"""
    in_tier = sp.Min(tier_sequences(), 1)  # the tier may hold the one sequence instead of HBM
    room = S("kv_capacity_bytes") - S("retained_bytes") - (1 - in_tier) * S("kv_request_bytes")
    whole = sp.floor(room / S("kv_dst_bytes"))
    pace = (S("overlap_s") + S("handoff_s")) / (S("output_tokens") * whole)
    return sp.Piecewise((pace, sp.And(room > 0, room >= S("kv_dst_bytes"))), (sp.oo, True))


def admission_batch():
    """Decode batch after ownership, at most the batch TPOT allows: HBM holds the retained cache, the
    reservations every admitted sequence's arrivals bring (destinations are HBM) and the sequences it
    has room for beside them; the tier holds the rest, at most ``tier_sequences``. So B·r ≤ C_K − R
    and B·(K_R + r) ≤ C_K − R + n_T·K_R (a smaller batch brings fewer arrivals, so fewer reservations).
    Reservations are averaged over time, but an arrival reserves its destination whole: none is
    admitted where HBM beside the retained cache cannot hold one (K_D > C_K − R; a sequence in HBM
    makes room for its successor's destination as it finishes, a destination no larger)."""
    hbm_free = S("kv_capacity_bytes") - S("retained_bytes")
    r = reservation_per_sequence()
    both = sp.floor((hbm_free + tier_sequences() * S("kv_request_bytes")) / (S("kv_request_bytes") + r))
    admitted = sp.Max(0, sp.Min(S("decode_batch"), both, sp.floor(hbm_free / sp.Max(r, TINY_BYTES))))
    return sp.Piecewise((admitted, hbm_free >= S("kv_dst_bytes")), (0, True))


def hbm_sequences():
    """Admitted sequences whose KV stays in HBM: those that fit beside the retained cache and the
    reservations, at most what the decode stage counted there (its HBM batch) and what was admitted."""
    room = S("kv_capacity_bytes") - S("retained_bytes") - admission_batch() * reservation_per_sequence()
    return sp.Max(0, sp.Min(S("hbm_batch"), admission_batch(), sp.floor(room / S("kv_request_bytes"))))


def reservations():
    """Destinations reserved for transfers in flight at the admitted batch."""
    return admission_batch() * reservation_per_sequence()


def link_capacity():
    """Requests/s one prefill instance's KV link can move (transfers pipeline back to back)."""
    return 1 / S("link_request_s")


def ingress_capacity():
    """Requests/s one decode instance's network ingress can take in: every prefill instance
    that feeds it shares its receiving NICs."""
    return 1 / S("ingress_request_s")


def tier_kv_bytes():
    """KV the admitted batch keeps in the slower tier: every sequence HBM does not hold."""
    return sp.Max(0, admission_batch() - hbm_sequences()) * S("kv_request_bytes")


def tiered_step():
    """Decode step with part of the batch's KV beyond HBM in a slower tier: those sequences'
    KV is fetched over the tier every step."""
    return S("step_s") + tier_kv_bytes() / S("tier_bytes_per_s")


def passes_per_token(batch):
    """Passes a decode replica of ``batch`` sequences makes per output token of theirs: one, where the
    engine takes arrived requests into its next pass; where it takes them in a pass of their own that
    the replica's running sequences sit out (``own_pass_admission``: SGLang's decode side runs the
    requests whose KV has arrived as a "prebuilt" batch, and under DP attention, d_D > 1, the
    replica joins the others' collectives with an empty pass meanwhile), more. Each sequence is
    replaced every O passes of its own, so x = B/O requests arrive per output token; a pass takes
    in every request waiting, and arrivals from many prefill replicas come as a Poisson stream, so
    a pass finds one or more with probability p = 1 − e^(−x/k), k = 1/(1 − p) passes per token:
    k·ln k = x, k = e^W(x) (Lambert's W; 1 + x where arrivals are few, x/ln x where they crowd)."""
    under_dp = sp.Min(1, sp.Max(0, S("dp_decode") - 1))  # 0 at d_D = 1, 1 from 2 (whole numbers)
    x = S("own_pass_admission") * under_dp * batch / S("output_tokens")
    return sp.exp(sp.LambertW(x))


def admission_passes():
    """Passes per output token of the admitted batch. (Reservations are counted at the step alone,
    ``turnover_s``: arrivals at the step's pace, more than come, a bound from above.)"""
    return passes_per_token(admission_batch())


def decode_tpot():
    """Time per output token of the decode replica: its step (with the tier's fetches) times the
    passes it makes per token."""
    return tiered_step() * admission_passes()


def expressions() -> dict[str, sp.Expr]:
    c_p = sp.Min(prefill_capacity(), link_capacity(), hold_capacity())
    by_batch = admission_batch() / (S("output_tokens") * sp.Max(decode_tpot(), S("pace_s")))
    c_d = sp.Min(by_batch, ingress_capacity())
    per_rate = S("tp_prefill") / c_p + S("tp_decode") / c_d  # devices per request/s
    out_tokens = S("output_tokens")
    return {
        "prefill_capacity": prefill_capacity(),
        "link_capacity": link_capacity(),
        "ingress_capacity": ingress_capacity(),
        "hold_capacity": hold_capacity(),
        "admission_batch": admission_batch(),
        "reservation_bytes": reservations(),
        "kv_headroom_bytes": S("kv_capacity_bytes") - S("retained_bytes") - reservations()
        - hbm_sequences() * S("kv_request_bytes"),
        "hbm_sequences": hbm_sequences(),
        "tier_kv_bytes": tier_kv_bytes(),
        "tier_sequences": tier_sequences(),
        "memory_pace_s": memory_pace(),
        "prefill_rate": c_p,
        "decode_tpot_s": decode_tpot(),
        "decode_batch_capacity": by_batch,
        "decode_capacity": c_d,
        "devices_per_rate": per_rate,
        "prefill_device_share": (S("tp_prefill") / c_p) / per_rate,
        "tokens_per_s_per_device": out_tokens / per_rate,
        "usd_per_million_tokens": (S("tp_prefill") * S("price_prefill") / c_p
                                   + S("tp_decode") * S("price_decode") / c_d) / (3600 * out_tokens) * 10**6,
        "joules_per_token": (S("tp_prefill") * S("power_prefill") / c_p
                             + S("tp_decode") * S("power_decode") / c_d) / out_tokens,
    }


def deployment():
    """A built deployment's output per device, cost and energy per token: whole pools of D_P and D_D
    devices serving R requests/s of O tokens each (the fractional pools' figures above are its limit
    at scale)."""
    devices = S("devices_prefill") + S("devices_decode")
    tokens_per_s = S("requests_per_s") * S("output_tokens")
    return {
        "tokens_per_s_per_device": tokens_per_s / devices,
        "usd_per_million_tokens": (S("devices_prefill") * S("price_prefill") + S("devices_decode") * S("price_decode"))
        / (3600 * tokens_per_s) * 10**6,
        "joules_per_token": (S("devices_prefill") * S("power_prefill") + S("devices_decode") * S("power_decode"))
        / tokens_per_s,
    }
