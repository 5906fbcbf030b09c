"""The minibatch-SGD example (a model replica per worker, sparse partials) through a real
cluster, against scikit-learn's optimum of the same objective."""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from smpframe import run_local
from smpframe.examples.sgd import SparseSGD, logistic_loss


def objective(X, y, w, lam):
    return float(logistic_loss(y * (X @ w)).mean() + 0.5 * lam * w @ w)


def test_sgd_reaches_the_reference_objective_with_sparse_partials():
    program = SparseSGD(lam=0.01, batch=64, rounds=400, eval_every=100)
    X, y = program.load_data(None).rows["X"], program.load_data(None).rows["y"]
    reference = LogisticRegression(C=1.0 / (X.shape[0] * 0.01), fit_intercept=False, tol=1e-10,
                                   max_iter=1000).fit(X, y)
    best = objective(X, y, reference.coef_.ravel(), 0.01)
    result = run_local(program, workers=2, quiet=True)
    coef = result.model["coef"]
    assert abs(objective(X, y, coef, 0.01) - result.summary["objective"]) < 1e-9
    history = [value for _, value in result.summary["history"]]
    assert history == sorted(history, reverse=True)  # it keeps improving
    assert result.summary["objective"] <= best * 1.01
    assert result.summary["rounds"] == 400


def test_a_redone_round_draws_the_same_rows():
    """Minibatches depend on (seed, round, fragment) only: 2 and 3 workers agree exactly."""
    program = SparseSGD(rounds=60, eval_every=30)
    two = run_local(program, workers=2, fragments=6, quiet=True)
    three = run_local(program, workers=3, fragments=6, quiet=True)
    np.testing.assert_allclose(two.model["coef"], three.model["coef"], rtol=0, atol=1e-12)
