"""The roofline bound of one operation: whichever of compute and memory traffic takes longer."""

from __future__ import annotations

import sympy as sp


def compute_time(flops, peak_flops_per_s, efficiency):
    return flops / (peak_flops_per_s * efficiency)


def memory_time(bytes_, bytes_per_s, efficiency):
    return bytes_ / (bytes_per_s * efficiency)


def roofline(compute_s, memory_s):
    """time = Max(flops / (peak · η_compute), bytes / (bandwidth · η_memory))."""
    return sp.Max(compute_s, memory_s)


def gemm_efficiency(rows, eff, half_rows):
    """Compute efficiency of a GEMM of ``rows`` rows: eff · rows / (rows + M½). Small GEMMs fill
    fewer tiles and waves, so near the ridge they fall short of both roofline bounds."""
    return eff * rows / (rows + half_rows)
