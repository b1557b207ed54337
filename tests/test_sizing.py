"""Whole instances (serving.sizing): checked against trying every split by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pdroof.serving.sizing import whole_instances, whole_pools

CASES = [  # per-instance capacities (req/s) and sizes (devices)
    (1.0, 1, 10.0, 8), (0.44, 8, 1.8, 16), (3.0, 2, 3.0, 2), (7.3, 4, 0.9, 1), (2.0, 1, 1.0, 2), (0.1, 8, 50.0, 32),
]


def _brute(cp, sp, cd, sd, budget):
    best = (0.0, 0, 0, 0)
    for n_p, n_d in itertools.product(range(1, budget + 1), repeat=2):
        used = n_p * sp + n_d * sd
        if used <= budget:
            rate = min(n_p * cp, n_d * cd)
            if rate > best[0] + 1e-12 or (abs(rate - best[0]) <= 1e-12 and used < best[3]):
                best = (rate, n_p, n_d, used)
    return best


@pytest.mark.parametrize("budget", [1, 8, 16, 17, 40, 64])
def test_the_budget_split_is_the_best_whole_one(budget):
    cp, sp, cd, sd = (np.array(x, dtype=float) for x in zip(*CASES, strict=True))
    out = whole_pools(cp, sp, cd, sd, budget=budget)
    for i, case in enumerate(CASES):
        rate, n_p, n_d, used = _brute(*case, budget)
        assert out["max_rate_for_devices"][i] == pytest.approx(rate, abs=1e-12), (case, budget)
        assert out["requests_per_s"][i] == pytest.approx(rate, abs=1e-12)
        if rate:
            assert out["devices"][i] == used and out["devices"][i] <= budget
        else:  # one instance of each pool does not fit
            assert out["prefill_instances"][i] == out["decode_instances"][i] == 0


def test_a_rate_takes_the_fewest_whole_instances_and_ratios_that_are_whole_stay_whole():
    out = whole_pools(np.array([0.44, 3.0, 0.1 * 3]), 8, np.array([1.8, 1.0, 0.1]), 16, rate=1.8)
    assert out["prefill_instances"].tolist() == [5, 1, 6] and out["decode_instances"].tolist() == [1, 2, 18]
    assert out["devices"].tolist() == [56, 40, 336] and out["requests_per_s"].tolist() == [1.8] * 3


def test_without_rate_or_budget_the_smallest_balanced_deployment():
    out = whole_pools(np.array([0.44, 10.0, 2.0]), 8, np.array([1.8, 1.0, 2.0]), 16)
    assert out["prefill_instances"].tolist() == [5, 1, 1] and out["decode_instances"].tolist() == [1, 10, 1]
    assert out["requests_per_s"] == pytest.approx([1.8, 10.0, 2.0])


def test_rows_without_capacity_get_no_instances_and_no_nan():
    out = whole_pools(np.array([0.0, np.nan, 1.0]), 1, np.array([1.0, 1.0, np.inf]), 1, budget=4)
    assert not np.isnan(np.concatenate(list(out.values()))).any()
    assert out["max_rate_for_devices"].tolist() == [0.0, 0.0, 0.0]


def test_one_pool():
    out = whole_instances(np.array([2.5, 0.0]), np.array([4, 1]), budget=10)
    assert out["instances"].tolist() == [2, 0] and out["max_rate_for_devices"].tolist() == [5.0, 0.0]
    out = whole_instances(np.array([2.5]), 4, rate=6.0)
    assert out["instances"].tolist() == [3] and out["devices"].tolist() == [12]
    assert math.isclose(whole_instances(np.array([2.5]), 4)["requests_per_s"][0], 2.5)
