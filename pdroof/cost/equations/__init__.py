"""The cost model as sympy expressions, each written once.

Modules by concern: ``roofline`` (the per-operation bound), ``forward`` (one forward pass,
operation by operation: prefill and decode share it), ``moe`` (expected experts touched),
``comm`` (collectives over the scale-up link), ``memory`` (capacity and largest batch),
``transfer`` (KV handoff between instances) and ``crossover`` (solved thresholds).

``GROUPS`` names every expression the numeric side uses; ``pdroof.cost.equations.codegen`` turns them
into ``pdroof/cost/_generated.py`` (numpy only), so the estimate path never imports sympy.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from ..symbols import SYMBOLS


@cache
def S(name: str) -> sp.Symbol:
    """The sympy symbol of a table entry (all inputs are positive reals)."""
    if name not in SYMBOLS:
        raise KeyError(f"{name} is not in pdroof.cost.symbols")
    return sp.Symbol(name, positive=True)


def groups() -> dict[str, dict[str, sp.Expr]]:
    """Every numeric output, grouped by the generated function that computes it."""
    from . import boundary, crossover, forward, kernels, memory, serving, transfer

    return {
        "kernels": kernels.expressions(),
        "prefill": forward.prefill(),
        "decode": forward.decode(),
        "mixed": forward.mixed(),
        "memory": memory.expressions(),
        "boundary": boundary.expressions(),
        "serving": serving.expressions(),
        "deployment": serving.deployment(),
        "load": {"ttft_s": serving.ttft_at_load(), "wait_budget": serving.wait_budget(),
                 "utilisation": S("instance_rate") * S("prefill_s"),
                 "decode_in_flight": S("instance_rate") * S("output_tokens") * S("step_s")},
        "transfer": transfer.expressions(),
        "crossover": crossover.expressions(),
    }
