"""``pdroof.cost.inputs``: what an engine's scheduler gives a stage on a device (its step budget,
running-sequence limit and memory reserve), by the device's memory as the engines pick them, and
as a profile of one's own states them."""

from __future__ import annotations

import pytest

from pdroof.cost.inputs import scheduler_inputs
from pdroof.spec.catalog import Catalog

INF = float("inf")


@pytest.mark.parametrize("runtime, accelerator, chunk, most", [
    ("vllm", "h100-sxm", 8192, 1024),  # 70 GiB or more: vLLM's large defaults
    ("vllm", "b200", 8192, 1024),
    ("vllm", "l40s", 2048, 256),  # below 70 GiB
    ("vllm", "a100-sxm-80g", 2048, 256),  # 80 GiB, but an A100 (by name, as vLLM checks it)
    ("sglang", "h100-sxm", 8192, INF),  # SGLang bounds its batch by memory alone
    ("sglang", "h200-sxm", 8192, INF),
    ("sglang", "b200", 16384, INF),  # 160 GiB or more
    ("sglang", "mi355x", 16384, INF),
    ("sglang", "l40s", 4096, INF),
    ("sglang", "rtx-4090", 2048, INF),
    ("sglang-0.5.1", "b200", 16384, INF),  # inherited
    ("trtllm", "l40s", 8192, 2048),  # one default everywhere
    ("pytorch", "b200", 8192, INF),
])
def test_engines_take_their_scheduler_defaults_by_the_devices_memory(catalog, runtime, accelerator, chunk, most):
    """vLLM's and SGLang's servers pick the step's token budget (and vLLM its running-sequence
    limit) by the GPU's memory as torch reports it; the profiles' smaller_devices tiers say so."""
    got = scheduler_inputs(catalog.get("runtime", runtime), catalog.get("accelerator", accelerator))
    assert (got["chunk_tokens"], got["max_sequences"]) == (chunk, most)


@pytest.mark.parametrize("runtime, accelerator, share, amount_gib, of_free", [
    ("sglang", "h100-sxm", 0.0, 13.0, 0.0),  # SGLang keeps an amount for its chunk's activations and CUDA graphs
    ("sglang", "h200-sxm", 0.0, 13.0, 0.0),  # ... the same on a larger device
    ("sglang", "b200", 0.0, 25.5, 0.0),  # twice the chunk
    ("sglang", "l40s", 0.0, 6.6, 0.0),
    ("vllm", "h100-sxm", 0.1, 0.0, 0.0),  # gpu_memory_utilization: a share of the device
    ("trtllm", "h100-sxm", 0.0, 0.0, 0.1),  # free_gpu_memory_fraction: a share of what the weights leave
])
def test_the_memory_an_engine_keeps_is_a_share_or_an_amount_as_the_engine_reserves_it(catalog, runtime, accelerator,
                                                                                       share, amount_gib, of_free):
    got = scheduler_inputs(catalog.get("runtime", runtime), catalog.get("accelerator", accelerator))
    assert got["mem_reserve"] == pytest.approx(share)
    assert got["mem_reserve_bytes"] == pytest.approx(amount_gib * 2**30)
    assert got["mem_reserve_free"] == pytest.approx(of_free)


@pytest.mark.parametrize("tp", [1, 8])
def test_tensorrt_llms_kv_pool_is_its_share_of_the_memory_the_weights_and_activations_leave(cli_json, catalog, tp):
    """TensorRT-LLM gives its KV pool free_gpu_memory_fraction (0.9) of the memory free after the
    weights and the activations, not all but a share of the device: Llama-3.1-70B in FP8 on one H100
    leaves 10.4 GB, of which the pool takes 9.4 GB (it was 6.2 GB, 5% of the device kept); at TP8
    the weights leave 75.2 GB, and the engine keeps 7.5 GB of it (it kept 4.3 GB)."""
    mem = cli_json("estimate", "-m", "llama-3.1-70b", "--hardware", "h100-sxm", "--runtime", "trtllm",
                   "--weights", "fp8", "--kv", "fp8", "--tp", str(tp))["memory"]
    hbm = catalog.get("accelerator", "h100-sxm").memory.capacity_bytes
    left = hbm - mem["weights_bytes"] - mem["workspace_bytes"]
    assert mem["kv_capacity_bytes"] == pytest.approx(0.9 * left, rel=1e-12)


