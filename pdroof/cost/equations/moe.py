"""Mixture of experts: how many distinct experts a step touches."""

from __future__ import annotations

from . import S


def experts_touched(tokens):
    """Expected distinct experts when ``tokens`` tokens each pick k of E experts:
    E · (1 − (1 − k/E)^tokens). It sets the expert weight bytes a step must read."""
    E, k = S("experts"), S("experts_per_token")
    return E * (1 - (1 - k / E) ** tokens)
