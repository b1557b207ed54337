"""Named equations for display: every expression of every group, plus the crossovers."""

from __future__ import annotations

import sympy as sp

from ..symbols import SYMBOLS
from . import S, groups
from .roofline import roofline


def named(all_groups: dict | None = None) -> dict[str, sp.Expr]:
    """``group.output`` → expression, the roofline itself first (the crossovers are a group)."""
    out: dict[str, sp.Expr] = {
        "roofline.seconds": roofline(sp.Symbol("flops") / (S("peak_flops_per_s") * S("eff_compute")),
                                     sp.Symbol("bytes") / (S("mem_bytes_per_s") * S("eff_weights"))),
    }
    for group, exprs in (all_groups or groups()).items():
        for name, e in exprs.items():
            out[f"{group}.{name}"] = sp.sympify(e)
    return out


def texts(all_groups: dict | None = None) -> dict[str, dict[str, str]]:
    """Every named equation printed once, as ``pdroof equations`` shows it: unicode and LaTeX."""
    return {k: {"text": sp.pretty(e, use_unicode=True, wrap_line=False), "latex": latex(e)}
            for k, e in named(all_groups).items()}


def latex(expr: sp.Expr) -> str:
    names = {S(n): sp.Symbol(s.latex or n) for n, s in SYMBOLS.items() if s.latex}
    return sp.latex(expr.xreplace(names))
