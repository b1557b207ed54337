"""Calls the generated numeric twins with named inputs, over scalars or whole numpy columns."""

from __future__ import annotations

import numpy as np

from . import _generated


def evaluate(group: str, inputs: dict, outputs: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Evaluate every expression of ``group`` (or only ``outputs``: a narrow twin computes just
    those where codegen made one); outputs are broadcast to the inputs' common shape (a constant
    expression comes back as a scalar otherwise)."""
    fn = _generated.NARROW.get((group, outputs), group) if outputs else group
    # numpy semantics throughout (x/0 is inf, not an exception), scalars included
    args = {name: np.asarray(inputs[name], dtype=float) for name in _generated.ARGS[fn]}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = getattr(_generated, fn)(**args)
    if outputs:
        out = {k: out[k] for k in outputs}
    shape = np.broadcast_shapes(*{a.shape for a in args.values()})  # each shape once: ~80 inputs, few shapes
    return {k: np.broadcast_to(np.asarray(v, dtype=float), shape) for k, v in out.items()}


def arguments(group: str, outputs: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The inputs ``evaluate(group, ..., outputs)`` reads (a caller that subsets its columns many
    times over need carry only these)."""
    return _generated.ARGS[_generated.NARROW.get((group, outputs), group) if outputs else group]
