"""The equations as ``pdroof equations`` prints them (unicode and LaTeX), written with the numeric
twin by ``python -m pdroof.cost.equations.codegen``, so that showing them needs no sympy."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path


@cache
def printed() -> dict[str, dict[str, str]]:
    """``group.output`` → {"text": unicode form, "latex": LaTeX form}, the roofline first."""
    return json.loads((Path(__file__).parent / "_equations.json").read_text(encoding="utf-8"))
