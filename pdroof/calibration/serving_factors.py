"""The factors of a runtime profile that measured serving runs can determine: where each sits in
the profile document, its physical bounds, how it is searched, and the kind of run that determines
it; and the value a base profile gives each."""

from __future__ import annotations

from dataclasses import dataclass

from ..cost.inputs import scheduler_inputs
from ..cost.runtime import resolve
from ..spec.schema import Record
from ..spec.units import GIB


@dataclass(frozen=True)
class Factor:
    """One fitted quantity: where it sits in the profile document, its bounds, how it is searched
    (``step``: a multiplicative step for efficiencies, an additive one in the document's unit for
    latencies, µs, and for a memory amount, GiB) and the kind of run that determines it."""

    path: tuple[str, ...]
    lo: float
    hi: float
    step: float
    multiplicative: bool
    needs: str
    metric: int = 0  # what determines it: 0 TPOT (the decode step), 1 TTFT (the prefill and the request)

    @property
    def name(self) -> str:
        """``weights.fp8``, ``attention_decode``, ``step_latency_us``: the key under the profile entry."""
        return ".".join(self.path[2:] if self.path[0] == "profiles" else self.path[1:])


def factors_for(acc: Record, models: list[Record], weights: set[str], activations: set[str],
                base: Record) -> list[Factor]:
    """The factors serving runs of these models and formats can determine on ``acc``, from ``base``."""
    a = acc.id
    moe = any(m.moe is not None for m in models)
    mla = any(m.attention.kind == "mla" for m in models)
    gqa = any(m.attention.kind != "mla" for m in models)
    out = []
    for fmt in sorted(weights):  # dense GEMMs (attention projections, dense layers), then routed experts
        out.append(Factor(("profiles", a, "weights", fmt), 0.2, 0.95, 1.1, True,
                          "runs at one or a few clients, where a decode step streams the weights"))
        if moe:
            out.append(Factor(("profiles", a, "moe_weights", fmt), 0.1, 0.95, 1.1, True,
                              "runs at a few clients, where a decode step streams the experts it touches"))
    if gqa:
        out.append(Factor(("profiles", a, "attention_decode"), 0.1, 0.95, 1.1, True,
                          "runs with long outputs or contexts at many clients, where decode reads mostly KV"))
    if mla:
        out.append(Factor(("profiles", a, "attention_decode_mla"), 0.05, 0.95, 1.1, True,
                          "runs with long contexts at many clients, where decode reads mostly the latent KV"))
    for fmt in sorted(activations):
        out.append(Factor(("profiles", a, "compute", fmt), 0.1, 0.95, 1.1, True,
                          "runs with long prompts, where prefill is compute-bound", 1))
        if moe:
            out.append(Factor(("profiles", a, "moe_compute", fmt), 0.02, 0.95, 1.1, True,
                              "runs with long prompts, where the routed experts' prefill is compute-bound", 1))
    out.append(Factor(("structure", "step_latency_us"), 0.0, 5000.0, 250.0, False,
                      "runs at two or more concurrencies with otherwise equal steps"))
    # an engine whose scheduler prepares the next pass while this one runs (its base charges nothing
    # per sequence) has no such cost to fit: a fitted one would soak up whatever else grows with the batch
    if base.structure.sequence_latency_s > 0:
        out.append(Factor(("structure", "sequence_latency_us"), 0.0, 500.0, 25.0, False,
                          "runs at two or more concurrencies, where the passes carry different numbers of sequences"))
    out.append(Factor(("structure", "request_latency_us"), 0.0, 200000.0, 10000.0, False,
                      "runs at one or a few clients, where TTFT is one prefill", 1))
    out.append(Factor(("structure", "disaggregation_latency_us"), 0.0, 300000.0, 10000.0, False,
                      "disaggregated runs at one or a few clients, where TTFT is one prefill and the hand-off", 1))
    # the memory an engine keeps from the KV pool (activations, CUDA graphs): where the clients'
    # sequences do not all fit, requests wait for admission and TTFT follows it. Fitted as the engine
    # keeps it: the amount where it keeps one on acc (SGLang's reserved_mem), its share of the memory
    # the weights leave where it keeps that (TensorRT-LLM's free_gpu_memory_fraction), else its share
    # of the device (vLLM's gpu_memory_utilization)
    needs = "runs at many clients whose sequences do not all fit in KV memory, so requests wait for admission"
    reserve = scheduler_inputs(base, acc)
    if reserve["mem_reserve_bytes"] > 0:
        out.append(Factor(("structure", "memory_reserve_gib"), 0.5, 0.6 * acc.memory.capacity_bytes / GIB, 2.0, False,
                          needs, 1))
    elif reserve["mem_reserve_free"] > 0:
        out.append(Factor(("structure", "memory_reserve_free_fraction"), 0.02, 0.9, 1.15, True, needs, 1))
    else:
        out.append(Factor(("structure", "memory_reserve_fraction"), 0.02, 0.6, 1.15, True, needs, 1))
    return out


def base_value(f: Factor, rt: Record, acc: Record) -> float:
    """The value the base profile gives (as it resolves on ``acc``), in the document's units."""
    if f.path[1:] == ("memory_reserve_gib",):  # the amount it keeps on acc: its tier's where it has one
        return float(scheduler_inputs(rt, acc)["mem_reserve_bytes"]) / GIB
    if f.path[0] == "structure":  # latencies in µs in the document, seconds in the record
        value = float(getattr(rt.structure, f.path[1].replace("_us", "_s")))
        return value * 1e6 if f.path[1].endswith("_us") else value
    eff = resolve(rt, acc)
    key = f.path[2]
    if key == "moe_weights":  # as cost.inputs reads them: the dense factor where no expert one is given
        return float(eff.moe_weights.get(f.path[3], eff.weights[f.path[3]]))
    if key == "moe_compute":
        return float(eff.moe_compute.get(f.path[3], eff.compute[f.path[3]]))
    if len(f.path) == 4:
        return float(getattr(eff, key)[f.path[3]])
    value = getattr(eff, key)
    return float(value if value is not None else eff.attention_decode)
