"""Logistic regression on a file its workers read themselves (the default for a file):
the optimum the scheduler-read and in-memory runs reach, labels checked from the
workers' counts, bad lines named by file and line."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import dump_svmlight_file

from smpframe import LocalCluster, run_local
from smpframe.apps.logreg import LogReg
from smpframe.data.synthetic import make_classification
from tests.clitools import one_line_error, run_cli
from tests.datafiles import write_columns

LAM = 0.003
TOL = 1e-10


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    X, y, _ = make_classification(n=1500, d=800, density=0.02, n_informative=40, seed=2)
    path = tmp_path_factory.mktemp("data") / "d.svm"
    dump_svmlight_file(X, (y > 0).astype(int), str(path))  # 0/1 labels in the file
    return X, y, str(path)


@pytest.mark.parametrize("intercept", [True, False])
def test_read_by_the_workers_reaches_the_scheduler_read_and_in_memory_optimum(problem, intercept):
    X, y, path = problem
    ours = run_local(LogReg(lam=LAM, tol=TOL, intercept=intercept), data=path, quiet=True, workers=3)
    theirs = run_local(LogReg(lam=LAM, tol=TOL, intercept=intercept), data=path, quiet=True,
                       read_on="scheduler")
    memory = run_local(LogReg(lam=LAM, tol=TOL, intercept=intercept), data=(X, y), quiet=True)
    assert ours.summary["read_on"] == "workers" and theirs.summary["read_on"] == "scheduler"
    assert ours.summary["converged"] and ours.summary["fragments"] == 3  # one a worker
    for other in (theirs, memory):
        assert ours.summary["objective"] == pytest.approx(other.summary["objective"], rel=1e-9)
        assert ours.summary["lambda_max"] == pytest.approx(other.summary["lambda_max"], rel=1e-12)
    margin = X @ ours.model["coef"] + ours.model["intercept"][0]
    recomputed = np.mean(np.logaddexp(0.0, -y * margin)) + LAM * np.abs(ours.model["coef"]).sum()
    assert ours.summary["objective"] == pytest.approx(recomputed, rel=1e-9)


def test_default_lambda_from_the_workers_facts(problem):
    """lambda_max = ||X^T (y a0)||_inf / n at the intercept-only fit, from per-class column sums."""
    X, y, path = problem
    result = run_local(LogReg(tol=1e-4), data=path, quiet=True, max_rounds=1)
    share = np.mean(y > 0)
    a0 = np.where(y > 0, 1.0 - share, share)
    assert result.summary["lambda_max"] == pytest.approx(np.abs(X.T @ (y * a0)).max() / X.shape[0],
                                                         rel=1e-12)
    assert result.summary["lambda"] == pytest.approx(0.1 * result.summary["lambda_max"], rel=1e-12)


def test_a_bad_line_read_by_a_worker_is_named_with_exit_2(tmp_path):
    good = "1 1:0.5 7:1.5\n-1 2:1 3:0.5\n" * 1000
    bad = tmp_path / "bad.svm"
    bad.write_text(good + "-1 3:zz\n" + good)  # eight splits, the error mid-file
    line = one_line_error(run_cli("run", "logreg", "--data", str(bad), "--quiet"))
    assert line.endswith("bad.svm:2001: value 'zz' is not a number")


@pytest.mark.parametrize("labels, why", [
    ("1\n-1\n3\n", "labels must be -1/+1 or 0/1; row 2003 has 3"),
    ("1\n0\n-1\n", "labels must be -1/+1 or 0/1, not both"),
    ("1\n1\n1\n", "labels must include both classes; all are +1"),
])
def test_bad_labels_the_workers_read_are_one_line_errors(tmp_path, labels, why):
    rows = ["1 1:0.5 2:1\n" if i % 2 else "1 3:1\n" for i in range(2000)]
    ones = labels == "1\n1\n1\n"
    body = "".join(rows if ones else [r if i % 2 else "-" + r for i, r in enumerate(rows)])
    tail = "".join(f"{lab} 1:1\n" for lab in labels.split())
    path = tmp_path / "labels.svm"
    path.write_text(body + tail)
    line = one_line_error(run_cli("run", "logreg", "--data", str(path), "--quiet"))
    assert "labels.svm" in line and why in line


def test_a_killed_worker_has_its_split_read_again(problem):
    """One fragment a worker: the survivor re-reads the lost worker's split, and the step
    rounds go on with the scheduler's sums for that fragment (kept by fragment, not worker)."""
    _, _, path = problem
    reference = run_local(LogReg(lam=LAM, tol=TOL), data=path, quiet=True, workers=3)
    options = {"heartbeat_timeout": 1.5, "heartbeat_interval": 0.25, "scheduler_timeout": 10.0,
               "slowdowns": [200.0] * 3}
    with LocalCluster(LogReg(lam=LAM, tol=TOL), path, timeout=60.0, workers=3, **options) as c:
        assert c.wait_for_round(2), "run ended early"
        c.procs[0].kill()
        result = c.wait()
    lost = [e for e in result.events if e["event"] == "worker_lost"]
    assert len(lost) == 1 and lost[0]["fragments"]
    assert result.summary["converged"] and result.summary["read_on"] == "workers"
    assert result.summary["objective"] == pytest.approx(reference.summary["objective"], rel=1e-8)


def test_parquet_read_by_the_workers(tmp_path):
    X, y, _ = make_classification(n=2000, d=30, density=0.3, n_informative=10, seed=6)
    path = write_columns(tmp_path / "d.parquet", X.toarray(), 200, label=(y > 0) * 1.0)
    ours = run_local(LogReg(lam=0.005, tol=TOL), data=str(path), quiet=True, workers=3)
    memory = run_local(LogReg(lam=0.005, tol=TOL), data=(X, y), quiet=True)
    assert ours.summary["read_on"] == "workers"
    assert ours.summary["objective"] == pytest.approx(memory.summary["objective"], rel=1e-9)
