"""Fit a runtime profile's efficiency factors to micro-benchmark measurements.

Each section is fitted to the same kernel expressions the cost model uses
(``pdroof.cost.equations.kernels``): GEMMs per format (compute and weight-streaming efficiency, plus
the harness's fixed per-call cost τ₀), prefill attention (efficiency and its half-efficiency
prompt length), decode attention (KV-read efficiency), device copy (elementwise bandwidth) and the
host-link message sweep (per-copy latency α and bandwidth β). Fits minimise the squared log error
over a grid refined twice around the best point, with numpy only.

End-to-end points, when present, are predicted with the fitted factors and reported; they also
fit the one factor micro-benchmarks cannot see, the fixed cost per layer (kernel boundaries in a
whole forward pass). Without them that factor stays the base runtime's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cost.numeric import evaluate
from ..spec.errors import PdroofError, SpecError, as_field_of
from ..spec.schema import Record
from ..spec.units import format_bytes
from .measurements import digest as file_digest
from .measurements import read_measurements

_KERNEL_DEFAULTS = {
    "batch": 1.0, "new_tokens": 1.0, "context_tokens": 1.0, "heads": 1.0, "attn_dim_prefill": 1.0,
    "attn_dim_decode": 1.0, "kv_elems": 1.0, "weight_bytes": 2.0, "kv_bytes": 2.0, "act_bytes": 2.0,
    "peak_flops_per_s": 1.0, "attn_peak_flops_per_s": 1.0, "mem_bytes_per_s": 1.0, "eff_compute": 1.0,
    "eff_weights": 1.0, "eff_memory": 1.0, "eff_attn_prefill": 1.0, "attn_half_tokens": 0.0,
    "eff_attn_decode": 1.0, "path_latency_s": 0.0, "path_bytes_per_s": 1.0, "gemm_m": 1.0,
    "gemm_m_padded": 1.0, "gemm_n": 1.0, "gemm_k": 1.0, "copy_bytes": 1.0, "harness_s": 0.0, "gemm_half_rows": 0.0,
}


def _kernel(output: str, points: dict, params: dict) -> np.ndarray:
    """Evaluate one kernel expression for every (parameter combination, point) pair."""
    inputs = dict(_KERNEL_DEFAULTS)
    inputs.update({k: np.asarray(v, float)[None, :] for k, v in points.items()})
    inputs.update({k: np.asarray(v, float)[:, None] for k, v in params.items()})
    return evaluate("kernels", inputs)[output]


def grid_fit(output: str, points: dict, measured: np.ndarray, ranges: dict[str, tuple[float, float]],
             fixed: dict | None = None, steps: int = 17, rounds: int = 3,
             weights: np.ndarray | None = None) -> tuple[dict, float]:
    """Least (weighted) squared log error over a grid of ``ranges``, refined ``rounds`` times
    around the best. Returns the parameters and the unweighted rms log error."""
    w = np.ones_like(measured) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    lo = {k: float(a) for k, (a, _) in ranges.items()}
    hi = {k: float(b) for k, (_, b) in ranges.items()}
    names = list(ranges)
    best, best_err = None, np.inf
    for _ in range(rounds):
        axes = [np.linspace(lo[n], hi[n], steps) for n in names]
        mesh = np.meshgrid(*axes, indexing="ij")
        params = {n: m.ravel() for n, m in zip(names, mesh, strict=True)}
        params.update({k: np.full(mesh[0].size, v) for k, v in (fixed or {}).items()})
        pred = _kernel(output, points, params)
        sq = np.log(pred / measured[None, :]) ** 2
        i = int(np.nanargmin(sq @ w))
        best = {n: float(params[n][i]) for n in names}
        best_err = float(np.mean(sq[i]))
        for n, ax in zip(names, axes, strict=True):
            step = ax[1] - ax[0] if len(ax) > 1 else 0.0
            lo[n] = max(ranges[n][0], best[n] - 2 * step)
            hi[n] = min(ranges[n][1], best[n] + 2 * step)
    return best, float(np.sqrt(best_err))


@dataclass
class Calibration:
    """A fitted profile entry for one accelerator, with its fit report."""

    hardware: str
    entry: dict
    harness_s: dict[str, float]
    report: dict = field(default_factory=dict)


def _peak(acc: Record, fmt: str) -> float:
    peak = acc.dense_flops_per_s.get(fmt)
    if not peak:
        raise PdroofError(f"{fmt} GEMMs, but {acc.id} has no {fmt} peak in its spec")
    return peak


def fit_gemm(rows: list[dict], acc: Record, fmt: str):
    pts = {
        "gemm_m": [r["M"] for r in rows], "gemm_m_padded": [r.get("Mpad", r["M"]) for r in rows],
        "gemm_n": [r["N"] for r in rows], "gemm_k": [r["K"] for r in rows],
    }
    fixed = {"peak_flops_per_s": _peak(acc, fmt), "mem_bytes_per_s": acc.memory.bandwidth_bytes_per_s,
             "weight_bytes": format_bytes(fmt)}
    y = np.array([r["s"] for r in rows])
    best, err = grid_fit("gemm_seconds", pts, y, {"eff_compute": (0.2, 1.0), "eff_weights": (0.2, 1.0),
                                                  "gemm_half_rows": (0.0, 512.0), "harness_s": (0.0, 100e-6)},
                         fixed, steps=13)
    return best, err


def bandwidth_bound(decode: list[dict], sms: int) -> list[dict]:
    """Decode-attention points with enough (sequence, KV head) pairs to occupy half the device's
    multiprocessors: the regime whose KV-read efficiency the model needs. Smaller ones (batch 1)
    are latency-bound, a cost the per-layer latency carries."""
    return [r for r in decode if r["B"] * r["KVH"] >= sms / 2] or decode


def fit_attention(prefill: list[dict], decode: list[dict], acc: Record, attn_fmt: str):
    peak = _peak(acc, attn_fmt)
    bw = acc.memory.bandwidth_bytes_per_s
    pts = {"new_tokens": [r["S"] for r in prefill], "heads": [r["H"] for r in prefill],
           "attn_dim_prefill": [2 * r["D"] for r in prefill]}
    y = np.array([r["s"] for r in prefill])
    # Weighted by prompt length: attention matters end to end at long prompts, where the kernel
    # runs at its plateau; short ones are dominated by the harness's fixed cost.
    pre, pre_err = grid_fit("attn_prefill_seconds", pts, y,
                            {"eff_attn_prefill": (0.1, 1.0), "attn_half_tokens": (0.0, 4096.0),
                             "harness_s": (0.0, 100e-6)}, {"attn_peak_flops_per_s": peak},
                            weights=np.array(pts["new_tokens"], float))
    pts = {"batch": [r["B"] for r in decode], "context_tokens": [r["L"] for r in decode],
           "heads": [r["H"] for r in decode], "attn_dim_decode": [2 * r["D"] for r in decode],
           "kv_elems": [2 * r["KVH"] * r["D"] for r in decode]}
    y = np.array([r["s"] for r in decode])
    dec, dec_err = grid_fit("attn_decode_seconds", pts, y, {"eff_attn_decode": (0.2, 1.0), "harness_s": (0.0, 100e-6)},
                            {"attn_peak_flops_per_s": peak, "mem_bytes_per_s": bw,
                             "eff_attn_prefill": pre["eff_attn_prefill"]})
    return pre, pre_err, dec, dec_err


def fit_copy(rows: list[dict], acc: Record) -> tuple[float, float]:
    d2d = [r for r in rows if r["kind"] == "d2d"]
    pts = {"copy_bytes": [r["bytes"] for r in d2d]}
    y = np.array([r["s"] for r in d2d])
    best, err = grid_fit("copy_seconds", pts, y, {"eff_memory": (0.1, 1.0)},
                         {"mem_bytes_per_s": acc.memory.bandwidth_bytes_per_s})
    return best["eff_memory"], err


def fit_host_link(rows: list[dict]) -> tuple[float, float, float] | None:
    """α and β of ``t = α + bytes/β`` over single host copies, by least relative squares."""
    single = [r for r in rows if r["kind"] in ("d2h", "h2d")]
    if len(single) < 2:
        return None
    t = np.array([r["s"] for r in single])
    b = np.array([r["bytes"] for r in single], float)
    a = np.stack([1 / t, b / t], axis=1)
    (alpha, inv_beta), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if alpha <= 0 or inv_beta <= 0:
        raise PdroofError("host-link sweep does not fit t = α + bytes/β with positive α and β")
    pred = alpha + b * inv_beta
    return float(alpha), float(1 / inv_beta), float(np.sqrt(np.mean(np.log(pred / t) ** 2)))


def message_latency(rows: list[dict], beta: float) -> float | None:
    """Per-message cost of copies issued back to back (a paged KV transfer), from the paged row:
    (t − bytes/β) / pages. Smaller than an isolated copy's α, whose harness cost it hides."""
    paged = [r for r in rows if r["kind"] == "d2h_paged" and r.get("pages", 0) > 1]
    if not paged:
        return None
    r = paged[0]
    return max(0.0, (r["s"] - r["bytes"] / beta) / r["pages"])


