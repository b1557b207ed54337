"""Kernel factors of the engine profiles, fitted to aiconfigurator's per-op measurements.

    python benchmarks/engine_factors.py AIC_DATA [--devices h100_sxm,h200_sxm,b200_sxm,gb200]
                                        [--engines trtllm,vllm,sglang] [--yaml [--version V]]

AIC_DATA is aiconfigurator's ``systems/data`` directory (the ``aic-core`` package of
github.com/ai-dynamo/aiconfigurator, Apache-2.0; the shipped profiles cite commit
095f58a51c4ca8e61b66ec108d86f223f8d559ce). Needs ``pyarrow`` to read its parquet tables; pdroof
itself never reads them. ``systems/silicon_sample.csv`` (end-to-end runs) is not read: those runs
check the model, they are not fitted.

For each device × engine × version it prints, in the units of the runtime-profile YAML, the
factors of pdroof's equations (``pdroof equations``), each fitted to the op tables with the same
functional form the cost model uses:

- GEMM, per weight format (bf16; fp8 per-tensor; fp8 block-scaled, DeepSeek's checkpoints;
  nvfp4): weight streaming ``t = τ_K + bytes / (η_W·BW)`` over shapes with m ≤ 16 (least squares
  on the relative error) gives ``weights`` and ``kernel_latency_us``; ``compute`` is the median
  achieved fraction of peak over shapes with m, n, k ≥ 4096; ``gemm_half_rows`` the M½ of
  ``η_C·m/(m + M½)`` that minimises the median |log error| of the full GEMM model over all
  shapes with n, k ≥ 1024.
- Decode attention (GQA/MHA, no window): ``t = τ_K + (R + R½)/(η·BW)`` in the bytes R a layer
  reads, i.e. η·R/(R + R½) of bandwidth behind the kernel latency (``attention_decode``,
  ``attention_decode_half_mb``), per KV format.
- MLA decode (absorbed, the latent read by every rank): the same form
  (``attention_decode_mla``, ``attention_decode_mla_half_mb``), per KV format.
- All-reduce under CUDA graphs, at the largest TP measured: ``allreduce_latency_us`` is the median
  time of messages ≤ 16 KB; the tables show two regimes, the engine's own kernel up to a size and
  NCCL's above it: ``link`` is the fraction of NVLink bandwidth of the ring term 2(t−1)/t·bytes/(N·η)
  over 4-64 MiB (one regime, what the experts' all-to-all takes), the measured size that splits
  the table best ``allreduce_large.above_mib``, ``allreduce_link`` the same fraction from 4 MiB up
  to it, and ``allreduce_large``'s ``latency_us`` and ``link`` the intercept and ring term above it.
  Each smaller TP measured gets the same fit of its own (``allreduce_parties``): the algorithms and
  their efficiency change with the party count (NCCL's large-message η 0.70 at two H100s, 0.78 at
  four, 1.02 at eight with NVLS), which the ring term's 2(t−1)/t does not carry.

``--yaml`` prints each device's profile entry for the engine's newest version with GEMM tables (an
op that version did not re-measure from the newest older one that did); ``--version V`` that
release's instead, for a version profile (``hardware/runtimes/sglang-0.5.9.yaml``: ``--engines
sglang --yaml --version 0.5.9``).

Peaks and bandwidths come from pdroof's accelerator specs (datasheet values), so the fitted
efficiencies are fractions of the same numbers the cost model multiplies.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import defaultdict

import numpy as np

from pdroof.spec.catalog import Catalog
from pdroof.spec.units import FORMAT_BYTES

DEVICES = {"h100_sxm": "h100-sxm", "h200_sxm": "h200-sxm", "b200_sxm": "b200", "gb200": "gb200"}
GEMM_FORMATS = {k: (f, FORMAT_BYTES[f]) for k, f in
                {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "nvfp4": "fp4"}.items()}
# the routed-expert kernel a weight format runs in each engine's MoE table, in order of preference:
# DeepSeek-style block-scaled fp8; MXFP4 experts with fp8 activations where the silicon has fp8
# (gpt-oss on Blackwell), NVFP4, else MXFP4 with 16-bit activations (Hopper)
MOE_FORMATS = {"bf16": ("bfloat16",), "fp8": ("fp8_block", "fp8"),
               "fp4": ("w4a8_mxfp4_mxfp8", "nvfp4", "w4a16_mxfp4")}
KV_BYTES = {"bfloat16": 2.0, "fp8": 1.0}
MLA_LATENT = 512 + 64  # DeepSeek-V3's compressed KV and RoPE key per token


def table(path: str) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - a development script
        sys.exit("benchmarks/engine_factors.py needs pyarrow to read the tables (pip install pyarrow)")
    t = pq.read_table(path)
    return {name: np.asarray(t.column(name).to_pylist()) for name in t.column_names}


def rel_lsq(features: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Least squares of t ≈ features @ coef on the relative error (rows divided by t)."""
    coef, *_ = np.linalg.lstsq(features / t[:, None], np.ones_like(t), rcond=None)
    return coef


