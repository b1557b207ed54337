"""Aggregated serving under a closed-loop benchmark load: C clients each keep one request in flight
(a finished request is replaced at once), prompts of S tokens, O output tokens, an engine that
batches continuously with a token budget K per step (chunked prefill) and admits as many
sequences as its KV memory holds.

With fixed lengths the clients fall into step: prompts that arrive together are prefilled together,
in *jobs* of g prompts: all C where C·S ≤ K, else the whole prompts the budget holds beside the
decodes the job's step carries, each a token of it (g·S + min(B, C − g) ≤ K); a job of more tokens
than its budget spans several steps. A job step carries the other requests' decodes and takes T_job;
between jobs, decode steps of B sequences take τ. Jobs arrive at r = X/g for a throughput of X
requests/s and occupy the engine a fraction ρ = r·T_job of the time, so a job waits behind the
others (an M/D/1 wait, bounded by the jobs there are). A request's TTFT is its job's wait and
service, plus, when fewer than C sequences fit in KV memory, its wait for admission; its TPOT is the
mean step it sees while it decodes: decode steps, and the steps of the *other* groups' jobs.
Little's law closes the loop: X = C / (R + T_engine), T_engine = T_job + wait + (O − 1)·TPOT, or
C_admitted / T_engine where KV memory admits fewer than C (the engine is then full). X never exceeds
the jobs' pace g/T_job: where prompts alone fill the engine (ρ = 1), the clients beyond queue for
prefill, and that wait (C/X less the rest of a client's cycle) joins their TTFT. All runs are solved
at once, for the decode batch B (``_steady``). R (``request_s``) is the time a request spends
outside the forward passes before its first token (the server receiving and tokenising it, streaming
the token back): it occupies its client and is part of its TTFT, not the engine's time.

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
arrive one by one at the throughput X. The engine starts each job at the next step boundary with the
prompts that arrived during the step before: with arrivals during a step of length T_job Poisson of
mean m = X·T_job, a job holds g = m/(1 − e^(−m)) of them (one at light load, m at heavy, at most
what the budget holds beside the decodes). A request waits for the rest of the step in progress,
where that step is another request's (a share 1 − g/C of the time), half of the mean step length
weighted by time, ρ·T_job + (1 − ρ)·τ (ρ = X/g·T_job, the time in jobs), then its job. Under
``prefill_first`` such a job runs alone and gives the decodes no token; otherwise it carries them.
Only the first wave is synchronised.
"""

from __future__ import annotations

import numpy as np

from ..cost.numeric import evaluate
from ..cost.queueing import wait

SOLVE_STEPS = 34  # bisections of log B over [1e-9, admitted]: to a part in 10^9
JOB_STEPS = 12  # bisections of a drifting job's size at each decode batch: to (most − 1)/4096
BUSIEST = 0.999  # the largest share of the engine's time its jobs take


def _throughput(clients, admitted, request_s, engine_s):
    """Requests/s of C clients whose requests each spend ``request_s`` outside the engine and
    ``engine_s`` in it, at most ``admitted`` of them in it at once: C/(R + T), or N/T where the
    engine is full (the clients in their overhead then do not leave it idle)."""
    return np.minimum(clients / (request_s + engine_s), admitted / engine_s)


def largest_within(fits, lo, hi, steps: int):
    """The largest x in [lo, hi] (elementwise) where ``fits(x)``, true below some point and false
    above it: ``hi`` where it fits, else bisected in log x (``steps`` halvings of the log range;
    ``fits`` may jump, which rules out faster root finding). Also returns where ``hi`` fits."""
    top = fits(hi)
    a, b = np.log(lo), np.log(hi)
    for _ in range(steps):
        c = (a + b) / 2
        ok = fits(np.exp(c))
        a, b = np.where(ok, c, a), np.where(ok, b, c)
    return np.where(top, hi, np.exp(a)), top


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