def paged_check(rows: list[dict], alpha: float, beta: float) -> list[dict]:
    """The transfer-granularity evidence: the same bytes as one copy and as many pages,
    predicted with time = messages · α + bytes / β."""
    out = []
    for r in rows:
        if r["kind"] in ("d2h_paged", "d2h_bulk_same"):
            msgs = r.get("pages", 1)
            pred = msgs * float(evaluate("kernels", {**_KERNEL_DEFAULTS, "path_latency_s": alpha,
                                                     "path_bytes_per_s": beta,
                                                     "copy_bytes": r["bytes"] / msgs})["host_copy_seconds"])
            out.append({"kind": r["kind"], "messages": msgs, "bytes": r["bytes"], "measured_s": r["s"],
                        "predicted_s": pred, "error": pred / r["s"] - 1})
    return out


def calibrate(path: str | Path, acc: Record) -> Calibration:
    """Fit one accelerator's profile entry from a measurement file."""
    data = read_measurements(path)
    entry: dict = {"compute": {}, "gemm_half_rows": {}, "weights": {}}
    fit_err: dict[str, float] = {}
    harness: dict[str, float] = {}
    for fmt in sorted({r["dtype"] for r in data["gemm"]}):
        with as_field_of(path, "gemm"):  # a format the accelerator has no peak for (_peak)
            best, err = fit_gemm([r for r in data["gemm"] if r["dtype"] == fmt], acc, fmt)
        entry["compute"][fmt] = round(best["eff_compute"], 4)
        entry["gemm_half_rows"][fmt] = round(best["gemm_half_rows"], 1)
        entry["weights"][fmt] = round(best["eff_weights"], 4)
        fit_err[f"gemm_{fmt}"] = round(err, 4)
        harness[f"gemm_{fmt}"] = best["harness_s"]
    from ..cost.precision import attention_peak_format

    decode_rows = bandwidth_bound(data["attn_decode"], int(data["meta"].get("sms") or 132))
    pre, pre_err, dec, dec_err = fit_attention(data["attn_prefill"], decode_rows, acc,
                                               attention_peak_format(acc))
    entry["attention_prefill"] = round(pre["eff_attn_prefill"], 4)
    entry["attention_prefill_half_tokens"] = round(pre["attn_half_tokens"], 1)
    entry["attention_decode"] = round(dec["eff_attn_decode"], 4)
    fit_err["attention_prefill"], fit_err["attention_decode"] = round(pre_err, 4), round(dec_err, 4)
    harness["attention_prefill"], harness["attention_decode"] = pre["harness_s"], dec["harness_s"]
    eff_m, copy_err = fit_copy(data["copy"], acc)
    entry["memory"] = round(eff_m, 4)
    fit_err["copy"] = round(copy_err, 4)
    report: dict = {}
    host = fit_host_link(data["xfer"]) if data["xfer"] else None
    if host:
        alpha, beta, host_err = host
        per_message = message_latency(data["xfer"], beta)
        entry["host_link"] = {"latency_us": round((per_message or alpha) * 1e6, 2), "gb_per_s": round(beta / 1e9, 2)}
        fit_err["host_link"] = round(host_err, 4)
        harness["host_copy"] = alpha
        report["paged_transfer"] = paged_check(data["xfer"], per_message or alpha, beta)
    entry["fit"] = fit_err
    digest = file_digest(path)[:12]
    meta = data["meta"]
    entry["source"] = (f"pdroof calibrate {Path(path).name} (sha256 {digest}), measured "
                       f"{meta.get('date', 'undated')} on {meta.get('device', 'unknown device')}"
                       f" with torch {meta.get('torch', '?')}")
    entry["note"] = ("harness fixed cost per isolated call (fitted, not carried into forward passes): "
                     + ", ".join(f"{k} {v * 1e6:.1f} us" for k, v in harness.items()))
    return Calibration(acc.id, entry, harness, report | {"e2e_rows": data["e2e"]})


