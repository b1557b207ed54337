"""The closed loop of a benchmark's clients on one engine (``pdroof.serving.closed_loop``):
physical limits that hold at any load."""

from __future__ import annotations

import numpy as np
import pytest

from pdroof.cost.precision import Precision
from pdroof.serving.load import admitted_sequences, aggregated_load
from pdroof.serving.stage import stage_inputs


def test_where_prompts_alone_fill_the_engine_the_clients_queue_for_prefill_and_decodes_keep_their_pace(catalog):
    """Long prompts, short outputs, clients far beyond what the prefill work lets the engine serve
    (gpt-oss-120b on one B200, 2,048 prompt tokens, 128 out): the jobs run back to back, so the
    throughput stops at their pace, more clients only wait longer for their first token, and a
    decode gets a token from every job step. The damped iteration used to leave some of these loads
    with a job share above one, a TPOT of 1e12 s and a throughput that jumped from load to load."""
    inputs, _ = stage_inputs(catalog.get("model", "gpt-oss-120b"), catalog.get("accelerator", "b200"),
                             catalog.get("runtime", "trtllm"), Precision("fp4", "fp8", "fp8"), 1)
    clients = np.array([64.0, 256.0, 512.0, 1024.0, 1536.0, 2048.0])
    admitted = admitted_sequences(inputs, 2048.0, 128.0)
    out = aggregated_load(inputs, clients, 2048.0, 128.0, arrivals="closed", admitted=admitted)
    tpot, ttft, rho = out["tpot_s"], out["ttft_s"], out["utilisation"]
    assert np.all(np.isfinite(tpot)) and np.all(tpot < 1.0)  # a 120B model's step, not a stall
    assert np.all(rho <= 1.0)
    assert np.all(np.diff(ttft) > 0) and ttft[-1] > 10 * ttft[0]  # the queue for prefill grows with the clients
    assert np.all(np.diff(tpot) > -0.02 * tpot[1:])  # more clients never make the decode faster


@pytest.mark.parametrize("prompt, output", [(2048.0, 128.0), (1024.0, 64.0), (8192.0, 1024.0), (128.0, 2048.0)])
@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_every_clients_cycle_is_its_ttft_and_its_decode(catalog, prompt, output, drift):
    """Little's law closes the loop at every load, light, KV-bound or prefill-bound, with lengths
    fixed or varying: a client's cycle, C/X, is its request's TTFT and (O − 1)·TPOT (the first wave
    taking no share). The damped iteration this replaced could stop between two states of a
    2-cycle near a full engine, where the identity fails by tens of percent."""
    inputs, _ = stage_inputs(catalog.get("model", "llama-3.1-8b"), catalog.get("accelerator", "h100-sxm"),
                             catalog.get("runtime", "vllm"), Precision("bf16", "bf16", "bf16"), 1)
    clients = np.array([1.0, 4.0, 16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0])
    out = aggregated_load({**inputs, "drifting_arrivals": 0.0}, clients, prompt, output, arrivals="closed",
                          admitted=admitted_sequences(inputs, prompt, output), waves=1e12, drift=drift)
    cycle = out["ttft_s"] + (output - 1) * out["tpot_s"]
    assert clients / out["requests_per_s"] == pytest.approx(cycle, rel=1e-6)


def test_the_decodes_a_job_carries_take_their_tokens_from_the_steps_budget(catalog):
    """A step of vLLM holds max_num_batched_tokens tokens, decodes included: where the other clients
    decode while a synchronised job's prompts arrive, the job holds the prompts that fit beside
    them (g·S + C − g ≤ K); where every prompt fits, nothing else runs and the job holds all."""
    inputs, _ = stage_inputs(catalog.get("model", "llama-3.1-8b"), catalog.get("accelerator", "h100-sxm"),
                             catalog.get("runtime", "vllm"), Precision("bf16", "bf16", "bf16"), 1)
    budget = inputs["chunk_tokens"]
    clients = np.array([budget / 1024, 64.0, 256.0])
    out = aggregated_load({**inputs, "drifting_arrivals": 0.0}, clients, 1024.0, 512.0, arrivals="closed",
                          admitted=1e6)
    g = out["job_prompts"]
    assert g[0] == clients[0]  # one job holds the whole wave
    assert np.all(g[1:] * 1024 + clients[1:] - g[1:] <= budget)  # ... else what fits beside the decodes
    assert np.all((g[1:] + 1) * 1024 + clients[1:] - g[1:] - 1 > budget)  # and no fewer


