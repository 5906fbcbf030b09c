"""--launcher ray on a real two-node Ray cluster on this machine (``ray start --head`` and a
second ``ray start --address``): the same optimum as a local run, a worker killed mid-run,
nothing left behind, and a clear error when no Ray cluster is there."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from smpframe import run_local
from smpframe.apps.lasso import Lasso
from smpframe.examples.pca import PCA
from tests.clitools import SMPFRAME, TIMEOUT, one_line_error, run_cli
from tests.datafiles import regression_svm

ray = pytest.importorskip("ray")
RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([RAY, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A head and a second node, both on loopback; stopped (every Ray process) at the end."""
    if shutil.which(RAY) is None:
        pytest.skip("no ray command")
    address = f"127.0.0.1:{_free_port()}"
    head = ray_cmd("start", "--head", f"--port={address.split(':')[1]}", "--num-cpus=2",
                   "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                   "--disable-usage-stats")
    try:
        assert head.returncode == 0, head.stderr
        node = ray_cmd("start", f"--address={address}", "--num-cpus=2",
                       "--node-ip-address=127.0.0.1", "--disable-usage-stats")
        assert node.returncode == 0, node.stderr
        yield address
    finally:
        ray_cmd("stop", "--force", timeout=120)


def ray_workers() -> list[str]:
    return subprocess.run(["pgrep", "-f", "RayWorker"], capture_output=True, text=True).stdout.split()


@pytest.fixture(scope="module")
def svm(tmp_path_factory):
    return regression_svm(tmp_path_factory.mktemp("ray") / "d.svm", n=2000, d=3000,
                          density=0.005, n_informative=30, seed=4)


def test_a_run_on_ray_reaches_the_local_optimum_and_leaves_nothing(ray_cluster, svm, tmp_path):
    local = run_local(Lasso(lam=0.003, tol=1e-9), data=svm, quiet=True).summary["objective"]
    out = tmp_path / "out"
    proc = run_cli("run", "lasso", "--data", svm, "--lambda", "0.003", "--tol", "1e-9",
                   "--launcher", "ray", "--ray-address", ray_cluster, "--workers", "3",
                   "--output", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "result.json").read_text())
    assert summary["workers"] == 3 and summary["read_on"] == "workers"
    assert summary["objective"] == pytest.approx(local, rel=1e-9)
    deadline = time.monotonic() + 30
    while ray_workers():
        assert time.monotonic() < deadline, "Ray worker actors outlived the run"
        time.sleep(0.2)


def test_a_worker_actor_killed_mid_run(ray_cluster, tmp_path):
    expected = run_local(PCA(k=2, iterations=3000, tol=0.0), workers=3, quiet=True).model["V"]
    out = tmp_path / "out"
    program = str(Path(__file__).parents[2] / "smpframe" / "examples" / "pca.py") + ":PCA"
    run = subprocess.Popen([*SMPFRAME, "run", program, "--k", "2", "--iterations", "3000",
                            "--tol", "0", "--launcher", "ray", "--ray-address", ray_cluster,
                            "--workers", "3", "--heartbeat-timeout", "1.5", "--output", str(out),
                            "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(ray_workers()) < 3:
            assert time.monotonic() < deadline and run.poll() is None, "no worker actors appeared"
            time.sleep(0.1)
        time.sleep(1.5)  # mid-run
        os.kill(int(ray_workers()[0]), 9)
        assert run.wait(timeout=TIMEOUT) == 0, run.stderr.read()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
    np.testing.assert_allclose(np.load(out / "model.npz")["V"], expected, rtol=0, atol=1e-12)


def test_no_ray_cluster_is_one_clear_line(tmp_path):
    line = one_line_error(run_cli("run", "lasso", "--launcher", "ray", "--ray-address",
                                  f"127.0.0.1:{_free_port()}", "--quiet", timeout=90))
    assert "--launcher ray: cannot reach a Ray cluster" in line
