"""The command line: error paths (one line, exit 2), outputs, and a hand-started cluster."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests import procs
from tests.clitools import SMPFRAME, TIMEOUT, one_line_error, run_cli

FAULTY = str(Path(__file__).parent / "faulty_program.py") + ":Faulty"


def test_missing_data_file(tmp_path):
    line = one_line_error(run_cli("run", "lasso", "--data", str(tmp_path / "nope.svm")))
    assert "nope.svm" in line


def test_malformed_libsvm_line_is_named(tmp_path):
    bad = tmp_path / "bad.svm"
    bad.write_text("1 1:0.5 2:1\n-1 3:zz\n")
    line = one_line_error(run_cli("run", "lasso", "--data", str(bad)))
    assert "bad.svm:2" in line


def test_nan_value_is_refused(tmp_path):
    bad = tmp_path / "nan.svm"
    bad.write_text("1 1:0.5\n2 2:nan\n")
    line = one_line_error(run_cli("run", "lasso", "--data", str(bad)))
    assert "nan.svm" in line


def test_matrix_market_without_labels(tmp_path):
    mm = tmp_path / "x.mtx"
    mm.write_text("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 1.0\n")
    line = one_line_error(run_cli("run", "lasso", "--data", str(mm)))
    assert "x.mtx" in line or "labels" in line


def test_bad_option_value():
    proc = run_cli("run", "lasso", "--workers", "0")
    assert proc.returncode == 2 and "--workers" in proc.stderr


def test_failed_run_writes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("run", "lasso", "--data", str(tmp_path / "missing.svm"), "--output", str(out))
    assert proc.returncode == 2
    assert not out.exists()  # not even an empty folder


def test_a_run_the_program_fails_leaves_no_output_folder(tmp_path):
    out = tmp_path / "deep" / "out"
    proc = run_cli("run", FAULTY, "--fail-in", "pull", "--output", str(out), "--quiet")
    assert proc.returncode == 1 and "pull raised" in proc.stderr
    assert not out.exists() and not out.parent.exists()


def test_the_scheduler_writes_events_too(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    sched = subprocess.Popen([*SMPFRAME, "scheduler", FAULTY, "--bind", address, "--workers", "1",
                              "--output", str(out), "--quiet"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    worker = subprocess.Popen([*SMPFRAME, "worker", "--connect", address])
    try:
        assert sched.wait(timeout=TIMEOUT) == 0, sched.stderr.read()
        assert worker.wait(timeout=30) == 0
    finally:
        for proc in (sched, worker):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert (out / "events.jsonl").read_text().count('"joined"') == 1


def test_run_writes_result_model_and_metrics(tmp_path):
    data = tmp_path / "small.svm"
    rng = np.random.default_rng(0)
    with data.open("w") as fh:
        for i in range(200):
            cols = sorted(rng.choice(50, 5, replace=False))
            fh.write(f"{rng.normal():.4f} " + " ".join(f"{c + 1}:{rng.normal():.4f}" for c in cols) + "\n")
    out = tmp_path / "out"
    proc = run_cli("run", "lasso", "--data", str(data), "--lambda", "0.01", "--output", str(out),
                   "--tol", "1e-8")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    for key in ("app", "objective", "rounds", "seconds", "converged", "nnz", "lambda", "workers"):
        assert key in result
    assert result["converged"] and result["lambda"] == 0.01 and result["workers"] == 2
    with np.load(out / "model.npz") as model:
        assert model["coef"].shape == (50,) and model["intercept"].shape == (1,)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert lines and "objective" in json.loads(lines[-1])
    assert "[lasso]" in proc.stderr  # progress on stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cluster_started_by_hand(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    sched = subprocess.Popen([*SMPFRAME, "scheduler", "lasso", "--bind", address, "--workers", "2",
                              "--output", str(out), "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = [subprocess.Popen([*SMPFRAME, "worker", "--connect", address, "--log-level", "WARNING"],
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        stdout, stderr = sched.communicate(timeout=TIMEOUT)
        assert sched.returncode == 0, stderr
        codes = [w.wait(timeout=30) for w in workers]
        assert codes == [0, 0]
        assert json.loads((out / "result.json").read_text())["converged"]
    finally:
        for proc in [sched, *workers]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_workers_that_cannot_start_fail_the_run_quickly():
    from smpframe import ClusterError, run_local
    from smpframe.apps.lasso import Lasso
    from smpframe.data.synthetic import make_regression

    X, y, _ = make_regression(n=100, d=50, density=0.1, n_informative=5)
    with pytest.raises(ClusterError, match="worker processes exited"):
        run_local(Lasso(), data=(X, y), workers=2, worker_args=["--no-such-option"], quiet=True)


def test_gpu_device_without_cupy_is_a_one_line_error():
    from smpframe.arrays import gpu_available
    if gpu_available():
        pytest.skip("a GPU is present")
    line = one_line_error(run_cli("run", "lasso", "--devices", "gpu:0"))
    assert "cupy" in line or "CUDA" in line


@pytest.mark.parametrize("args, named", [
    (["--checkpoint-every", "5x", "--output", "out"], "--checkpoint-every 5x"),
    (["--checkpoint-every", "5"], "needs --output"),
    (["--pipeline-depth", "-1"], "--pipeline-depth -1"),
    (["--seed", "-1"], "--seed -1"),
    (["--slowdowns", "abc,1"], "--slowdowns"),
    (["--slowdowns", "1,2,3"], "--slowdowns"),
    (["--heartbeat-timeout", "-1"], "--heartbeat-timeout -1"),
    (["--lambda", "inf"], "--lambda inf"),
    (["--rho", "2"], "--rho 2"),
])
def test_bad_options_fail_before_any_process_starts(args, named):
    started = time.monotonic()
    proc = run_cli("run", "lasso", *args)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1
    assert time.monotonic() - started < 20


def test_curve_allow_without_a_secret_is_refused():
    line = one_line_error(run_cli("scheduler", "lasso", "--curve-allow", "keys/allowed"))
    assert "--curve-allow" in line and "--curve-secret" in line


def test_unknown_program_is_a_one_line_error():
    line = one_line_error(run_cli("run", "no_such_module:Program"))
    assert "no_such_module" in line


def test_options_come_from_the_environment_and_flags_win():
    from smpframe.cli import config_from_args, parse_args

    env = {"SMPFRAME_WORKERS": "3", "SMPFRAME_PIPELINE_DEPTH": "1", "SMPFRAME_QUIET": "yes",
           "SMPFRAME_LAMBDA": "0.5"}
    args = parse_args(["run", "lasso", "--workers", "4"], env=env)
    config = config_from_args(args)
    assert (config.workers, config.pipeline_depth, config.quiet) == (4, 1, True)
    assert args.param_lam == 0.5


def test_a_user_program_gets_options_from_its_signature():
    proc = run_cli("run", FAULTY, "--rounds", "3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rounds"] == 3
    help_text = run_cli("run", FAULTY, "--help").stdout
    assert "--fail-in" in help_text and "Rounds to run." in help_text


def test_generated_secret_keys_are_private(tmp_path):
    proc = run_cli("keys", "generate", str(tmp_path / "keys"), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    secrets = sorted((tmp_path / "keys").glob("*.key_secret"))
    assert len(secrets) == 2 and all(p.stat().st_mode & 0o077 == 0 for p in secrets)


@pytest.mark.parametrize("args, named", [
    (["scheduler", "lasso", "--curve-secret", "s.key_secret"], "--curve-allow"),
    (["worker", "--curve-secret", "w.key_secret"], "--curve-server"),
    (["worker", "--curve-server", "s.key"], "--curve-server"),
])
def test_half_a_curve_setup_refuses_to_start(args, named):
    line = one_line_error(run_cli(*args))
    assert named in line


def test_sigterm_unwinds_the_run_like_ctrl_c(tmp_path):
    """kill / scancel / a pod's stop: exit 143, the workers stopped, the socket folder gone."""
    run = subprocess.Popen([*SMPFRAME, "run", "lda", "--iterations", "1000000", "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, TMPDIR=str(tmp_path)))
    try:
        deadline = time.monotonic() + 60
        while len(procs.children(run.pid)) < 2:  # its two workers are up
            assert run.poll() is None and time.monotonic() < deadline, "no workers appeared"
            time.sleep(0.1)
        workers = procs.children(run.pid)
        assert list(tmp_path.glob("smpframe-*/scheduler"))
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=30) == 143
        assert "smpframe: terminated" in run.stderr.read()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(procs.alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "workers outlived the terminated run"
        time.sleep(0.1)
    assert not list(tmp_path.glob("smpframe-*"))
