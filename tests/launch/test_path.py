"""``smpframe run lasso --path N --cv K``: scikit-learn's lambda on the same grid and folds."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import dump_svmlight_file
from sklearn.linear_model import LassoCV as SkLassoCV
from sklearn.model_selection import KFold

from smpframe.data.synthetic import make_regression
from smpframe.launch.path import PATH_EPS
from tests.clitools import one_line_error, run_cli


def test_the_path_picks_scikit_learns_lambda_and_is_written(tmp_path):
    X, y, _ = make_regression(n=600, d=300, density=0.05, n_informative=15, noise=1.0, seed=8)
    data = tmp_path / "d.svm"
    dump_svmlight_file(X, y, str(data))
    out = tmp_path / "out"
    proc = run_cli("run", "lasso", "--data", str(data), "--path", "6", "--cv", "3", "--tol", "1e-8",
                   "--output", str(out), "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "result.json").read_text())
    grid = {"alphas": 6}  # scikit-learn >= 1.7; n_alphas before
    try:
        theirs = SkLassoCV(**grid, eps=PATH_EPS, cv=KFold(3), tol=1e-10, max_iter=100_000).fit(X, y)
    except (TypeError, ValueError):
        theirs = SkLassoCV(n_alphas=6, eps=PATH_EPS, cv=KFold(3), tol=1e-10, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(summary["lambdas"], theirs.alphas_, rtol=1e-9)
    step = int(np.argmin(np.abs(np.log(np.asarray(summary["lambdas"]) / summary["lambda"]))))
    assert abs(step - int(np.argmin(theirs.mse_path_.mean(axis=1)))) <= 1  # within a grid step
    assert json.loads(proc.stdout)["lambda"] == summary["lambda"]
    with np.load(out / "model.npz") as model:
        assert model["coef"].shape == (300,) and summary["unconverged_fits"] == 0


@pytest.mark.parametrize("args, message", [
    (["kmeans", "--path", "5"], "--path: cross-validated paths are for lasso"),
    (["lasso", "--path", "5", "--lambda", "0.1"], "--path chooses lambda"),
    (["lasso", "--path", "1"], "--path 1: must be >= 2"),
    (["lasso", "--path", "5", "--cv", "1"], "--cv 1: must be >= 2"),
])
def test_bad_path_options_are_one_line(args, message):
    assert message in one_line_error(run_cli("run", *args, "--quiet"))
