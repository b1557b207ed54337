"""The one table of symbols: name, unit and meaning of every input the equations take.

Plain data (no sympy import), so the numeric path and the renderer can read it cheaply.
``pdroof.cost.equations`` turns each entry into a positive sympy Symbol of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass

# the all-reduce's factors (α, η up to the switch, the switch, α and η above it): the TP group's, and
# DP attention's gather's, each taken at its own party count (equations.comm._allreduce)
TP_ALLREDUCE = ("allreduce_latency_s", "eff_allreduce_link", "allreduce_switch_bytes", "allreduce_large_latency_s",
                "eff_link_large")
GATHER_ALLREDUCE = ("gather_latency_s", "eff_gather_link", "gather_switch_bytes", "gather_large_latency_s",
                    "eff_gather_link_large")


@dataclass(frozen=True)
class Sym:
    name: str
    unit: str
    meaning: str
    latex: str = ""


_TABLE = (
    # workload and parallelism
    Sym("batch", "1", "sequences in the pass (prefill prompts or decode sequences)", "B"),
    Sym("prefill_prompts", "1", "prompts whose prefill rides in one aggregated step (average, may be fractional)",
        "P"),
    Sym("new_tokens", "tokens", "new tokens per sequence in a prefill pass", "S"),
    Sym("prefix_tokens", "tokens", "already-cached prefix tokens per sequence (attention spans them)", "p"),
    Sym("context_tokens", "tokens", "context length of each sequence at a decode step", "L"),
    Sym("tp", "1", "attention tensor-parallel degree (devices per attention replica)", "t"),
    Sym("dp", "1", "attention data-parallel replicas per instance (DP attention; devices per instance t·d)", "d"),
    Sym("moe_tp", "1", "tensor-parallel split of each routed expert", "t_X"),
    Sym("moe_ep", "1", "expert-parallel groups the routed experts are spread over (t_X·e_X = t·d)", "e_X"),
    # model architecture
    Sym("layers", "1", "decoder layers", "n_L"),
    Sym("dense_layers", "1", "layers with a dense FFN", "n_D"),
    Sym("moe_layers", "1", "layers with routed experts", "n_M"),
    Sym("full_layers", "1", "layers with full (global) attention", "n_F"),
    Sym("sliding_layers", "1", "layers with sliding-window attention", "n_W"),
    Sym("window_tokens", "tokens", "sliding-window size", "w"),
    Sym("sparse_layers", "1", "layers with DeepSeek sparse attention: an indexer scores every past token, "
        "the query attends to the top k_I", "n_X"),
    Sym("topk_tokens", "tokens", "past tokens each query of a sparse layer attends to (index_topk)", "k_I"),
    Sym("index_heads", "1", "heads of a sparse layer's indexer", "H_I"),
    Sym("index_head_dim", "1", "head size of a sparse layer's indexer", "d_I"),
    Sym("index_key_bytes", "B", "bytes of the indexer's cached key per token per sparse layer (its own format, "
        "scales included)", "b_I"),
    Sym("linear_layers", "1", "layers with linear attention: a fixed-size recurrent state per sequence, no KV",
        "n_R"),
    Sym("linear_heads", "1", "value heads of a linear layer, each with a d_k x d_v state", "H_R"),
    Sym("linear_key_dim", "1", "key (and query) head size of a linear layer", "d_k"),
    Sym("linear_value_dim", "1", "value head size of a linear layer", "d_v"),
    Sym("conv_dim", "1", "channels of a linear layer's short causal convolution (q, k and v)", "c_C"),
    Sym("conv_kernel", "1", "width of a linear layer's short causal convolution", "K_C"),
    Sym("state_bytes", "B", "one sequence's state per linear layer: recurrent matrices and convolution window, "
        "each in its own format", "b_R"),
    Sym("state_shardable", "1", "ways a linear layer's state and work split across TP ranks (its key heads)",
        "g_R"),
    Sym("hidden", "1", "hidden size", "h"),
    Sym("heads", "1", "attention (query) heads", "H"),
    Sym("attn_params", "params", "attention projection parameters per layer (Q, K, V, O, MLA low-rank)", "W_A"),
    Sym("kv_proj_params", "params", "attention parameters per layer that split across TP ranks only by KV head "
        "(K and V projections; MLA's low-rank down-projections, not at all): replicated beyond that", "W_{KV}"),
    Sym("ffn_params", "params", "dense FFN parameters per dense layer", "W_F"),
    Sym("ffn_size", "1", "dense FFN intermediate size", "f"),
    Sym("experts", "1", "routed experts per MoE layer", "E"),
    Sym("experts_per_token", "1", "routed experts each token uses", "k"),
    Sym("expert_params", "params", "parameters of one routed expert", "W_X"),
    Sym("expert_ffn_size", "1", "intermediate size of one expert", "f_X"),
    Sym("shared_params", "params", "shared-expert and router parameters per MoE layer", "W_S"),
    Sym("shared_ffn_size", "1", "intermediate size of all shared experts together", "f_S"),
    Sym("vocab", "1", "vocabulary size (LM head rows)", "V"),
    Sym("embed_params", "params", "embedding plus untied LM-head parameters", "W_E"),
    Sym("attn_dim_prefill", "1", "per-head q·k plus p·v width in prefill (2·d; MLA 192+128)", "d_P"),
    Sym("attn_dim_decode", "1", "per-head q·k plus p·v width in decode (2·d; MLA absorbed 576+512)", "d_D"),
    Sym("kv_elems", "1", "KV elements per token per layer (2·kv_heads·d; MLA latent+rope)", "c_{KV}"),
    Sym("kv_tensors", "1", "separately stored KV tensors per layer (K and V: 2; MLA latent: 1)", "n_T"),
    Sym("page_tokens", "tokens", "tokens per KV page (transfer granularity)", "P_g"),
    Sym("kv_shardable", "1", "ways the KV of a layer can be split across TP ranks (KV heads; 1 for MLA)", "g"),
    # precision
    Sym("weight_bytes", "B", "bytes per weight element (scales included)", "b_W"),
    Sym("kv_bytes", "B", "bytes per KV element in the storage format", "b_{KV}"),
    Sym("act_bytes", "B", "bytes per activation element between kernels", "b_A"),
    Sym("dispatch_bytes", "B", "bytes per element of the routed tokens the experts' all-to-all dispatches "
        "(their GEMM input format, 8-bit at the narrowest; the combine returns 16-bit)", "b_X"),
    Sym("dequant_overhead", "1", "extra GEMM compute time fraction for weight-only formats", "q"),
    # hardware
    Sym("peak_flops_per_s", "FLOP/s", "dense peak of the GEMM compute format", "P"),
    Sym("attn_peak_flops_per_s", "FLOP/s", "dense peak used by attention (bf16/fp16)", "P_A"),
    Sym("mem_bytes_per_s", "B/s", "HBM bandwidth", "M"),
    Sym("link_bytes_per_s", "B/s", "scale-up link bandwidth per direction (TP/EP collectives)", "N"),
    Sym("ep_link_bytes_per_s", "B/s", "bandwidth per device that the experts' all-to-alls run over (on a full "
        "mesh the links to the other devices; across nodes the scale-out share)", "N_E"),
    Sym("dp_link_bytes_per_s", "B/s", "bandwidth per device that DP attention's gather and scatter around the "
        "experts run over (among the t_X devices of an expert's split)", "N_G"),
    Sym("alltoall_latency_s", "s", "per-call latency of the stack's expert all-to-all (dispatch or combine)",
        r"\alpha_{A}"),
    Sym("ep_imbalance_32", "1", "routed tokens of the busiest of 32 expert-parallel groups over the mean "
        "(the stack's expert placement on real traffic)", r"\iota_{32}"),
    Sym("link_latency_s", "s", "scale-up latency of one step (hop) of a collective", r"\alpha_N"),
    # runtime profile (achieved fractions and structure of the software stack)
    Sym("eff_compute", "1", "achieved fraction of peak in large GEMMs (per compute format)", r"\eta_C"),
    Sym("gemm_half_rows", "rows", "GEMM rows at which compute efficiency is half its large-GEMM value", "M_{1/2}"),
    Sym("eff_weights", "1", "achieved fraction of HBM bandwidth streaming weights (per weight format)", r"\eta_W"),
    Sym("eff_moe_compute", "1", "achieved fraction of peak in the routed experts' grouped GEMMs (large batches, "
        "wide experts)",
        r"\eta_{XC}"),
    Sym("eff_moe_weights", "1", "achieved fraction of HBM bandwidth streaming routed experts' weights", r"\eta_{XW}"),
    Sym("moe_half_width", "1", "columns of one expert per device (its width over the experts' TP split) at which "
        "the grouped GEMMs reach half their large-batch efficiency (0: none)", r"w_{1/2}"),
    Sym("moe_latency_s", "s", "fixed time of a routed-expert layer on top of its roofline (routing, permutation, "
        "grouped-GEMM launches)", r"\tau_X"),
    Sym("eff_memory", "1", "achieved fraction of HBM bandwidth in elementwise passes", r"\eta_M"),
    Sym("eff_attn_prefill", "1", "achieved fraction of peak in long prefill attention", r"\eta_{AP}"),
    Sym("attn_half_tokens", "tokens", "prompt length at which prefill attention reaches half its efficiency",
        "S_{1/2}"),
    Sym("eff_attn_decode", "1", "achieved fraction of HBM bandwidth reading KV in decode attention", r"\eta_{AD}"),
    Sym("eff_link", "1", "achieved fraction of scale-up link bandwidth in the experts' all-to-all (and in an "
        "all-reduce where the stack gives no own-kernel value)", r"\eta_N"),
    Sym("eff_allreduce_link", "1", "achieved fraction of scale-up link bandwidth by the stack's own all-reduce kernel "
        "(up to the switch size)", r"\eta_{AR}"),
    Sym("layer_latency_s", "s", "fixed cost per layer per forward pass (kernel boundaries)", r"\tau_L"),
    Sym("kernel_latency_s", "s", "fixed time of each kernel on top of its roofline (launch, ramp-up, tail)", r"\tau_K"),
    Sym("allreduce_latency_s", "s", "per-call latency of the stack's all-reduce at small messages", r"\alpha_{AR}"),
    Sym("allreduce_switch_bytes", "B", "largest message the stack's own all-reduce kernel takes; larger ones run "
        "its second algorithm (NCCL's); 0: one algorithm at every size", "M_{AR}"),
    Sym("allreduce_large_latency_s", "s", "per-call latency of the all-reduce above the switch size", r"\alpha_{AR,L}"),
    Sym("eff_link_large", "1", "achieved fraction of scale-up link bandwidth by the all-reduce above the switch size",
        r"\eta_{N,L}"),
    Sym("gather_latency_s", "s", "as allreduce_latency_s, for DP attention's gather among the replicas an expert "
        "spans (measured at that party count)", r"\alpha_{G}"),
    Sym("eff_gather_link", "1", "as eff_allreduce_link, for DP attention's gather", r"\eta_{G}"),
    Sym("gather_switch_bytes", "B", "as allreduce_switch_bytes, for DP attention's gather", "M_{G}"),
    Sym("gather_large_latency_s", "s", "as allreduce_large_latency_s, for DP attention's gather", r"\alpha_{G,L}"),
    Sym("eff_gather_link_large", "1", "as eff_link_large, for DP attention's gather", r"\eta_{G,L}"),
    Sym("attn_decode_half_bytes", "B", "KV read per layer and device at which decode attention reaches half its "
        "efficiency", "R_{1/2}"),
    Sym("extra_kernel_share", "1", "extra kernel boundaries per layer (separate activation casts) as a share "
        "of the stack's kernels per layer", r"\kappa"),
    Sym("step_latency_s", "s", "fixed cost per forward pass outside the layers (scheduling, sampling, launch)",
        r"\tau_S"),
    Sym("sequence_latency_s", "s", "cost per sequence in a forward pass outside the layers (the engine's "
        "per-request scheduling, input preparation and sampling)", r"\tau_Q"),
    Sym("dp_prompt_exchanges", "1", "DP attention's exchange around split experts in a pass carrying prompt "
        "tokens, in units of an all-gather and a reduce-scatter (2: an all-reduce before and after)", "x_G"),
    Sym("norm_bytes_per_elem", "B", "bytes moved per hidden element by one normalisation", "r_N"),
    Sym("residual_bytes_per_elem", "B", "bytes moved per hidden element by one residual add", "r_R"),
    Sym("act_fn_bytes_per_elem", "B", "bytes moved per FFN element by the gated activation", "r_G"),
    Sym("cast_bytes_per_elem", "B", "bytes moved per GEMM input element by a separate activation cast", "r_C"),
    # KV transfer
    Sym("transfer_tokens", "tokens", "tokens whose KV is moved", "n"),
    Sym("tp_consumer", "1", "devices per decode instance: the KV arrives split over their shards", "t_C"),
    Sym("wire_bytes", "B", "bytes per KV element in the wire format", "b_T"),
    Sym("path_latency_s", "s", "per-message latency of the KV path", r"\alpha"),
    Sym("path_bytes_per_s", "B/s", "KV path bandwidth per direction", r"\beta"),
    Sym("eff_path", "1", "achieved fraction of the KV path bandwidth", r"\eta_T"),
    Sym("overlap_s", "s", "prefill time the transfer can overlap (layer-wise streaming)", "t_O"),
    # isolated kernels (micro-benchmarks, for calibration)
    Sym("gemm_m", "1", "GEMM rows (tokens)", "m"),
    Sym("gemm_m_padded", "1", "GEMM rows as the kernel computes them (padding included)", r"\hat m"),
    Sym("gemm_n", "1", "GEMM output columns", "n"),
    Sym("gemm_k", "1", "GEMM reduction depth", "k"),
    Sym("copy_bytes", "B", "bytes of one copy", "c"),
    Sym("harness_s", "s", "fixed cost of one isolated, individually timed call", r"\tau_0"),
    # serving: pools, targets, capacities
    Sym("prefill_s", "s", "prefill service time of one request on a prefill instance", "t_P"),
    Sym("handoff_s", "s", "time on the TTFT path after prefill: exposed KV transfer and conversion", "t_H"),
    Sym("ttft_target_s", "s", "time-to-first-token target (on its statistic: mean, p50, p90 or p99)", "T_{FT}"),
    Sym("prefill_utilisation", "1", "highest utilisation of a prefill instance whose TTFT statistic meets the "
        "target (M/D/1, pdroof.cost.queueing)", r"\rho^*"),
    Sym("wait_factor", "1", "a statistic of the M/D/1 wait, in units of the service time", "W"),
    Sym("step_s", "s", "decode step time at the chosen decode batch", "t_D"),
    Sym("pace_s", "s", "time per output token at which a decode slot takes arrivals, where HBM paces them beyond "
        "the step (0: the step)", "p"),
    Sym("decode_batch", "1", "sequences a decode instance runs concurrently", "B_D"),
    Sym("hbm_batch", "1", "sequences whose KV fits in the decode instance's HBM", "B_H"),
    Sym("own_pass_admission", "1", "1 where the engine takes requests whose KV has arrived into a decode "
        "replica in a pass of their own, which its running sequences sit out under DP attention; else 0", "a"),
    Sym("tier_bytes_per_s", "B/s", "per-device bandwidth of the KV tier beyond HBM", r"\beta_R"),
    Sym("kv_request_bytes", "B", "KV bytes of one sequence per decode device", "K_R"),
    Sym("output_tokens", "tokens", "output tokens per request", "O"),
    Sym("link_request_s", "s", "link time one request's KV transfer occupies on the prefill instance", "t_L"),
    Sym("ingress_request_s", "s", "link time one request's KV occupies on the decode instance's ingress", "t_I"),
    Sym("instance_rate", "1/s", "offered requests/s per instance of a pool (deployment check)", r"\lambda"),
    Sym("requests_per_s", "1/s", "requests/s a built deployment serves", "R"),
    Sym("devices_prefill", "1", "devices in a built deployment's prefill pool (whole instances)", "D_P"),
    Sym("devices_decode", "1", "devices in a built deployment's decode pool (aggregated: its one pool)", "D_D"),
    Sym("tp_prefill", "1", "devices per prefill attention replica (per instance without DP attention)", "t_P"),
    Sym("tp_decode", "1", "devices per decode attention replica (per instance without DP attention)", "t_D"),
    Sym("dp_prefill", "1", "attention replicas per prefill instance (the units t_P and C_P count)", "d_P"),
    Sym("dp_decode", "1", "attention replicas per decode instance (the units t_D and C_D count)", "d_D"),
    Sym("price_prefill", "$/h", "price per prefill device-hour", "c_P"),
    Sym("price_decode", "$/h", "price per decode device-hour", "c_D"),
    Sym("power_prefill", "W", "power per prefill device", "w_P"),
    Sym("power_decode", "W", "power per decode device", "w_D"),
    # the PD boundary: KV representation and ownership
    Sym("kv_src_bytes", "B", "one request's KV per prefill rank in the producer's format", "K_P"),
    Sym("kv_dst_bytes", "B", "one request's KV per decode rank in the consumer's format", "K_D"),
    Sym("transfer_src_s", "s", "KV transfer time when the producer's format travels", "t_{XP}"),
    Sym("transfer_dst_s", "s", "KV transfer time when the consumer's format travels", "t_{XD}"),
    Sym("format_ratio", "1", "bytes per KV element, consumer format over producer format", r"\rho"),
    Sym("needs_convert", "1", "1 when producer and consumer KV formats differ, else 0", r"\delta_C"),
    Sym("needs_redistribute", "1", "1 when KV page layout or TP partitioning differ, else 0", r"\delta_R"),
    Sym("prod_bytes_per_s", "B/s", "achieved HBM bandwidth of a prefill device", "M_P"),
    Sym("cons_bytes_per_s", "B/s", "achieved HBM bandwidth of a decode device", "M_D"),
    Sym("host_bytes_per_s", "B/s", "bandwidth of a conversion pass next to the transport (host)", "M_H"),
    Sym("host_bounce", "1", "1 when routing through the host adds device<->host legs (not host-staged)", r"\delta_H"),
    Sym("prefill_slots", "1", "requests whose KV a prefill instance can hold beyond its weights", "M_S"),
    Sym("admission_wait_s", "s", "wait for decode admission after the transfer (next step)", "t_A"),
    Sym("kv_capacity_bytes", "B", "KV capacity of a decode device after weights and workspace", "C_K"),
    Sym("tier_capacity_bytes", "B", "KV a slower residency tier holds per decode device beyond HBM (0: HBM alone)",
        "C_T"),
    Sym("tpot_target_s", "s", "time-per-output-token target (decode steps carry no prompts: every statistic is the "
        "step)", "T_{PT}"),
    Sym("retained_bytes", "B", "retained prefix cache per decode device (a separate choice from the tier)", "R_K"),
    # memory
    Sym("hbm_bytes", "B", "HBM capacity per device", "C"),
    Sym("chunk_tokens", "tokens", "most tokens one forward pass processes (sizes the activation workspace)", "T_C"),
    Sym("mem_reserve", "1", "fraction of HBM the runtime keeps for itself beside the activation workspace", "r"),
    Sym("mem_reserve_bytes", "B", "memory the runtime keeps, workspace included, whatever the device", "R_M"),
    Sym("mem_reserve_free", "1", "fraction of the memory left after weights and workspace the runtime keeps", "r_F"),
    Sym("max_sequences", "1", "most sequences the engine's scheduler runs at once (inf: no limit)", "N_S"),
)

SYMBOLS: dict[str, Sym] = {s.name: s for s in _TABLE}
