"""The runtime-profile spec kind: achieved efficiency belongs to an accelerator running a given
software stack.

A profile has a ``structure`` block (how the stack moves data between kernels: bytes per element
of its normalisation, residual, activation and cast passes; weight-only dequantisation cost) and
per-accelerator ``profiles`` of achieved fractions, fitted or sourced, each with its basis, plus a
``fallback`` block for accelerators and formats nothing else covers (``pdroof.cost.runtime``
resolves them).
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import SpecError
from .kinds import FMT, FRACTION, ID, TEXTS
from .schema import F, List, Map, MapOf, Num, Record, Str, validate
from .units import GB, GIB, MICRO
from .yamlio import read_yaml

BPE = Num(positive=False, minimum=0, doc="bytes per element")

DEVICE_TIER = Map(fields=(
    F("below_gib", Num(scale=GIB), attr="below_bytes", required=True,
      doc="devices whose memory (as the engine sees it) is below this many GiB fall in the tier"),
    F("names_containing", TEXTS, default=(),
      doc="... and so do devices whose id or name contains one of these (case-insensitive)"),
    F("chunk_tokens", Num(integer=True), doc="most tokens in one forward pass there"),
    F("max_sequences", Num(integer=True), doc="most sequences the engine runs at once there"),
    F("memory_reserve_gib", Num(scale=GIB, positive=False, minimum=0), attr="memory_reserve_bytes",
      doc="memory the engine keeps for itself there, whatever the device's size"),
    F("dp_attention_reserve_gib", Num(scale=GIB, positive=False, minimum=0), attr="dp_attention_reserve_bytes",
      doc="... and what it keeps besides for each DP-attention replica of an instance there"),
    F("source", Str(), required=True),
))


def _tiers_in_order(st: Record):
    bounds = [t.below_bytes for t in st.smaller_devices]
    for i in range(1, len(bounds)):
        if bounds[i] <= bounds[i - 1]:
            return (f"smaller_devices[{i}].below_gib", "tiers go smallest first: this one is not above the one before")
    return None


# structure keys smaller_devices tiers may replace
TIERED = ("chunk_tokens", "max_sequences", "memory_reserve_gib", "dp_attention_reserve_gib")
# the ways a stack states its memory reserve: one stated replaces the others it inherits
RESERVES = ("memory_reserve_fraction", "memory_reserve_gib", "memory_reserve_free_fraction")
SHARES = ("memory_reserve_fraction", "memory_reserve_free_fraction")  # ... those that are shares, not amounts

STRUCTURE = Map(checks=(_tiers_in_order,), fields=(
    F("norm_bytes_per_element", BPE, required=True, doc="bytes moved per hidden element by one RMSNorm"),
    F("residual_bytes_per_element", BPE, required=True, doc="bytes moved per hidden element by one residual add"),
    F("activation_fn_bytes_per_element", BPE, required=True, doc="bytes per FFN element of the gated activation"),
    F("activation_cast_bytes_per_element", BPE, required=True,
      doc="bytes per GEMM input element of a separate cast to 8-bit activations (0 when fused)"),
    F("weight_only_dequant_overhead", Num(positive=False, minimum=0), required=True,
      doc="extra GEMM compute time fraction when weights are narrower than activations (W4A16)"),
    F("memory_reserve_fraction", Num(positive=False, minimum=0, maximum=0.9), required=True,
      doc="fraction of HBM the stack keeps for itself (context, allocator, graphs) beside its activation "
          "workspace, as vLLM's gpu_memory_utilization; a share that includes the activations (SGLang's "
          "--mem-fraction-static) is stated as memory_reserve_gib"),
    F("memory_reserve_gib", Num(scale=GIB, positive=False, minimum=0), attr="memory_reserve_bytes", default=0.0,
      doc="memory the stack keeps for itself whatever the device's size, its activation workspace included "
          "(SGLang's reserved_mem), where it reserves so"),
    F("memory_reserve_free_fraction", Num(positive=False, minimum=0, maximum=0.9), default=0.0,
      doc="fraction of the memory the weights and the activation workspace leave that the stack keeps, where "
          "it reserves so (TensorRT-LLM's KV pool is free_gpu_memory_fraction of that memory); the reserve is "
          "the largest of the three, with the workspace"),
    F("dp_attention_reserve_gib", Num(scale=GIB, positive=False, minimum=0), attr="dp_attention_reserve_bytes",
      default=0.0,
      doc="memory the stack keeps besides for each DP-attention replica of an instance (dp > 1), on every "
          "device of it (SGLang's reserved_mem grows by cuda_graph_max_bs x dp_size x 3 MiB, 4.5 above 300 "
          "graphs); a share of the device stated instead (memory_reserve_fraction or "
          "memory_reserve_free_fraction) replaces it too"),
    F("chunk_tokens", Num(integer=True), required=True, doc="most tokens in one forward pass"),
    F("max_sequences", Num(integer=True),
      doc="most sequences the engine runs at once (vLLM's max_num_seqs, TensorRT-LLM's max_batch_size), "
          "per engine instance or attention-DP replica; absent: KV memory alone bounds them"),
    F("smaller_devices", List(DEVICE_TIER), default=(),
      doc="the engine's defaults on devices of less memory, smallest first: the first tier a device falls "
          "in replaces the chunk_tokens, max_sequences, memory_reserve_gib and dp_attention_reserve_gib it gives"),
    F("step_latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="step_latency_s", required=True,
      doc="fixed cost per forward pass outside the layers: scheduling, sampling, graph launch"),
    F("sequence_latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="sequence_latency_s", default=0.0,
      doc="cost per sequence in a forward pass outside the layers, where the engine does not overlap it with "
          "the previous pass: its per-request scheduling, input preparation and sampling"),
    F("request_latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="request_latency_s", default=0.0,
      doc="time a request spends outside the forward passes before its first token reaches the client: "
          "the server receiving and tokenising it, handing it to the scheduler, streaming the token back"),
    F("disaggregation_latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="disaggregation_latency_s",
      default=0.0,
      doc="time a disaggregated request spends beyond an aggregated one's outside the forward passes and the "
          "KV transfer: the router's dispatch to both pools, the decode side's pre-allocation handshake with "
          "the prefill side, and the decode side's pickup of the transferred request before its first token"),
    F("ep_imbalance_32", Num(minimum=1), default=1.0,
      doc="routed tokens of the busiest of 32 expert-parallel groups over the mean, as the stack places "
          "experts on real traffic (1: balanced); other group counts scale its excess by √(ln e / ln 32)"),
    F("kernels_per_layer", Num(integer=True), required=True,
      doc="kernel boundaries per layer, of which the per-layer latency is the cost"),
    F("cast_kernels_per_layer", Num(integer=True, positive=False, minimum=0), default=0,
      doc="extra kernels per layer when activations are quantised by separate casts"),
    F("default_kv", MapOf(FMT, key=FMT), default={},
      doc="KV-cache format the stack uses for each weight format when a run does not say"),
    F("kv_reservation", Str(choices=("used", "full")), default="used",
      doc="KV a running sequence holds: what it has used so far, or its whole length from admission"),
    F("prefill_schedule", Str(choices=("mixed", "prefill_first")), default="mixed",
      doc="how waiting prompts share the engine with running decodes: in the same steps under the "
          "token budget (mixed), or ahead of them, decodes pausing until no prompt waits (prefill_first)"),
    F("arrivals", Str(choices=("synchronised", "drifting")), default="synchronised",
      doc="how a closed-loop benchmark's prompts of fixed lengths reach the scheduler: together, the "
          "clients of a wave staying in step (synchronised), or one by one, an idle engine starting each "
          "with the few that arrived meanwhile, so that the waves fall apart as where lengths vary (drifting)"),
    F("disaggregated_admission", Str(choices=("next_pass", "own_pass")), default="next_pass",
      doc="how a disaggregated decode instance takes in requests whose KV has arrived: into its running "
          "batch's next pass (next_pass), or in a pass of their own, which under DP attention the "
          "replica's running sequences sit out (own_pass: SGLang's prebuilt batch)"),
    F("dp_attention_chunk", Str(choices=("whole", "divided")), default="whole",
      doc="the prompt tokens an attention-DP replica's pass takes: the whole chunk_tokens each (whole), or "
          "chunk_tokens divided among the instance's DP replicas (divided: SGLang's chunked_prefill_size // dp_size)"),
    F("dp_prompt_gather", Str(choices=("all_gather", "all_reduce")), default="all_gather",
      doc="how a pass that carries prompt tokens moves the DP-attention replicas' tokens around experts split "
          "over them: an all-gather before and a reduce-scatter after (all_gather), or an all-reduce of the "
          "gathered buffer before and another after, twice the bytes (all_reduce: SGLang's SUM_LEN mode)"),
    F("note", Str()),
))

ALLREDUCE_LARGE = Map(fields=(
    F("above_mib", Num(scale=2**20), attr="above_bytes", required=True,
      doc="messages larger than this (MiB) run the second algorithm"),
    F("latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="latency_s", required=True),
    F("link", FRACTION, required=True, doc="its fraction of the scale-up link bandwidth (ring term)"),
))


def _parties_once(r: Record):
    seen = [item.parties for item in r.allreduce_parties]
    for i, n in enumerate(seen):
        if n in seen[:i]:
            return (f"allreduce_parties[{i}].parties", f"{n} parties given twice")
    return None


PROFILE_EFFICIENCY = Map(checks=(_parties_once,), fields=(
    F("compute", MapOf(FRACTION, key=FMT), default={}, doc="GEMM efficiency per compute format"),
    F("gemm_half_rows", MapOf(Num(positive=False, minimum=0), key=FMT), default={},
      doc="per compute format: GEMM rows at which compute efficiency is half its large-GEMM value"),
    F("weights", MapOf(FRACTION, key=FMT), default={},
      doc="HBM efficiency streaming weights, per weight format (small-M GEMMs)"),
    F("moe_compute", MapOf(FRACTION, key=FMT), default={},
      doc="per compute format: routed experts' grouped-GEMM efficiency at large batches (default: compute)"),
    F("moe_half_width", MapOf(Num(positive=False, minimum=0), key=FMT), default={},
      doc="per compute format: columns of one expert per device at which moe_compute is half its value "
          "(moe_compute then stands for wide experts; 0 or absent: no dependence on the split)"),
    F("moe_weights", MapOf(FRACTION, key=FMT), default={},
      doc="per weight format: HBM efficiency streaming routed experts' weights (default: weights)"),
    F("moe_latency_us", MapOf(Num(scale=MICRO, positive=False, minimum=0), key=FMT), attr="moe_latency_s",
      default={}, doc="per weight format: fixed time of a routed-expert layer beyond its roofline "
      "(routing, permutation, grouped-GEMM launches; default: three kernels' latency)"),
    F("memory", FRACTION, doc="HBM efficiency of elementwise passes and copies"),
    F("attention_prefill", FRACTION, doc="prefill attention FLOP efficiency at long prompts"),
    F("attention_prefill_half_tokens", Num(positive=False, minimum=0),
      doc="prompt length at which prefill attention reaches half its efficiency"),
    F("attention_decode", FRACTION, doc="decode attention KV-read bandwidth efficiency"),
    F("link", FRACTION, doc="scale-up collective bandwidth efficiency (the experts' all-to-all; the all-reduce "
      "where allreduce_link is absent)"),
    F("allreduce_link", FRACTION, doc="scale-up bandwidth efficiency of the stack's own all-reduce kernel, up to "
      "allreduce_large's size (absent: link)"),
    F("layer_latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="layer_latency_s",
      doc="fixed cost per layer per forward pass"),
    F("kernel_latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="kernel_latency_s",
      doc="fixed time of each kernel on top of its roofline: launch, ramp-up and tail"),
    F("allreduce_latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="allreduce_latency_s",
      doc="per-call latency of the stack's all-reduce at small messages (its one-shot algorithm)"),
    F("allreduce_large", ALLREDUCE_LARGE, doc="the stack's all-reduce above its own kernel's largest message "
      "(NCCL's ring or NVLS): the size it switches at, its per-call latency and link efficiency (absent: the own "
      "kernel's latency and efficiency at every size)"),
    F("allreduce_parties", List(Map(fields=(
        F("parties", Num(integer=True, minimum=2), required=True, doc="devices in the all-reduce"),
        F("latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="latency_s", required=True,
          doc="as allreduce_latency_us, at this party count"),
        F("link", FRACTION, required=True, doc="as allreduce_link, at this party count"),
        F("large", ALLREDUCE_LARGE, doc="as allreduce_large, at this party count (absent: the own kernel at every "
          "size)"),
        F("source", Str()),
    ))), default=(), doc="the all-reduce measured at other party counts than the entry's own factors "
       "(allreduce_latency_us, allreduce_link, allreduce_large: its largest TP measured): an all-reduce among "
       "exactly this many devices takes these instead (the algorithms and their efficiency change with it: "
       "NVLS at eight H100s, not at two)"),
    F("alltoall_latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="alltoall_latency_s",
      doc="per-call latency of the stack's expert all-to-all (one dispatch or combine) at small batches"),
    F("attention_decode_half_mb", Num(scale=1e6, positive=False, minimum=0), attr="attention_decode_half_bytes",
      doc="KV read per layer and device (MB) at which decode attention reaches half its efficiency"),
    F("attention_decode_mla", FRACTION, doc="decode attention KV-read efficiency of absorbed MLA kernels"),
    F("attention_decode_mla_half_mb", Num(scale=1e6, positive=False, minimum=0), attr="attention_decode_mla_half_bytes",
      doc="as attention_decode_half_mb, for absorbed MLA kernels"),
    F("host_link", Map(fields=(
        F("latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="latency_s", required=True),
        F("gb_per_s", Num(scale=GB), attr="bytes_per_s", required=True),
    )), doc="fitted per-copy latency α and bandwidth β of device<->host copies"),
    F("family", Str(), doc="silicon family of the accelerator measured (accelerator spec 'family'): "
      "accelerators of that family without an entry take its per-format factors, conservatively"),
    F("fit", MapOf(Num(positive=False, minimum=0), doc="fit error per section"), default={},
      doc="fit error per section (rms relative error)"),
    F("source", Str()),
    F("note", Str()),
))

# What an accelerator the profile does not cover takes from its fallback (cost.runtime.resolve):
# a profile that validates must give all of it, or it would fail later, mid-command
FALLBACK_SCALARS = {"memory": "memory", "attention_prefill": "attention_prefill",  # YAML key -> attribute
                    "attention_prefill_half_tokens": "attention_prefill_half_tokens",
                    "attention_decode": "attention_decode", "link": "link", "layer_latency_us": "layer_latency_s"}
FALLBACK_FORMATS = {"compute": ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"),
                    "weights": ("bf16", "fp16", "fp8", "int8", "int4", "fp4")}


def _complete_fallback(r: Record):
    fb = r.fallback
    for key, attr in FALLBACK_SCALARS.items():
        if fb.get(attr) is None:
            return (f"fallback.{key}", "missing: accelerators the profile has no entry for take it from here")
    for key, formats in FALLBACK_FORMATS.items():
        missing = [f for f in formats if f not in (fb.get(key) or {})]
        if missing:
            return (f"fallback.{key}.{missing[0]}", "missing: an accelerator the profile has no entry for "
                                                    f"takes each format's {key} factor from here")
    return None


# Factors measured per accelerator only: an accelerator without an entry never takes them
PER_ENTRY_ONLY = ("host_link", "allreduce_large", "allreduce_parties")


def _no_per_entry_fallback(r: Record):
    for key in PER_ENTRY_ONLY:
        if r.fallback.get(key) not in (None, ()):  # allreduce_parties defaults to no items
            return (f"fallback.{key}", "per accelerator only: give it in that accelerator's profile entry "
                                      "(the fallback would be ignored)")
    return None


RUNTIME = Map(
    title="runtime",
    checks=(_complete_fallback, _no_per_entry_fallback),
    fields=(
        F("id", ID, required=True),
        F("name", Str(), required=True),
        F("inherits", ID, doc="runtime id whose entries this profile keeps unless it gives its own "
                              "(maps merge key by key, so a profile entry may override one factor)"),
        F("description", Str()),
        F("structure", STRUCTURE, required=True),
        F("fallback", PROFILE_EFFICIENCY, required=True,
          doc="factors for accelerators (or formats) that neither the profile nor the spec covers"),
        F("profiles", MapOf(PROFILE_EFFICIENCY, key=ID), default={}, doc="per accelerator id"),
        F("engine", Str(), doc="the serving engine whose runs this profile predicts (a run's 'engine'); "
                               "default: the profile's id"),
        F("up_to_version", Str(), doc="the newest engine version this profile stands for: a run of the "
                                      "engine at this version or older takes it over the profile without one"),
        F("provenance", MapOf(Str()), default={}, doc="how the profile was made: input, date, tool"),
        F("sources", TEXTS, default=()),
        F("notes", TEXTS, default=()),
    ),
)


_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?(?:[.-]?(rc|post|dev)\.?(\d*))?")
_TIER = {"dev": 0, "rc": 1, None: 2, "post": 3}


def version_key(text: str | None) -> tuple | None:
    """An engine version (``0.5.1.post1``, ``1.2.0rc2``, or a container tag such as
    ``lmsysorg/sglang:v0.5.12-rocm700-mi30x`` or ``rocm/vllm:rocm6.4.1_vllm_0.10.1``) as a tuple
    that orders releases: dev < rc < release < post. The first dotted number not glued to a word
    (a ``v`` prefix aside: ``rocm6.4.1``, ``cu12.8`` and ``py3.12`` name other software); None where
    the text holds no version."""
    text = text or ""
    for m in _VERSION.finditer(text):
        word = re.search(r"[A-Za-z]*$", text[:m.start()]).group()  # the letters the number is glued to
        if word not in ("", "v", "V"):
            continue
        major, minor, patch, tier, n = m.groups()
        return int(major), int(minor), int(patch or 0), _TIER[tier], int(n or 0)
    return None


def merged(parent: dict, child: dict) -> dict:
    """``child`` over ``parent``: mappings merge key by key, anything else the child gives wins."""
    out = dict(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def inherit(parent: dict, child: dict) -> dict:
    """A runtime document ``child`` over the (merged) document it inherits: maps merge key by key,
    and what the child's own structure states holds over the parent's tiers (``stated_over_tiers``).
    Every level of an ``inherits`` chain goes through this."""
    return stated_over_tiers(merged(parent, child), child.get("structure"))


def stated_over_tiers(doc: dict, stated) -> dict:
    """``doc`` where the structure keys ``stated`` gives hold on every device: a profile's own budget,
    sequence limit or reserve is not replaced on smaller devices by the tiers it inherits, and a
    reserve it states (a share of the device, an amount, or a share of the memory left) replaces the
    one it inherits whole."""
    stated = stated if isinstance(stated, dict) else {}
    st = doc.get("structure")
    if not isinstance(st, dict) or not stated:
        return doc
    st = dict(st)
    if any(k in stated for k in RESERVES):
        for k in RESERVES:
            if k not in stated:
                st[k] = 0
        # as if the amount were stated too: the smaller devices' tiers give it no amount of their own
        stated = {**stated, "memory_reserve_gib": st["memory_reserve_gib"]}
        if any(k in stated for k in SHARES) and "dp_attention_reserve_gib" not in stated:
            # a share of the device stated (SGLang's --mem-fraction-static) replaces the heuristic whole
            st["dp_attention_reserve_gib"] = 0
            stated = {**stated, "dp_attention_reserve_gib": 0}
    if "smaller_devices" not in stated and isinstance(st.get("smaller_devices"), list):
        drop = [k for k in TIERED if k in stated]
        st["smaller_devices"] = [{k: v for k, v in t.items() if k not in drop} if isinstance(t, dict) else t
                                 for t in st["smaller_devices"]]
    return {**doc, "structure": st}


def load_runtime(path: str | Path, parent_data=None) -> Record:
    """A runtime profile; ``parent_data(id, file)`` returns the merged raw data of the profile it
    inherits from (the catalogue resolves ids), required when the file has ``inherits``."""
    data = read_yaml(path)
    if isinstance(data, dict) and data.get("inherits") is not None:
        if parent_data is None:
            raise SpecError(str(path), "inherits", "a profile that inherits must be loaded through a catalogue")
        data = inherit(parent_data(data["inherits"], str(path)), data)
    rt = validate(RUNTIME, data, str(path))
    if rt.up_to_version is not None and version_key(rt.up_to_version) is None:
        raise SpecError(str(path), "up_to_version", f"{rt.up_to_version!r} is not a version (e.g. 0.5.1.post1)")
    return rt
