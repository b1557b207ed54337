"""Tables for fast vectorised lookups: piecewise-linear interpolation on a uniform grid, and a
kernel applied chunk by chunk so that large arrays make few whole-array temporaries."""

from __future__ import annotations

import numpy as np

_CHUNK = 16384  # points a chunk: its temporaries stay in cache


class UniformTable:
    """Piecewise-linear interpolation on the uniform grid ``t0 + i * step``, clamped at both ends: a
    constant-time index per point (``np.interp`` bisects, and is ~30x slower on 400k points)."""

    def __init__(self, t0: float, step: float, values: np.ndarray):
        self.values = np.ascontiguousarray(values, dtype=float)
        self.t0, self.step, self.n = t0, step, len(self.values)
        self.t1 = t0 + (self.n - 1) * step
        self.slopes = np.append(np.diff(self.values), 0.0)
        self.values.flags.writeable = self.slopes.flags.writeable = False

    def interpolate_inplace(self, s: np.ndarray) -> None:
        """Replace the abscissae in the 1-d float array ``s`` by the interpolated values (NaN gives an
        arbitrary finite value: callers mask it)."""
        s -= self.t0
        s *= 1.0 / self.step
        np.clip(s, 0.0, self.n - 1.0, out=s)
        with np.errstate(invalid="ignore"):
            i = s.astype(np.intp)
        s -= i
        tmp = self.slopes.take(i, mode="clip")
        s *= tmp
        s += self.values.take(i, mode="clip", out=tmp)

    def __call__(self, t) -> np.ndarray:
        s = np.array(t, dtype=float, ndmin=1)
        self.interpolate_inplace(s.reshape(-1))
        return s.reshape(np.shape(t))


def chunked(kernel, a: np.ndarray) -> np.ndarray:
    """``kernel(a_chunk, out_chunk)`` over cache-sized chunks of the flattened ``a``, into a new array of
    a's shape. Few whole-array temporaries: on 400k points these cost more than the arithmetic."""
    flat = np.ascontiguousarray(a).reshape(-1)
    out = np.empty(flat.shape)
    for lo in range(0, flat.size, _CHUNK):
        kernel(flat[lo : lo + _CHUNK], out[lo : lo + _CHUNK])
    return out.reshape(a.shape)
