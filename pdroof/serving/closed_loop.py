"""Aggregated serving under a closed-loop benchmark load: C clients each keep one request in flight
(a finished request is replaced at once), prompts of S tokens, O output tokens, an engine that
batches continuously with a token budget K per step (chunked prefill) and admits as many
sequences as its KV memory holds.

With fixed lengths the clients fall into step: prompts that arrive together are prefilled together,
in *jobs* of g prompts: all C where C·S ≤ K, else as many as the budget holds beside the decodes the
job's step carries, each a token of it (g·S + C − g ≤ K); a job of more tokens than its budget spans
several steps. A job step carries the other requests' decodes and takes T_job; between jobs, decode
steps of B sequences take τ. Jobs arrive at r = X/g for a throughput of X requests/s and occupy the
engine a fraction ρ = r·T_job of the time, so a job waits behind the others (an M/D/1 wait, bounded
by the jobs there are). A request's TTFT is its job's wait and service, plus, when fewer than C
sequences fit in KV memory, its wait for admission; its TPOT is the mean step it sees while it
decodes: decode steps, and the steps of the *other* groups' jobs. Little's law closes the loop: X =
C / (R + T_engine), T_engine = T_job + wait + (O − 1)·TPOT, or C_admitted / T_engine where KV memory
admits fewer than C (the engine is then full), solved by damped iteration over all runs at once. X
never exceeds the jobs' pace g/T_job: where prompts alone fill the engine (ρ = 1), the clients
beyond queue for prefill, and that wait (C/X less the rest of a client's cycle) joins their TTFT. R
(``request_s``) is the time a request spends outside the forward passes before its first token (the
server receiving and tokenising it, streaming the token back): it occupies its client and is part of
its TTFT, not the engine's time.

With C/g = 1 (one job holds every prompt) this is the synchronised wave the benchmarks show at low
concurrency: TTFT = one step carrying all C prompts (≈ C prefills), TPOT = the decode step.

A benchmark starts with every client's first request at once: that first wave queues all its n =
⌈C/g⌉ jobs back to back (mean TTFT ≈ (n + 1)/2 job times), and it is one of the ``waves`` (requests
÷ clients) the run averages over; the mean TTFT carries its share, the median and the upper
percentiles see it only when the first wave is that large a share of the requests.

An engine that schedules prompts first (``prefill_first``: decodes pause while a prompt waits,
SGLang without mixed chunks) never lets the waves drift apart: a wave's n jobs run back to back,
prompts only, then its requests decode together and finish together, and the next wave arrives
together. Every wave is then the first: the k-th job's requests see their first token after k job
times (mean (n + 1)/2), then wait for the n − k jobs after theirs before decoding, which adds
(n − 1)/2 job times over O − 1 tokens to the mean TPOT; T_engine = n·T_job + (O − 1)·τ.

Where lengths vary from request to request (``drift``: a benchmark drawing them from a range, as
InferenceX's does), requests finish at scattered steps after the first wave, and their successors
arrive one by one at the throughput X. The engine starts each job at the next step boundary with
the prompts that arrived during the step before: with arrivals during a step of length T_job
Poisson of mean m = X·T_job, a job holds g = m/(1 − e^(−m)) of them (one at light load, m at heavy,
at most the token budget's K/S). A request waits for the rest of the step in progress, where that
step is another request's (a share 1 − g/C of the time), half of the mean step length weighted by
time, ρ·T_job + (1 − ρ)·τ (ρ = X/g·T_job, the time in jobs), then its job. Under ``prefill_first``
such a job runs alone and gives the decodes no token; otherwise it carries them. Only the first
wave is synchronised.
"""

from __future__ import annotations

import numpy as np

from ..cost.numeric import evaluate
from ..cost.queueing import wait

ITERATIONS = 40  # at most; it stops once every throughput moves by less than 1e-5 a step
BUSIEST = 0.999  # the largest share of the engine's time its jobs take


def _throughput(clients, admitted, request_s, engine_s):
    """Requests/s of C clients whose requests each spend ``request_s`` outside the engine and
    ``engine_s`` in it, at most ``admitted`` of them in it at once: C/(R + T), or N/T where the
    engine is full (the clients in their overhead then do not leave it idle)."""
    return np.minimum(clients / (request_s + engine_s), admitted / engine_s)


def job_prompts(arriving, most) -> np.ndarray:
    """Prompts a job holds where they arrive one by one: those that arrived during the job before,
    Poisson of mean m = ``arriving``, given at least one: m/(1 − e^(−m)), between 1 and ``most``."""
    m = np.maximum(arriving, 1e-9)
    return np.clip(m / -np.expm1(-m), 1.0, most)


