"""Mixture of experts: how many distinct experts a step touches, and how unevenly routed tokens
load the expert-parallel groups."""

from __future__ import annotations

import sympy as sp

from . import S


def experts_touched(tokens):
    """Expected distinct experts when ``tokens`` tokens each pick k of E experts:
    E · (1 − (1 − k/E)^tokens). It sets the expert weight bytes a step must read."""
    E, k = S("experts"), S("experts_per_token")
    return E * (1 - (1 - k / E) ** tokens)


def ep_imbalance():
    """Routed tokens of the busiest of e_X expert-parallel groups over the mean: ι(e) =
    1 + (ι₃₂ − 1)·√(ln e / ln 32). The busiest of e groups whose loads scatter about the mean lies
    √(2 ln e) spreads above it (the maximum of e near-normal loads), so the excess grows with
    √(ln e) from the measured excess at 32 groups; one group is the mean."""
    e = S("moe_ep")
    return 1 + (S("ep_imbalance_32") - 1) * sp.sqrt(sp.log(e) / sp.log(32))