def prompts_beside(chunk_tokens, prompt_tokens, clients, decodes):
    """Whole prompts of S tokens a synchronised job of C clients holds (g): all C where they fit the
    budget K; else those that fit beside the decodes its step carries, min(B, C − g), each a token of
    the budget: the largest g with g·S + min(B, C − g) ≤ K (g·S + B ≤ K while B ≤ C − g, else
    g·(S − 1) ≤ K − C), at least one."""
    K, S, C, B = chunk_tokens, prompt_tokens, clients, decodes
    g = np.where((C - B) * S + B > K, np.floor((K - B) / S), np.floor((K - C) / np.maximum(S - 1, 1.0)))
    return np.where(C * S <= K, C, np.clip(g, 1.0, C))


def _job_wait_s(drifting, others, busy, job_s, step_s, clients, prompts, stat: str, q: float):
    """A request's wait before its job starts: where lengths vary, the rest (quantile ``q``) of the
    step in progress where that step is another request's; else its job's M/D/1 wait at the jobs'
    share of the time ``busy``, at most every other job ahead."""
    return np.where(drifting, q * others * (busy * job_s + (1 - busy) * step_s),
                    np.minimum(wait(busy, stat) * job_s, (clients / prompts - 1) * job_s))


def mixed_step_s(inputs: dict, batch, prompts, prompt_tokens, prefix_tokens, context_tokens):
    """One forward pass: ``batch`` decodes at ``context_tokens`` and ``prompts`` prompts of
    ``prompt_tokens`` new tokens after a cached prefix (the ``mixed`` equations)."""
    return np.array(evaluate("mixed", {**inputs, "batch": batch, "prefill_prompts": prompts,
                                       "new_tokens": prompt_tokens, "prefix_tokens": prefix_tokens,
                                       "context_tokens": context_tokens}, ("seconds",))["seconds"])


def job_chunks(prompts, prompt_tokens, chunk_tokens, decodes):
    """Steps a job of ``prompts`` prompts takes where each step also carries ``decodes`` decodes."""
    return np.ceil(prompts * prompt_tokens / prompt_budget(chunk_tokens, decodes))


def job_step_s(inputs: dict, prompts, batch, S, P, ctx, K, step_s=None):
    """A job's steps: ``prompts`` prompts of S new tokens after P cached, with ``batch`` decodes at
    context ``ctx``, spread over its chunks of budget K (each step after the first a decode step,
    ``step_s`` where the caller has it)."""
    t = mixed_step_s(inputs, batch, prompts, S, P, ctx)
    chunks = job_chunks(prompts, S, K, batch)
    long = chunks > 1
    if long.any():
        if step_s is None:
            step_s = mixed_step_s(inputs, batch, 0.0, S, P, ctx)
        t = t + np.where(long, (chunks - 1) * step_s, 0.0)
    return t