def fit_gemm(d: dict, peak: float, bw: float, wbytes: float, floor: float | None = None) -> dict:
    m, n, k, t = (d[c].astype(float) for c in ("m", "n", "k", "latency"))
    t = t * 1e-3
    bytes_ = n * k * wbytes + 2 * m * (n + k)
    dec = (m <= 16) & (n * k >= 1 << 22)
    t0, inv = rel_lsq(np.column_stack([np.ones(dec.sum()), bytes_[dec] / bw]), t[dec])
    eta_w = 1 / inv
    big = (m >= 4096) & (n >= 4096) & (k >= 4096)
    eta_c = float(np.median(2 * m[big] * n[big] * k[big] / t[big] / peak))
    sel = (n >= 1024) & (k >= 1024)
    best = None
    for half in (0, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512):
        comp = 2 * m * n * k * (m + half) / (m * eta_c * peak)
        pred = np.maximum(comp, bytes_ / (eta_w * bw)) + t0
        err = float(np.median(np.abs(np.log(pred[sel] / t[sel]))))
        if best is None or err < best[1]:
            best = (half, err)
    dec_err = np.median(np.abs(np.log((t0 + bytes_[dec] / (eta_w * bw)) / t[dec])))
    if floor is not None:  # the stack's floor is the bf16 GEMMs'; the rest of this format's
        t0 = floor  # intercept is a separate activation-quantisation kernel that serving fuses
    return {"weights": eta_w, "kernel_latency_us": t0 * 1e6, "compute": eta_c, "gemm_half_rows": best[0],
            "err": best[1], "dec_err": float(dec_err), "n_dec": int(dec.sum()), "n": int(sel.sum())}


def fit_read(R: np.ndarray, t: np.ndarray, bw: float, tau_k: float) -> dict:
    t0, inv = rel_lsq(np.column_stack([np.ones(len(t)), R / bw]), t)
    eta = 1 / inv
    half = max(t0 - tau_k, 0.0) * eta * bw
    pred = tau_k + (R + half) / (eta * bw)
    return {"eta": eta, "half_mb": half / 1e6, "t0_us": t0 * 1e6,
            "err": float(np.median(np.abs(np.log(pred / t)))), "n": len(t)}


def fit_attention(d: dict, bw: float, tau_k: float) -> dict:
    out = {}
    window = d.get("window_size", np.zeros(len(d["latency"])))
    for kv, nb in KV_BYTES.items():
        sel = (d["kv_cache_dtype"] == kv) & (window == 0) & (d["batch_size"] * d["step"] >= 256)
        if sel.sum() < 20:
            continue
        R = (d["batch_size"] * (d["step"] + 1) * d["num_key_value_heads"] * d["head_dim"] * 2 * nb)[sel].astype(float)
        out[kv] = fit_read(R, d["latency"][sel] * 1e-3, bw, tau_k)
    return out


