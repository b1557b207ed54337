"""pdroof.cost.special: the functions the generated twins call where numpy has none."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from pdroof.cost.special import lambert_w


@pytest.mark.parametrize("x", [1e-12, 1e-6, 1e-3, 0.07, 0.1, 0.5, 1.0, 1.6, 2.718281828, 10.0, 1e3, 1e6, 1e9, 1e12])
def test_lambert_w_is_the_principal_branch_to_double_precision(x):
    assert float(lambert_w(x)) == pytest.approx(float(sp.LambertW(sp.Float(x, 40)).evalf(40)), rel=1e-15)


def test_lambert_w_keeps_the_shape_and_is_zero_at_zero():
    x = np.array([[0.0, 1.0], [np.e, 0.0]])
    w = lambert_w(x)
    assert w.shape == (2, 2) and w[0, 0] == 0.0 == w[1, 1]
    assert w * np.exp(w) == pytest.approx(x, rel=1e-15)
    assert np.shape(lambert_w(0.0)) == () and float(lambert_w(0.0)) == 0.0


def test_lambert_w_is_nan_below_zero_and_infinite_at_infinity():
    w = lambert_w(np.array([-0.5, -1e-9, np.inf, np.nan]))
    assert np.isnan(w[0]) and np.isnan(w[1]) and w[2] == np.inf and np.isnan(w[3])
