"""Precision per role and whether it is executable: a format counts only where the accelerator
has a complete software path for it (the study's second practice)."""

from __future__ import annotations

from dataclasses import dataclass

from ..spec.errors import PdroofError
from ..spec.schema import Record
from ..spec.units import FORMAT_BYTES, check_format

# Activation formats a weight format pairs with natively (W8A8, W4A4), best first.
_NATIVE_ACTIVATIONS = {"fp8": ("fp8",), "int8": ("int8",), "fp4": ("fp4", "fp8"), "int4": ()}
_HIGH = ("bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    """Formats of one stage: weights, activations (the GEMM compute format) and KV storage."""

    weights: str
    activations: str
    kv: str

    @property
    def weight_only(self) -> bool:
        """Weights narrower than activations: dequantised in the GEMM (W4A16, W8A16)."""
        return FORMAT_BYTES[self.weights] < FORMAT_BYTES[self.activations]

    @property
    def quantized_activations(self) -> bool:
        return FORMAT_BYTES[self.activations] < 2

    def label(self) -> str:
        return f"W{self.weights}/A{self.activations}/KV{self.kv}"


def default_activations(acc: Record, weights: str) -> str:
    """What the weight format implies on this accelerator: its native activation format when the
    accelerator runs it, else 16-bit (weight-only)."""
    paths = acc.precision_paths.activations
    for fmt in _NATIVE_ACTIVATIONS.get(weights, ()):
        if fmt in paths:
            return fmt
    for fmt in _HIGH:
        if fmt in paths:
            return fmt
    return paths[0]


def infeasible_reason(acc: Record, p: Precision) -> str | None:
    """``None`` if every role's format has an executable path on ``acc``, else why not."""
    paths = acc.precision_paths
    if p.weights not in paths.weights:
        return f"no executable path for {p.weights} weights on {acc.id}"
    if p.activations not in paths.activations:
        return f"no executable path for {p.activations} activations on {acc.id}"
    if p.activations not in acc.dense_flops_per_s:
        return f"{acc.id} has no {p.activations} compute peak"
    if p.kv not in paths.kv:
        return f"no executable path for {p.kv} KV cache on {acc.id}"
    if FORMAT_BYTES[p.activations] < FORMAT_BYTES[p.weights]:
        return f"activations ({p.activations}) narrower than weights ({p.weights}) are not a GEMM path"
    return None


def plan(acc: Record, weights: str = "bf16", activations: str | None = None, kv: str = "bf16") -> Precision:
    """The precision of one stage, checked; raises PdroofError naming the missing path."""
    check_format(weights, "--weights")
    check_format(kv, "--kv")
    if activations:
        check_format(activations, "--activations")
    p = Precision(weights, activations or default_activations(acc, weights), kv)
    reason = infeasible_reason(acc, p)
    if reason:
        raise PdroofError(f"infeasible: {reason}")
    return p


def attention_peak_format(acc: Record) -> str:
    return next(f for f in ("bf16", "fp16", "fp8", "fp32") if f in acc.dense_flops_per_s)


def kv_encoding(acc: Record, fmt: str) -> str:
    """The exact encoding ``fmt`` is stored in on ``acc``: FP8 by its bits (fp8_e4m3fn or
    fp8_e4m3fnuz, ``precision_paths.fp8_encoding``), any other format by its name."""
    return f"fp8_{acc.precision_paths.fp8_encoding}" if fmt == "fp8" else fmt
