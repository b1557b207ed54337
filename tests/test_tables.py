"""The uniform-grid interpolation table and the chunked kernel runner that ``queueing`` is built on."""

import numpy as np
import pytest

from pdroof.cost import tables
from pdroof.cost.tables import UniformTable, chunked


def test_table_interpolates_linearly_between_nodes_and_clamps_beyond_them():
    t = UniformTable(1.0, 0.5, np.array([0.0, 1.0, 4.0, 9.0]))  # nodes at 1, 1.5, 2, 2.5
    x = np.array([0.0, 1.0, 1.25, 1.75, 2.5, 7.0])
    assert t(x) == pytest.approx(np.interp(x, [1.0, 1.5, 2.0, 2.5], [0.0, 1.0, 4.0, 9.0]))
    assert t(np.array([[1.25, 2.25]])).shape == (1, 2)  # shape kept
    assert float(t(1.5)) == pytest.approx(1.0)  # scalars too


def test_table_values_cannot_be_changed_through_it():
    t = UniformTable(0.0, 1.0, np.array([0.0, 1.0]))
    with pytest.raises(ValueError):
        t.values[0] = 5.0


def test_chunked_covers_every_point_across_chunk_boundaries(monkeypatch):
    monkeypatch.setattr(tables, "_CHUNK", 7)  # many chunks, the last one short
    a = np.arange(50.0).reshape(5, 10)

    def kernel(x, out):
        np.multiply(x, 2.0, out=out)

    assert np.array_equal(chunked(kernel, a), 2 * a)
