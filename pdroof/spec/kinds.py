"""Spec kinds (accelerator, KV path, residency tier, model) as strict schemas, and their loading.

Architecture only in model files: precision, parallelism and batch are design choices.
"""

from __future__ import annotations

from pathlib import Path

from .schema import Bool as B
from .schema import F, List, Map, MapOf, Num, Record, Str, validate
from .units import FORMATS, FP8_ENCODINGS, GB, GIB, MICRO, TERA
from .yamlio import read_yaml

ID = Str(pattern=r"[a-z0-9][a-z0-9._-]*", doc="lower-case identifier")
FMT = Str(choices=FORMATS)
TEXTS = List(Str())
FRACTION = Num(maximum=1.0, doc="fraction of peak, 0 < x <= 1")


def _common_tail() -> tuple[F, ...]:
    return (
        F("sources", TEXTS, default=(), doc="source keys or URLs for this file's numbers"),
        F("notes", TEXTS, default=(), doc="disagreements between sources, unknowns, caveats"),
    )


# --------------------------------------------------------------------------- accelerator

def _one_capacity(rec: Record):
    if ("capacity_gib_bytes" in rec) == ("capacity_gb_bytes" in rec):
        return ("capacity_gib", "give exactly one of capacity_gib (binary) and capacity_gb (decimal)")
    nominal = rec.capacity_gib_bytes or rec.capacity_gb_bytes
    if "visible_bytes" in rec and rec.visible_bytes > nominal:
        return ("visible_gib", f"exceeds the nominal capacity ({nominal / GIB:g} GiB)")
    return None


def _usable_capacity(values: dict) -> float:
    """Bytes the runtime can allocate: what the device reports where a source gives it, else the
    nominal capacity."""
    return values["visible_bytes"] or values["capacity_gib_bytes"] or values["capacity_gb_bytes"]


def _activations_have_peaks(rec: Record):
    peaks = rec.dense_flops_per_s
    for fmt in rec.precision_paths.activations:
        if fmt not in peaks:
            return ("precision_paths.activations", f"{fmt} has no dense_tflops.{fmt} peak to run at")
    return None


EFFICIENCY = Map(
    title="efficiency",
    doc="Achieved fraction of peak on this accelerator; mark each value's basis (measured/assumed).",
    fields=(
        F("compute", MapOf(FRACTION, key=FMT), default={}, doc="GEMM efficiency per compute format"),
        F("memory", FRACTION, doc="achieved / peak HBM bandwidth for streaming reads"),
        F("attention_prefill", FRACTION, doc="prefill attention FLOP efficiency"),
        F("attention_decode", FRACTION, doc="decode attention bandwidth efficiency"),
        F("layer_latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="layer_latency_s",
          doc="fixed cost per layer per forward pass (kernel launches)"),
    ),
)

