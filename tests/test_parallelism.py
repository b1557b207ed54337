"""``cost/parallelism`` and the collectives of an instance split over tp, dp, moe_tp and moe_ep:
the vocabulary's defaults and refusals, the all-to-all and gather/scatter terms, the busiest
expert-parallel group's excess, and bandwidth across nodes."""

from __future__ import annotations

import math

import pytest

from pdroof.cost.inputs import collective_bandwidth, group_bandwidth
from pdroof.cost.numeric import evaluate
from pdroof.cost.parallelism import Parallelism, nodes, split_reason
from pdroof.cost.precision import Precision
from pdroof.cost.symbols import GATHER_ALLREDUCE, TP_ALLREDUCE
from pdroof.serving.stage import stage_inputs


def test_defaults_split_the_experts_over_every_device(catalog):
    ds, llama = catalog.get("model", "deepseek-v3"), catalog.get("model", "llama-3.1-8b")
    assert Parallelism(2, 4).for_model(ds) == Parallelism(2, 4, 8, 1)
    assert Parallelism(1, 8, None, 8).for_model(ds).experts_tp == 1
    assert Parallelism(4, 1, None, 2).for_model(ds).experts_tp == 2
    assert Parallelism(2, 2, 1, 4).for_model(llama) == Parallelism(2, 2, 4, 1)  # dense: no experts to split


def test_splits_that_cannot_run_say_why(catalog):
    ds, h200, mi300x = (catalog.get("model", "deepseek-v3"), catalog.get("accelerator", "h200-sxm"),
                        catalog.get("accelerator", "mi300x"))
    assert "must equal" in split_reason(ds, h200, Parallelism(2, 4, 2, 2))
    assert split_reason(ds, h200, Parallelism(2, 4, 2, 2), given=True) is None  # a run as its source gives it
    assert "does not divide the 256 experts" in split_reason(ds, h200, Parallelism(1, 6, 1, 6))
    assert split_reason(ds, h200, Parallelism(1, 16, 1, 16)) is None and nodes(h200, 16) == 2
    assert "no scale-out NIC" in split_reason(ds, mi300x, Parallelism(1, 16, 1, 16))  # its spec gives none
    # a degree beyond any machine's, on a dense model too (whose experts' fields are otherwise ignored)
    llama = catalog.get("model", "llama-3.1-8b")
    assert split_reason(llama, h200, Parallelism(1, 10**20)) == "dp must be at most 4,096, not 100000000000000000000"
    assert "moe_tp must be at most 4,096" in split_reason(ds, h200, Parallelism(8, 1, 10**5, 1))
    assert "= 8,192 devices in one instance exceeds 4,096" in split_reason(llama, h200, Parallelism(8, 1024))


def test_a_degree_out_of_range_names_its_flag(cli):
    for args, said in ((("--dp", str(10**20)), "--dp must be at most 4,096"), (("--dp", "0"), "--dp must be at least 1"),
                       (("--moe-tp", "5000"), "--moe-tp must be at most 4,096")):
        code, _, err = cli("estimate", "-m", "llama-3.1-8b", "--hardware", "h100-sxm", *args)
        assert code == 1 and said in err, (args, err)


def test_bandwidth_across_nodes_is_set_by_the_nic_share(catalog):
    h200 = catalog.get("accelerator", "h200-sxm")
    nvl, nic = collective_bandwidth(h200, 8), h200.scale_out_bytes_per_s
    assert group_bandwidth(h200, 8) == nvl
    # 16 devices: 7 peers over NVLink and 8 over the NIC at once, the NIC's share the slower
    assert group_bandwidth(h200, 16) == pytest.approx(15 / max(7 / nvl, 8 / nic))
    assert group_bandwidth(h200, 64) < group_bandwidth(h200, 16) < nvl


def _decode(catalog, par, batch=64.0, model="deepseek-v3", acc="h200-sxm", **over):
    inp, _ = stage_inputs(catalog.get("model", model), catalog.get("accelerator", acc),
                          catalog.get("runtime", "engine"), Precision("fp8", "fp8", "fp8"), par.tp, par)
    return evaluate("decode", {**inp, "batch": batch, "new_tokens": 1.0, "prefix_tokens": 0.0,
                               "context_tokens": 2048.0, **over})