@pytest.mark.parametrize("runtime", ["vllm", "trtllm", "sglang", "sglang-0.5.1"])
def test_the_answer_does_not_depend_on_how_long_the_solver_bisects(catalog, monkeypatch, runtime):
    """The steady state is a root of the decode batch, bisected: twice the bisections move no
    prediction, as a converged root would not, over light to prefill-bound loads, outputs of one to
    eight tokens (where a request barely decodes) as well as long ones, fixed and varying lengths,
    each engine's shipped scheduling (vLLM's drifting arrivals included). Little's law above holds
    wherever the root is feasible, so it cannot catch a solver stopped short; this can. A drifting
    job's size is bisected to (most − 1)/4096 prompts: that moves a prediction by 0.1% at most."""
    inputs, _ = stage_inputs(catalog.get("model", "llama-3.1-8b"), catalog.get("accelerator", "h100-sxm"),
                             catalog.get("runtime", runtime), Precision("bf16", "bf16", "bf16"), 1)
    clients = np.array([1.0, 3.0, 8.0, 24.0, 64.0, 200.0, 700.0, 2048.0])[:, None, None]
    prompt, output = np.array([128.0, 1024.0, 8192.0])[None, :, None], np.array([1.0, 2.0, 8.0, 300.0])
    drift = np.array([0.0, 1.0])[:, None, None, None]

    def solve():
        return aggregated_load(inputs, clients, prompt, output, arrivals="closed", drift=drift,
                               admitted=admitted_sequences(inputs, prompt, output))

    from pdroof.serving import closed_loop
    shipped = solve()
    monkeypatch.setattr(closed_loop, "SOLVE_STEPS", 2 * closed_loop.SOLVE_STEPS)
    longer = solve()
    monkeypatch.setattr(closed_loop, "JOB_STEPS", 2 * closed_loop.JOB_STEPS)
    finer = solve()
    for key in ("tpot_s", "ttft_s", "requests_per_s"):
        assert shipped[key] == pytest.approx(longer[key], rel=1e-6), key
        assert shipped[key] == pytest.approx(finer[key], rel=2e-3), key


def test_the_engines_running_sequence_limit_bounds_the_batch_as_kv_memory_does(catalog):
    """Llama-3.1-8B on a B200 holds thousands of short sequences in KV memory, but vLLM's server runs
    1,024 at most (max_num_seqs): beyond that, clients wait for admission, the decode batch stays
    at the limit and TTFT takes the wait, as where memory binds."""
    model, b200 = catalog.get("model", "llama-3.1-8b"), catalog.get("accelerator", "b200")
    p = Precision("bf16", "bf16", "bf16")
    vllm, _ = stage_inputs(model, b200, catalog.get("runtime", "vllm"), p, 1)
    unbounded, _ = stage_inputs(model, b200, catalog.get("runtime", "pytorch"), p, 1)
    assert admitted_sequences(vllm, 256.0, 256.0) == 1024
    assert admitted_sequences(unbounded, 256.0, 256.0) > 3000  # what memory alone would hold
    clients = np.array([512.0, 1024.0, 4096.0])
    out = aggregated_load(vllm, clients, 256.0, 256.0, arrivals="closed",
                          admitted=admitted_sequences(vllm, 256.0, 256.0))
    assert np.all(out["decode_batch"] <= 1024) and out["admitted"][-1] == 1024
    assert out["ttft_s"][-1] > 2 * out["ttft_s"][1]  # the clients beyond the limit wait for a place
