"""smpframe.cluster.KMeans: scikit-learn's checks, and its Lloyd iterations."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import cluster as sk
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from smpframe.cluster import KMeans
from tests.estimators import deadline, warm_cluster  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("deadline", "warm_cluster")


@parametrize_with_checks([KMeans()])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=600, n_features=5, centers=6, cluster_std=2.0, random_state=0)
    return X


def test_same_initial_centres_give_scikit_learn_result(blobs):
    X = blobs
    start = X[np.random.default_rng(0).choice(len(X), 6, replace=False)]
    ours = KMeans(n_clusters=6, init=start, tol=1e-6).fit(X)
    ref = sk.KMeans(n_clusters=6, init=start, n_init=1, tol=1e-6, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-10)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_ > 1


def test_kmeans_plus_plus_reaches_scikit_learn_inertia(blobs):
    X = blobs
    ours = KMeans(n_clusters=6, n_init=4, random_state=0).fit(X)
    ref = sk.KMeans(n_clusters=6, n_init=10, random_state=0).fit(X)
    assert ours.inertia_ <= ref.inertia_ * 1.01


def test_more_inits_never_do_worse(blobs):
    X = blobs
    one = KMeans(n_clusters=12, n_init=1, random_state=3).fit(X)
    three = KMeans(n_clusters=12, n_init=3, random_state=3).fit(X)  # its first seed is one's
    assert three.inertia_ <= one.inertia_


def test_methods_agree(blobs):
    X = blobs
    est = KMeans(n_clusters=6, random_state=1)
    labels = est.fit_predict(X)
    np.testing.assert_array_equal(labels, est.labels_)
    np.testing.assert_array_equal(est.predict(X), labels)
    distances = est.transform(X)
    assert distances.shape == (len(X), 6)
    np.testing.assert_array_equal(distances.argmin(axis=1), labels)
    assert est.score(X) == pytest.approx(-est.inertia_, rel=1e-9)
    assert est.score(X) == pytest.approx(-np.sum(distances.min(axis=1) ** 2), rel=1e-9)


def test_sparse_input_is_densified(blobs):
    X = np.where(blobs > 0, blobs, 0.0)
    dense = KMeans(n_clusters=4, random_state=2).fit(X)
    sparse = KMeans(n_clusters=4, random_state=2).fit(sp.csr_matrix(X))
    np.testing.assert_array_equal(sparse.cluster_centers_, dense.cluster_centers_)


def test_bad_input_and_parameters(blobs):
    X = blobs
    with pytest.raises(NotFittedError):
        KMeans().predict(X)
    with pytest.raises(ValueError, match="n_samples=5 should be >= n_clusters=8"):
        KMeans().fit(X[:5])
    with pytest.raises(ValueError, match="init has shape"):
        KMeans(n_clusters=3, init=X[:2]).fit(X)
    with pytest.raises(ValueError, match="init must be"):
        KMeans(init="random").fit(X)
    with pytest.raises(ValueError, match="infinity|NaN"):
        KMeans().fit(np.where(X > 3, np.inf, X))