def test_the_all_to_all_by_its_formula(catalog):
    """Dispatch in the experts' input format and combine in 16-bit, (e−1)/e of a device's share of
    its replica's routed tokens over the link, each phase behind the per-call latency; the busiest
    group carries 1 + (ι₃₂ − 1)·√(ln e / ln 32) of the mean."""
    par = Parallelism(1, 8, 1, 8)
    inp, _ = stage_inputs(catalog.get("model", "deepseek-v3"), catalog.get("accelerator", "h200-sxm"),
                          catalog.get("runtime", "engine"), Precision("fp8", "fp8", "fp8"), 1, par)
    T, e = 64.0, 8.0
    iota = 1 + (inp["ep_imbalance_32"] - 1) * math.sqrt(math.log(e) / math.log(32))
    elems = T * inp["experts_per_token"] * inp["hidden"] * iota
    latency = max(inp["alltoall_latency_s"], (e - 1) * inp["link_latency_s"])
    per_layer = 2 * latency + (e - 1) * elems * (inp["dispatch_bytes"] + inp["act_bytes"]) / (
        e * inp["ep_link_bytes_per_s"] * inp["eff_link"])
    got = float(_decode(catalog, par, batch=T)["ep_comm_seconds"])
    assert inp["dispatch_bytes"] == 1.0 and got == pytest.approx(inp["moe_layers"] * per_layer, rel=1e-9)
    balanced = float(_decode(catalog, par, batch=T, ep_imbalance_32=1.0)["ep_comm_seconds"])
    assert balanced < got


def test_dp_attention_without_ep_gathers_like_an_all_reduce_of_the_group(catalog):
    par = Parallelism(1, 4, 4, 1)  # experts split four ways over four one-device replicas
    model = "gpt-oss-120b"
    d = _decode(catalog, par, model=model, acc="b200", batch=16.0)
    inp, _ = stage_inputs(catalog.get("model", model), catalog.get("accelerator", "b200"),
                          catalog.get("runtime", "engine"), Precision("fp8", "fp8", "fp8"), 1, par)
    g = 4.0
    bytes_ = 16.0 * inp["hidden"] * inp["act_bytes"]
    per_layer = max(inp["gather_latency_s"], 2 * (g - 1) * inp["link_latency_s"]) + 2 * (g - 1) * bytes_ / (
        inp["dp_link_bytes_per_s"] * inp["eff_link"])
    assert float(d["ep_comm_seconds"]) == pytest.approx(inp["moe_layers"] * per_layer, rel=1e-9)
    assert float(_decode(catalog, Parallelism(4), model=model, acc="b200", batch=16.0)["ep_comm_seconds"]) == 0


def test_sglang_exchanges_a_prompt_pass_twice_and_a_decode_pass_once(catalog):
    """SGLang's DP attention all-reduces the gathered buffer before experts split over the replicas
    and again after (SUM_LEN) in a pass that carries prompt tokens: twice the exchange of an
    all-gather and a reduce-scatter, which its decode passes keep; a mixed step in the share of
    passes where some replica carries a prompt (1 − e^(−d·P))."""
    par = Parallelism(1, 8, 8, 1)  # DeepSeek-V3's DP8 prefill pool on a B200: experts split eight ways
    model, acc, p = catalog.get("model", "deepseek-v3"), catalog.get("accelerator", "b200"), Precision("fp8", "fp8", "fp8")
    inp, _ = stage_inputs(model, acc, catalog.get("runtime", "sglang"), p, 1, par)
    for rt in catalog.ids("runtime"):  # SGLang from 0.5.3 (sglang-0.5.9, sglang); its 0.5.1 profile chose by cost
        want = 2.0 if rt in ("sglang", "sglang-0.5.9") else 1.0
        assert stage_inputs(model, acc, catalog.get("runtime", rt), p, 1, par)[0]["dp_prompt_exchanges"] == want, rt
    comm = {}
    for exchanges in (2.0, 1.0):  # SGLang's, and the same stack with an all-gather and a reduce-scatter
        base = {**inp, "dp_prompt_exchanges": exchanges, "prefix_tokens": 0.0, "context_tokens": 2048.0}
        comm[exchanges] = {
            "prefill": float(evaluate("prefill", {**base, "batch": 1.0, "new_tokens": 2048.0})["ep_comm_seconds"]),
            "decode": float(evaluate("decode", {**base, "batch": 2048.0, "new_tokens": 1.0})["ep_comm_seconds"]),
            "mixed": float(evaluate("mixed", {**base, "batch": 2032.0, "prefill_prompts": 1 / 16,
                                              "new_tokens": 256.0})["ep_comm_seconds"]),
        }
    assert inp["dp_prompt_exchanges"] == 2.0 and comm[1.0]["prefill"] > 0
    assert comm[2.0]["prefill"] == pytest.approx(2 * comm[1.0]["prefill"], rel=1e-9)
    assert comm[2.0]["decode"] == pytest.approx(comm[1.0]["decode"], rel=1e-9)
    # 2048 tokens a pass either way; a prompt every 16 steps in each of 8 replicas, arriving apart:
    # some replica carries one in 1 − e^(−1/2) of the passes
    assert comm[2.0]["mixed"] == pytest.approx((2 - math.exp(-0.5)) * comm[1.0]["mixed"], rel=1e-9)
    # what the exchange carries: a replica's activations each way, twice over in a prompt pass
    prefill = {**inp, "prefix_tokens": 0.0, "context_tokens": 2048.0, "batch": 1.0, "new_tokens": 2048.0}
    moved = float(evaluate("prefill", prefill)["ep_comm_bytes"])
    assert moved == pytest.approx(inp["moe_layers"] * 2 * 2 * 2048 * inp["hidden"] * inp["act_bytes"], rel=1e-9)


