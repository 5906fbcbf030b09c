import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from smpframe.scheduling.blocks import (
    SweepCursor,
    dependency_filter,
    priority_sample,
    rotation,
    uniform_sweep,
)


# --- priority_sample ---------------------------------------------------------

def test_priority_sample_distinct_and_excluded():
    rng = np.random.default_rng(0)
    delta = rng.normal(size=1000)
    mask = np.zeros(1000, dtype=bool)
    mask[:500] = True
    for exclude in (mask, np.arange(500)):
        idx = priority_sample(rng, delta, 0.1, 400, exclude=exclude)
        assert idx.dtype == np.int64 and idx.size == 400
        assert np.unique(idx).size == 400
        assert idx.min() >= 500
    assert priority_sample(rng, delta, 0.1, 500, exclude=mask).size == 500
    assert priority_sample(rng, delta, 0.1, 0).size == 0
    with pytest.raises(ValueError):
        priority_sample(rng, delta, 0.1, 501, exclude=mask)
    with pytest.raises(ValueError):
        priority_sample(rng, delta, -1.0, 1)


def test_priority_sample_single_draw_distribution():
    rng = np.random.default_rng(1)
    delta = np.array([0.0, 1.0, -2.0, 3.0, 0.5])
    eta = 0.5
    p = (np.abs(delta) + eta) / (np.abs(delta) + eta).sum()
    draws = np.array([priority_sample(rng, delta, eta, 1)[0] for _ in range(20000)])
    freq = np.bincount(draws, minlength=5) / draws.size
    np.testing.assert_allclose(freq, p, atol=0.015)


def test_priority_sample_matches_sequential_sampling_without_replacement():
    rng = np.random.default_rng(2)
    w = np.array([1.0, 2.0, 3.0, 4.0])
    p = w / w.sum()
    # exact probability of each ordered pair when drawing 2 one by one
    exact = {(i, j): p[i] * p[j] / (1 - p[i]) for i, j in itertools.permutations(range(4), 2)}
    counts = dict.fromkeys(exact, 0)
    n = 30000
    for _ in range(n):
        i, j = priority_sample(rng, w, 0.0, 2)
        counts[(i, j)] += 1
    for pair, prob in exact.items():
        assert counts[pair] / n == pytest.approx(prob, abs=0.012)


def test_priority_sample_zero_weights_come_last():
    rng = np.random.default_rng(3)
    delta = np.zeros(50)
    delta[[3, 17, 40]] = [1.0, 5.0, 2.0]
    idx = priority_sample(rng, delta, 0.0, 10)
    assert set(idx[:3]) == {3, 17, 40}
    assert np.unique(idx).size == 10


# --- dependency_filter -------------------------------------------------------

def _brute_force_greedy(candidates, dense, rho, max_keep):
    norms = np.linalg.norm(dense, axis=0)
    kept = []
    for c in candidates:
        if len(kept) == max_keep:
            break
        ok = all(
            norms[c] == 0 or norms[k] == 0
            or abs(dense[:, c] @ dense[:, k]) / (norms[c] * norms[k]) < rho
            for k in kept
        )
        if ok:
            kept.append(c)
    return kept


def _correlated_sparse(rng, n=120, p=80):
    X = sp.random(n, p, density=0.15, random_state=rng, format="csc")
    dense = X.toarray()
    dense[:, 10] = dense[:, 3] * 2.0  # duplicate direction
    dense[:, 11] = dense[:, 4] + 0.1 * dense[:, 5]  # strongly correlated
    dense[:, 12] = 0.0  # empty column
    return dense


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rho", [0.1, 0.3, 0.8])
def test_dependency_filter_matches_brute_force(seed, rho):
    rng = np.random.default_rng(seed)
    dense = _correlated_sparse(rng)
    cand = rng.permutation(dense.shape[1])[:60]
    expected = _brute_force_greedy(cand, dense, rho, 40)
    for X in (sp.csc_matrix(dense), dense):
        kept = dependency_filter(cand, X, rho, max_keep=40)
        assert kept.tolist() == expected
        norms = np.linalg.norm(dense[:, kept], axis=0)
        nz = norms > 0
        c = dense[:, kept][:, nz] / norms[nz]
        corr = np.abs(c.T @ c)
        np.fill_diagonal(corr, 0.0)
        assert np.all(corr < rho)


def test_dependency_filter_keeps_uncorrelated_and_respects_max_keep():
    n, p = 60, 30
    dense = np.zeros((n, p))
    dense[2 * np.arange(p), np.arange(p)] = np.arange(1, p + 1)  # disjoint supports
    cand = np.arange(p)[::-1]
    for X in (sp.csc_matrix(dense), dense):
        assert dependency_filter(cand, X, 0.01, max_keep=p).tolist() == cand.tolist()
        assert dependency_filter(cand, X, 0.01, max_keep=7).tolist() == cand[:7].tolist()
        assert dependency_filter(cand[:0], X, 0.5, max_keep=3).size == 0


def test_dependency_filter_drops_repeated_candidate():
    dense = np.random.default_rng(4).normal(size=(20, 5))
    assert dependency_filter(np.array([2, 2, 1]), dense, 0.99, 5).tolist() == [2, 1]


# --- rotation and uniform_sweep ----------------------------------------------

def test_rotation_is_disjoint_and_shifts():
    assert rotation(4, 4, 0).tolist() == [0, 1, 2, 3]
    assert rotation(4, 4, 1).tolist() == [1, 2, 3, 0]
    assert rotation(5, 3, 4).tolist() == [4, 0, 1]
    for step in range(10):
        assert np.unique(rotation(6, 6, step)).size == 6
    with pytest.raises(ValueError):
        rotation(3, 4, 0)


def test_uniform_sweep_visits_every_index_once_per_epoch():
    rng = np.random.default_rng(5)
    d, size = 23, 7
    cursor = None
    stream = []
    for _ in range(40):
        chunk, cursor = uniform_sweep(rng, d, size, cursor)
        assert isinstance(cursor, SweepCursor)
        assert chunk.size == size and np.unique(chunk).size == size
        stream.extend(chunk.tolist())
    epochs = np.array(stream[: (len(stream) // d) * d]).reshape(-1, d)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(d))


def test_uniform_sweep_edges():
    rng = np.random.default_rng(6)
    chunk, cursor = uniform_sweep(rng, 5, 5)
    assert sorted(chunk.tolist()) == list(range(5))
    chunk, cursor = uniform_sweep(rng, 5, 5, cursor)
    assert sorted(chunk.tolist()) == list(range(5))
    assert uniform_sweep(rng, 5, 0, cursor)[0].size == 0
    with pytest.raises(ValueError):
        uniform_sweep(rng, 5, 6)