def _catalog(tmp_path, runtime: str = "", accelerator: str = "") -> Catalog:
    """The built-in catalogue with a runtime ``mine`` and an accelerator ``mine`` of one's own."""
    if runtime:
        d = tmp_path / "hardware" / "runtimes"
        d.mkdir(parents=True, exist_ok=True)
        (d / "mine.yaml").write_text("id: mine\nname: mine\n" + runtime)
    if accelerator:
        d = tmp_path / "hardware" / "accelerators"
        d.mkdir(parents=True, exist_ok=True)
        (d / "mine.yaml").write_text(accelerator)
    return Catalog([tmp_path], use_env=False)


@pytest.mark.parametrize("visible_gib, chunk", [(70.0, 8192), (69.99, 2048)])
def test_a_device_at_a_tiers_bound_is_above_it(tmp_path, visible_gib, chunk):
    """vLLM takes its large defaults from 70 GiB on (``>= 70 * GiB_bytes``): a tier holds the devices below."""
    h100 = Catalog().files("accelerator")["h100-sxm"].read_text()
    text = h100.replace("id: h100-sxm", "id: mine").replace("visible_gib: {value: 79.2,",
                                                            f"visible_gib: {{value: {visible_gib},")
    cat = _catalog(tmp_path, accelerator=text)
    assert scheduler_inputs(cat.get("runtime", "vllm"), cat.get("accelerator", "mine"))["chunk_tokens"] == chunk


def test_what_a_tier_does_not_give_is_the_structures(tmp_path, catalog):
    cat = _catalog(tmp_path, "inherits: trtllm\nstructure:\n  smaller_devices:\n"
                             "    - {below_gib: 100, chunk_tokens: 4096, source: mine}\n")
    got = scheduler_inputs(cat.get("runtime", "mine"), catalog.get("accelerator", "h100-sxm"))
    assert (got["chunk_tokens"], got["max_sequences"]) == (4096, 2048)  # TensorRT-LLM's limit, the tier's budget


@pytest.mark.parametrize("parent, own, accelerator, expect", [
    # a budget and a limit of one's own hold on every device, not only on those the inherited tiers miss
    ("vllm", "  chunk_tokens: 16384\n  max_sequences: 512\n", "l40s", {"chunk_tokens": 16384, "max_sequences": 512}),
    ("sglang", "  chunk_tokens: 4096\n", "h100-sxm", {"chunk_tokens": 4096}),
    # a share of one's own (SGLang's --mem-fraction-static 0.9) replaces the inherited amount
    ("sglang", "  memory_reserve_fraction: 0.1\n", "h100-sxm", {"mem_reserve": 0.1, "mem_reserve_bytes": 0.0}),
    ("sglang", "  memory_reserve_gib: 8\n", "h100-sxm", {"mem_reserve": 0.0, "mem_reserve_bytes": 8 * 2**30}),
    # ... and so does a share of the memory the weights leave, as TensorRT-LLM keeps it
    ("sglang", "  memory_reserve_free_fraction: 0.15\n", "h100-sxm",
     {"mem_reserve": 0.0, "mem_reserve_bytes": 0.0, "mem_reserve_free": 0.15}),
    # over TensorRT-LLM's share of what the weights leave, a share of the device or an amount replaces it
    ("trtllm", "  memory_reserve_fraction: 0.2\n", "h100-sxm",
     {"mem_reserve": 0.2, "mem_reserve_bytes": 0.0, "mem_reserve_free": 0.0}),
    ("trtllm", "  memory_reserve_gib: 3\n", "h100-sxm",
     {"mem_reserve": 0.0, "mem_reserve_bytes": 3 * 2**30, "mem_reserve_free": 0.0}),
])
def test_a_profile_of_ones_own_states_what_holds_over_the_tiers_it_inherits(tmp_path, catalog, parent, own,
                                                                            accelerator, expect):
    cat = _catalog(tmp_path, f"inherits: {parent}\nstructure:\n{own}")
    got = scheduler_inputs(cat.get("runtime", "mine"), catalog.get("accelerator", accelerator))
    assert {k: got[k] for k in expect} == pytest.approx(expect)


def test_what_a_profile_states_holds_through_every_level_that_inherits_it(tmp_path, catalog):
    """``b`` states its own budget and share over SGLang's tiers; ``a`` inherits ``b`` and states
    neither: it keeps ``b``'s on every device, and so does the standalone document calibrate fits onto."""
    d = tmp_path / "hardware" / "runtimes"
    d.mkdir(parents=True)
    (d / "b.yaml").write_text("id: b\nname: b\ninherits: sglang\nstructure:\n  chunk_tokens: 4096\n"
                              "  memory_reserve_fraction: 0.12\n")
    (d / "a.yaml").write_text("id: a\nname: a\ninherits: b\nstructure:\n  step_latency_us: 100\n")
    cat = Catalog([tmp_path], use_env=False)
    for acc_id in ("h100-sxm", "rtx-4090", "b200"):
        got = scheduler_inputs(cat.get("runtime", "a"), catalog.get("accelerator", acc_id))
        assert (got["chunk_tokens"], got["mem_reserve"], got["mem_reserve_bytes"]) == (4096, 0.12, 0.0), acc_id
    doc = cat.runtime_document("a")
    assert all("chunk_tokens" not in t and "memory_reserve_gib" not in t for t in doc["structure"]["smaller_devices"])