def fit_mla(d: dict, bw: float, tau_k: float) -> dict:
    out = {}
    for kv, nb in KV_BYTES.items():
        # DeepSeek-V3's 128 heads split over the TP ranks: the rows a TP-sharded engine runs
        sel = ((d["kv_cache_dtype"] == kv) & (d["num_heads"] * d["tp_size"] == 128)
               & (d["batch_size"] * d["step"] >= 256))
        if sel.sum() < 20:
            continue
        R = (d["batch_size"] * (d["step"] + 1) * MLA_LATENT * nb)[sel].astype(float)
        out[kv] = fit_read(R, d["latency"][sel] * 1e-3, bw, tau_k)
    return out


def fit_moe(d: dict, peaks: dict, bw: float) -> dict:
    """Routed experts with tensor-parallel experts only (ep 1), tokens spread evenly ('balanced'):
    t = τ_X + bytes/(η_XW·BW) over up to 64 tokens, bytes those of the experts the tokens touch;
    η_XC the median achieved fraction of the computing format's peak at 8192 tokens and more.

    'balanced' is aiconfigurator's ``balanced_logits``: token t's j-th expert is (t + j·⌈E/k⌉) mod E
    (spread over ⌈E/k⌉ when T < ⌈E/k⌉), so T tokens touch exactly min(E, T·k) experts, not the
    E(1 − (1 − k/E)^T) that random routing touches on average (which pdroof's cost model uses for
    serving traffic); counting the latter here took the full-weight times of T·k ≥ E as fewer bytes
    and read η_XW low."""
    out = {}
    base = (d["distribution"] == "balanced") & (d["moe_ep_size"] == 1)
    for fmt, dtypes in MOE_FORMATS.items():
        dtype = next((x for x in dtypes if ((d["moe_dtype"] == x) & base).sum() >= 20), None)
        if dtype is None:
            continue
        sel = base & (d["moe_dtype"] == dtype)
        T, h, f, k, E, tp = (d[c][sel].astype(float) for c in
                             ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size"))
        t = d["latency"][sel].astype(float) * 1e-3
        touched = np.minimum(E, T * k)  # balanced_logits: every assignment on its own expert
        bytes_ = touched * 3 * h * f * FORMAT_BYTES[fmt] / tp
        small = T <= 64
        t0, inv = rel_lsq(np.column_stack([np.ones(small.sum()), bytes_[small] / bw]), t[small])
        act = fmt if fmt != "fp4" or peaks.get("fp4") else "fp8"
        big = T >= 8192
        eta_c, half, c_err = (fit_width(f[big] / tp[big], 2 * T[big] * k[big] * 3 * h[big] * f[big] / tp[big]
                                        / t[big] / peaks[act]) if big.any() else (float("nan"),) * 3)
        pred = t0 + bytes_[small] * inv / bw
        out[fmt] = {"kernel": dtype, "weights": 1 / inv, "latency_us": t0 * 1e6, "compute": eta_c, "act": act,
                    "half_width": half, "compute_err": c_err, "compute_n": int(big.sum()),
                    "err": float(np.median(np.abs(np.log(pred / t[small])))), "n": int(small.sum())}
    return out


def fit_width(width: np.ndarray, eta: np.ndarray) -> tuple[float, float, float]:
    """η = η_max·w/(w + w½) over the achieved fractions ``eta`` at expert slice widths ``width``
    (columns per device): w½ on a log grid, η_max the median ratio at each, the pair with the least
    median absolute log error; returns (η_max, w½, that error)."""
    best = (np.inf, float("nan"), float("nan"))
    for half in np.geomspace(16, 65536, 241):
        x = width / (width + half)
        a = float(np.exp(np.median(np.log(eta / x))))
        err = float(np.median(np.abs(np.log(a * x / eta))))
        if err < best[0]:
            best = (err, a, float(half))
    return best[1], best[2], best[0]


def fit_allreduce(d: dict, link_bw: float) -> dict:
    """Per TP degree measured under graphs, the two regimes of ``_allreduce_regimes``."""
    graph = np.array(["graph" in s or "eager" not in s for s in d["kernel_source"]])
    out, tables = {}, {}
    for g in sorted(set(d["num_gpus"][graph])):
        sel = graph & (d["num_gpus"] == g)
        size = d["message_size"][sel].astype(float) * 2  # bf16 elements
        tables[int(g)] = size, d["latency"][sel].astype(float) * 1e-3
        out[int(g)] = _allreduce_regimes(*tables[int(g)], int(g), link_bw)
    top = out[max(out)]
    for g, (size, t) in tables.items():  # what its own and the largest TP's factors (as written) miss at each TP
        out[g]["own_err"] = _allreduce_error(out[g], size, t, g, link_bw)
        out[g]["at_largest_err"] = _allreduce_error(top, size, t, g, link_bw)
    return out


def _ring(size: np.ndarray, g: int, link_bw: float) -> np.ndarray:
    """The ring term's time at the whole link: 2(g−1)/g·bytes/N."""
    return 2 * (g - 1) / g * size / link_bw


def _rms_error(pred: np.ndarray, size: np.ndarray, t: np.ndarray) -> float:
    """rms relative error of ``pred`` over the messages from 1 MiB."""
    scored = size >= 1 << 20
    return float(np.sqrt(np.mean((pred[scored] / t[scored] - 1) ** 2)))


def _allreduce_error(x: dict, size: np.ndarray, t: np.ndarray, g: int, link_bw: float) -> float:
    """``_rms_error`` of the factors ``x`` (``_allreduce_regimes``, capped as written) among ``g``
    devices."""
    ring = _ring(size, g, link_bw)
    alpha = x["latency_us"] * 1e-6
    if "switch_mib" in x:
        pred = np.where(size <= x["switch_mib"] * 2**20, alpha + ring / min(x["allreduce_link"], CAP),
                        x["large_latency_us"] * 1e-6 + ring / min(x["link_large"], CAP))
    else:
        pred = alpha + ring / min(x["link"], CAP)
    return _rms_error(pred, size, t)


def _allreduce_regimes(size: np.ndarray, t: np.ndarray, g: int, link_bw: float) -> dict:
    """α, the median time of messages ≤ 16 KB, and ``link``, the single regime's η: the median of
    ring/(t − α) over 4-64 MiB (the ring term dominates α there; what the experts' all-to-all
    takes). Then two regimes split at the measured size M (8-256 MiB, at least three sizes above
    it) that fits best: the engine's own kernel up to M, ``allreduce_link`` the same median over
    4 MiB to M, and NCCL above, α_L and η_L of t = α_L + ring/(N·η_L) by least squares on the
    relative error. Errors are rms relative over messages from 1 MiB; no two regimes (``switch_mib``
    absent) where no split fits at least a point of error better than the single regime."""
    alpha = float(np.median(t[size <= 16384]))
    ring = _ring(size, g, link_bw)

    def own_eta(upto):
        mid = (size >= 4 << 20) & (size <= upto)
        return float(np.median(ring[mid] / np.maximum(t[mid] - alpha, 1e-9)))

    one = own_eta(64 << 20)
    out = {"latency_us": alpha * 1e6, "link": one, "one_err": _rms_error(alpha + ring / one, size, t)}
    best = None
    for switch in np.unique(size[(size >= 8 << 20) & (size <= 256 << 20)]):
        hi = size > switch
        if len(np.unique(size[hi])) < 3:  # an intercept and a slope need more than two sizes to be a fit
            continue
        a_l, inv_l = rel_lsq(np.vstack([np.ones(hi.sum()), ring[hi]]).T, t[hi])
        if a_l < 0:  # no negative intercept: the ring term alone
            a_l, (inv_l,) = 0.0, rel_lsq(ring[hi][:, None], t[hi])
        eta = own_eta(switch)
        err = _rms_error(np.where(size <= switch, alpha + ring / eta, a_l + ring * inv_l), size, t)
        if inv_l > 0 and err < out["one_err"] - 0.01 and (best is None or err < best["err"]):
            best = {"allreduce_link": eta, "switch_mib": switch / 2**20, "large_latency_us": a_l * 1e6,
                    "link_large": 1 / inv_l, "err": err}
    return {**out, **(best or {})}


def versions(root: str, dev: str, op: str, engine: str, name: str):
    for path in sorted(glob.glob(os.path.join(root, dev, op, engine, "*", name))):
        yield path.split(os.sep)[-2], path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="aiconfigurator's systems/data directory")
    ap.add_argument("--devices", default=",".join(DEVICES))
    ap.add_argument("--engines", default="trtllm,vllm,sglang")
    ap.add_argument("--yaml", action="store_true",
                    help="print each device's entry for the engine's newest version, as profile YAML")
    ap.add_argument("--version", help="with --yaml: this version's entry instead of the newest's (a version "
                                      "profile's, e.g. sglang-0.5.9)")
    args = ap.parse_args()
    if args.version and not args.yaml:
        ap.error("--version picks the entry --yaml prints; without --yaml every version is printed")
    cat = Catalog()
    for dev in args.devices.split(","):
        acc = cat.get("accelerator", DEVICES[dev])
        bw, link_bw = acc.memory.bandwidth_bytes_per_s, acc.scale_up.bandwidth_bytes_per_s
        peaks = {f: getattr(acc.dense_flops_per_s, f) for f in ("bf16", "fp8", "fp4")}
        for engine in args.engines.split(","):
            found = defaultdict(dict)
            for ver, path in versions(args.data, dev, "gemm", engine, "gemm_perf.parquet"):
                d = table(path)
                floor = None
                for dtype, (fmt, wb) in GEMM_FORMATS.items():  # bf16 first: its floor is the stack's
                    sel = d["gemm_dtype"] == dtype
                    if sel.sum() < 100 or not peaks.get(fmt):
                        continue
                    fit = fit_gemm({c: v[sel] for c, v in d.items()}, peaks[fmt], bw, wb, floor)
                    floor = fit["kernel_latency_us"] * 1e-6 if floor is None else floor
                    found[ver][f"gemm {dtype}"] = fit
            for ver, path in versions(args.data, dev, "attention", engine, "generation_attention_perf.parquet"):
                tau = _tau(found.get(ver) or _latest(found))
                found[ver]["attention"] = fit_attention(table(path), bw, tau)
            for ver, path in versions(args.data, dev, "mla", engine, "generation_mla_perf.parquet"):
                tau = _tau(found.get(ver) or _latest(found))
                found[ver]["mla"] = fit_mla(table(path), bw, tau)
            for ver, path in versions(args.data, dev, "moe", engine, "moe_perf.parquet"):
                found[ver]["moe"] = fit_moe(table(path), peaks, bw)
            for ver, path in versions(args.data, dev, "comm", engine, "custom_allreduce_perf.parquet"):
                found[ver]["allreduce"] = fit_allreduce(table(path), link_bw)
            if args.yaml and found:
                # the newest version with GEMM tables; an op it did not re-measure (aiconfigurator's
                # reuse.yaml) from the newest older version that has it
                order = sorted(found, key=_version_key)
                with_gemm = [v for v in order if "gemm bfloat16" in found[v]]
                if (args.version and args.version not in with_gemm) or not with_gemm:
                    print(f"{DEVICES[dev]} {engine}: no GEMM tables at {args.version or 'any version'} "
                          f"(has {', '.join(with_gemm) or 'none'})", file=sys.stderr)
                    continue
                ver = args.version or with_gemm[-1]
                entry = {}
                for v in order[:order.index(ver) + 1]:
                    entry.update(found[v])
                print(entry_yaml(DEVICES[dev], engine, ver, dev, entry))
                continue
            for ver in sorted(found, key=_version_key):
                print(f"{DEVICES[dev]} {engine} {ver}")
                for key, val in found[ver].items():
                    print(f"  {key}: {_fmt(val)}")
    return 0


