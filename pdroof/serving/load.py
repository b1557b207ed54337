"""What a target bounds under load: the statistic (mean, p50, p90, p99) of TTFT and of TPOT, and
the load model of aggregated serving under either arrival process (``aggregated_load``).

Arrivals. Traffic arrives as a Poisson stream (``poisson``: what ``rank`` and ``check`` plan
for); a benchmark keeps C requests in flight, replacing each finished one at once (``closed``:
``pdroof.serving.closed_loop``, what ``predict`` and ``estimate --serving aggregated`` model). Both
run on the same engine: steps of the ``mixed`` equations under the runtime's token budget, prompts
chunked at it, and each request's own time outside the forward passes (``request_latency_s``).

TTFT. Requests arrive as a Poisson stream and a prefill server works through prompts one at a
time, so a request's TTFT is its service time t_P, its wait in an M/D/1 queue and the handoff
(``pdroof.cost.queueing`` gives the wait's mean and percentiles in closed and tabulated form). A
disaggregated prefill instance is that server; so is an aggregated instance's prefill work (each prompt adds
its marginal step time Δ to the steps that carry it), fed at the instance's request rate.

TPOT. A disaggregated decode step carries no prompts: every request in the batch sees the same
step time (the batch's contexts vary, but their sum over a batch of B, averaged over a request's
O steps, hardly does), so its TPOT statistics coincide: the step at the admitted batch times the
passes it makes per token (``admission_passes``: more than one where the engine takes arrivals in
passes of their own under DP attention). In
aggregated serving a request's O steps also carry the prompts that arrive meanwhile: N of them,
with mean C (Little: C requests join per request lifetime at concurrency C), each adding its
marginal step time Δ; a longer step gathers more arrivals, so N is overdispersed (variance
C/(1 − λΔ)²). Its TPOT is t̄ + (N − C)·Δ/O, whose q-quantile takes N's.
"""

from __future__ import annotations

import numpy as np

from ..cost.numeric import evaluate
from ..cost.queueing import max_utilisation, quantile_of, wait
from .closed_loop import closed_loop, mixed_step_s


def prefill_utilisation(prefill_s, handoff_s, target_s: float, stat: str) -> np.ndarray:
    """Highest utilisation of a prefill server whose TTFT ``stat`` stays within ``target_s``."""
    budget = evaluate("load", _load(prefill_s, handoff_s, ttft_target_s=target_s))["wait_budget"]
    ok = np.isfinite(budget) & (budget >= 0)
    # a hair inside the budget (the tabulated inverse is good to ~7e-5 of it): a pool sized at the
    # utilisation this returns meets its target
    return np.where(ok, max_utilisation(np.where(ok, budget, 0.0) * (1 - 2e-4), stat), 0.0)


def ttft_at(instance_rate, prefill_s, handoff_s, stat: str) -> np.ndarray:
    """TTFT ``stat`` of a prefill server of service ``prefill_s`` offered ``instance_rate``
    requests/s (inf at or beyond saturation)."""
    rho = evaluate("load", _load(prefill_s, handoff_s, instance_rate=instance_rate))["utilisation"]
    stable = rho < 1
    factor = np.where(stable, wait(np.where(stable, rho, 0.0), stat), np.inf)
    return evaluate("load", _load(prefill_s, handoff_s, instance_rate=instance_rate, wait_factor=factor))["ttft_s"]


def decode_in_flight(instance_rate, output_tokens: float, tpot_s) -> np.ndarray:
    """Sequences a decode instance holds at ``instance_rate`` requests/s, each for ``output_tokens``
    at ``tpot_s`` per token (Little's law)."""
    return evaluate("load", _load(1.0, 0.0, instance_rate=instance_rate, output_tokens=float(output_tokens),
                                  step_s=tpot_s))["decode_in_flight"]


def _load(prefill_s, handoff_s, **given) -> dict:
    return {"prefill_s": prefill_s, "handoff_s": handoff_s, "instance_rate": 0.0, "wait_factor": 0.0,
            "ttft_target_s": 0.0, "output_tokens": 1.0, "step_s": 0.0, **given}


