"""Aggregated serving under a closed-loop benchmark load: C clients each keep one request in flight
(a finished request is replaced at once), prompts of S tokens, O output tokens, an engine that
batches continuously with a token budget K per step (chunked prefill) and admits as many
sequences as its KV memory holds.

With fixed lengths the clients fall into step: prompts that arrive together are prefilled
together, in *jobs* of g = min(C, K/S) prompts (a job of more than K tokens spans several steps).
A job step carries the other requests' decodes too and takes T_job; between jobs, decode steps of
B sequences take τ. Jobs arrive at r = X/g for a throughput of X requests/s and occupy the engine
a fraction ρ = r·T_job of the time, so a job waits behind the others (an M/D/1 wait, bounded by
the jobs there are). A request's TTFT is its job's wait and service, plus, when fewer than C
sequences fit in KV memory, its wait for admission; its TPOT is the mean step it sees while it
decodes: decode steps, and the steps of the *other* groups' jobs. Little's law closes the loop:
X = C_admitted / (TTFT_engine + (O − 1)·TPOT), solved by damped iteration over all runs at once.

With C/g = 1 (one job holds every prompt) this is the synchronised wave the benchmarks show at low
concurrency: TTFT = one step carrying all C prompts (≈ C prefills), TPOT = the decode step.

A benchmark starts with every client's first request at once: that first wave queues all its n =
⌈C/g⌉ jobs back to back (mean TTFT ≈ (n + 1)/2 job times), and it is one of the ``waves`` (requests
÷ clients) the run averages over; the mean TTFT carries its share, the median and the upper
percentiles see it only when the first wave is that large a share of the requests.
"""

from __future__ import annotations

import numpy as np

from ..cost.numeric import evaluate
from ..cost.queueing import wait

ITERATIONS = 40


def _step(inputs: dict, batch, prompts, prompt_tokens, context_tokens):
    return evaluate("mixed", {**inputs, "batch": batch, "prefill_prompts": prompts, "new_tokens": prompt_tokens,
                              "prefix_tokens": 0.0, "context_tokens": context_tokens}, ("seconds",))["seconds"]


def closed_loop(inputs: dict, clients, prompt_tokens, output_tokens, chunk_tokens, admitted, waves=10.0,
                stats=("mean", "p50", "p90", "p99")) -> dict[str, np.ndarray]:
    """Steady state of one engine instance per element of the (broadcast) arrays: ``clients``
    requests in flight, ``admitted`` the sequences its KV memory holds, ``waves`` the benchmark's
    requests per client. Returns throughput (requests/s), the mean TPOT, TTFT per statistic
    (``ttft_<stat>_s``), and the internals (job size, utilisation, decode batch)."""
    C, S, L_out, K, N = (np.asarray(v, dtype=float) for v in (clients, prompt_tokens, output_tokens, chunk_tokens,
                                                             admitted))
    ctx = S + L_out / 2  # mean context of a decoding sequence
    C_in = np.maximum(np.minimum(C, N), 1.0)
    g = np.clip(np.floor(K / S), 1.0, C_in)
    chunks = np.ceil(g * S / K)
    others = 1 - g / C_in  # share of the jobs a decoding request sees that are other groups'
    B_d = C_in.copy()
    tau = _step(inputs, B_d, 0.0, S, ctx)
    job = _step(inputs, np.maximum(C_in - g, 0.0), g, S, ctx)
    X = C_in / (job + (L_out - 1) * tau)
    for _ in range(ITERATIONS):
        r = X / g
        rho = np.minimum(r * job, 0.999)
        steps_per_s = r * others * chunks + (1 - r * others * job) / tau
        tpot = 1 / np.maximum(steps_per_s, 1e-12)
        decoding = np.minimum(C_in, X * (L_out - 1) * tpot / np.maximum(1 - rho * g / C_in, 1e-3))
        B_d = np.maximum(decoding, 1.0)
        B_j = np.minimum(B_d, C_in - g)
        tau = _step(inputs, B_d, 0.0, S, ctx)
        job = _step(inputs, B_j, g, S, ctx) + (chunks - 1) * _step(inputs, B_j, 0.0, S, ctx)
        queue_cap = (C_in / g - 1) * job  # at most every other job ahead
        w_mean = np.minimum(wait(rho, "mean") * job, queue_cap)
        X = 0.5 * X + 0.5 * C_in / (job + w_mean + (L_out - 1) * tpot)
    admission = (C - C_in) / X  # clients beyond what KV memory holds wait for a finished request
    # the first wave: its jobs back to back, the k-th carrying the decodes of the k - 1 before it
    n_jobs = np.ceil(C_in / g)
    first_job = _step(inputs, np.maximum((n_jobs - 1) / 2 * g, 0.0), g, S, ctx) + (chunks - 1) * _step(
        inputs, np.maximum((n_jobs - 1) / 2 * g, 0.0), 0.0, S, ctx)
    first_wave = (n_jobs + 1) / 2 * first_job
    W = np.maximum(np.asarray(waves, dtype=float), 1.0)
    out = {"requests_per_s": X, "tpot_s": tpot, "job_prompts": g, "job_s": job, "decode_step_s": tau,
           "decode_batch": B_d, "utilisation": rho, "admitted": C_in, "first_wave_ttft_s": first_wave + admission}
    for stat in stats:
        steady = job + np.minimum(wait(rho, stat) * job, queue_cap) + admission
        if stat == "mean":
            out["ttft_mean_s"] = steady + np.maximum(first_wave + admission - steady, 0.0) / W
        else:  # the first wave's requests are the slowest 1/W of them
            q = {"p50": 0.5, "p90": 0.9, "p99": 0.99}[stat]
            out[f"ttft_{stat}_s"] = np.where(q > 1 - 1 / W, np.maximum(steady, first_wave + admission), steady)
    return out