# the KV format each engine runs by default (what a run with kv: null uses), whose attention
# factors its entry carries: vLLM and SGLang "auto" (the model's 16-bit dtype); TensorRT-LLM the
# checkpoint's KV quantisation (fp8 for the fp8/fp4 checkpoints these profiles serve)
ENTRY_KV = {"trtllm": "fp8", "vllm": "bfloat16", "sglang": "bfloat16"}


def _version_key(v: str):
    import re
    return [int(x) if x.isdigit() else x for x in re.split(r"[.]|(?<=\d)(?=[a-z])", v)]


CAP = 0.95  # no efficiency above this: a fit beyond it says the table ran partly out of cache, not from HBM


def _eta(value: float) -> tuple[str, str]:
    """(the value to write, the note a capped fit adds to its source)."""
    return f"{min(value, CAP):.3f}", (f"; fit {value:.2f}, capped at {CAP}" if value > CAP else "")


def entry_yaml(acc: str, engine: str, ver: str, dev: str, f: dict) -> str:
    sg, sa, sm, sx, sc = (f"AIC_DB {dev}/{op}/{engine}/{ver}" for op in ("gemm", "attention", "mla", "moe", "comm"))
    lines = [f"  {acc}:", "    compute:"]
    gemms = {GEMM_FORMATS[k][0]: v for k, v in f.items() if k.startswith("gemm") and k != "gemm fp8_block"
             for k in [k.split()[1]]}
    for fmt, g in gemms.items():
        if np.isfinite(g["compute"]):
            lines.append(f"      {fmt}: {{value: {g['compute']:.3f}, basis: measured, source: \"{sg}: "
                         f"median of m, n, k >= 4096\"}}")
    lines.append("    weights:")
    for fmt, g in gemms.items():
        v, cap = _eta(g["weights"])
        lines.append(f"      {fmt}: {{value: {v}, basis: fitted, source: \"{sg}: "
                     f"t = tau_K + bytes/(eta BW), m <= 16, median error {g['dec_err']:.0%}{cap}\"}}")
    lines.append("    gemm_half_rows:")
    for fmt, g in gemms.items():
        if np.isfinite(g["err"]):
            lines.append(f"      {fmt}: {{value: {g['gemm_half_rows']}, basis: fitted, source: \"{sg}: "
                         f"median error {g['err']:.0%} over {g['n']} shapes\"}}")
    tau = _tau(f)
    lines.append(f"    kernel_latency_us: {{value: {tau * 1e6:.2f}, basis: fitted, source: \"{sg}: "
                 f"bf16 GEMM floor, m <= 16\"}}")
    lines.append("    layer_latency_us: {value: 0, basis: derived, source: \"kernel_latency_us charges each kernel\"}")
    kv = ENTRY_KV[engine]
    a = f.get("attention", {}).get(kv)
    if a:
        v, cap = _eta(a["eta"])
        lines.append(f"    attention_decode: {{value: {v}, basis: fitted, source: \"{sa}: "
                     f"{kv} KV, median error {a['err']:.0%} over {a['n']} points{cap}\"}}")
        lines.append(f"    attention_decode_half_mb: {{value: {a['half_mb']:.1f}, basis: fitted, "
                     f"source: \"same fit\"}}")
    m = f.get("mla", {}).get(kv)
    if m:
        v, cap = _eta(m["eta"])
        lines.append(f"    attention_decode_mla: {{value: {v}, basis: fitted, source: \"{sm}: "
                     f"{kv} KV, 128 heads over TP, median error {m['err']:.0%}{cap}\"}}")
        lines.append(f"    attention_decode_mla_half_mb: {{value: {m['half_mb']:.1f}, basis: fitted, "
                     f"source: \"same fit\"}}")
    for fmt, x in f.get("moe", {}).items():
        if fmt == next(iter(f.get("moe", {}))):
            lines.append("    moe_weights:")
        v, cap = _eta(x["weights"])
        lines.append(f"      {fmt}: {{value: {v}, basis: fitted, source: \"{sx}: "
                     f"{x['kernel']}, t = tau_X + bytes/(eta BW) up to 64 tokens, median error {x['err']:.0%}{cap}\"}}")
    comp: dict = {}  # per compute format: its own weight format's kernels before a weight-only one's
    for fmt, x in f.get("moe", {}).items():
        if np.isfinite(x["compute"]) and (x["act"] not in comp or fmt == x["act"]):
            comp[x["act"]] = x
    if comp:
        lines.append("    moe_compute:")
        for act, x in comp.items():
            v, cap = _eta(x["compute"])
            lines.append(f"      {act}: {{value: {v}, basis: fitted, source: \"{sx}: {x['kernel']}, "
                         f"eta w/(w + w_half) over {x['compute_n']} rows at 8192+ tokens, w the expert columns per "
                         f"device, median error {x['compute_err']:.0%}{cap}\"}}")
        lines.append("    moe_half_width:")
        for act, x in comp.items():
            lines.append(f"      {act}: {{value: {x['half_width']:.0f}, basis: fitted, source: \"same fit\"}}")
    for fmt, x in f.get("moe", {}).items():
        if fmt == next(iter(f.get("moe", {}))):
            lines.append("    moe_latency_us:")
        lines.append(f"      {fmt}: {{value: {x['latency_us']:.1f}, basis: fitted, "
                     f"source: \"the moe_weights fit's intercept\"}}")
    if f.get("allreduce"):
        lines += allreduce_yaml(sc, f["allreduce"])
    return "\n".join(lines)