def count_quantile(mean, q: float, dispersion=1.0) -> np.ndarray:
    """Smallest k with P(N ≤ k) ≥ q for a count N of the given mean and variance/mean ratio
    (``dispersion`` 1: Poisson; above 1: the negative binomial of that mean and variance),
    vectorised: summed exactly while the count is small (mean ≤ 30, dispersion ≤ 4), the
    Cornish–Fisher expansion beyond (within a count or two there)."""
    m, d = (a.astype(float).ravel() for a in np.broadcast_arrays(np.asarray(mean, dtype=float),
                                                                 np.asarray(dispersion, dtype=float)))
    shape = np.broadcast_shapes(np.shape(mean), np.shape(dispersion))
    out = np.empty(m.shape)
    small = (m <= 30) & (d <= 4)
    if small.any():
        out[small] = _count_quantile_summed(m[small], d[small], q)
    if (~small).any():
        z = _normal_quantile(q)
        ml, dl = m[~small], d[~small]
        sd = np.sqrt(ml * dl)
        skew = (2 * dl - 1) / np.maximum(sd, 1e-300)  # Poisson: 1/sd; negative binomial: (2d − 1)/sd
        out[~small] = np.maximum(0, np.ceil(ml + z * sd + (z * z - 1) / 6 * skew * sd - 0.5))
    return out.reshape(shape)


def _count_quantile_summed(m: np.ndarray, d: np.ndarray, q: float) -> np.ndarray:
    """The pmf term by term (Poisson: p_k = p_{k−1}·m/k; negative binomial with r = m/(d − 1),
    p = 1/d: p_k = p_{k−1}·(k − 1 + r)/k·(1 − p)), accumulated until the CDF reaches q."""
    poisson = d <= 1 + 1e-12
    r = np.where(poisson, 1.0, m / np.maximum(d - 1, 1e-12))
    keep = np.where(poisson, 0.0, 1 - 1 / np.maximum(d, 1.0))
    pmf = np.where(poisson, np.exp(-m), np.exp(r * np.log(1 / np.maximum(d, 1.0))))
    cdf, out = pmf.copy(), np.where(m > 0, -1.0, 0.0)
    n = int(np.max(m + 12 * np.sqrt(m * d) + 30)) if len(m) else 0
    for k in range(n + 1):
        if k:
            pmf = pmf * np.where(poisson, m / k, (k - 1 + r) / k * keep)
            cdf = cdf + pmf
        out = np.where((out < 0) & (cdf >= q - 1e-12), k, out)
        if k % 8 == 7 and out.min() >= 0:  # every count has reached q: the rest of the sum changes nothing
            break
    return out


def _normal_quantile(q: float) -> float:
    """Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if q < 0.02425:
        t = np.sqrt(-2 * np.log(q))
        return (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / \
            ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1)
    if q > 1 - 0.02425:
        return -_normal_quantile(1 - q)
    r = (q - 0.5) ** 2
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * (q - 0.5) / \
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


def aggregated_tpot(mean_tpot_s, marginal_prompt_s, concurrency, output_tokens: float, stat: str) -> np.ndarray:
    """TPOT ``stat`` of aggregated serving at ``concurrency``: the mean step plus the deviation
    of the prompts that ride along a request's O steps from their mean C, each costing its
    marginal step time Δ. Prompts arrive while steps run, and a step that carries one is longer,
    so more arrive during it: with m = λ·Δ (λ = C/(O·t̄)) the count's variance is C/(1 − m)²
    (m ≥ 1: prefill work alone saturates the instance, TPOT unbounded)."""
    q = quantile_of(stat)
    mean = np.asarray(mean_tpot_s, dtype=float)
    if q is None:
        return mean
    C = np.broadcast_to(np.asarray(concurrency, dtype=float), mean.shape)
    m = C / (output_tokens * mean) * marginal_prompt_s
    stable = m < 1
    dispersion = 1 / np.where(stable, 1 - m, 1.0) ** 2
    extra = (count_quantile(C, q, dispersion) - C) * marginal_prompt_s / output_tokens
    return np.where(stable, mean + extra, np.inf)


def aggregated_ttft(unloaded_ttft_s, marginal_prompt_s, mean_tpot_s, concurrency, output_tokens: float,
                    stat: str) -> np.ndarray:
    """TTFT ``stat`` of aggregated serving: prompts queue for the engine's prefill work, a server
    whose service per prompt is the step time it adds (Δ, the same marginal the TPOT model
    charges), offered the instance's request rate C/(O·t̄); a request's TTFT is the unloaded one
    plus that queue's wait."""
    rate = concurrency / (output_tokens * mean_tpot_s)
    return ttft_at(rate, marginal_prompt_s, unloaded_ttft_s - marginal_prompt_s, stat)


