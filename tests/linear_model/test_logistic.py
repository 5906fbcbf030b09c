"""smpframe.linear_model.LogisticRegression: scikit-learn's checks and its optimum."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import linear_model as sk
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from smpframe.linear_model import LogisticRegression
from tests.estimators import deadline, warm_cluster  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("deadline", "warm_cluster")


@parametrize_with_checks([LogisticRegression()])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(n_samples=300, n_features=20, n_informative=5, n_redundant=2,
                               flip_y=0.1, random_state=0)
    return X, y


def sklearn_objective(X, y01, coef, intercept, C):
    """scikit-learn's ``||w||_1 + C sum log(1 + exp(-y m))``."""
    margin = X @ np.ravel(coef) + np.ravel(intercept)[0]
    return np.abs(coef).sum() + C * np.logaddexp(0.0, -(2 * y01 - 1) * margin).sum()


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_without_intercept_matches_liblinear(problem, C):
    X, y = problem
    ours = LogisticRegression(C=C, fit_intercept=False, tol=1e-10).fit(X, y)
    ref = sk.LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", fit_intercept=False,
                                tol=1e-10, max_iter=10_000).fit(X, y)
    mine, theirs = (sklearn_objective(X, y, m.coef_, 0.0, C) for m in (ours, ref))
    assert mine <= theirs * (1 + 1e-6)
    assert mine == pytest.approx(theirs, rel=1e-6)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    assert ours.coef_.shape == (1, X.shape[1]) and ours.intercept_.shape == (1,)
    np.testing.assert_array_equal(ours.intercept_, [0.0])


def test_unpenalised_intercept_matches_saga(problem):
    X, y = problem
    C = 0.2
    ours = LogisticRegression(C=C, tol=1e-10).fit(X, y)
    ref = sk.LogisticRegression(C=C, l1_ratio=1.0, solver="saga", tol=1e-10,
                                max_iter=100_000).fit(X, y)
    mine = sklearn_objective(X, y, ours.coef_, ours.intercept_, C)
    theirs = sklearn_objective(X, y, ref.coef_, ref.intercept_, C)
    assert mine <= theirs * (1 + 1e-6)
    assert mine == pytest.approx(theirs, rel=1e-5)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def test_any_two_labels(problem):
    X, y = problem
    words = np.where(y == 1, "spam", "ham")
    ours = LogisticRegression(C=0.5).fit(sp.csr_matrix(X), words)
    plain = LogisticRegression(C=0.5).fit(X, y)
    np.testing.assert_array_equal(ours.classes_, ["ham", "spam"])
    np.testing.assert_allclose(ours.coef_, plain.coef_, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), np.where(plain.predict(X) == 1, "spam", "ham"))
    proba = ours.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(ours.classes_[proba.argmax(axis=1)], ours.predict(X))
    assert ours.score(X, words) > 0.8


def test_multiclass_is_one_vs_rest(problem):
    X, _ = problem
    y = np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])  # three classes
    ours = LogisticRegression(C=0.5).fit(X, y)
    assert ours.coef_.shape == (3, X.shape[1]) and ours.n_iter_.shape == (3,)
    for k in range(3):
        alone = LogisticRegression(C=0.5).fit(X, y == k)
        np.testing.assert_allclose(ours.coef_[k], alone.coef_[0], rtol=1e-12, atol=1e-12)
        assert ours.intercept_[k] == pytest.approx(alone.intercept_[0], rel=1e-12)
    np.testing.assert_array_equal(ours.predict(X), ours.decision_function(X).argmax(axis=1))
    np.testing.assert_allclose(ours.predict_proba(X).sum(axis=1), 1.0)


def test_bad_input_and_parameters(problem):
    X, y = problem
    with pytest.raises(NotFittedError):
        LogisticRegression().predict(X)
    with pytest.raises(ValueError, match="penalty"):
        LogisticRegression(penalty="l2").fit(X, y)
    with pytest.raises(ValueError, match="C must"):
        LogisticRegression(C=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="one class"):
        LogisticRegression().fit(X, np.ones(len(y)))
    with pytest.raises(ValueError, match="Unknown label type"):
        LogisticRegression().fit(X, X[:, 0])
