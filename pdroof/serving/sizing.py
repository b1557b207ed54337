"""Whole instances: how many of each pool a configuration deploys, and the rate they sustain.

A pool is built from instances of ``size`` devices, each carrying ``capacity`` requests/s within
its target. Three questions size a configuration, vectorised over rows:

- an offered rate R: the fewest instances of each pool that carry it, ⌈R / capacity⌉;
- a device budget N: the instance counts, within N devices, that sustain the largest rate, with
  one instance of each pool at least (a pool of fractional instances cannot be built);
- neither: the smallest balanced deployment, one instance of the pool whose instance carries
  more and as many of the other as it takes to keep up with it.

An aggregated configuration is one pool (prefill ``size`` 0).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-9  # relative slack for ratios that are whole numbers in exact arithmetic


def _ceil(x: np.ndarray) -> np.ndarray:
    return np.ceil(x * (1 - EPS))


def _limited(cap_a, size_a, cap_b, size_b, budget: float):
    """The most instances of pool a within ``budget`` devices when pool b is matched to it
    (⌈n_a·cap_a / cap_b⌉ instances): integer bisection, each row at once. Returns (n_a, n_b)."""
    ratio = cap_a / cap_b
    lo = np.zeros(len(cap_a))
    hi = np.floor(budget / size_a) + 1  # budget: a number, or one a row
    for _ in range(64):  # halves the interval each time: 64 steps cover any count a float holds
        if not (hi - lo > 1).any():
            break
        mid = np.floor((lo + hi) / 2)
        fits = mid * size_a + _ceil(mid * ratio) * size_b <= budget
        lo, hi = np.where(fits, mid, lo), np.where(fits, hi, mid)
    return lo, np.where(lo > 0, _ceil(lo * ratio), 0.0)


def _budget(cp, size_p, cd, size_d, budget: float):
    """The instance counts within ``budget`` devices that sustain the largest rate."""
    p1, d1 = _limited(cp, size_p, cd, size_d, budget)  # the prefill pool limits
    d2, p2 = _limited(cd, size_d, cp, size_p, budget)  # the decode pool limits
    r1, r2 = p1 * cp, d2 * cd
    first = (r1 > r2) | ((r1 == r2) & (p1 * size_p + d1 * size_d <= p2 * size_p + d2 * size_d))
    return np.where(first, p1, p2), np.where(first, d1, d2)


def _separate(cp, size_p, cd, size_d, budget_p, budget_d):
    """Pools drawn from two separate stocks of devices: as many instances of each as its stock
    holds, the one with room to spare cut to what keeps up with the other."""
    rate = np.minimum(np.floor(budget_p / size_p) * cp, np.floor(budget_d / size_d) * cd)
    return np.where(rate > 0, _ceil(rate / cp), 0.0), np.where(rate > 0, _ceil(rate / cd), 0.0)


def whole_pools(cap_p, size_p, cap_d, size_d, rate: float | None = None, budget: float | None = None,
                stock: tuple | None = None) -> dict[str, np.ndarray]:
    """Instances of each pool, the rate they sustain and the devices they take, for disaggregated
    rows (per-instance capacities ``cap_*`` requests/s, ``size_*`` devices an instance): for the
    rate if one is offered, else within the budget, else the smallest balanced deployment.

    ``budget``: N devices for both pools. ``stock``: an inventory instead, (devices of the prefill
    pool's type, of the decode pool's type, whether the two types are one) per row, a type's
    devices never committed twice. With either, ``max_rate_for_devices`` is the most it sustains
    (0 where one instance of each pool does not fit), and ``devices_p``/``devices_d`` what each pool takes."""
    with np.errstate(all="ignore"):  # extreme rates and capacities give inf, never a warning on stderr
        return _whole_pools(cap_p, size_p, cap_d, size_d, rate, budget, stock)


def _whole_pools(cap_p, size_p, cap_d, size_d, rate, budget, stock) -> dict[str, np.ndarray]:
    cap_p, cap_d = (np.asarray(x, dtype=float) for x in (cap_p, cap_d))
    size_p, size_d = (np.broadcast_to(np.asarray(x, dtype=float), cap_p.shape) for x in (size_p, size_d))
    ok = (cap_p > 0) & (cap_d > 0) & np.isfinite(cap_p) & np.isfinite(cap_d)
    cp, cd = np.where(ok, cap_p, 1.0), np.where(ok, cap_d, 1.0)
    out = {}
    if stock is not None:
        stock_p, stock_d, same = stock
        n1, d1 = _budget(cp, size_p, cd, size_d, stock_p)
        n2, d2 = _separate(cp, size_p, cd, size_d, stock_p, stock_d)
        n_p, n_d = np.where(same, n1, n2), np.where(same, d1, d2)
        out["max_rate_for_devices"] = np.where(ok, np.minimum(n_p * cp, n_d * cd), 0.0)
    elif budget:
        n_p, n_d = _budget(cp, size_p, cd, size_d, budget)
        out["max_rate_for_devices"] = np.where(ok, np.minimum(n_p * cp, n_d * cd), 0.0)
    if rate:
        n_p, n_d = _ceil(rate / cp), _ceil(rate / cd)
    elif not (budget or stock is not None):
        prefill_first = cp >= cd
        n_p = np.where(prefill_first, 1.0, _ceil(cd / cp))
        n_d = np.where(prefill_first, _ceil(cp / cd), 1.0)
    n_p, n_d = np.where(ok, n_p, 0.0), np.where(ok, n_d, 0.0)
    sustained = np.full(cp.shape, float(rate)) * ok if rate else np.minimum(n_p * cp, n_d * cd)
    return {**out, "prefill_instances": n_p, "decode_instances": n_d, "requests_per_s": sustained,
            "devices": n_p * size_p + n_d * size_d, "devices_p": n_p * size_p, "devices_d": n_d * size_d}


def whole_instances(cap, size, rate: float | None = None, budget=None) -> dict[str, np.ndarray]:
    """Instances of one pool (aggregated rows): for the rate, else within the budget (devices: a
    number, or one a row, as an inventory gives), else one."""
    cap = np.asarray(cap, dtype=float)
    size = np.broadcast_to(np.asarray(size, dtype=float), cap.shape)
    ok = (cap > 0) & np.isfinite(cap)
    c = np.where(ok, cap, 1.0)
    with np.errstate(all="ignore"):
        return _whole_instances(cap, size, ok, c, rate, budget)


def _whole_instances(cap, size, ok, c, rate, budget) -> dict[str, np.ndarray]:
    has_budget = budget is not None and (np.ndim(budget) > 0 or budget > 0)  # an inventory: one a row
    out = {"max_rate_for_devices": np.floor(budget / size) * c * ok} if has_budget else {}
    n = np.where(ok, _ceil(rate / c) if rate else np.floor(budget / size) if has_budget else 1.0, 0.0)
    return {**out, "instances": n, "requests_per_s": np.full(cap.shape, float(rate)) * ok if rate else n * c,
            "devices": n * size}
