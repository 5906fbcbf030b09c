"""Sparse logistic regression through a real 2-worker local cluster, against liblinear.

scikit-learn's liblinear L1 solver minimises ``||w||_1 + C sum log(1 + exp(-y w.x))``;
with ``C = 1/(n lambda)`` that is our objective divided by lambda, so the optima agree. Its
intercept is a feature of constant value ``intercept_scaling`` and *is* penalised:
``lambda |b| / intercept_scaling``. We compare (a) with no intercept, where the two
problems are identical, and (b) with ``intercept_scaling=1e4``, where liblinear's
intercept penalty is ~1e-4 of ours for the coefficients, i.e. negligible against the
1e-6 tolerance; both objectives are evaluated by the same function, without any
intercept penalty.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from smpframe import InputError, RunConfig, run_local
from smpframe.apps.logreg import LogReg, check_labels
from smpframe.data.synthetic import make_classification
from tests.clitools import one_line_error, run_cli

TWO = RunConfig(workers=2, quiet=True)
LAM = 0.003


@pytest.fixture(scope="module")
def problem():
    X, y, _ = make_classification(n=1500, d=800, density=0.02, n_informative=40, seed=2)
    return X, y


def objective(X, y, coef, intercept, lam):
    return float(np.mean(np.logaddexp(0.0, -y * (X @ coef + intercept))) + lam * np.abs(coef).sum())


def liblinear(X, y, lam, intercept):
    kw = dict(solver="liblinear", C=1.0 / (X.shape[0] * lam), tol=1e-10, max_iter=10_000,
              fit_intercept=intercept, intercept_scaling=1e4 if intercept else 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = LogisticRegression(l1_ratio=1.0, **kw).fit(X, y)  # scikit-learn >= 1.8
        except (TypeError, ValueError):
            model = LogisticRegression(penalty="l1", **kw).fit(X, y)
    return model.coef_.ravel(), float(model.intercept_[0]) if intercept else 0.0


@pytest.mark.parametrize("intercept", [False, True])
def test_matches_liblinear_objective(problem, intercept):
    X, y = problem
    result = run_local(LogReg(lam=LAM, tol=1e-10, intercept=intercept), data=(X, y), config=TWO)
    coef, b0 = liblinear(X, y, LAM, intercept)
    ours = objective(X, y, result.model["coef"], result.model["intercept"][0], LAM)
    theirs = objective(X, y, coef, b0, LAM)
    assert result.summary["converged"]
    assert abs(ours - theirs) <= 1e-6 * theirs
    assert result.summary["objective"] == pytest.approx(ours, rel=1e-9)  # reported == recomputed
    assert result.summary["nnz"] == np.count_nonzero(result.model["coef"])
    margin = X @ result.model["coef"] + result.model["intercept"][0]
    # (the workers count on margins they updated step by step: a row at margin ~0 may differ)
    tie = np.mean(np.abs(margin) < 1e-9)
    assert abs(result.summary["accuracy"] - np.mean(np.where(margin > 0, 1, -1) == y)) <= tie + 1e-12
    if not intercept:
        assert result.model["intercept"][0] == 0.0


def test_zero_one_labels_give_the_same_fit(problem):
    X, y = problem
    a = run_local(LogReg(lam=LAM, tol=1e-8), data=(X, y), config=TWO)
    b = run_local(LogReg(lam=LAM, tol=1e-8), data=(X, (y > 0).astype(float)), config=TWO)
    assert b.summary["objective"] == pytest.approx(a.summary["objective"], rel=1e-9)
    np.testing.assert_allclose(b.model["coef"], a.model["coef"], atol=1e-6)


def test_pipelined_rounds_still_converge(problem):
    X, y = problem
    result = run_local(LogReg(lam=LAM, tol=1e-9, intercept=False), data=(X, y), config=TWO,
                       pipeline_depth=1)
    coef, _ = liblinear(X, y, LAM, False)
    theirs = objective(X, y, coef, 0.0, LAM)
    ours = objective(X, y, result.model["coef"], 0.0, LAM)
    assert result.summary["converged"] and abs(ours - theirs) <= 1e-6 * theirs


def test_stopped_early_reports_a_checked_point(problem):
    X, y = problem
    result = run_local(LogReg(lam=LAM, tol=1e-12), data=(X, y), config=TWO,
                       max_rounds=6)
    assert not result.summary["converged"]
    ours = objective(X, y, result.model["coef"], result.model["intercept"][0], LAM)
    assert result.summary["objective"] == pytest.approx(ours, rel=1e-9)
    assert ours < np.log(2.0)


def test_bad_labels():
    assert list(check_labels(np.array([0.0, 1.0, 1.0]))) == [-1.0, 1.0, 1.0]
    with pytest.raises(InputError, match="labels must be -1/.1 or 0/1; row 3 has 2"):
        check_labels(np.array([1.0, -1.0, 2.0]), "train.svm")
    with pytest.raises(InputError, match="both classes"):
        check_labels(np.ones(4))


def test_cli_bad_labels_file_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.svm"
    bad.write_text("1 1:0.5 3:1\n-1 2:1\n3 1:1 2:2\n")
    line = one_line_error(run_cli("run", "logreg", "--data", str(bad), "--quiet"))
    assert "bad.svm" in line and "labels" in line


@pytest.mark.parametrize("policy", ["uniform", "cyclic"])
def test_the_non_scheduled_baselines_reach_the_same_optimum(problem, policy):
    X, y = problem
    scheduled = run_local(LogReg(lam=LAM, tol=1e-9), data=(X, y), config=TWO)
    baseline = run_local(LogReg(lam=LAM, tol=1e-9, policy=policy), data=(X, y), config=TWO)
    assert baseline.summary["converged"]
    assert baseline.summary["objective"] == pytest.approx(scheduled.summary["objective"], rel=1e-6)


def test_the_array_path_gpu_workers_run_reaches_the_same_optimum(problem):
    """kernel="array" is the code a GPU worker runs (numpy/scipy here, cupy/cupyx there)."""
    X, y = problem
    compiled = run_local(LogReg(lam=LAM, tol=1e-10), data=(X, y), config=TWO)
    array = run_local(LogReg(lam=LAM, tol=1e-10, kernel="array"), data=(X, y), config=TWO)
    assert array.summary["converged"]
    assert array.summary["objective"] == pytest.approx(compiled.summary["objective"], rel=1e-8)
    np.testing.assert_allclose(array.model["coef"], compiled.model["coef"], atol=1e-5)


def test_uncentred_dense_features_cost_about_the_rounds_of_centred_ones():
    """Shifting every column is a change of the intercept only (same objective). The inner
    solve steps along columns centred against the intercept, so shifted columns do not
    trade their steps back and forth with it (2 workers: 25 rounds, 197 before, against 14)."""
    rng = np.random.default_rng(0)
    X = rng.random((2000, 20)) * 3 + 5
    y = np.where(rng.random(2000) < 1 / (1 + np.exp(-(X - 6.5) @ rng.standard_normal(20))), 1.0, -1.0)
    shifted = run_local(LogReg(lam=0.01, tol=1e-8), data=(X, y), config=TWO).summary
    centred = run_local(LogReg(lam=0.01, tol=1e-8), data=(X - X.mean(axis=0), y), config=TWO).summary
    assert shifted["objective"] == pytest.approx(centred["objective"], rel=1e-10)
    assert shifted["rounds"] <= 3 * centred["rounds"], (shifted["rounds"], centred["rounds"])
