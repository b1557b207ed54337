"""How one engine instance splits a model over its devices, in the vocabulary of the serving runs:
``tp`` attention tensor parallelism inside a replica, ``dp`` attention data-parallel replicas (DP
attention), and the routed experts split ``moe_tp`` ways each over ``moe_ep`` expert-parallel
groups. Devices per instance = tp·dp; for MoE models moe_tp·moe_ep equals it (by default moe_ep = 1,
moe_tp = tp·dp). An instance wider than the accelerator's scale-up domain spans nodes: its
collectives beyond the domain cross the scale-out network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..spec.schema import Record

MAX_DEGREE = 4096  # the most devices one degree of parallelism spans (tp, dp, the experts' split)


@dataclass(frozen=True)
class Parallelism:
    tp: int = 1
    dp: int = 1
    moe_tp: int | None = None  # None: tp·dp / moe_ep
    moe_ep: int = 1

    @property
    def devices(self) -> int:
        return self.tp * self.dp

    @property
    def experts_tp(self) -> int:
        return self.moe_tp if self.moe_tp is not None else max(1, self.devices // self.moe_ep)

    def for_model(self, model: Record) -> Parallelism:
        """The split as ``model`` runs it: a dense model has no experts to split."""
        if model.moe is None:
            return Parallelism(self.tp, self.dp, self.devices, 1)
        return Parallelism(self.tp, self.dp, self.experts_tp, self.moe_ep)


def scale_up_domain(acc: Record) -> int:
    """Devices in one scale-up domain (a node) of ``acc``: 1 where the spec gives none."""
    return acc.scale_up.domain_size if acc.scale_up and acc.scale_up.domain_size else 1


def host_devices(acc: Record) -> int:
    """Devices one host drives (one engine process group): the spec's, else the scale-up domain up
    to eight."""
    given = acc.scale_up.host_devices if acc.scale_up else None
    return int(given) if given else min(scale_up_domain(acc), 8)


def nodes(acc: Record, devices: int) -> int:
    """Scale-up domains (nodes) an instance of ``devices`` devices spans."""
    return math.ceil(devices / scale_up_domain(acc))


def degree_reason(par: Parallelism) -> str | None:
    """Which degree of ``par`` is out of range, named first (tp, dp, moe_tp, moe_ep: at least 1, at
    most MAX_DEGREE), or None."""
    for name in ("tp", "dp", "moe_tp", "moe_ep"):
        v = getattr(par, name)
        if v is not None and not 1 <= v <= MAX_DEGREE:
            return f"{name} must be at {'least 1' if v < 1 else f'most {MAX_DEGREE:,}'}, not {v}"
    return None


def split_reason(model: Record, acc: Record, par: Parallelism, given: bool = False) -> str | None:
    """Why ``par`` cannot run ``model`` on ``acc`` beyond what TP alone rules out (``tp_reason``), or
    None. A dense model ignores the experts' fields. ``given``: a measured run's split, taken as its
    source gives it (experts' split not required to cover the instance exactly)."""
    reason = degree_reason(par)
    if reason:
        return reason
    if par.devices > MAX_DEGREE:
        return f"tp {par.tp} × dp {par.dp} = {par.devices:,} devices in one instance exceeds {MAX_DEGREE:,}"
    if model.moe is not None:
        if model.moe.routed_experts % par.moe_ep:
            return f"moe_ep {par.moe_ep} does not divide the {model.moe.routed_experts} experts of {model.id}"
        if not given and par.experts_tp * par.moe_ep != par.devices:
            return (f"moe_tp {par.experts_tp} × moe_ep {par.moe_ep} must equal the instance's "
                    f"tp {par.tp} × dp {par.dp} = {par.devices} devices")
    if nodes(acc, par.devices) > 1 and not acc.scale_out_bytes_per_s:
        return (f"{par.devices} devices span {nodes(acc, par.devices)} nodes of {acc.id}, whose spec gives no "
                "scale-out NIC bandwidth")
    return None