ARRIVALS = ("closed", "poisson")


def aggregated_load(inputs: dict, concurrency, new_tokens, output_tokens, *, prefix_tokens=0.0,
                    arrivals: str = "poisson", admitted=np.inf, ttft_stat: str = "mean", tpot_stat: str = "mean",
                    waves: float = 10.0, drift=False) -> dict[str, np.ndarray]:
    """Aggregated serving at ``concurrency`` requests in flight (arrays broadcast over the stage
    inputs): ``tpot_s`` and ``ttft_s`` (the statistics named), ``tpot_mean_s``, ``ttft_unloaded_s``
    (a request alone: one step carrying its prompt, chunked at the token budget, and its own
    overhead) and ``requests_per_s``.

    ``poisson``: prompts queue for the engine's prefill work (a server whose service per prompt is
    the step time it adds, Δ, offered C/(O·t̄)) and a request's O steps carry an overdispersed
    count of others' prompts (``aggregated_ttft``, ``aggregated_tpot``). ``closed``: the benchmark's
    clients (``closed_loop``), at most ``admitted`` of them in the engine (the others wait for KV
    memory), ``waves`` requests per client, ``drift`` where their lengths vary (the lengths given
    are then the means; a runtime with ``arrivals: drifting`` drifts too where one job holds the whole
    wave, since its engine then idles between waves and starts on the first prompt back); every TPOT
    statistic is the mean, and every TTFT statistic comes back too (``ttft_<stat>_s``). The runtime's
    ``prefill_first`` schedule shapes the closed loop only: under Poisson arrivals prompts come
    one at a time and the mixed model's marginal step approximates either schedule (a prompt's own
    step would read the weights once more)."""
    if arrivals not in ARRIVALS:
        raise ValueError(f"arrivals must be one of {ARRIVALS}, not {arrivals!r}")
    C = np.asarray(concurrency, dtype=float)
    request_s = inputs["request_latency_s"]
    chunks = np.ceil(new_tokens / inputs["replica_chunk_tokens"])
    context = prefix_tokens + new_tokens + output_tokens / 2

    def step_s(batch, prompts):
        return mixed_step_s(inputs, batch, prompts, new_tokens, prefix_tokens, context)

    running = np.minimum(C, admitted)  # what the engine holds while a prompt joins
    unloaded = step_s(running, 1.0)
    if np.any(chunks > 1):  # a prompt beyond the token budget takes more steps
        unloaded = unloaded + (chunks - 1) * step_s(running, 0.0)
    if arrivals == "closed":
        # where one job holds a whole wave the engine idles between waves; one that then steps on the
        # first prompt to arrive (``arrivals: drifting``) breaks the wave up, as varied lengths do
        one_job = np.minimum(C, admitted) <= np.floor(inputs["replica_chunk_tokens"] / new_tokens)
        drift = np.maximum(np.asarray(drift, dtype=float), np.where(one_job, inputs["drifting_arrivals"], 0.0))
        res = closed_loop(inputs, C, new_tokens, output_tokens, inputs["replica_chunk_tokens"], admitted, waves,
                          inputs["prefill_first"], request_s, prefix_tokens, drift)
        return {**res, "tpot_mean_s": res["tpot_s"], "ttft_s": res[f"ttft_{ttft_stat}_s"],
                "ttft_unloaded_s": unloaded + request_s}
    load = C / output_tokens  # prompts a step carries on average (C/O join per step)
    tpot = step_s(C, load)
    marginal = step_s(C, load + 1.0) - tpot
    return {"tpot_s": aggregated_tpot(tpot, marginal, C, output_tokens, tpot_stat), "tpot_mean_s": tpot,
            "ttft_s": aggregated_ttft(unloaded, marginal, tpot, C, output_tokens, ttft_stat) + request_s,
            "ttft_unloaded_s": unloaded + request_s, "requests_per_s": C / (output_tokens * tpot)}


def admitted_sequences(inputs: dict, prompt_tokens, output_tokens) -> np.ndarray:
    """Sequences an instance's KV memory holds at once: each its prompt and, where the runtime
    reserves a whole sequence at admission, all its output, else half of it on average."""
    held = prompt_tokens + np.where(inputs["kv_reserve_full"] > 0, output_tokens, np.divide(output_tokens, 2))
    return np.floor(evaluate("memory", {**inputs, "batch": 1.0, "context_tokens": held})["max_batch"])
