"""smpframe.linear_model.Lasso: scikit-learn's checks and its optimum."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import linear_model as sk
from sklearn.base import clone
from sklearn.datasets import make_regression
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from smpframe.linear_model import Lasso
from tests.estimators import deadline, warm_cluster  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("deadline", "warm_cluster")


@parametrize_with_checks([Lasso()])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def problem():
    X, y = make_regression(n_samples=200, n_features=60, n_informative=8, noise=5.0, bias=3.0,
                           random_state=0)
    return X, y


def objective(X, y, coef, intercept, alpha):
    return np.sum((y - X @ coef - intercept) ** 2) / (2 * len(y)) + alpha * np.abs(coef).sum()


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_matches_scikit_learn(problem, fit_intercept):
    X, y = problem
    alpha = 0.05 * np.max(np.abs(X.T @ (y - y.mean()))) / len(y)
    ours = Lasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-10).fit(X, y)
    ref = sk.Lasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-12, max_iter=100_000).fit(X, y)
    mine, theirs = (objective(X, y, m.coef_, m.intercept_, alpha) for m in (ours, ref))
    assert mine <= theirs * (1 + 1e-8)
    assert mine == pytest.approx(theirs, rel=1e-8)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5 * np.abs(ref.coef_).max())
    assert ours.intercept_ == pytest.approx(ref.intercept_, abs=1e-5 * abs(y).max())
    np.testing.assert_array_equal(np.flatnonzero(ours.coef_), np.flatnonzero(ref.coef_))
    assert ours.score(X, y) == pytest.approx(ref.score(X, y), rel=1e-6)
    assert ours.n_iter_ >= 1 and ours.n_features_in_ == X.shape[1]


def test_sparse_input_gives_the_dense_result(problem):
    X, y = problem
    X = np.where(np.abs(X) > 1.0, X, 0.0)
    dense = Lasso(alpha=0.5).fit(X, y)
    sparse = Lasso(alpha=0.5).fit(sp.csc_matrix(X), y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sparse.predict(sp.csr_matrix(X)), dense.predict(X), rtol=1e-12)


def test_bad_input_and_parameters(problem):
    X, y = problem
    with pytest.raises(NotFittedError):
        Lasso().predict(X)
    with pytest.raises(ValueError, match="NaN"):
        Lasso().fit(np.where(X > 2, np.nan, X), y)
    with pytest.raises(ValueError, match="alpha"):
        Lasso(alpha=0.0).fit(X, y)
    with pytest.raises(ValueError, match="n_workers"):
        Lasso(n_workers=0).fit(X, y)
    fitted = Lasso().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :5])


def test_a_given_cluster_is_shared_by_clones_and_left_out_of_pickles(problem, warm_cluster):
    X, y = problem
    est = Lasso(alpha=1.0, cluster=warm_cluster).fit(X, y)
    assert clone(est).cluster is warm_cluster
    assert est.get_params()["cluster"] is warm_cluster
    thawed = pickle.loads(pickle.dumps(est))
    assert thawed.cluster is None and est.cluster is warm_cluster
    np.testing.assert_array_equal(thawed.predict(X), est.predict(X))
