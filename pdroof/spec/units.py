"""SI scale factors and numerical-format sizes. Human units live only in YAML keys and rendering."""

from __future__ import annotations

KILO, MEGA, GIGA, TERA = 1e3, 1e6, 1e9, 1e12
GB = GIGA  # bytes: decimal GB, as vendors quote bandwidths (and some specs capacities)
GIB = 2.0**30  # binary GiB: how HBM and GDDR capacities are built
MICRO, MILLI = 1e-6, 1e-3

# Storage size of one element of each numerical format, in bytes. int4/fp4 carry scales separately
# (see FORMAT_SCALE_OVERHEAD): a 4-bit element is half a byte, never ``4 // 8``.
FORMAT_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}

# Extra bytes per element for quantization scales: group-wise int4 (group 128, one fp16 scale and
# zero point per group) and MXFP4-style fp4 (one 8-bit scale per 32 elements).
FORMAT_SCALE_OVERHEAD: dict[str, float] = {
    "int4": 4.0 / 128,
    "fp4": 1.0 / 32,
}

FORMATS = tuple(FORMAT_BYTES)
KV_FORMATS = ("bf16", "fp16", "fp8", "int8", "int4")
# what FP8 means on an accelerator: OCP e4m3fn (NVIDIA, MI355X) or e4m3fnuz (MI300-series gfx942:
# another exponent bias and NaN, so bytes written as one cannot be read as the other)
FP8_ENCODINGS = ("e4m3fn", "e4m3fnuz")


def check_format(fmt: str, flag: str = "format") -> str:
    """``fmt`` if it is a known numerical format, else a PdroofError naming ``flag``."""
    if fmt not in FORMAT_BYTES:
        from .errors import PdroofError

        raise PdroofError(f"{flag}: unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    return fmt


def format_bytes(fmt: str) -> float:
    """Bytes per stored element of ``fmt``, scales included."""
    return FORMAT_BYTES[fmt] + FORMAT_SCALE_OVERHEAD.get(fmt, 0.0)