def predict_e2e(row: dict, model: Record, acc: Record, runtime: Record) -> float:
    """Predicted seconds of one end-to-end measurement (a whole decoder stack, tp 1)."""
    from ..cost.precision import Precision
    from ..serving.stage import stage_inputs

    fmt = row.get("dtype", "bf16")
    p = Precision(fmt, fmt, "bf16")
    base, _ = stage_inputs(model, acc, runtime, p, tp=1)
    if "layers_run" in row:
        from ..cost.inputs import model_inputs

        base.update(model_inputs(model, int(row["layers_run"])))
    batch = row.get("B", 1)
    if row["phase"] == "prefill":
        work = {"batch": batch, "new_tokens": row["S"], "prefix_tokens": row.get("prefix", 0),
                "context_tokens": row["S"]}
        return float(evaluate("prefill", {**base, **work})["seconds"])
    if row["phase"] == "decode":
        work = {"batch": batch, "new_tokens": 1, "prefix_tokens": 0, "context_tokens": row["L"]}
        return float(evaluate("decode", {**base, **work})["seconds"])
    raise PdroofError(f"e2e phase must be prefill or decode, not {row['phase']!r}")


def fit_layer_latency(rows: list[dict], predict_without: list[float], layers: list[int]) -> float:
    """The per-layer fixed cost that best explains end-to-end points, by least relative squares:
    each prediction is ``base + layers · τ``, linear in τ."""
    y = np.array([r["s"] for r in rows])
    base = np.array(predict_without)
    n = np.array(layers, float)
    tau = float(np.sum((y - base) / y * n / y) / np.sum((n / y) ** 2))
    return max(0.0, tau)


