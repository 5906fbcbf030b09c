"""Runs on a real Slurm cluster (three slurmd on this machine, ../shared/slurm/local-cluster.sh):
``--launcher slurm`` under salloc, ``--launcher env`` under srun, the sbatch template, and a
worker killed mid-run; each reaches the local run's optimum and leaves no job behind."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from smpframe import run_local
from smpframe.apps.lasso import Lasso
from smpframe.examples.pca import PCA

ROOT = Path(__file__).parents[2]
CLUSTER_SCRIPT = ROOT.parent / "shared" / "slurm" / "local-cluster.sh"
SMPFRAME = [sys.executable, "-m", "smpframe.cli"]
PCA_PROGRAM = str(ROOT / "smpframe" / "examples" / "pca.py") + ":PCA"
TIMEOUT = 240


def slurm_up() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(
        ["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="module")
def slurm():
    """A running 3-node Slurm: the one already up, else started here and stopped after."""
    started = False
    if not slurm_up():
        if os.geteuid() != 0 or not CLUSTER_SCRIPT.is_file():
            pytest.skip("no Slurm here, and no root or local-cluster.sh to start one")
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "up", "3"], check=True, timeout=600,
                       capture_output=True)
        started = True
    try:
        yield
    finally:
        left = jobs()
        if left:  # cancelled before the check fails, so nothing outlives the tests
            subprocess.run(["scancel", "--user", str(os.getuid())], timeout=30, capture_output=True)
        if started:
            subprocess.run(["bash", str(CLUSTER_SCRIPT), "down"], timeout=120, capture_output=True)
    assert not left, f"jobs left in squeue: {left}"


def jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True,
                         timeout=20).stdout
    return [line for line in out.splitlines() if line.strip()]


def wait_no_jobs(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while jobs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not jobs(), jobs()


@pytest.fixture(scope="module")
def local_lasso():
    return run_local(Lasso(), workers=3, quiet=True).summary["objective"]


def result(folder: Path) -> dict:
    return json.loads((folder / "result.json").read_text())


def test_salloc_with_the_slurm_launcher(slurm, local_lasso, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(["salloc", "-N3", "-n3", *SMPFRAME, "run", "lasso", "--launcher", "slurm",
                           "--output", str(out), "--quiet"], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = result(out)
    assert summary["workers"] == 3 and summary["converged"]
    assert summary["objective"] == pytest.approx(local_lasso, rel=1e-12)
    wait_no_jobs()


def test_srun_with_the_env_launcher(slurm, local_lasso, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(["srun", "-N3", "-n4", *SMPFRAME, "run", "lasso", "--launcher", "env",
                           "--scheduler-host", "127.0.0.1", "--output", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = result(out)  # rank 0 wrote it; the other three ranks were its workers
    assert summary["workers"] == 3
    assert summary["objective"] == pytest.approx(local_lasso, rel=1e-12)
    wait_no_jobs()


def test_the_sbatch_template(slurm, local_lasso, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, APP="lasso", OUTPUT=str(out), PATH=f"{Path(sys.executable).parent}:"
               + os.environ["PATH"])
    proc = subprocess.run(["sbatch", "--wait", "--nodes=3", "--cpus-per-task=1",
                           f"--output={tmp_path}/job.out", str(ROOT / "servers" / "slurm.sbatch")],
                          env=env, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + (tmp_path / "job.out").read_text()
    assert result(out)["objective"] == pytest.approx(local_lasso, rel=1e-12)
    wait_no_jobs()


def slurm_tasks(pids: list[str]) -> list[str]:
    """The processes among ``pids`` that are tasks of a Slurm step (not other tests' workers)."""
    tasks = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if b"SLURM_STEP_ID=" in fh.read():
                    tasks.append(pid)
        except OSError:
            continue
    return tasks


def test_a_worker_killed_mid_run_under_slurm(slurm, tmp_path):
    args = [PCA_PROGRAM, "--k", "2", "--iterations", "4000", "--tol", "0"]
    expected = run_local(PCA(k=2, iterations=4000, tol=0.0), workers=3, quiet=True).model["V"]
    out = tmp_path / "out"
    run = subprocess.Popen(["salloc", "-N3", "-n3", *SMPFRAME, "run", *args, "--launcher", "slurm",
                            "--heartbeat-timeout", "1.5", "--output", str(out), "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:  # the workers' srun step has started its tasks
            found = slurm_tasks(subprocess.run(
                ["pgrep", "-f", f"^{sys.executable} -m smpframe.worker --connect"],
                capture_output=True, text=True).stdout.split())  # not srun
            if len(found) >= 3:
                break
            assert time.monotonic() < deadline and run.poll() is None, "no workers appeared"
            time.sleep(0.1)
        time.sleep(1.0)  # mid-run
        os.kill(int(found[0]), 9)
        assert run.wait(timeout=TIMEOUT) == 0, run.stderr.read()
    finally:
        if run.poll() is None:  # SIGTERM first: salloc then gives the allocation back
            run.terminate()
            try:
                run.wait(timeout=15)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait(timeout=30)
    events = (out / "events.jsonl").read_text()
    assert '"worker_lost"' in events
    with np.load(out / "model.npz") as model:
        np.testing.assert_allclose(model["V"], expected, rtol=0, atol=1e-12)
    wait_no_jobs()


def test_mf_on_a_file_its_workers_read_under_srun(slurm, tmp_path):
    """Every rank sees the file at one path (a shared file system: here, one machine); the
    workers read their splits and gather their ids' ratings, as on a local cluster."""
    from smpframe.apps.mf import MatrixFactorization
    from smpframe.data.synthetic import make_ratings

    users, items, values = make_ratings(n_users=60, n_items=300, n_ratings=4000, seed=1)
    data = tmp_path / "ratings.csv"
    data.write_text("".join(f"{u},{i},{v:g}\n" for u, i, v in zip(users, items, values)))
    local = run_local(MatrixFactorization(rank=3, epochs=4), data=str(data), workers=3,
                      quiet=True).summary
    out = tmp_path / "out"
    proc = subprocess.run(["srun", "-N3", "-n4", *SMPFRAME, "run", "mf", "--data", str(data),
                           "--rank", "3", "--epochs", "4", "--launcher", "env",
                           "--scheduler-host", "127.0.0.1", "--output", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = result(out)
    assert summary["workers"] == 3 and summary["read_on"] == "workers"
    assert summary["objective"] == pytest.approx(local["objective"], rel=1e-9)
    wait_no_jobs()