ACCELERATOR = Map(
    title="accelerator",
    fields=(
        F("id", ID, required=True),
        F("name", Str(), required=True),
        F("vendor", Str(), required=True),
        F("family", Str(), required=True, doc="vendor architecture family, e.g. nvidia-hopper"),
        F("form_factor", Str(choices=("sxm", "oam", "pcie", "superchip", "other")),
          doc="module kind: only PCIe cards of different kinds can share one host"),
        F("memory", Map(fields=(
            F("capacity_gib", Num(scale=GIB), attr="capacity_gib_bytes",
              doc="device memory in binary GiB, as HBM and GDDR parts are built (an H100's 80 GB is 80 GiB)"),
            F("capacity_gb", Num(scale=GB), attr="capacity_gb_bytes",
              doc="device memory in decimal GB (10^9 bytes), for specs that give it so"),
            F("visible_gib", Num(scale=GIB), attr="visible_bytes",
              doc="memory the device reports to the runtime (torch total_memory, nvidia-smi/rocm-smi total)"),
            F("bandwidth_gb_per_s", Num(scale=GB), attr="bandwidth_bytes_per_s", required=True,
              doc="decimal GB/s, as vendors quote bandwidths"),
            F("type", Str()),
        ), checks=(_one_capacity,), derived=(("capacity_bytes", _usable_capacity),)), required=True),
        F("dense_tflops", Map(fields=tuple(
            F(fmt, Num(scale=TERA, doc=f"dense {fmt} peak (TOPS for integers)")) for fmt in FORMATS
        ), doc="dense peaks; absent means the silicon lacks the format"), attr="dense_flops_per_s",
          required=True),
        F("precision_paths", Map(fields=(
            F("weights", List(FMT, min_items=1, unique=True), required=True),
            F("activations", List(FMT, min_items=1, unique=True), required=True),
            F("kv", List(FMT, min_items=1, unique=True), required=True),
            F("fp8_encoding", Str(choices=FP8_ENCODINGS), default="e4m3fn",
              doc="the bits FP8 means here: OCP e4m3fn, or e4m3fnuz (MI300-series gfx942); KV in one cannot be "
                  "read as the other"),
            F("note", Str()),
        ), doc="formats with a complete executable software path (kernels + runtime) per role"),
          required=True),
        F("efficiency", EFFICIENCY, doc="default efficiency factors when no runtime profile has this device"),
        F("scale_up", Map(fields=(
            F("kind", Str(), required=True, doc="e.g. nvlink4, xgmi, hccs, none"),
            F("topology", Str(choices=("switch", "full_mesh")), default="switch",
              doc="switch: any group of devices shares the full per-device bandwidth (NVSwitch); full_mesh: "
                  "one direct link per device pair, so t devices of a domain of n use (t-1)/(n-1) of it"),
            F("gb_per_s_per_direction", Num(scale=GB), attr="bandwidth_bytes_per_s",
              doc="per device, all its scale-up links together"),
            F("latency_us", Num(scale=MICRO), attr="latency_s",
              doc="per step of a ring collective (one hop), one value per link kind"),
            F("domain_size", Num(integer=True), doc="devices in one scale-up domain"),
            F("host_devices", Num(integer=True), doc="devices one host (one OS, one engine process group) drives; "
                                                     "default the domain, at most 8"),
        ))),
        F("host_link", Map(fields=(
            F("pcie_gen", Num(integer=True)),
            F("gb_per_s_per_direction", Num(scale=GB), attr="bandwidth_bytes_per_s"),
        ))),
        F("gpudirect_rdma", B(), default=False, doc="NIC can read/write device memory directly"),
        F("scale_out_nic_gbit_per_s", Num(scale=GB / 8), attr="scale_out_bytes_per_s"),
        F("host_memory_gb", Num(scale=GB), attr="host_memory_bytes", doc="host DRAM per device"),
        F("power_w", Num()),
        F("price_usd_per_hour", Num(), doc="on-demand price per device-hour (source and date in note)"),
        *_common_tail(),
    ),
    checks=(_activations_have_peaks,),
)


# --------------------------------------------------------------------------- KV path and tier

PATH_KINDS = ("nvlink", "scale_up", "rdma", "host_staged", "tcp", "storage")

KV_PATH = Map(
    title="kv_path",
    fields=(
        F("id", ID, required=True),
        F("name", Str(), required=True),
        F("kind", Str(choices=PATH_KINDS), required=True),
        F("bandwidth_gb_per_s", Num(scale=GB), attr="bandwidth_bytes_per_s", required=True,
          doc="per direction, per device pair"),
        F("latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="latency_s", required=True,
          doc="fixed cost per message"),
        F("efficiency", FRACTION, required=True, doc="achieved / nominal bandwidth for large messages"),
        F("cross_node", B(), required=True),
        F("cross_vendor", B(), required=True),
        F("scale_up_kind", Str(),
          doc="for nvlink and scale_up paths: the accelerator scale_up.kind required on both sides"),
        F("requires_gpudirect", B(), default=False, doc="both sides must support GPU-direct RDMA"),
        *_common_tail(),
    ),
)

TIER_KINDS = ("hbm", "host_dram", "nvme", "remote")

