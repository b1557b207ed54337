"""Single kernels timed in isolation, as micro-benchmarks run them: the same roofline terms as
the forward pass, plus the fixed cost τ₀ of one individually timed call. Calibration fits the
achieved fractions of these to measurements; τ₀ is a property of the harness and is not carried
into forward passes (there, kernel boundaries cost ``layer_latency_s`` per layer)."""

from __future__ import annotations

import sympy as sp

from . import S
from .roofline import compute_time, gemm_efficiency, memory_time, roofline


def expressions() -> dict[str, sp.Expr]:
    m, mp, n, k = S("gemm_m"), S("gemm_m_padded"), S("gemm_n"), S("gemm_k")
    ba, bw, tau = S("act_bytes"), S("weight_bytes"), S("harness_s")
    gemm = roofline(compute_time(2 * mp * n * k, S("peak_flops_per_s"),
                                 gemm_efficiency(mp, S("eff_compute"), S("gemm_half_rows"))),
                    memory_time((m * k + m * n) * ba + n * k * bw, S("mem_bytes_per_s"), S("eff_weights")))

    Sn, B, L, H = S("new_tokens"), S("batch"), S("context_tokens"), S("heads")
    pairs = Sn * (Sn + 1) / 2
    eff_p = S("eff_attn_prefill") * Sn / (Sn + S("attn_half_tokens"))
    prefill = compute_time(2 * S("attn_dim_prefill") * H * pairs, S("attn_peak_flops_per_s"), eff_p)
    kv = B * L * S("kv_elems") * S("kv_bytes")
    decode = roofline(compute_time(2 * S("attn_dim_decode") * H * B * L, S("attn_peak_flops_per_s"),
                                   S("eff_attn_prefill")),
                      memory_time(kv, S("mem_bytes_per_s"), S("eff_attn_decode")))
    copy = memory_time(2 * S("copy_bytes"), S("mem_bytes_per_s"), S("eff_memory"))
    host = S("path_latency_s") + S("copy_bytes") / S("path_bytes_per_s")
    return {
        "gemm_seconds": gemm + tau,
        "attn_prefill_seconds": prefill + tau,
        "attn_decode_seconds": decode + tau,
        "copy_seconds": copy + tau,
        "host_copy_seconds": host,
    }
