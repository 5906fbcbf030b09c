"""Runs whose workers read the data file themselves (the default for a file): the same
optimum as when the scheduler reads it, recovery by re-reading, bad data named by line."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from smpframe import LocalCluster, run_local
from smpframe.apps.kmeans import KMeans
from smpframe.apps.lasso import Lasso
from smpframe.data.synthetic import make_regression
from tests.clitools import one_line_error, run_cli
from tests.datafiles import regression_svm, write_columns

TOL = 1e-9


@pytest.fixture(scope="module")
def svm(tmp_path_factory):
    return regression_svm(tmp_path_factory.mktemp("data") / "d.svm", n=3000, d=4000,
                          density=0.004, n_informative=40, seed=3)


def test_lasso_read_by_the_workers_reaches_the_scheduler_read_optimum(svm):
    ours = run_local(Lasso(lam=0.003, tol=TOL), data=svm, quiet=True, workers=3)
    theirs = run_local(Lasso(lam=0.003, tol=TOL), data=svm, quiet=True, read_on="scheduler")
    assert ours.summary["read_on"] == "workers" and theirs.summary["read_on"] == "scheduler"
    assert ours.summary["converged"] and ours.summary["fragments"] == 12
    assert ours.summary["objective"] == pytest.approx(theirs.summary["objective"], rel=1e-9)
    assert ours.summary["lambda_max"] == pytest.approx(theirs.summary["lambda_max"], rel=1e-12)


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_kmeans_read_by_the_workers_matches_in_memory(tmp_path, suffix):
    X = np.random.default_rng(1).normal(size=(3000, 3)) + np.repeat(np.eye(3) * 6, 1000, axis=0)
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, X)
    else:
        np.savetxt(path, X, delimiter=",", fmt="%.17g", header="a,b,c", comments="")
    init = X[[0, 1500, 2999]].tolist()
    ours = run_local(KMeans(k=3, init_centers=init, tol=0.0), data=str(path), quiet=True)
    memory = run_local(KMeans(k=3, init_centers=init, tol=0.0), data=X, quiet=True)
    assert ours.summary["read_on"] == "workers" and ours.summary["n_rows"] == 3000
    assert ours.summary["inertia"] == pytest.approx(memory.summary["inertia"], rel=1e-12)
    np.testing.assert_allclose(ours.model["centers"], memory.model["centers"], rtol=1e-12)


def test_a_killed_worker_has_its_splits_read_again(svm):
    reference = run_local(Lasso(lam=0.003, tol=TOL), data=svm, quiet=True).summary["objective"]
    options = {"heartbeat_timeout": 1.5, "heartbeat_interval": 0.25, "scheduler_timeout": 10.0,
               "slowdowns": [200.0] * 3}
    with LocalCluster(Lasso(lam=0.003, tol=TOL), svm, timeout=60.0, workers=3, **options) as c:
        assert c.wait_for_round(2), "run ended early"
        c.procs[0].kill()
        killed = time.monotonic()
        result = c.wait()
    lost = [e for e in result.events if e["event"] == "worker_lost"]
    assert len(lost) == 1 and lost[0]["fragments"] and time.monotonic() > killed
    assert result.summary["converged"]
    assert result.summary["objective"] == pytest.approx(reference, rel=1e-7)


def test_a_bad_line_read_by_a_worker_is_named_with_exit_2(tmp_path):
    good = "1 1:0.5 7:1.5\n" * 2000
    bad = tmp_path / "bad.svm"
    bad.write_text(good + "-1 3:zz\n" + good)  # about 56 KB: eight splits, the error mid-file
    line = one_line_error(run_cli("run", "lasso", "--data", str(bad), "--quiet"))
    assert line.endswith("bad.svm:2001: value 'zz' is not a number")


def test_parquet_read_by_the_workers(tmp_path):
    X, y, _ = make_regression(n=2000, d=30, density=0.3, n_informative=10, seed=6)
    dense = X.toarray()
    path = write_columns(tmp_path / "d.parquet", dense, 200, y=y)
    lasso = run_local(Lasso(lam=0.01, tol=TOL), data=str(path), quiet=True, workers=3)
    memory = run_local(Lasso(lam=0.01, tol=TOL), data=(X, y), quiet=True)
    assert lasso.summary["read_on"] == "workers" and lasso.summary["fragments"] == 10
    assert lasso.summary["objective"] == pytest.approx(memory.summary["objective"], rel=1e-9)
    init = dense[[0, 1, 2]].tolist()
    features = write_columns(tmp_path / "x.parquet", dense, 300)
    ours = run_local(KMeans(k=3, init_centers=init, tol=0.0), data=str(features), quiet=True)
    theirs = run_local(KMeans(k=3, init_centers=init, tol=0.0), data=dense, quiet=True)
    assert ours.summary["inertia"] == pytest.approx(theirs.summary["inertia"], rel=1e-12)


def test_a_url_is_read_by_the_workers(svm, tmp_path):
    pytest.importorskip("fsspec")
    out = tmp_path / "out"
    proc = run_cli("run", "lasso", "--data", Path(svm).as_uri(), "--lambda", "0.003", "--tol",
                   str(TOL), "--output", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "result.json").read_text())
    reference = run_local(Lasso(lam=0.003, tol=TOL), data=svm, quiet=True).summary["objective"]
    assert summary["read_on"] == "workers"
    assert summary["objective"] == pytest.approx(reference, rel=1e-9)
