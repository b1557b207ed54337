"""Named equations for display: every expression of every group, plus the crossovers."""

from __future__ import annotations

import sympy as sp

from ..symbols import SYMBOLS
from . import S, groups
from .roofline import roofline


def named() -> dict[str, sp.Expr]:
    """``group.output`` → expression, the roofline itself first and the crossovers last."""
    from . import crossover

    out: dict[str, sp.Expr] = {
        "roofline.seconds": roofline(sp.Symbol("flops") / (S("peak_flops_per_s") * S("eff_compute")),
                                     sp.Symbol("bytes") / (S("mem_bytes_per_s") * S("eff_weights"))),
    }
    for group, exprs in groups().items():
        for name, e in exprs.items():
            out[f"{group}.{name}"] = sp.sympify(e)
    for name, e in crossover.expressions().items():
        out[f"crossover.{name}"] = e
    return out


def latex(expr: sp.Expr) -> str:
    names = {S(n): sp.Symbol(s.latex or n) for n, s in SYMBOLS.items() if s.latex}
    return sp.latex(expr.xreplace(names))
