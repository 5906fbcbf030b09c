"""MF's compiled loops against plain numpy statements of the same updates.

Checks: :func:`side_update` makes the exact cyclic coordinate minimisation of every row
(bias, then each factor, each set to its minimiser given the rest) whichever of its two
loops sweeps the row: rows without ratings, short rows swept side by side (more than one
batch of lanes, the last one partly filled), long rows one at a time, with and without
biases, several sweeps, a read-only other side (the rows a worker holds are views of the
wire); its rows-by-count order is a stable counting sort; :func:`predict` gives the model's
clipped predictions, unseen ids falling back to the biases.
"""
from __future__ import annotations

import numpy as np
import pytest

from smpframe.apps import mf_kernels as K


def reference_side_update(indptr, lb, r, mu, own, other, lam, sweeps, biases):
    """Each row's cyclic coordinate descent, from its residuals recomputed at every step."""
    new = own.copy()
    ee = 0.0
    for i in range(len(indptr) - 1):
        p = slice(indptr[i], indptr[i + 1])
        x = other[lb[p]].copy()
        y = r[p] - mu
        if biases:
            y -= x[:, 0]
            x[:, 0] = 1.0
        th = new[i]
        for _ in range(sweeps):
            for d in range(own.shape[1]):
                sq = x[:, d] @ x[:, d]
                den = lam + sq
                rest = y - x @ th + th[d] * x[:, d]  # the residual without coordinate d
                th[d] = (rest @ x[:, d]) / den if den > 0 else 0.0
        ee += float(np.sum((y - x @ th) ** 2))
    return new, ee


def ragged(rng, counts, n_other, dim):
    """Rows with ``counts`` ratings each (shuffled), of ``n_other`` other-side rows."""
    counts = rng.permutation(counts)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    lb = rng.integers(0, n_other, indptr[-1]).astype(np.int64)
    r = rng.integers(1, 11, indptr[-1]) / 2.0
    own = rng.normal(0, 0.3, (counts.size, dim))
    other = rng.normal(0, 0.3, (n_other, dim))
    other.flags.writeable = False
    return indptr, lb, r, own, other


@pytest.mark.parametrize("biases", [True, False])
@pytest.mark.parametrize("sweeps", [1, 3])
def test_side_update_is_each_rows_exact_coordinate_descent(biases, sweeps):
    rng = np.random.default_rng(5)
    short = rng.integers(1, K.SHORT + 1, 2 * K.LANES + 7)  # three batches, the last partly full
    long = rng.integers(K.SHORT + 1, 4 * K.SHORT, 9)
    counts = np.concatenate([short, long, np.zeros(5, np.int64), [K.SHORT, K.SHORT + 1]])
    indptr, lb, r, own, other = ragged(rng, counts, 40, 7)
    new, ee = K.side_update(indptr, lb, r, 3.0, own, other, 2.0, sweeps, biases)
    want, want_ee = reference_side_update(indptr, lb, r, 3.0, own, other, 2.0, sweeps, biases)
    np.testing.assert_allclose(new, want, rtol=1e-10, atol=1e-12)
    assert ee == pytest.approx(want_ee, rel=1e-10)
    assert np.all(new[np.diff(indptr) == 0] == 0.0)  # no ratings: the penalty's minimiser


def test_side_update_without_penalty_or_sweeps():
    """lam 0 leaves an unrated row's coordinates at 0 (no 0/0); no sweeps, the rows as given."""
    rng = np.random.default_rng(6)
    indptr, lb, r, own, other = ragged(rng, np.array([0, 3, 50, 1]), 9, 4)
    new, ee = K.side_update(indptr, lb, r, 3.0, own, other, 0.0, 1, True)
    want, want_ee = reference_side_update(indptr, lb, r, 3.0, own, other, 0.0, 1, True)
    np.testing.assert_allclose(new, want, rtol=1e-9, atol=1e-12)
    assert ee == pytest.approx(want_ee, rel=1e-9)
    same, zero = K.side_update(indptr, lb, r, 3.0, own, other, 2.0, 0, True)
    assert np.array_equal(same, own) and zero == 0.0


def test_side_update_on_no_rows():
    indptr = np.zeros(1, np.int64)
    new, ee = K.side_update(indptr, np.zeros(0, np.int64), np.zeros(0), 0.0, np.zeros((0, 3)),
                            np.ones((4, 3)), 1.0, 1, True)
    assert new.shape == (0, 3) and ee == 0.0


def test_rows_by_count_is_a_stable_sort():
    counts = np.array([3, 0, 5, 3, 1, 0, 5, 2])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    assert np.array_equal(K._by_count(indptr), np.argsort(counts, kind="stable"))


def test_predict_clips_and_drops_unseen_ids():
    rng = np.random.default_rng(7)
    A, B = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))
    a = np.array([0, 4, -1, 2, -1], np.int64)
    b = np.array([1, -1, 2, 0, -1], np.int64)
    got = K.predict(A, B, 3.0, True, a, b, 1.0, 5.0)
    full = 3.0 + A[a, 0] + B[b, 0] + np.einsum("ij,ij->i", A[a, 1:], B[b, 1:])
    want = np.where(a < 0, 3.0 + B[b, 0], np.where(b < 0, 3.0 + A[a, 0], full))
    want[(a < 0) & (b < 0)] = 3.0
    np.testing.assert_allclose(got, np.clip(want, 1.0, 5.0), rtol=1e-12)