@pytest.mark.parametrize("runtime, accelerator, dp, budget", [
    ("sglang", "b200", 8, 2048),  # chunked_prefill_size // dp_size: 16384 over eight replicas
    ("sglang", "h200-sxm", 4, 2048),
    ("sglang", "b200", 1, 16384),  # no DP attention: the whole chunk
    ("sglang-0.5.1", "b200", 8, 2048),  # inherited
    ("trtllm", "b200", 8, 8192),  # each attention-DP rank schedules its own max_num_tokens
    ("vllm", "h100-sxm", 8, 8192),
])
def test_an_attention_replicas_budget_is_the_chunk_or_its_share_as_the_engine_divides_it(catalog, runtime,
                                                                                         accelerator, dp, budget):
    """SGLang divides its chunked prefill among the DP-attention replicas (server_args
    _handle_data_parallelism); the others give each replica the whole budget. The activation
    workspace keeps the whole chunk (the experts see every replica's tokens)."""
    rt, acc = catalog.get("runtime", runtime), catalog.get("accelerator", accelerator)
    got = scheduler_inputs(rt, acc, dp)
    assert got["replica_chunk_tokens"] == budget
    assert got["chunk_tokens"] == scheduler_inputs(rt, acc)["chunk_tokens"]


@pytest.mark.parametrize("runtime, accelerator, dp, amount_gib", [
    ("sglang", "b200", 8, 25.5 + 8 * 2.25),  # 512 graphs x 4.5 MiB for each of the eight replicas
    ("sglang", "h200-sxm", 4, 13.0 + 4 * 2.25),
    ("sglang", "l40s", 4, 6.6 + 4 * 0.47),  # 160 graphs x 3 MiB (SGLang's count at four devices or more)
    ("sglang", "b200", 1, 25.5),  # no DP attention
    ("trtllm", "b200", 8, 0.0),  # keeps a share of the memory left, as without DP attention
])
def test_sglang_keeps_more_memory_for_each_dp_attention_replica(catalog, runtime, accelerator, dp, amount_gib):
    """SGLang's reserved_mem grows by cuda_graph_max_bs x dp_size x 3 MiB under DP attention (4.5
    above 300 graphs), on every device of the instance."""
    got = scheduler_inputs(catalog.get("runtime", runtime), catalog.get("accelerator", accelerator), dp)
    assert got["mem_reserve_bytes"] == pytest.approx(amount_gib * 2**30, rel=1e-3)


@pytest.mark.parametrize("own, amount_gib", [
    ("  memory_reserve_fraction: 0.1\n", 0.0),  # --mem-fraction-static: no heuristic, no DP share
    ("  memory_reserve_free_fraction: 0.1\n", 0.0),
    ("  memory_reserve_gib: 30\n", 30 + 8 * 2.25),  # an amount of one's own beside the inherited DP share
    ("  dp_attention_reserve_gib: 1\n", 25.5 + 8 * 1.0),
    ("  memory_reserve_fraction: 0.1\n  dp_attention_reserve_gib: 1\n", 8 * 1.0),
])
def test_a_share_of_the_device_replaces_the_dp_attention_reserve_and_an_amount_keeps_it(tmp_path, catalog, own,
                                                                                       amount_gib):
    cat = _catalog(tmp_path, f"inherits: sglang\nstructure:\n{own}")
    got = scheduler_inputs(cat.get("runtime", "mine"), catalog.get("accelerator", "b200"), 8)
    assert got["mem_reserve_bytes"] == pytest.approx(amount_gib * 2**30, rel=1e-3)
    rtx = scheduler_inputs(cat.get("runtime", "mine"), catalog.get("accelerator", "rtx-4090"), 8)
    if "dp_attention_reserve_gib" in own or "fraction" in own:  # stated, it holds on every device
        stated = 1.0 if "dp_attention_reserve_gib" in own else 0.0
        assert rtx["mem_reserve_bytes"] - (0.0 if "fraction" in own else 3.5 * 2**30) == pytest.approx(
            8 * stated * 2**30, rel=1e-3)
