"""smpframe.linear_model.LassoCV: scikit-learn's grid and choice, on one warm cluster."""
from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn import linear_model as sk
from sklearn.datasets import make_regression
from sklearn.model_selection import KFold

import smpframe.launch.cluster as cluster_module
from smpframe import Cluster
from smpframe.linear_model import LassoCV
from tests import procs
from tests.estimators import deadline  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("deadline")


@pytest.fixture(scope="module")
def problem():
    X, y = make_regression(n_samples=120, n_features=40, n_informative=6, noise=20.0, bias=2.0,
                           random_state=1)
    return X, y


@pytest.fixture
def worker_starts(monkeypatch):
    """How many worker processes were started (every Cluster starts them through here)."""
    started = []
    real = cluster_module.start_workers

    def counting(address, devices, *args, **kwargs):
        started.extend(devices)
        return real(address, devices, *args, **kwargs)

    monkeypatch.setattr(cluster_module, "start_workers", counting)
    return started


def test_picks_scikit_learn_alpha_on_one_cluster(problem, worker_starts):
    X, y = problem
    assert Cluster.current() is None
    before = set(procs.children(os.getpid()))
    ours = LassoCV(n_alphas=8, eps=1e-2, cv=3, tol=1e-10).fit(X, y)
    assert worker_starts == ["cpu", "cpu"]  # one cluster of 2 workers for all 8 x 3 + 1 fits
    assert set(procs.children(os.getpid())) == before  # and it is closed: no worker left
    ref = sk.LassoCV(alphas=8, eps=1e-2, cv=KFold(3), tol=1e-12, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(ours.alphas_, ref.alphas_, rtol=1e-12)
    assert ours.mse_path_.shape == (8, 3)
    np.testing.assert_allclose(ours.mse_path_, ref.mse_path_, rtol=1e-5)
    step = np.log(ours.alphas_[0] / ours.alphas_[1])
    assert abs(np.log(ours.alpha_ / ref.alpha_)) <= step * (1 + 1e-9)
    if ours.alpha_ == ref.alpha_:
        np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5 * np.abs(ref.coef_).max())
    assert ours.score(X, y) == pytest.approx(ref.score(X, y), rel=1e-3)


def test_given_grid_and_cluster(problem, worker_starts):
    X, y = problem
    grid = [0.5, 5.0, 0.05]
    folds = KFold(3, shuffle=True, random_state=0)
    with Cluster(workers=2, quiet=True) as cluster:
        started = len(worker_starts)
        ours = LassoCV(alphas=grid, cv=3, random_state=0, cluster=cluster, tol=1e-10).fit(X, y)
        assert len(worker_starts) == started  # no cluster of its own
    ref = sk.LassoCV(alphas=grid, cv=folds, tol=1e-12, max_iter=100_000).fit(X, y)
    np.testing.assert_array_equal(ours.alphas_, [5.0, 0.5, 0.05])
    np.testing.assert_allclose(ours.mse_path_, ref.mse_path_, rtol=1e-5)
    assert ours.alpha_ == ref.alpha_


def test_bad_grid(problem):
    X, y = problem
    with pytest.raises(ValueError, match="alphas"):
        LassoCV(alphas=[1.0, -1.0]).fit(X, y)
    with pytest.raises(ValueError, match="n_alphas"):
        LassoCV(n_alphas=0).fit(X, y)
