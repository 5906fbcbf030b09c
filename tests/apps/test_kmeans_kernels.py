import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from smpframe.apps.kmeans_kernels import (
    assign_and_accumulate,
    center_shift,
    kmeans_plusplus,
    update_centers,
)


def _reference_pass(X, centers):
    dist = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    labels = dist.argmin(axis=1)
    k, d = centers.shape
    sums = np.zeros((k, d))
    np.add.at(sums, labels, X)
    return sums, np.bincount(labels, minlength=k), dist.min(axis=1).sum()


@pytest.mark.parametrize("n,d,k", [(1000, 3, 7), (777, 5, 16), (3, 2, 1), (300, 1, 4)])
def test_assign_and_accumulate_matches_brute_force(n, d, k):
    rng = np.random.default_rng(n + d + k)
    X = rng.normal(size=(n, d))
    centers = rng.normal(size=(k, d))
    sums, counts, inertia = assign_and_accumulate(X, centers, (X**2).sum(axis=1))
    ref_sums, ref_counts, ref_inertia = _reference_pass(X, centers)
    assert counts.dtype == np.int64 and sums.dtype == np.float64
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-12, atol=1e-12)
    assert inertia == pytest.approx(ref_inertia, rel=1e-10)


def test_assign_ties_go_to_lower_index_and_fragments_add_up():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    centers = rng.normal(size=(4, 3))
    centers = np.vstack([centers, centers[1]])  # centre 4 duplicates centre 1
    x_sq = (X**2).sum(axis=1)
    sums, counts, inertia = assign_and_accumulate(X, centers, x_sq)
    assert counts[4] == 0 and counts[1] > 0
    parts = [assign_and_accumulate(X[a:b], centers, x_sq[a:b]) for a, b in [(0, 250), (250, 600)]]
    np.testing.assert_allclose(sum(p[0] for p in parts), sums, rtol=1e-12)
    np.testing.assert_array_equal(sum(p[1] for p in parts), counts)
    assert sum(p[2] for p in parts) == pytest.approx(inertia, rel=1e-12)
    with pytest.raises(ValueError):
        assign_and_accumulate(X, centers[:, :2], x_sq)


def test_update_centers_keeps_empty_cluster_and_center_shift():
    old = np.array([[0.0, 0.0], [5.0, 5.0]])
    sums = np.array([[2.0, 4.0], [0.0, 0.0]])
    new = update_centers(sums, np.array([2, 0]), old)
    np.testing.assert_array_equal(new, [[1.0, 2.0], [5.0, 5.0]])
    np.testing.assert_allclose(center_shift(old, new), [np.sqrt(5.0), 0.0])


def test_kmeans_plusplus_seeds_one_centre_per_separated_blob():
    X, y = make_blobs(n_samples=2000, centers=6, cluster_std=0.3, center_box=(-50, 50), random_state=3)
    rng = np.random.default_rng(0)
    centers = kmeans_plusplus(X, 6, rng)
    assert centers.shape == (6, 2) and centers.dtype == np.float64
    rows = [np.flatnonzero((X == c).all(axis=1))[0] for c in centers]  # centres are data rows
    assert sorted(y[rows].tolist()) == list(range(6))
    again = kmeans_plusplus(X, 6, np.random.default_rng(0))
    np.testing.assert_array_equal(again, centers)
    assert kmeans_plusplus(X, 6, np.random.default_rng(1), n_local_trials=1).shape == (6, 2)
    with pytest.raises(ValueError):
        kmeans_plusplus(X[:3], 4, rng)


def test_lloyd_from_same_init_matches_sklearn():
    X, _ = make_blobs(n_samples=6000, n_features=3, centers=10, cluster_std=2.5, random_state=7)
    X = X + np.array([100.0, -40.0, 7.0])  # off-origin data, as real coordinates are
    k, n_iter = 10, 15
    init = kmeans_plusplus(X, k, np.random.default_rng(1))
    x_sq = (X**2).sum(axis=1)
    fragments = [slice(0, 1000), slice(1000, 3500), slice(3500, 6000)]

    def lloyd_pass(centers):
        parts = [assign_and_accumulate(X[f], centers, x_sq[f]) for f in fragments]
        return sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)

    centers = init
    for _ in range(n_iter):
        sums, counts, _ = lloyd_pass(centers)
        assert np.all(counts > 0)
        centers = update_centers(sums, counts, centers)
    inertia = lloyd_pass(centers)[2]

    km = KMeans(n_clusters=k, init=init, n_init=1, algorithm="lloyd", max_iter=n_iter, tol=0).fit(X)
    np.testing.assert_allclose(centers, km.cluster_centers_, rtol=1e-9, atol=1e-9)
    assert inertia == pytest.approx(km.inertia_, rel=1e-9)