def allreduce_yaml(sc: str, ar: dict) -> list[str]:
    """The all-reduce factors of a profile entry, from ``fit_allreduce`` at the largest TP measured."""
    g = max(ar)
    x = ar[g]
    v, cap = _eta(x["link"])
    lines = [f"    allreduce_latency_us: {{value: {x['latency_us']:.2f}, basis: measured, source: "
             f"\"{sc}: custom all-reduce under graphs, TP{g}, messages <= 16 KB\"}}",
             f"    link: {{value: {v}, basis: fitted, source: \"same table: ring term over 4-64 MB at TP{g}{cap}\"}}"]
    if "switch_mib" not in x:
        return lines + _parties_yaml(sc, ar)
    v, cap = _eta(x["allreduce_link"])
    lines.append(f"    allreduce_link: {{value: {v}, basis: fitted, source: \"same table: ring term of the engine's "
                 f"own kernel, 4 MiB to {x['switch_mib']:g} MiB at TP{g}{cap}\"}}")
    v, cap = _eta(x["link_large"])
    lines += ["    allreduce_large:",
              f"      above_mib: {{value: {x['switch_mib']:g}, basis: fitted, source: \"same table: the measured "
              f"size that splits it best, rms error {x['err']:.0%} over 1 MiB-1 GiB (one regime: "
              f"{x['one_err']:.0%})\"}}",
              f"      latency_us: {{value: {x['large_latency_us']:.1f}, basis: fitted, source: \"same table: "
              f"intercept above {x['switch_mib']:g} MiB\"}}",
              f"      link: {{value: {v}, basis: fitted, source: \"same table: ring term above "
              f"{x['switch_mib']:g} MiB{cap}\"}}"]
    return lines + _parties_yaml(sc, ar)


