"""Micro-benchmarks on the local accelerator, written in the format ``calibrate`` reads.

Needs PyTorch (``pip install 'pdroof[measure]'``). Every kernel is warmed up, timed with device
events (CUDA) or the wall clock (CPU) around each call, and reported as the median of the
repeats; inputs are random (never zeros), and GEMM weights rotate over enough copies that small-M
runs cannot be served from the last-level cache. ``smoke`` runs tiny shapes (seconds on a CPU).
"""

from __future__ import annotations

import datetime as _dt
import statistics
import time
from collections.abc import Callable

from ..spec.errors import PdroofError
from ..spec.schema import Record

FULL_M = (1, 8, 32, 128, 512, 2048, 8192)
SMOKE_M = (1, 8, 32)
CACHE_BYTES = 256 * 2**20  # rotate weights over at least this many bytes (several times any L2)


def _torch():
    try:
        import torch
    except ImportError:
        raise PdroofError("pdroof measure needs PyTorch: pip install 'pdroof[measure]' (without a GPU, first the "
                          "CPU-only build: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
                          ) from None
    return torch


class Timer:
    """Median seconds of ``fn`` over ``repeats`` timed calls after ``warmup`` untimed ones."""

    def __init__(self, torch, device: str, warmup: int, repeats: int):
        self.torch, self.device, self.warmup, self.repeats = torch, device, warmup, repeats
        self.cuda = device.startswith("cuda")

    def __call__(self, fn: Callable[[int], object]) -> float:
        for i in range(self.warmup):
            fn(i)
        times = []
        for i in range(self.repeats):
            if self.cuda:
                start = self.torch.cuda.Event(enable_timing=True)
                end = self.torch.cuda.Event(enable_timing=True)
                start.record()
                fn(i)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t = time.perf_counter()
                fn(i)
                times.append(time.perf_counter() - t)
        return statistics.median(times)


def gemm_shapes(models: list[Record], smoke: bool) -> dict[str, tuple[int, int]]:
    """(N, K) of each model's projections: fused QKV, O, fused gate+up, down."""
    if smoke:
        return {"tiny_qkv": (384, 256), "tiny_down": (256, 512)}
    shapes = {}
    for m in models:
        tag = m.id
        h = m.hidden_size
        if m.head_dim:
            q, kv = m.attention_heads * m.head_dim, m.kv_heads * m.head_dim
            shapes[f"{tag}_qkv"] = (q + 2 * kv, h)
            shapes[f"{tag}_o"] = (h, q)
        f = m.ffn_size or (m.moe.expert_ffn_size if m.moe else None)
        if f:
            shapes[f"{tag}_gateup"] = (2 * f, h)
            shapes[f"{tag}_down"] = (h, f)
    return shapes


def _fp8_supported(torch, device: str) -> bool:
    if not device.startswith("cuda") or not hasattr(torch, "float8_e4m3fn"):
        return False
    major, minor = torch.cuda.get_device_capability(device)
    return (major, minor) >= (8, 9)