KV_TIER = Map(
    title="kv_tier",
    fields=(
        F("id", ID, required=True),
        F("name", Str(), required=True),
        F("kind", Str(choices=TIER_KINDS), required=True),
        F("capacity_gb", Num(scale=GB), attr="capacity_bytes",
          doc="capacity per device; null for HBM (the accelerator's own)"),
        F("bandwidth_gb_per_s", Num(scale=GB), attr="bandwidth_bytes_per_s",
          doc="per device read bandwidth; null for HBM (the accelerator's own)"),
        F("latency_us", Num(scale=MICRO, positive=False, minimum=0), attr="latency_s", required=True),
        *_common_tail(),
    ),
)


# --------------------------------------------------------------------------- model

def _heads_divisible(rec: Record):
    if rec.attention_heads % rec.kv_heads:
        return ("kv_heads", f"attention_heads {rec.attention_heads} is not divisible by kv_heads {rec.kv_heads}")
    att = rec.attention
    if att.kind == "mla" and att.mla is None:
        return ("attention.mla", "attention kind mla needs an mla block")
    if att.kind != "mla" and rec.head_dim is None:
        return ("head_dim", "missing required field (needed unless attention kind is mla)")
    if att.kind == "mha" and rec.kv_heads != rec.attention_heads:
        return ("kv_heads", "attention kind mha needs kv_heads == attention_heads")
    mixed = [name for name in ("sliding_window", "linear_attention", "sparse_attention") if name in att]
    if len(mixed) > 1:
        return (f"attention.{mixed[1]}", f"cannot be combined with attention.{mixed[0]} (not modelled)")
    lin = att.linear_attention
    if lin is not None and lin.value_heads % lin.key_heads:
        return ("attention.linear_attention.value_heads",
                f"{lin.value_heads} is not divisible by key_heads {lin.key_heads}")
    if att.sparse_attention is not None and (att.kind != "mla" or att.mla is None or not att.mla.q_lora_rank):
        return ("attention.sparse_attention", "the indexer reads MLA's query latent: needs kind mla with q_lora_rank")
    moe = rec.moe
    if moe is not None:
        if moe.experts_per_token > moe.routed_experts:
            return ("moe.experts_per_token", "exceeds moe.routed_experts")
        if moe.dense_layers >= rec.layers:
            return ("moe.dense_layers", "must be fewer than layers")
        if moe.dense_layers and rec.ffn_size is None:
            return ("ffn_size", "missing required field (needed for the moe.dense_layers dense layers)")
    elif rec.ffn_size is None:
        return ("ffn_size", "missing required field (needed for a dense model)")
    return None


