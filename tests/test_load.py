"""What a target's statistic is under load: TTFT behind an M/D/1 prefill queue, aggregated TPOT
with the prompts that ride along, and the Poisson counts behind it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pdroof.serving.load import aggregated_tpot, count_quantile, prefill_utilisation, ttft_at


def _poisson_quantile_exact(mean: float, q: float) -> int:
    k, cdf = 0, 0.0
    while True:
        cdf += math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1)) if mean > 0 else (1.0 if k == 0 else 0.0)
        if cdf >= q - 1e-12:
            return k
        k += 1


def _negative_binomial_quantile_exact(mean: float, dispersion: float, q: float) -> int:
    r, p = mean / (dispersion - 1), 1 / dispersion
    k, cdf = 0, 0.0
    while True:
        cdf += math.exp(math.lgamma(k + r) - math.lgamma(k + 1) - math.lgamma(r) + r * math.log(p)
                        + k * math.log(1 - p))
        if cdf >= q - 1e-12:
            return k
        k += 1


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_overdispersed_count_quantile(q):
    for mean, d in ((0.7, 1.5), (24.0, 2.44), (3.0, 4.0)):  # summed exactly
        assert count_quantile(mean, q, d) == _negative_binomial_quantile_exact(mean, d, q), (mean, d)
    for mean, d in ((150.0, 4.0), (190.0, 1.1), (5000.0, 2.0), (40.0, 9.0)):  # Cornish–Fisher: a count or two
        assert abs(float(count_quantile(mean, q, d)) - _negative_binomial_quantile_exact(mean, d, q)) <= 2, (mean, d)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_poisson_quantile(q):
    means = np.array([0.0, 0.3, 1.0, 2.5, 17.0, 29.9, 30.1, 150.0, 1234.0, 20_000.0])
    got = count_quantile(means, q)
    for m, k in zip(means, got, strict=True):
        exact = _poisson_quantile_exact(float(m), q)
        assert k == exact if m <= 30 else abs(k - exact) <= 1, (m, q)


def test_pool_sized_at_its_capacity_meets_its_target():
    """A prefill instance run at the utilisation prefill_utilisation allows has its TTFT
    statistic at (not above) the target."""
    prefill_s = np.array([0.05, 0.4, 1.0, 3.0, 7.0])
    for stat in ("mean", "p50", "p90", "p99"):
        rho = prefill_utilisation(prefill_s, 0.2, 10.0, stat)
        ttft = ttft_at(rho / prefill_s, prefill_s, 0.2, stat)
        assert np.all(ttft <= 10.0) and np.all(ttft >= 9.99), (stat, ttft)
    assert float(prefill_utilisation(11.0, 0.0, 10.0, "p90")) == 0.0  # missed even unloaded


def test_aggregated_tpot_against_a_continuous_batching_simulation():
    """Requests arrive as a Poisson stream at C/(O·t̄); each step decodes every running request
    and charges Δ for each prompt admitted in it; a request's TPOT is the mean of its O steps.
    The model's p50/p90/p99 (t̄ plus the Poisson count's deviation from C, times Δ/O) against
    the simulated distribution."""
    rng = np.random.default_rng(7)
    base_s, delta_s, C, O = 0.020, 0.030, 24.0, 64  # noqa: E741 - the paper's names
    mean_s = base_s + C / O * delta_s  # the mean step: C/O prompts join per step
    rate = C / (O * mean_s)
    steps = 400_000
    step_s = np.empty(steps)
    t = 0.0
    for i in range(steps):  # arrivals during the previous step are admitted (prefilled) in this one
        dt = base_s if i == 0 else step_s[i - 1]
        joined = rng.poisson(rate * dt)
        step_s[i] = base_s + joined * delta_s
        t += step_s[i]
    windows = np.lib.stride_tricks.sliding_window_view(step_s[1000:], O)[::7]
    tpot = windows.mean(axis=1)
    assert tpot.mean() == pytest.approx(mean_s, rel=0.01)
    for stat, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        model = float(aggregated_tpot(mean_s, delta_s, C, O, stat))
        assert model == pytest.approx(float(np.quantile(tpot, q)), rel=0.03), stat
    assert float(aggregated_tpot(mean_s, delta_s, C, O, "mean")) == mean_s


def test_a_requests_own_time_delays_its_first_token_under_either_arrival_process(catalog):
    """request_latency_s adds to every TTFT statistic and to nothing else, for Poisson traffic as for
    a benchmark's clients (where it also lengthens each client's cycle)."""
    import numpy as np

    from pdroof.cost.precision import Precision
    from pdroof.serving.load import aggregated_load
    from pdroof.serving.stage import stage_inputs

    base, _ = stage_inputs(catalog.get("model", "llama-3.1-8b"), catalog.get("accelerator", "h100-sxm"),
                           catalog.get("runtime", "engine"), Precision("bf16", "bf16", "bf16"), 1)
    assert base["request_latency_s"] == 0
    slow = {**base, "request_latency_s": 0.02}
    for arrivals in ("poisson", "closed"):
        kw = {"arrivals": arrivals, "ttft_stat": "p90", "tpot_stat": "p99", "admitted": 1e6}
        a, b = aggregated_load(base, 32.0, 1024.0, 256.0, **kw), aggregated_load(slow, 32.0, 1024.0, 256.0, **kw)
        assert float(b["ttft_unloaded_s"]) == pytest.approx(float(a["ttft_unloaded_s"]) + 0.02)
        if arrivals == "poisson":
            assert float(b["ttft_s"]) == pytest.approx(float(a["ttft_s"]) + 0.02)
            assert np.allclose(b["tpot_s"], a["tpot_s"]) and np.allclose(b["requests_per_s"], a["requests_per_s"])
        else:  # the clients wait longer between requests: a little less load, never more TTFT than +0.02
            assert float(a["ttft_s"]) < float(b["ttft_s"]) <= float(a["ttft_s"]) + 0.02 + 1e-9
            assert float(b["requests_per_s"]) < float(a["requests_per_s"])


def test_an_idle_dp_attention_replica_takes_a_long_prompt_in_its_share_of_the_chunk(catalog):
    """SGLang at DP8 on a B200 gives each replica 16384 // 8 = 2,048 tokens a pass: a lone 8,192-token
    prompt's first token comes after its step and three more (the unloaded TTFT), where the whole
    chunk would take it in one."""
    from pdroof.cost.parallelism import Parallelism
    from pdroof.cost.precision import Precision
    from pdroof.serving.closed_loop import mixed_step_s
    from pdroof.serving.load import aggregated_load
    from pdroof.serving.stage import stage_inputs

    inputs, _ = stage_inputs(catalog.get("model", "deepseek-v3"), catalog.get("accelerator", "b200"),
                             catalog.get("runtime", "sglang"), Precision("fp8", "fp8", "fp8"), 1,
                             Parallelism(1, 8, 8, 1))
    assert inputs["replica_chunk_tokens"] == 2048
    whole = {**inputs, "replica_chunk_tokens": inputs["chunk_tokens"]}
    kw = {"arrivals": "poisson"}
    split = aggregated_load(inputs, np.array([1.0]), 8192.0, 256.0, **kw)["ttft_unloaded_s"][0]
    one = aggregated_load(whole, np.array([1.0]), 8192.0, 256.0, **kw)["ttft_unloaded_s"][0]
    decode_step = mixed_step_s(inputs, np.array([1.0]), 0.0, 8192.0, 0.0, 8192.0 + 128.0)[0]
    assert split - one == pytest.approx(3 * decode_step, rel=1e-9)