def e2e_table(rows: list[dict], runtime: Record, acc: Record, models) -> list[dict]:
    """Predicted against measured for every end-to-end point."""
    out = []
    for r in rows:
        model = models(r["model"])
        pred = predict_e2e(r, model, acc, runtime)
        out.append({"model": r["model"], "phase": r["phase"], "dtype": r.get("dtype", "bf16"),
                    "B": r.get("B", 1), "S": r.get("S"), "L": r.get("L"), "measured_s": r["s"],
                    "predicted_s": pred, "error": pred / r["s"] - 1})
    return out


def calibrate_runtime(path: str | Path, acc: Record, base_doc: dict, models) -> tuple[dict, dict]:
    """A runtime document (YAML-ready, human units) whose profile for ``acc`` is fitted to the
    measurements in ``path``, and a report: fit errors, paged-transfer check, end-to-end table.

    ``base_doc`` is the raw runtime document to start from (structure, fallback, other profiles);
    ``models`` maps a model id to its spec (for end-to-end points)."""
    import copy

    from ..spec.profile import RUNTIME
    from ..spec.schema import validate

    cal = calibrate(path, acc)
    doc = copy.deepcopy(base_doc)
    doc["profiles"] = dict(doc.get("profiles") or {})
    entry = {**cal.entry, "family": acc.family}
    doc["profiles"][acc.id] = entry
    rows = cal.report.pop("e2e_rows")
    report = {"hardware": acc.id, "fit": entry["fit"], **cal.report}
    for i, r in enumerate(rows):  # a model the catalogue has, run for at most its layers
        with as_field_of(path, f"e2e[{i}].model"):
            layers = models(r["model"]).layers
        with as_field_of(path, f"e2e[{i}].dtype"):
            _peak(acc, r.get("dtype", "bf16"))
        if r.get("layers_run", 1) > layers:
            raise SpecError(str(path), f"e2e[{i}].layers_run", f"{r['layers_run']:g} is more than the {layers} "
                                                                f"layers of {r['model']}")
    if rows:
        rt = validate(RUNTIME, doc, str(path))
        report["e2e_micro_only"] = e2e_table(rows, rt, acc, models)
        entry["layer_latency_us"] = 0.0
        rt0 = validate(RUNTIME, doc, str(path))
        base = [predict_e2e(r, models(r["model"]), acc, rt0) for r in rows]
        n = [int(r.get("layers_run") or models(r["model"]).layers) for r in rows]
        tau = fit_layer_latency(rows, base, n)
        entry["layer_latency_us"] = round(tau * 1e6, 2)
        rt = validate(RUNTIME, doc, str(path))
        report["e2e"] = e2e_table(rows, rt, acc, models)
        entry["fit"]["e2e_mape"] = round(float(np.mean([abs(r["error"]) for r in report["e2e"]])), 4)
        entry["note"] += f"; layer latency fitted to {len(rows)} end-to-end points"
    doc["provenance"] = {**(doc.get("provenance") or {}), acc.id: entry["source"]}
    validate(RUNTIME, doc, str(path))  # the written document must load
    return doc, report