def test_narrow_expert_slices_compute_below_whole_experts(catalog):
    """The experts' grouped GEMMs reach η_XC·w/(w + w½): gpt-oss's 2880-wide experts split eight
    ways (TP8) run well below the same experts whole on each device (EP8); it has no shared expert,
    so the experts' compute is the routed GEMMs' alone."""
    ds, h200, rt = catalog.get("model", "gpt-oss-120b"), catalog.get("accelerator", "h200-sxm"), \
        catalog.get("runtime", "trtllm")
    p = Precision("fp8", "fp8", "fp8")
    out = {}
    for name, par in (("tp8", Parallelism(8)), ("ep8", Parallelism(8, 1, 1, 8))):
        inp, _ = stage_inputs(ds, h200, rt, p, par.tp, par)
        pre = evaluate("prefill", {**inp, "batch": 4.0, "new_tokens": 8192.0, "prefix_tokens": 0.0,
                                   "context_tokens": 8192.0})
        out[name] = float(pre["experts_flops"]) / float(pre["experts_compute_s"])
    w8, w1 = 2880 / 8, 2880.0
    half = inp["moe_half_width"]
    assert half > 0 and out["ep8"] / out["tp8"] == pytest.approx((w1 / (w1 + half)) / (w8 / (w8 + half)), rel=0.01)  # the router, a dense GEMM, rides along


def _allreduce_s(inp, message_bytes, parties, link_bytes_per_s, names=TP_ALLREDUCE):
    """One all-reduce by the two regimes of ``comm._allreduce``, written out (``names``: the TP
    group's factors or the DP gather's)."""
    alpha, eta, switch, alpha_large, eta_large = (inp[n] for n in names)
    if message_bytes > switch:
        alpha, eta = alpha_large, eta_large
    hops = 2 * (parties - 1) * inp["link_latency_s"]
    return max(alpha, hops) + 2 * (parties - 1) / parties * message_bytes / (link_bytes_per_s * eta)


@pytest.mark.parametrize("runtime, regimes", [("sglang", True), ("engine", False)])
def test_the_all_reduce_runs_the_stacks_kernel_up_to_its_switch_and_nccl_above(catalog, runtime, regimes):
    """A profile with ``allreduce_large`` (SGLang on an H100: its own kernel up to 16 MiB, NCCL
    above) takes each message's regime by its size, the boundary in the small one, its own kernel
    at ``allreduce_link`` (the experts' all-to-all keeps ``link``); a profile without them keeps
    one latency and the link efficiency at every size."""
    rt, acc, model = catalog.get("runtime", runtime), catalog.get("accelerator", "h100-sxm"), "llama-3.1-70b"
    inp, _ = stage_inputs(catalog.get("model", model), acc, rt, Precision("fp8", "fp8", "fp8"), 8, Parallelism(8))
    message = inp["hidden"] * inp["act_bytes"]  # one token's
    assert (inp["allreduce_switch_bytes"] == 16 * 2**20) is regimes
    if regimes:
        assert inp["eff_link_large"] > inp["eff_allreduce_link"] != inp["eff_link"]
        assert inp["allreduce_large_latency_s"] > inp["allreduce_latency_s"]
    else:
        assert inp["eff_link_large"] == inp["eff_allreduce_link"] == inp["eff_link"]
        assert inp["allreduce_large_latency_s"] == inp["allreduce_latency_s"]
    for tokens in (64.0, 1024.0, 1025.0, 8192.0):  # 1 MiB, 16 MiB (the switch), just above, 128 MiB
        d = evaluate("decode", {**inp, "batch": tokens, "new_tokens": 1.0, "prefix_tokens": 0.0,
                                "context_tokens": 2048.0})
        want = inp["layers"] * 2 * _allreduce_s(inp, tokens * message, 8, inp["link_bytes_per_s"])
        assert float(d["tp_comm_seconds"]) == pytest.approx(want, rel=1e-9)
    if regimes:  # NCCL's regime is the faster one for large messages: 128 MiB under the one regime costs more
        one = {**inp, "eff_link_large": inp["eff_allreduce_link"], "allreduce_large_latency_s": inp["allreduce_latency_s"]}
        assert _allreduce_s(inp, 8192 * message, 8, 1.0) < _allreduce_s(one, 8192 * message, 8, 1.0)


