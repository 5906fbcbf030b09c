"""The program API's own helpers: datasets, fragments and aggregation."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from smpframe import Dataset, Fragment, concat_partials, sum_partials


def test_sum_partials_adds_numbers_arrays_and_sparse_matrices():
    partials = {0: {"n": 2, "v": np.array([1, 2]), "s": sp.csr_matrix([[0, 1.0]])},
                1: {"n": 3, "v": np.array([3, 4]), "s": sp.csr_matrix([[2.0, 0]])}}
    assert sum_partials(partials, "n") == 5
    np.testing.assert_array_equal(sum_partials(partials, "v"), [4, 6])
    assert sum_partials(partials, "v").dtype.kind == "i"
    np.testing.assert_array_equal(sum_partials(partials, "s").toarray(), [[2.0, 1.0]])


def test_concat_partials_is_in_fragment_order():
    partials = {2: {"r": np.array([5, 6])}, 0: {"r": np.array([1])}, 1: {"r": np.array([2, 3])}}
    np.testing.assert_array_equal(concat_partials(partials, "r"), [1, 2, 3, 5, 6])


def test_dataset_fragments_keep_sparse_rows_sparse():
    X = sp.random(10, 4, density=0.5, format="csr", random_state=0)
    ds = Dataset(rows={"X": X, "y": np.arange(10.0)})
    bounds = ds.bounds(3)
    assert bounds[0][0] == 0 and bounds[-1][1] == 10
    assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))
    part = ds.fragment(*bounds[1])
    assert sp.issparse(part["X"]) and part["X"].shape[0] == part["y"].shape[0]


def test_fragment_knows_its_rows():
    frag = Fragment(3, 10, 25)
    assert frag.n_rows == 15 and frag.state is None