def prompt_budget(chunk_tokens, decodes):
    """Prompt tokens a step holds that carries ``decodes`` decodes: each decode is a token of the
    step's budget (vLLM's max_num_batched_tokens, TensorRT-LLM's max_num_tokens, SGLang's chunk
    less its running batch under mixed chunks), at least one."""
    return np.maximum(chunk_tokens - decodes, 1.0)


def mixed_step_s(inputs: dict, batch, prompts, prompt_tokens, prefix_tokens, context_tokens):
    """One forward pass: ``batch`` decodes at ``context_tokens`` and ``prompts`` prompts of
    ``prompt_tokens`` new tokens after a cached prefix (the ``mixed`` equations)."""
    return np.array(evaluate("mixed", {**inputs, "batch": batch, "prefill_prompts": prompts,
                                       "new_tokens": prompt_tokens, "prefix_tokens": prefix_tokens,
                                       "context_tokens": context_tokens}, ("seconds",))["seconds"])


def closed_loop(inputs: dict, clients, prompt_tokens, output_tokens, chunk_tokens, admitted, waves=10.0,
                prefill_first=False, request_s=0.0, prefix_tokens=0.0, drift=False,
                stats=("mean", "p50", "p90", "p99")) -> dict[str, np.ndarray]:
    """Steady state of one engine instance per element of the (broadcast) arrays: ``clients``
    requests in flight, ``admitted`` the sequences its KV memory holds, ``waves`` the benchmark's
    requests per client, ``prefill_first`` where the engine runs waiting prompts ahead of decodes,
    ``request_s`` each request's time outside the forward passes before its first token,
    ``prefix_tokens`` the cached prefix each prompt's ``prompt_tokens`` new tokens follow,
    ``drift`` where lengths vary from request to request (the clients drift apart; the lengths
    given are then the means). Returns throughput (requests/s), the mean TPOT, TTFT per statistic
    (``ttft_<stat>_s``), and the internals (job size, utilisation, decode batch)."""
    shape = np.broadcast_shapes(*(np.shape(v) for v in (clients, prompt_tokens, output_tokens, chunk_tokens,
                                                        admitted, waves, prefill_first, request_s, prefix_tokens,
                                                        drift)),
                                *(np.shape(v) for v in inputs.values()))
    n = int(np.prod(shape))

    def flat(v):
        return np.broadcast_to(np.asarray(v, dtype=float), shape).ravel()

    C, S, L_out, K, N, W, PF, R, P, D = (flat(v) for v in (clients, prompt_tokens, output_tokens, chunk_tokens,
                                                            admitted, waves, prefill_first, request_s, prefix_tokens,
                                                            drift))
    inp = {k: (flat(v) if np.ndim(v) else v) for k, v in inputs.items()}
    ctx = P + S + L_out / 2  # mean context of a decoding sequence
    C_in = np.maximum(np.minimum(C, N), 1.0)
    carries = PF <= 0  # a job's steps carry the running decodes (else they pause for it)
    # a synchronised job: the prompts the budget holds, all C where they fit (nothing else runs then);
    # else, where its steps carry the other C − g requests' decodes, those take their tokens from the
    # budget too: g·S ≤ K − (C − g)
    shared = np.floor((K - C_in) / np.maximum(S - 1, 1.0))
    g_wave = np.where(C_in * S <= K, C_in, np.clip(np.where(carries, shared, np.floor(K / S)), 1.0, C_in))
    drifting = D > 0
    g = np.where(drifting, 1.0, g_wave)
    synced_first = (PF > 0) & ~drifting  # prompts first, fixed lengths: every wave is the first

    def job_step(sub, idx, prompts, batch):
        """A job's steps: ``prompts`` prompts with ``batch`` decodes, spread over its chunks."""
        t = mixed_step_s(sub, batch, prompts, S[idx], P[idx], ctx[idx])
        chunks = np.ceil(prompts * S[idx] / prompt_budget(K[idx], batch))
        long = chunks > 1
        if long.any():
            t = t + np.where(long, (chunks - 1) * mixed_step_s(sub, batch, 0.0, S[idx], P[idx], ctx[idx]), 0.0)
        return t

    def rows(idx):
        return {k: (v[idx] if np.ndim(v) else v) for k, v in inp.items()}

    everyone = np.arange(n)
    tau = mixed_step_s(inp, C_in, 0.0, S, P, ctx)
    job = job_step(inp, everyone, g, np.where(carries, np.maximum(C_in - g, 0.0), 0.0))
    engine = job + (L_out - 1) * tau  # a request's time in the engine, from its job to its last token
    X = _throughput(C, C_in, R, engine)
    rho, tpot, B_d = np.zeros(n), tau.copy(), C_in.copy()
    n_wave = np.ceil(C_in / g_wave)  # jobs of a synchronised wave
    if synced_first.any():  # its jobs run back to back, then its requests decode together
        pf = everyone[synced_first]
        tpot[pf] = tau[pf] + (n_wave[pf] - 1) / 2 * job[pf] / np.maximum(L_out[pf] - 1, 1.0)
        engine[pf] = n_wave[pf] * job[pf] + (L_out[pf] - 1) * tau[pf]  # its wave's, every request alike
        X[pf] = _throughput(C[pf], C_in[pf], R[pf], engine[pf])
        rho[pf] = n_wave[pf] * job[pf] * X[pf] / C_in[pf]
    idx = everyone[~synced_first]
    for _ in range(ITERATIONS):  # only the runs whose throughput still moves
        if not len(idx):
            break
        sub = rows(idx)
        Xi, gi, Ci, Li, Di = X[idx], g[idx], C_in[idx], L_out[idx], drifting[idx]
        r, others = Xi / gi, 1 - gi / Ci  # jobs per second; the share of them that are others'
        rho[idx] = rho_i = np.minimum(r * job[idx], BUSIEST)
        # a job's steps, each giving the decodes it carries a token (and taking that token from its budget)
        carried = np.minimum(B_d[idx], Ci - gi)
        tokens = np.where(carries[idx], np.ceil(gi * S[idx] / prompt_budget(K[idx], carried)), 0.0)
        tpot[idx] = tpot_i = 1 / np.maximum(r * others * tokens + (1 - r * others * job[idx]) / tau[idx], 1e-12)
        decoding = np.minimum(Ci, Xi * (Li - 1) * tpot_i / np.maximum(1 - rho_i * gi / Ci, 1e-3))
        B_d[idx] = B = np.maximum(decoding, 1.0)
        tau[idx] = mixed_step_s(sub, B, 0.0, S[idx], P[idx], ctx[idx])
        job[idx] = job_i = job_step(sub, idx, gi, np.where(carries[idx], np.minimum(B, Ci - gi), 0.0))
        w = np.where(Di, others * (rho_i * job_i + (1 - rho_i) * tau[idx]) / 2,
                     np.minimum(wait(rho_i, "mean") * job_i, (Ci / gi - 1) * job_i))
        engine[idx] = engine_i = job_i + w + (Li - 1) * tpot_i
        # at most the jobs the engine can run back to back: beyond, the clients queue for prefill
        X_new = np.minimum(0.5 * Xi + 0.5 * _throughput(C[idx], Ci, R[idx], engine_i), BUSIEST * gi / job_i)
        m = X_new * job_i  # prompts arriving during a job: the next job's, at least one
        g[idx] = np.where(Di, 0.5 * gi + 0.5 * job_prompts(m, g_wave[idx]), gi)
        moving = (np.abs(X_new - Xi) > 1e-5 * Xi) | (np.abs(g[idx] - gi) > 1e-4 * gi)
        X[idx] = X_new
        idx = idx[moving]
    queue_cap = (C_in / g - 1) * job  # at most every other job ahead
    # time outside the engine: every request's own overhead, and, where more clients send than KV
    # memory admits, the wait for a finished request (a client's cycle C/X less the rest)
    outside = R + np.maximum(C / X - R - engine, 0.0)
    # the first wave: its jobs back to back, the k-th carrying the decodes of the k - 1 before it
    wave_job = np.where(synced_first, job, job_step(inp, everyone, g_wave,
                                                    np.where(carries, np.maximum((n_wave - 1) / 2 * g_wave, 0.0), 0.0)))
    first_wave = (n_wave + 1) / 2 * wave_job
    W = np.maximum(W, 1.0)
    out = {"requests_per_s": X, "tpot_s": tpot, "job_prompts": g, "job_s": job, "decode_step_s": tau,
           "decode_batch": B_d, "utilisation": rho, "admitted": C_in, "first_wave_ttft_s": first_wave + outside}
    for stat in stats:
        q = {"mean": 0.5, "p50": 0.5, "p90": 0.9, "p99": 0.99}[stat]
        # drifting: the rest of the step in progress (uniform over it) then its job
        steady = job + outside + np.where(drifting, q * (1 - g / C_in) * (rho * job + (1 - rho) * tau),
                                          np.minimum(wait(rho, stat) * job, queue_cap))
        if stat == "mean":
            ttft = steady + np.maximum(first_wave + outside - steady, 0.0) / W
            out["ttft_mean_s"] = np.where(synced_first, first_wave + outside, ttft)
        else:  # the first wave's requests are the slowest 1/W of them
            ttft = np.where(q > 1 - 1 / W, np.maximum(steady, first_wave + outside), steady)
            out[f"ttft_{stat}_s"] = np.where(synced_first, np.ceil(q * n_wave) * job + outside, ttft)
    return {k: v.reshape(shape) for k, v in out.items()}