def _steady(inp: dict, C, C_in, S, L_out, K, R, P, ctx, drifting, carries) -> dict:
    """The steady state of the engines that interleave jobs with decodes (arrays of one length).

    Parametrised by the decode batch B, as ``pool_loop`` is: at a given B the decode step τ and the
    jobs follow, and the throughput X at which B requests decode (Little's law, B = X·(O − 1)·TPOT
    over the time a request is not in its own job) solves a quadratic in the jobs' share of the time
    u = X·T_job/g, since TPOT = 1/(u·o·k/T_job + (1 − u·o)/τ) (o the share of the jobs that are
    others', k the steps of one). The clients that B takes, X·(R + T_engine), rise with it; so does
    what the engine holds, X·T_engine; so the largest B within C clients, within KV memory, and with
    the jobs short of filling the engine's time (beyond, the clients queue for prefill) is the root
    of the largest log excess over those bounds, bisected in log B (it jumps where a job fills). Where
    lengths vary, a job holds the prompts that arrived during the one before (g = m/(1 − e^(−m)),
    m = X·T_job, bisected between one and the budget's most); its time is taken as linear in g
    between one prompt and that most, and the engine is full only once its jobs hold that most."""
    n = len(C)
    steps = np.maximum(L_out - 1, 1e-6)  # decode steps of a request (a single output token: next to none)

    def state(B):
        tau = mixed_step_s(inp, np.maximum(B, 1.0), 0.0, S, P, ctx)  # a step decodes one sequence at least
        most = prompts_beside(K, S, C_in, np.where(carries, B, 0.0))
        # a long job's later steps: decode steps (their decodes as many, to a sequence or two)
        job_most = job_step_s(inp, most, np.where(carries, np.minimum(B, C_in - most), 0.0), S, P, ctx, K, tau)
        job_one = job_most
        if drifting.any():
            carried_one = np.where(carries, np.minimum(B, C_in - 1), 0.0)
            job_one = np.where(drifting & (most > 1),
                               job_step_s(inp, np.ones(n), carried_one, S, P, ctx, K, tau), job_most)

        def at(g):
            share = np.where(most > 1, (g - 1) / np.maximum(most - 1, 1e-12), 1.0)
            job = job_one + share * (job_most - job_one)
            carried = np.where(carries, np.minimum(B, C_in - g), 0.0)
            tokens = np.where(carries, job_chunks(g, S, K, carried), 0.0)
            o = 1 - g / C_in
            # B·(b·u + c)·(1 − d·u) = a·u, its smallest positive root (capped at 1 below; disc < 0 cannot occur)
            a, b, c, d = g * steps / job, o * (tokens / job - 1 / tau), 1 / tau, g / C_in
            qa, qb, qc = -B * b * d, B * b - B * c * d - a, B * c
            disc = qb * qb - 4 * qa * qc
            u = np.where(disc >= 0, 2 * qc / np.maximum(-qb + np.sqrt(np.maximum(disc, 0.0)), 1e-300), np.inf)
            return job, tokens, o, u, np.minimum(u, 1.0) * g / job

        g = most
        if drifting.any():  # the job size the arrivals during a job give, where they do not fill it
            # g = m/(1 − e^(−m)) with m = X·T_job = u·g holds where g = −ln(1 − u)/u: tested so, as
            # job_prompts rounds to m itself beyond m ≈ 37
            def short(g, u):  # the arrivals during a job of g would fill a larger one
                return (u >= 1) | (g * u < -np.log1p(-np.minimum(u, 1 - 1e-16)))

            apart = drifting & ~short(most, at(most)[3])
            g_lo, g_hi = np.ones(n), most.copy()
            for _ in range(JOB_STEPS):  # bisect between one prompt and the most
                g = np.where(apart, (g_lo + g_hi) / 2, most)
                more = short(g, at(g)[3])
                g_lo, g_hi = np.where(more, g, g_lo), np.where(more, g_hi, g)
            g = np.where(apart, (g_lo + g_hi) / 2, most)
        job, tokens, o, u, X = at(g)
        tpot = 1 / (np.minimum(u, 1.0) * o * tokens / job + (1 - np.minimum(u, 1.0) * o) / tau)
        busy = np.minimum(u, BUSIEST)
        engine = job + _job_wait_s(drifting, o, busy, job, tau, C_in, g, "mean", 0.5) + (L_out - 1) * tpot
        # prompts arriving apart fill a job only as far as they arrive: the engine is full only once
        # its jobs hold all the budget allows
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = np.fmax(np.log(X * (R + engine) / C), np.log(X * engine / C_in))  # > 0: beyond a bound
            excess = np.where(g >= most, np.fmax(excess, np.log(u / BUSIEST)), excess)
        return np.where(np.isnan(excess), np.inf, excess), {"X": X, "B": np.maximum(B, 1.0), "g": g, "tau": tau,
                                                            "job": job, "tpot": tpot, "engine": engine, "rho": busy}

    # the largest B within every bound: the root of the (rising) excess, from next to no decodes to
    # every sequence admitted (a bisection, as the excess jumps where a job fills up)
    B, _ = largest_within(lambda B: state(B)[0] <= 0, np.full(n, 1e-9), C_in, SOLVE_STEPS)
    return state(B)[1]


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
    # a synchronised job: the prompts the budget holds beside the others' decodes (where its steps carry them)
    g_wave = prompts_beside(K, S, C_in, np.where(carries, C_in, 0.0))
    drifting = D > 0
    g = g_wave.copy()
    synced_first = (PF > 0) & ~drifting  # prompts first, fixed lengths: every wave is the first

    def rows(idx):
        return {k: (v[idx] if np.ndim(v) else v) for k, v in inp.items()}

    everyone = np.arange(n)
    X, tpot, tau, job, engine, rho, B_d = (np.zeros(n) for _ in range(7))
    n_wave = np.ceil(C_in / g_wave)  # jobs of a synchronised wave
    if synced_first.any():  # its jobs run back to back, prompts alone, then its requests decode together
        pf = everyone[synced_first]
        tau[pf] = mixed_step_s(rows(pf), C_in[pf], 0.0, S[pf], P[pf], ctx[pf])
        job[pf] = job_step_s(rows(pf), g[pf], 0.0, S[pf], P[pf], ctx[pf], K[pf])
        tpot[pf] = tau[pf] + (n_wave[pf] - 1) / 2 * job[pf] / np.maximum(L_out[pf] - 1, 1.0)
        engine[pf] = n_wave[pf] * job[pf] + (L_out[pf] - 1) * tau[pf]  # its wave's, every request alike
        X[pf] = _throughput(C[pf], C_in[pf], R[pf], engine[pf])
        rho[pf] = n_wave[pf] * job[pf] * X[pf] / C_in[pf]
        B_d[pf] = C_in[pf]
    idx = everyone[~synced_first]

    if len(idx):
        st = _steady(rows(idx), C[idx], C_in[idx], S[idx], L_out[idx], K[idx], R[idx], P[idx], ctx[idx], drifting[idx],
                     carries[idx])
        X[idx], B_d[idx], g[idx], tau[idx], job[idx], tpot[idx], engine[idx], rho[idx] = (
            st[k] for k in ("X", "B", "g", "tau", "job", "tpot", "engine", "rho"))
    # time outside the engine: every request's own overhead, and, where more clients send than KV
    # memory admits, the wait for a finished request (a client's cycle C/X less the rest)
    outside = R + np.maximum(C / X - R - engine, 0.0)
    # the first wave: its jobs back to back, the k-th carrying the decodes of the k - 1 before it
    carried_wave = np.where(carries, np.maximum((n_wave - 1) / 2 * g_wave, 0.0), 0.0)
    wave_job = np.where(synced_first, job, job_step_s(inp, g_wave, carried_wave, S, P, ctx, K))
    # ... with each request's own overhead, and its wait for KV memory where the clients outnumber it
    # (a queue for prefill beyond a full engine is the first wave's own jobs, counted already)
    first_wave = (n_wave + 1) / 2 * wave_job + np.where(C > C_in, outside, R)
    W = np.maximum(W, 1.0)
    out = {"requests_per_s": X, "tpot_s": tpot, "job_prompts": g, "job_s": job, "decode_step_s": tau,
           "decode_batch": B_d, "utilisation": rho, "admitted": C_in, "first_wave_ttft_s": first_wave}
    for stat in stats:
        q = {"mean": 0.5, "p50": 0.5, "p90": 0.9, "p99": 0.99}[stat]
        steady = job + outside + _job_wait_s(drifting, 1 - g / C_in, rho, job, tau, C_in, g, stat, q)
        if stat == "mean":
            ttft = steady + np.maximum(first_wave - steady, 0.0) / W
            out["ttft_mean_s"] = np.where(synced_first, first_wave, ttft)
        else:  # the first wave's requests are the slowest 1/W of them
            ttft = np.where(q > 1 - 1 / W, np.maximum(steady, first_wave), steady)
            out[f"ttft_{stat}_s"] = np.where(synced_first, np.ceil(q * n_wave) * job + outside, ttft)
    return {k: v.reshape(shape) for k, v in out.items()}