MODEL = Map(
    title="model",
    fields=(
        F("id", ID, required=True),
        F("name", Str(), required=True),
        F("hf_repo", Str()),
        # bounds far beyond any published model: a typo'd exponent is refused, not computed
        F("layers", Num(integer=True, maximum=10_000), required=True),
        F("hidden_size", Num(integer=True, maximum=1_000_000), required=True),
        F("attention_heads", Num(integer=True, maximum=100_000), required=True),
        F("kv_heads", Num(integer=True, maximum=100_000), required=True),
        F("head_dim", Num(integer=True, maximum=100_000)),
        F("ffn_size", Num(integer=True, maximum=10_000_000), doc="dense FFN intermediate size (dense layers)"),
        F("vocab_size", Num(integer=True, maximum=100_000_000), required=True),
        F("tied_embeddings", B(), default=False),
        F("max_context", Num(integer=True, maximum=10**9), doc="maximum positions (tokens)"),
        F("attention", Map(fields=(
            F("kind", Str(choices=("gqa", "mha", "mla")), required=True),
            F("qkv_bias", B(), default=False),
            F("o_bias", B(), default=False),
            F("qk_norm", B(), default=False, doc="per-head RMSNorm on q and k"),
            F("sinks", B(), default=False, doc="learned attention-sink logit per head"),
            F("mla", Map(fields=(
                F("kv_lora_rank", Num(integer=True), required=True),
                F("q_lora_rank", Num(integer=True)),
                F("qk_rope_head_dim", Num(integer=True), required=True),
                F("qk_nope_head_dim", Num(integer=True), required=True),
                F("v_head_dim", Num(integer=True), required=True),
            ))),
            F("output_gate", B(), default=False,
              doc="the query projection also gives a per-head, per-channel gate on the attention output "
                  "(Qwen3-Next/Qwen3.5 gated attention: q_proj is twice as wide)"),
            F("sliding_window", Map(fields=(
                F("window_tokens", Num(integer=True), required=True),
                F("pattern", List(Str(choices=("sliding", "full")), min_items=1), required=True,
                  doc="layer kinds repeated cyclically from layer 0"),
            ))),
            F("linear_attention", Map(fields=(
                F("pattern", List(Str(choices=("linear", "full")), min_items=1), required=True,
                  doc="layer kinds repeated cyclically from layer 0: linear layers keep a fixed-size recurrent "
                      "state per sequence instead of a KV cache, full layers are the attention described above"),
                F("key_heads", Num(integer=True), required=True, doc="query/key heads (linear_num_key_heads)"),
                F("value_heads", Num(integer=True), required=True,
                  doc="value heads (linear_num_value_heads): one key_head_dim x value_head_dim state each"),
                F("key_head_dim", Num(integer=True), required=True),
                F("value_head_dim", Num(integer=True), required=True),
                F("conv_kernel", Num(integer=True), required=True,
                  doc="width of the short causal convolution on q, k and v (linear_conv_kernel_dim); its "
                      "last conv_kernel - 1 inputs are kept per sequence"),
                F("state_format", FMT, default="fp32",
                  doc="format of the recurrent state (Qwen3.5 configs: mamba_ssm_dtype float32)"),
                F("conv_format", FMT, default="bf16", doc="format of the convolution window (the model dtype)"),
            ), doc="Gated DeltaNet-style linear attention (kind gives the full layers' attention)")),
            F("sparse_attention", Map(fields=(
                F("index_heads", Num(integer=True), required=True, doc="indexer heads (index_n_heads)"),
                F("index_head_dim", Num(integer=True), required=True, doc="indexer head size (index_head_dim)"),
                F("topk_tokens", Num(integer=True), required=True,
                  doc="past tokens each query attends to (index_topk)"),
                F("key_format", FMT, default="fp8", doc="format of the indexer's cached key (one per token)"),
                F("scale_block", Num(integer=True), default=128,
                  doc="key elements per fp32 scale stored beside the cached key"),
            ), doc="DeepSeek Sparse Attention: a lightning indexer scores every past token and each query "
                   "attends to the top topk_tokens of them (every layer)")),
        )), required=True),
        F("position", Map(fields=(
            F("kind", Str(choices=("rope", "none")), required=True),
            F("theta", Num()),
            F("scaling", Str()),
            F("factor", Num()),
            F("original_max_context", Num(integer=True)),
        ))),
        F("moe", Map(fields=(
            F("routed_experts", Num(integer=True, maximum=1_000_000), required=True),
            F("experts_per_token", Num(integer=True, maximum=1_000_000), required=True),
            F("shared_experts", Num(integer=True, positive=False, minimum=0), default=0),
            F("expert_ffn_size", Num(integer=True), required=True),
            F("dense_layers", Num(integer=True, positive=False, minimum=0), default=0,
              doc="leading layers with a dense FFN (ffn_size) instead of experts"),
            F("router_bias", B(), default=False),
            F("expert_bias", B(), default=False, doc="biases on expert projections"),
            F("shared_expert_gate", B(), default=False,
              doc="a learned scalar gate (hidden -> 1) on the shared experts' output (Qwen2-MoE family)"),
        ))),
        F("mtp_layers", Num(integer=True, positive=False, minimum=0), default=0,
          doc="multi-token-prediction modules; not counted in the main model"),
        F("active_params_count_embedding", B(), default=True,
          doc="whether the publisher's active-parameter figure includes the input embedding"),
        *_common_tail(),
    ),
    checks=(_heads_divisible,),
)

KINDS: dict[str, Map] = {
    "accelerator": ACCELERATOR,
    "path": KV_PATH,
    "tier": KV_TIER,
    "model": MODEL,
}


def load_spec(kind: str, path: str | Path) -> Record:
    """Read and validate one spec file of ``kind``."""
    data = read_yaml(path)
    rec = validate(KINDS[kind], data, str(path))
    return rec