def _parties_yaml(sc: str, ar: dict) -> list[str]:
    """``allreduce_parties``: each smaller TP's own fit, with its error and that of the largest TP's
    factors on the same table (what it would take without an item)."""
    g = max(ar)
    smaller = sorted(n for n in ar if n < g)
    if not smaller:
        return []
    lines = ["    allreduce_parties:"]
    for n in smaller:
        x = ar[n]
        two = "switch_mib" in x
        fitted = [x["allreduce_link"], x["link_large"]] if two else [x["link"]]
        large = (f", large: {{above_mib: {x['switch_mib']:g}, latency_us: {x['large_latency_us']:.1f}, "
                 f"link: {_eta(x['link_large'])[0]}}}") if two else ""
        capped = f" (efficiencies capped at {CAP})" if max(fitted) > CAP else ""
        lines.append(f"      - {{parties: {n}, latency_us: {x['latency_us']:.2f}, link: {_eta(fitted[0])[0]}{large}, "
                     f"source: \"{sc}: the same fits at TP{n}, rms error {x['own_err']:.0%} over 1 MiB-1 GiB (TP{g}'s "
                     f"factors: {x['at_largest_err']:.0%}){capped}\"}}")
    return lines


def _latest(found):
    return found[sorted(found)[-1]] if found else {}


def _tau(entry: dict) -> float:
    vals = [v["kernel_latency_us"] for k, v in entry.items() if k.startswith("gemm")]
    return float(np.median(vals)) * 1e-6 if vals else 0.0


def _fmt(v):
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
