"""A warm cluster: the same workers serve run after run, with the results of fresh ones."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from smpframe import Cluster, ClusterError, InputError, run_local
from smpframe.apps.lasso import Lasso
from smpframe.apps.lda import LDA
from smpframe.data.synthetic import make_regression
from tests import procs
from tests.faulty_program import Faulty

SMALL_LDA = {"n_docs": 200, "n_words": 300, "n_topics": 5, "doc_length": 40.0, "seed": 1}


@pytest.fixture(scope="module")
def regression():
    X, y, _ = make_regression(n=400, d=300, density=0.05, n_informative=10, seed=3)
    return X, y


def test_runs_on_a_warm_cluster_equal_fresh_runs(regression):
    fresh_lasso = run_local(Lasso(lam=0.01, tol=1e-10), data=regression, workers=2, quiet=True)
    fresh_lda = run_local(LDA(topics=5, iterations=12, synthetic=SMALL_LDA), workers=2, quiet=True)
    with Cluster(workers=2, quiet=True) as cluster:
        pids = [p.pid for p in cluster.procs]
        for _ in range(2):
            lasso = cluster.run(Lasso(lam=0.01, tol=1e-10), data=regression)
            lda = cluster.run(LDA(topics=5, iterations=12, synthetic=SMALL_LDA))
            np.testing.assert_array_equal(lasso.model["coef"], fresh_lasso.model["coef"])
            np.testing.assert_array_equal(lda.model["nwk"], fresh_lda.model["nwk"])
            assert lasso.summary["rounds"] == fresh_lasso.summary["rounds"]
        assert [p.pid for p in cluster.procs] == pids  # the same processes served every run
    assert all(p.poll() == 0 for p in cluster.procs)  # told to stop, and stopped


def test_run_local_uses_the_open_cluster(regression):
    with Cluster(workers=2, quiet=True) as cluster:
        before = set(procs.children(os.getpid()))
        result = run_local(Lasso(lam=0.01), data=regression, quiet=True, workers=2)
        assert set(procs.children(os.getpid())) == before  # no new worker processes
        assert result.summary["converged"]
        other = run_local(Lasso(lam=0.01), data=regression, quiet=True, workers=3)  # another size:
        assert other.summary["workers"] == 3                                      # a fresh cluster
        assert Cluster.current() is cluster
    assert Cluster.current() is None


def test_a_worker_that_died_between_runs_is_replaced(regression):
    with Cluster(workers=2, quiet=True) as cluster:
        first = cluster.run(Lasso(lam=0.01, tol=1e-10), data=regression)
        cluster.procs[0].kill()
        cluster.procs[0].wait(timeout=10)
        started = time.monotonic()
        second = cluster.run(Lasso(lam=0.01, tol=1e-10), data=regression)
        assert time.monotonic() - started < 30
        assert cluster.procs[0].poll() is None  # a new process took its place
    np.testing.assert_array_equal(first.model["coef"], second.model["coef"])


def test_a_failed_run_leaves_the_cluster_usable(regression):
    with Cluster(workers=2, quiet=True) as cluster:
        with pytest.raises(ClusterError, match="push raised RuntimeError"):
            cluster.run(Faulty(fail_in="push"))
        assert cluster.run(Faulty(rounds=3)).summary["rounds"] == 3


def test_cluster_options_are_fixed_when_it_starts():
    with Cluster(workers=1, quiet=True) as cluster:
        with pytest.raises(InputError, match="workers"):
            cluster.run(Faulty(), workers=3)
    with pytest.raises(InputError, match="closed"):
        cluster.run(Faulty())


def test_workers_busy_loading_kernels_still_join():
    """Workers that spend seconds in warm_up (as on a first, uncached numba compile) while
    the run starts are handed to it; none is left waiting."""
    with Cluster(workers=2, quiet=True) as cluster:
        started = time.monotonic()
        result = cluster.run(Faulty(rounds=3, warm_seconds=4.0))
        assert result.summary["rounds"] == 3 and time.monotonic() - started < 30
        joined = [e for e in result.events if e["event"] == "joined"]
        assert len(joined) == 2


def test_closing_mid_run_ends_the_run_at_once():
    import threading

    from smpframe.examples.pca import PCA

    outcome = {}
    with Cluster(workers=2, quiet=True) as cluster:
        def run():
            try:
                cluster.run(PCA(k=2, iterations=10**6, tol=0.0))
            except ClusterError as exc:
                outcome["error"] = str(exc)
        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(2.0)  # well into the run
        started = time.monotonic()
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - started < 15
    assert outcome["error"] == "the cluster was closed"