def test_dp_attention_gathers_in_the_regime_of_the_gathered_buffer(catalog):
    """SGLang's DP gather all-reduces the g replicas' gathered buffer: g·bytes choose the regime,
    so eight replicas of 256 decode tokens (3.7 MB each, 29 MB gathered) run NCCL's."""
    par = Parallelism(1, 8, 8, 1)
    inp, _ = stage_inputs(catalog.get("model", "deepseek-v3"), catalog.get("accelerator", "h200-sxm"),
                          catalog.get("runtime", "sglang"), Precision("fp8", "fp8", "fp8"), 1, par)
    T = 256.0
    replica = T * inp["hidden"] * inp["act_bytes"]
    assert replica < inp["gather_switch_bytes"] < 8 * replica
    d = evaluate("decode", {**inp, "batch": T, "new_tokens": 1.0, "prefix_tokens": 0.0, "context_tokens": 2048.0})
    want = inp["moe_layers"] * _allreduce_s(inp, 8 * replica, 8, inp["dp_link_bytes_per_s"], GATHER_ALLREDUCE)
    assert float(d["ep_comm_seconds"]) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("par, tp_parties, gather_parties", [
    (Parallelism(2), 2, 1), (Parallelism(4), 4, 1), (Parallelism(8), 8, 1),
    (Parallelism(1, 4, 4, 1), 1, 4), (Parallelism(2, 4, 8, 1), 2, 4), (Parallelism(1, 8, 2, 4), 1, 2),
    (Parallelism(2, 3, 3, 2), 2, 0)])  # g = 3/2 replicas: no count measured, the entry's own (0: none)
def test_each_all_reduce_takes_the_factors_measured_at_its_party_count(catalog, par, tp_parties, gather_parties):
    """TensorRT-LLM's H100 entry is measured at two, four and eight devices: the TP group's
    all-reduce takes its count's factors (TP2 and TP4 their ``allreduce_parties`` item, TP8 the
    entry's), and DP attention's gather those of the g replicas an expert spans, each its own."""
    from pdroof.cost.runtime import resolve

    rt, acc = catalog.get("runtime", "trtllm"), catalog.get("accelerator", "h100-sxm")
    inp, _ = stage_inputs(catalog.get("model", "deepseek-v3"), acc, rt, Precision("fp8", "fp8", "fp8"), 1, par)
    eff = resolve(rt, acc)
    for names, parties in ((TP_ALLREDUCE, tp_parties), (GATHER_ALLREDUCE, gather_parties)):
        ar = eff.allreduce_at(parties)
        assert tuple(inp[n] for n in names) == (ar.latency_s, ar.link, ar.switch_bytes, ar.large_latency_s,
                                                ar.link_large)
        assert (parties in (2, 4)) is (ar != eff.allreduce)


def test_a_gather_across_nodes_runs_nccls_algorithm_at_every_size(catalog):
    """SGLang's own all-reduce kernel maps its peers' buffers within one host: DP attention's gather
    among sixteen replicas on two H200 hosts takes the profile's second algorithm (NCCL's) even for
    a decode step's small buffer, while eight replicas in one host keep the own kernel there."""
    rt, acc, model = catalog.get("runtime", "sglang"), catalog.get("accelerator", "h200-sxm"), "deepseek-v3"
    within, _ = stage_inputs(catalog.get("model", model), acc, rt, Precision("fp8", "fp8", "fp8"), 1,
                             Parallelism(1, 8, 8, 1))
    across, _ = stage_inputs(catalog.get("model", model), acc, rt, Precision("fp8", "fp8", "fp8"), 1,
                             Parallelism(1, 16, 16, 1))
    assert within["gather_switch_bytes"] == 16 * 2**20 and across["gather_switch_bytes"] == 0.0
    assert across["gather_large_latency_s"] == within["gather_large_latency_s"] > within["gather_latency_s"]
    assert across["allreduce_switch_bytes"] == within["allreduce_switch_bytes"]  # no TP group: untouched
    gb200, _ = stage_inputs(catalog.get("model", model), catalog.get("accelerator", "gb200"), rt,
                            Precision("fp8", "fp8", "fp8"), 1, Parallelism(1, 8, 8, 1))
    assert gb200["gather_switch_bytes"] == 0.0  # eight GB200s in one NVLink domain are two hosts of four
    T = 8.0
    d = evaluate("decode", {**across, "batch": T, "new_tokens": 1.0, "prefix_tokens": 0.0, "context_tokens": 2048.0})
    replica = T * across["hidden"] * across["act_bytes"]
    want = across["moe_layers"] * _allreduce_s(across, 16 * replica, 16, across["dp_link_bytes_per_s"], GATHER_ALLREDUCE)
    assert float(d["ep_comm_seconds"]) == pytest.approx(want, rel=1e-9)