def measure_gemm(torch, timer: Timer, device: str, shapes, ms, fp8: bool) -> list[dict]:
    rows = []
    dtypes = ["bf16"] + (["fp8"] if fp8 else [])
    for dtype in dtypes:
        for shape, (n, k) in shapes.items():
            copies = max(2, -(-CACHE_BYTES // (n * k * (2 if dtype == "bf16" else 1))))
            copies = min(copies, 8) if device == "cpu" else copies
            w = [torch.randn(n, k, device=device, dtype=torch.bfloat16) for _ in range(copies)]
            if dtype == "fp8":
                w = [x.to(torch.float8_e4m3fn) for x in w]
                one = torch.ones((), device=device, dtype=torch.float32)
            for m in ms:
                mpad = max(16, -(-m // 16) * 16) if dtype == "fp8" else m
                x = torch.randn(mpad, k, device=device, dtype=torch.bfloat16)
                if dtype == "fp8":
                    xq = x.to(torch.float8_e4m3fn)

                    def fn(i, xq=xq, w=w, one=one):
                        return torch._scaled_mm(xq, w[i % len(w)].t(), scale_a=one, scale_b=one,
                                                out_dtype=torch.bfloat16)
                else:
                    def fn(i, x=x, w=w):
                        return x @ w[i % len(w)].t()
                s = timer(fn)
                wb = 2 if dtype == "bf16" else 1
                row = {"dtype": dtype, "shape": shape, "M": m, "N": n, "K": k, "s": s,
                       "tflops": 2 * mpad * n * k / s / 1e12, "gbps": (m * k * 2 + n * k * wb + m * n * 2) / s / 1e9}
                if dtype == "fp8":
                    row["Mpad"] = mpad
                rows.append(row)
            del w
    return rows


def measure_attention(torch, timer: Timer, device: str, smoke: bool) -> tuple[list[dict], list[dict]]:
    import torch.nn.functional as F  # noqa: N812

    H, KVH, D = (4, 2, 16) if smoke else (32, 8, 128)
    dt = torch.bfloat16
    prefill = []
    for S in ((16, 64) if smoke else (512, 2048, 8192, 32768)):
        q = torch.randn(1, H, S, D, device=device, dtype=dt)
        k = torch.randn(1, KVH, S, D, device=device, dtype=dt)
        v = torch.randn(1, KVH, S, D, device=device, dtype=dt)
        s = timer(lambda i, q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
        prefill.append({"S": S, "H": H, "KVH": KVH, "D": D, "s": s, "tflops": 2 * S * S * H * D / s / 1e12})
    decode = []
    points = ((1, 32), (4, 64)) if smoke else ((1, 2048), (16, 2048), (64, 2048), (256, 2048), (16, 16384), (64, 8192))
    for B, L in points:
        q = torch.randn(B, H, 1, D, device=device, dtype=dt)
        k = torch.randn(B, KVH, L, D, device=device, dtype=dt)
        v = torch.randn(B, KVH, L, D, device=device, dtype=dt)
        s = timer(lambda i, q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
        kv_bytes = 2 * B * KVH * L * D * 2
        decode.append({"B": B, "L": L, "H": H, "KVH": KVH, "D": D, "s": s, "kv_bytes": kv_bytes,
                       "gbps": kv_bytes / s / 1e9})
    return prefill, decode


def measure_copies(torch, timer: Timer, device: str, smoke: bool) -> tuple[list[dict], list[dict]]:
    n = 2**20 if smoke else 2**30
    a = torch.randn(n // 4, device=device, dtype=torch.float32)
    b = torch.empty_like(a)
    s = timer(lambda i: b.copy_(a))
    copy = [{"kind": "d2d", "bytes": n, "s": s, "gbps_rw": 2 * n / s / 1e9}]
    xfer: list[dict] = []
    if not device.startswith("cuda"):
        return copy, xfer
    for size in (4096 * 4**i for i in range(10)):  # 4 KiB .. 1 GiB
        host = torch.randn(size // 4, dtype=torch.float32).pin_memory()
        dev = torch.empty(size // 4, device=device, dtype=torch.float32)
        for kind, fn in (("d2h", lambda i, h=host, d=dev: h.copy_(d, non_blocking=True)),
                         ("h2d", lambda i, h=host, d=dev: d.copy_(h, non_blocking=True))):
            t = timer(fn)
            xfer.append({"kind": kind, "bytes": size, "s": t, "gbps": size / t / 1e9})
    page, pages = 32 * 1024, 8192  # one 256 MiB request as 16-token pages of Llama-3.1-8B
    host = torch.empty(page * pages // 4, dtype=torch.float32).pin_memory()
    dev = torch.randn(page * pages // 4, device=device, dtype=torch.float32)
    step = page // 4

    def paged(i):
        for p in range(pages):
            host[p * step:(p + 1) * step].copy_(dev[p * step:(p + 1) * step], non_blocking=True)

    t = timer(paged)
    xfer.append({"kind": "d2h_paged", "bytes": page * pages, "pages": pages, "page_bytes": page, "s": t,
                 "gbps": page * pages / t / 1e9})
    t = timer(lambda i: host.copy_(dev, non_blocking=True))
    xfer.append({"kind": "d2h_bulk_same", "bytes": page * pages, "s": t, "gbps": page * pages / t / 1e9})
    return copy, xfer


def measure(models: list[Record], *, device: str | None = None, smoke: bool = False,
            repeats: int | None = None, progress: Callable[[str], None] = lambda s: None) -> dict:
    """Run every section and return the measurement document."""
    torch = _torch()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PdroofError("no CUDA device is available; use --device cpu (with --smoke)")
    if device == "cpu" and not smoke:
        raise PdroofError("full-size measurements need an accelerator; on the CPU use --smoke")
    torch.manual_seed(0)
    reps = repeats or (5 if smoke else 20)
    timer = Timer(torch, device, warmup=2 if smoke else 5, repeats=reps)
    meta = {"device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
            "torch": torch.__version__, "date": _dt.date.today().isoformat(), "smoke": smoke}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        meta.update({"sms": props.multi_processor_count, "memory_gib": round(props.total_memory / 2**30, 1)})
    progress("gemm")
    gemm = measure_gemm(torch, timer, device, gemm_shapes(models, smoke), SMOKE_M if smoke else FULL_M,
                        _fp8_supported(torch, device))
    progress("attention")
    prefill, decode = measure_attention(torch, timer, device, smoke)
    progress("copies")
    copy, xfer = measure_copies(torch, timer, device, smoke)
    return {"meta": meta, "copy": copy, "xfer": xfer, "gemm": gemm, "attn_prefill": prefill,
            "attn_decode": decode, "e2e": []}
