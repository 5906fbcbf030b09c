"""Lasso through a real 2-worker local cluster, checked against scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import Lasso as SkLasso

from smpframe import Cluster, RunConfig, run_local
from smpframe.apps.lasso import Lasso
from smpframe.data.synthetic import make_regression

TWO = RunConfig(workers=2, quiet=True)


def objective(X, y, coef, intercept, lam):
    r = y - X @ coef - intercept
    return r @ r / (2 * X.shape[0]) + lam * np.abs(coef).sum()


@pytest.fixture(scope="module")
def problem():
    X, y, _ = make_regression(n=600, d=1500, density=0.01, n_informative=30, seed=3)
    return X, y


@pytest.mark.parametrize("intercept", [True, False])
def test_matches_scikit_learn_objective(problem, intercept):
    X, y = problem
    lam = 0.02
    result = run_local(Lasso(lam=lam, tol=1e-10, intercept=intercept), data=(X, y),
                       config=TWO)
    sk = SkLasso(alpha=lam, fit_intercept=intercept, tol=1e-12, max_iter=100_000).fit(X, y)
    ours = objective(X, y, result.model["coef"], result.model["intercept"][0], lam)
    theirs = objective(X, y, sk.coef_, sk.intercept_, lam)
    assert result.summary["converged"]
    assert abs(ours - theirs) <= 1e-6 * theirs
    assert result.summary["objective"] == pytest.approx(ours, rel=1e-9)  # tracked == recomputed
    np.testing.assert_allclose(result.model["coef"], sk.coef_, atol=1e-4)
    if not intercept:
        assert result.model["intercept"][0] == 0.0


def test_dense_input_and_correlated_columns():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((300, 20))
    X = np.hstack([base, base[:, :10] + 0.01 * rng.standard_normal((300, 10))])  # near-duplicates
    y = base[:, :5] @ np.array([3.0, -2.0, 1.0, 0.5, -1.0]) + 0.1 * rng.standard_normal(300)
    lam = 0.05
    result = run_local(Lasso(lam=lam, tol=1e-10, block_size=8), data=(X, y), config=TWO)
    sk = SkLasso(alpha=lam, tol=1e-12, max_iter=100_000).fit(X, y)
    ours = objective(X, y, result.model["coef"], result.model["intercept"][0], lam)
    theirs = objective(X, y, sk.coef_, sk.intercept_, lam)
    assert abs(ours - theirs) <= 1e-6 * theirs


def test_pipelined_rounds_still_converge(problem):
    X, y = problem
    result = run_local(Lasso(lam=0.02, tol=1e-8), data=(X, y), pipeline_depth=1, config=TWO)
    sk = SkLasso(alpha=0.02, tol=1e-12, max_iter=100_000).fit(X, y)
    theirs = objective(X, y, sk.coef_, sk.intercept_, 0.02)
    ours = objective(X, y, result.model["coef"], result.model["intercept"][0], 0.02)
    assert result.summary["converged"] and abs(ours - theirs) <= 1e-6 * theirs


def test_max_rounds_stops_unconverged(problem):
    result = run_local(Lasso(lam=0.02, tol=1e-12), data=problem, max_rounds=3, config=TWO)
    assert result.summary["rounds"] == 3 and not result.summary["converged"]


@pytest.mark.parametrize("partial", [
    {"sr": 0.0},                                         # the key the block asks for is missing
    {"c": np.zeros(3), "sr": 0.0},                       # wrong length
    {"c": np.zeros(4, np.int8), "sr": 0.0},              # int8 is not a gradient
    {"c": np.float64(1.0), "sr": 0.0},                   # 0-d
])
def test_check_partial_refuses_malformed_partials(partial):
    from smpframe.api import rows_context

    program = Lasso(lam=0.1)
    ds = program.load_data(None)
    ctx = rows_context(program, ds, 2, np.random.default_rng(0))
    program.init(ctx)
    block = {"kind": "block", "idx": np.arange(4)}
    good = {"c": np.zeros(4), "sr": 0.0, "G": sp.csr_matrix((4, 4))}
    program.check_partial(ctx, block, 0, good)  # a good one passes
    with pytest.raises(ValueError, match="'c' must be an array of shape"):
        program.check_partial(ctx, block, 0, partial)


def test_every_schedule_reaches_the_same_optimum_and_priority_is_fastest(problem):
    """The non-scheduled baselines (uniform, cyclic) solve the same problem; scheduling by
    priority needs far fewer rounds to the same duality gap."""
    X, y = problem
    rounds = {}
    with Cluster(config=TWO) as cluster:
        for policy in ("priority", "uniform", "cyclic"):
            result = cluster.run(Lasso(lam=0.02, tol=1e-9, policy=policy, block_size=32),
                                 data=(X, y))
            assert result.summary["converged"]
            rounds[policy] = result.summary["rounds"]
            if policy == "priority":
                best = result.summary["objective"]
            assert result.summary["objective"] == pytest.approx(best, rel=1e-8)
    assert rounds["priority"] < min(rounds["uniform"], rounds["cyclic"])


def test_the_array_path_gpu_workers_run_matches_the_compiled_kernels(problem):
    """kernel="array" is the code a GPU worker runs (numpy/scipy here, cupy/cupyx there)."""
    X, y = problem
    compiled = run_local(Lasso(lam=0.02, tol=1e-9), data=(X, y), config=TWO)
    array = run_local(Lasso(lam=0.02, tol=1e-9, kernel="array"), data=(X, y), config=TWO)
    assert array.summary["converged"] and array.summary["rounds"] == compiled.summary["rounds"]
    np.testing.assert_allclose(array.model["coef"], compiled.model["coef"], rtol=1e-9, atol=1e-12)
    assert array.summary["objective"] == pytest.approx(compiled.summary["objective"], rel=1e-12)


def test_the_result_carries_the_schedule_and_a_line_per_round(problem):
    result = run_local(Lasso(lam=0.02, tol=1e-8, policy="cyclic"), data=problem, config=TWO)
    history = result.summary["round_history"]
    assert result.summary["schedule"] == "cyclic"
    assert [h["round"] for h in history] == list(range(1, result.summary["rounds"] + 1))
    assert all(a["t"] <= b["t"] for a, b in zip(history, history[1:]))
    assert history[-1]["objective"] == pytest.approx(result.summary["objective"], rel=1e-12)
    d = problem[0].shape[1]
    assert all(h["block"] <= 256 or h["block"] == d for h in history)  # block rounds, full rounds
    assert any(h["block"] == 256 for h in history) and any(h["block"] == d for h in history)


def test_a_path_run_solves_every_lambda_warm_started(problem):
    X, y = problem
    lam_max = float(np.max(np.abs(X.T @ (y - y.mean())))) / X.shape[0]
    path = np.geomspace(lam_max, 0.02 * lam_max, 6)
    result = run_local(Lasso(lambdas=path.tolist(), tol=1e-10), data=(X, y), config=TWO)
    summary = result.summary
    assert summary["converged"] and summary["path_solved"] == path.size
    assert summary["lambda"] == path[-1]
    assert summary["path_rounds"] == sorted(summary["path_rounds"])
    assert max(summary["path_gaps"]) <= 1e-10
    for lam, coef, b in zip(path, result.model["coef_path"], result.model["intercept_path"]):
        sk = SkLasso(alpha=lam, tol=1e-12, max_iter=100_000).fit(X, y)
        theirs = objective(X, y, sk.coef_, sk.intercept_, lam)
        assert abs(objective(X, y, coef, b, lam) - theirs) <= 1e-6 * theirs
    assert not result.model["coef_path"][0].any()  # lambda_max: all zero
    np.testing.assert_array_equal(result.model["coef_path"][-1], result.model["coef"])


def test_a_path_stopped_early_says_how_far_it_got(problem):
    X, y = problem
    path = [0.05, 0.02, 0.01, 0.005]
    result = run_local(Lasso(lambdas=path, tol=1e-10), data=(X, y), config=TWO.replace(max_rounds=3))
    assert not result.summary["converged"]
    assert result.summary["path_solved"] < len(path)
    assert len(result.summary["path_rounds"]) == result.summary["path_solved"]


@pytest.mark.parametrize("params, why", [
    ({"lambdas": [0.1, 0.2]}, "decreasing"),
    ({"lambdas": []}, "non-empty"),
    ({"lambdas": [0.1, float("nan")]}, "finite"),
    ({"lambdas": [0.1, 0.0]}, "> 0"),
    ({"lambdas": [0.1], "lam": 0.1}, "leave out --lambda"),
])
def test_bad_paths_are_refused_before_the_run(params, why):
    from smpframe.errors import InputError
    with pytest.raises(InputError, match=why):
        Lasso(**params).check_params()


def test_logreg_does_not_follow_paths():
    from smpframe.apps.logreg import LogReg
    from smpframe.errors import InputError
    with pytest.raises(InputError, match="does not follow paths"):
        LogReg(lambdas=[0.1]).check_params()
