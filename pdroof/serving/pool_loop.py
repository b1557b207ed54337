"""A closed-loop benchmark over disaggregated pools: C clients each keep one request in flight; a
request queues for one of the prefill pool's N_P replicas, is prefilled in a job with the prompts
waiting with it (as many as the replica's budget takes in a pass; a longer prompt alone, in the
passes its chunks take), its KV crosses to the decode pool (the exposed hand-off t_H), and it decodes on
one of the N_D decode replicas, whose running batch is capped by KV memory or the engine's limit.

Throughput X closes the loop: X = C / (T_FT + (O − 1)·TPOT), with TPOT a decode replica's time per
output token (its step times the passes it makes per token, ``admission_passes``) at the batch Little's law
gives it, B = X·(O − 1)·TPOT / N_D. Neither pool can exceed its capacity:
the prefill pool's N_P·g/T_job(g) at full jobs of g prompts, the decode pool's N_D·B_cap /
((O − 1)·TPOT(B_cap)). Where one binds, the clients it cannot serve wait in front of it, inside
TTFT (a decode pool that admits no more holds the prompts back before their prefill, as the engines'
pre-allocation does): T_FT = C/X − (O − 1)·TPOT.

Below capacity a request's TTFT is its own overhead R, its job T_job and the hand-off. With fixed
lengths the first wave's jobs of g prompts return together and stay in step (no queue); where
lengths vary (``drift``) prompts arrive one by one and a job holds those that arrived during the
one before (``closed_loop``'s rule), waiting in an M/D/1 queue of the replica's utilisation. The
loop is solved for the decode batch B the clients hold (they grow with it), by bisection. The
first wave, every client at once, queues ⌈C/(N_P·g)⌉ jobs on each replica: the mean carries its
share over the ``waves`` requests per client, the percentiles above 1 − 1/waves see it.
"""

from __future__ import annotations

import numpy as np

from ..cost.queueing import wait
from .closed_loop import job_prompts, largest_within
from .stage import decode_tpot, prefill_passes

SOLVE_STEPS = 32  # bisections of log B over [1e-6, the cap] (at most ~1e9 apart): to a part in 10^8


def pool_loop(prefill: dict, decode: dict, clients, prompt_tokens, output_tokens, *, prefill_replicas,
              decode_replicas, job_cap, batch_cap, handoff_s, request_s, drift, waves=10.0,
              stats=("mean", "p50", "p90", "p99")) -> dict[str, np.ndarray]:
    """Steady state per run (arrays of equal length): ``prefill`` and ``decode`` the pools' stage
    inputs (one replica each), ``job_cap`` the prompts a prefill job may hold (its engine's batch
    limit, inf for none), ``batch_cap`` the sequences a decode replica may run (KV memory or the
    engine's limit). Returns ``requests_per_s``, ``tpot_s``, ``ttft_<stat>_s`` and the internals."""
    C, S, L_out = (np.asarray(v, dtype=float) for v in (clients, prompt_tokens, output_tokens))
    N_P, N_D = np.asarray(prefill_replicas, dtype=float), np.asarray(decode_replicas, dtype=float)
    H, R = np.asarray(handoff_s, dtype=float), np.asarray(request_s, dtype=float)
    D = np.asarray(drift, dtype=float) > 0
    B_cap = np.maximum(np.asarray(batch_cap, dtype=float), 1.0)
    steps = np.maximum(L_out - 1, 1.0)
    ctx = S + L_out / 2
    g_wave = np.clip(np.floor(prefill["replica_chunk_tokens"] / S), 1.0, np.minimum(job_cap, np.ceil(C / N_P)))
    job_wave = prefill_passes(prefill, g_wave, S)["seconds"]

    def state(B):
        """The loop at a decode batch B per replica: its TPOT, throughput (Little's law at the
        decode pool), prefill job and utilisation, and the clients that keep it so."""
        tpot = np.asarray(decode_tpot(decode, B, ctx, steps), dtype=float)  # each stays its steps
        X = N_D * B / (steps * tpot)
        g, job = g_wave, job_wave
        if D.any():  # a job holds the prompts that arrived during the one before
            g = np.ones_like(C)
            for _ in range(4):
                job = np.where(D, prefill_passes(prefill, g, S)["seconds"], job_wave)
                m = X / N_P * job
                g = np.where(D, job_prompts(m, g_wave), g_wave)
            job = np.where(D, prefill_passes(prefill, g, S)["seconds"], job_wave)
        rho = X * job / (g * N_P)
        stable = rho < 0.999
        queued = np.where(D & stable, wait(np.minimum(rho, 0.99), "mean") * job, 0.0)
        clients = np.where(stable, X * (R + job + queued + H) + N_D * B, np.inf)
        return tpot, X, g, job, np.minimum(rho, 0.999), clients

    # the decode batch that C clients hold: clients needed grow with it, so bisect (in log space)
    # between next to none and the cap; where even the cap needs fewer than C (or the prefill pool
    # saturates first), the loop runs at that bound and the other clients wait in front of it
    B, at_cap = largest_within(lambda B: state(B)[5] <= C, np.full_like(C, 1e-6), B_cap, SOLVE_STEPS)
    tpot, X, g, job, rho, _ = state(B)
    mu_P = N_P * g / job
    cycle_ttft = C / X - steps * tpot  # what the loop leaves for TTFT: at a bound, the wait in front of it
    n_wave = np.ceil(C / (N_P * g_wave))
    first_wave = R + (n_wave + 1) / 2 * job_wave + H
    W = np.maximum(np.asarray(waves, dtype=float), 1.0)
    out = {"requests_per_s": X, "tpot_s": tpot, "decode_batch": B, "job_prompts": g, "job_s": job,
           "utilisation": rho, "first_wave_ttft_s": first_wave,
           "prefill_bound": ~at_cap & (X >= 0.99 * mu_P), "decode_bound": at_cap & (B >= B_cap)}
    bound = out["prefill_bound"] | out["decode_bound"]
    for stat in stats:
        q = {"mean": None, "p50": 0.5, "p90": 0.9, "p99": 0.99}[stat]
        # a replica's queue holds at most every client's job; at a bound the clients' cycle (Little's
        # law) is the TTFT: the wait in front of the bound, whatever a queue formula would say
        queued = np.where(D, np.minimum(wait(rho, stat) * job, C / (g * N_P) * job), 0.0)
        steady = np.where(bound, cycle_ttft, np.maximum(R + job + queued + H, cycle_ttft))
        if q is None:
            out["ttft_mean_s"] = steady + np.maximum(first_wave - steady, 0.0) / W
        else:
            out[f"ttft_{stat}_s"] = np.where(q > 1 - 1 / W, np.maximum(steady, first_wave), steady)
    return out
