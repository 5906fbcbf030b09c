"""Schedules as policies: switching Lasso's dependency filter off still reaches the optimum.

(The other apps' baselines are checked beside their apps: test_lasso, test_logreg,
test_lda, test_mf.)
"""
from __future__ import annotations

import pytest

from smpframe import Cluster, RunConfig
from smpframe.apps.lasso import Lasso
from smpframe.data.synthetic import make_regression

TWO = RunConfig(workers=2, quiet=True, time_limit=60.0)


def test_lasso_without_the_dependency_filter_reaches_the_same_optimum():
    """``--rho 1 --pipeline-depth 1``: blocks overlap with nothing filtered out (a column
    may be in two blocks in flight); slower, but the same optimum as unpipelined rounds."""
    X, y, _ = make_regression(n=1000, d=4000, density=0.005, n_informative=60, seed=0)
    with Cluster(config=TWO) as cluster:
        plain = cluster.run(Lasso(tol=1e-8, block_size=64), data=(X, y)).summary
        unfiltered = cluster.run(Lasso(tol=1e-8, block_size=64, rho=1.0), data=(X, y),
                                 pipeline_depth=1).summary
    assert plain["converged"] and unfiltered["converged"]
    assert unfiltered["objective"] == pytest.approx(plain["objective"], rel=1e-8)
    assert unfiltered["rounds"] > plain["rounds"]
