"""Chaos tests: real worker processes killed, stopped, poisoned; scheduler killed and resumed;
garbage on the wire; unauthenticated peers. Each asserts the final objective and that no
process is left behind (the autouse fixture in conftest.py checks descendants)."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq

from smpframe import LocalCluster, RunConfig, run_local
from smpframe.apps.lasso import Lasso
from smpframe.data.synthetic import make_regression
from smpframe.examples.pca import PCA
from smpframe.launch.local import worker_command
from smpframe.protocol import PROTOCOL_VERSION
from tests import procs
from tests.poison import PoisonedLasso

TOL = 1e-9
SLOW = 3.0  # workers slowed so that a run lasts long enough to be hit mid-round
SMPFRAME = [sys.executable, "-m", "smpframe.cli"]


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_regression(n=3000, d=8000, density=0.003, n_informative=60, seed=5)
    return X, y


@pytest.fixture(scope="module")
def reference(data):
    result = run_local(Lasso(lam=0.002, tol=TOL), data=data, quiet=True)
    assert result.summary["converged"]
    return result.summary["objective"]


def chaos(program, data, workers, slowdown=1.0, **options):
    """A background cluster with fast failure detection (1.5 s heartbeat timeout);
    its workers slowed by ``slowdown`` so that a run lasts long enough to be hit."""
    options = {"heartbeat_timeout": 1.5, "heartbeat_interval": 0.25, "scheduler_timeout": 10.0,
               "slowdowns": [slowdown] * workers, **options}
    return LocalCluster(program, data, timeout=50.0, workers=workers, **options)


def assert_same_objective(result, reference):
    assert result.summary["converged"]
    assert abs(result.summary["objective"] - reference) <= 1e-7 * reference


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_worker_kills(data, reference, seed):
    rng = random.Random(seed)
    with chaos(Lasso(lam=0.002, tol=TOL), data, workers=3, slowdown=SLOW) as c:
        killed = []
        for victim, first_round in zip(rng.sample(range(3), 2), (1, 6)):
            assert c.wait_for_round(rng.randint(first_round, first_round + 4)), "run ended early"
            c.procs[victim].kill()
            killed.append(c.procs[victim].pid)
        result = c.wait()
    assert_same_objective(result, reference)
    lost = [e for e in result.events if e["event"] == "worker_lost"]
    # each killed process was found dead (a loaded machine may also time out a live one,
    # which then rejoins: handled the same way)
    for pid in killed:
        assert any(f"-{pid}-" in e["worker"] for e in lost), (pid, lost)
    assert all(e["reason"] == "heartbeat timeout" for e in lost)


def test_stopped_worker_is_evicted_and_rejoins():
    """SIGSTOP past the heartbeat timeout, then SIGCONT: evicted, late messages dropped,
    rejoins as a fresh worker; the (exact, deterministic) result is unchanged."""
    A = np.random.default_rng(0).standard_normal((400, 6)) @ np.diag([5.0, 3, 2, 1, 1, 1])
    program = PCA(k=2, iterations=6000, tol=0.0)  # long enough to outlast stop + rejoin
    expected = run_local(program, data=A, quiet=True).model["V"]
    with chaos(program, A, workers=3) as c:
        assert c.wait_for_round(50)
        victim = c.procs[1]
        victim.send_signal(signal.SIGSTOP)
        time.sleep(2.5)  # longer than the 1.5 s heartbeat timeout
        victim.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 20
        while sum(e["event"] == "joined" for e in c.server.state.events) < 4:
            assert not c.server.state.finished, "run ended before the stopped worker rejoined"
            assert time.monotonic() < deadline, "the resumed worker never rejoined"
            time.sleep(0.02)
        result = c.wait()
    np.testing.assert_allclose(result.model["V"], expected, rtol=0, atol=1e-12)
    assert [e["reason"] for e in result.events if e["event"] == "worker_lost"] == ["heartbeat timeout"]


def test_poisoned_worker_is_treated_as_faulty(data, reference, monkeypatch):
    monkeypatch.setenv("SMPFRAME_TEST_POISON", "cpu:2")  # the third worker's partials are NaN
    with chaos(PoisonedLasso(lam=0.002, tol=TOL), data, workers=3,
               devices=["cpu:0", "cpu:1", "cpu:2"]) as c:
        result = c.wait()
    assert_same_objective(result, reference)
    assert any("non-finite" in e.get("reason", "") for e in result.events)


def test_scheduler_kill_and_resume(tmp_path, data, reference):
    X, y = data
    svm = tmp_path / "data.svm"
    from sklearn.datasets import dump_svmlight_file
    dump_svmlight_file(X, y, str(svm))
    from smpframe.data.matrix import load_xy
    X2, y2 = load_xy(str(svm), None, None)
    ref = run_local(Lasso(lam=0.002, tol=TOL), data=(X2, y2), quiet=True).summary["objective"]
    out = tmp_path / "run"
    args = ["run", "lasso", "--data", str(svm), "--lambda", "0.002", "--tol", str(TOL),
            "--output", str(out), "--quiet"]
    # slowed 1000x (about 0.2 s a round, 4 s a run) so the kill lands rounds before the end;
    # at 3x a loaded CI box once finished the whole run between the checkpoint and the kill
    # (its socket folder under tmp_path: a SIGKILLed scheduler cannot remove it)
    first = subprocess.Popen([*SMPFRAME, *args, "--checkpoint-every", "2", "--slowdowns", "1000,1000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=dict(os.environ, TMPDIR=str(tmp_path)))
    deadline = time.monotonic() + 60
    while not (out / "checkpoints" / "LATEST").exists():
        assert first.poll() is None and time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.05)
    workers = procs.children(first.pid)
    first.kill()
    first.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(procs.alive(p) for p in workers):
        assert time.monotonic() < deadline, "workers outlived their killed scheduler"
        time.sleep(0.1)
    assert not (out / "result.json").exists()
    resumed = subprocess.run([*SMPFRAME, *args, "--resume", str(out)], capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "result.json").read_text())
    assert summary["converged"] and abs(summary["objective"] - ref) <= 1e-7 * ref


def _free_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_workers_exit_when_the_scheduler_dies(tmp_path):
    address = _free_address()
    # LDA with a huge fixed iteration count: a run that cannot finish before the kill
    sched = subprocess.Popen([*SMPFRAME, "scheduler", "lda", "--bind", address, "--workers", "2",
                              "--iterations", "1000000", "--quiet"], stderr=subprocess.DEVNULL)
    workers = [subprocess.Popen([*SMPFRAME, "worker", "--connect", address, "--slowdown", "20",
                                 "--scheduler-timeout", "3", "--heartbeat-interval", "0.2",
                                 "--log-level", "ERROR"]) for _ in range(2)]
    try:
        time.sleep(4.0)  # joined and working
        assert sched.poll() is None
        sched.kill()
        sched.wait(timeout=10)
        codes = [w.wait(timeout=20) for w in workers]
        assert codes == [3, 3]
    finally:
        for p in [sched, *workers]:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


def _garbage(address: str, run_id: str, stop: threading.Event, sent: list) -> None:
    """Send every kind of junk to the scheduler's socket until told to stop, counting in ``sent``."""
    ctx = zmq.Context()
    rng = np.random.default_rng(0)
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(address)
        req = ctx.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(address)
        req.send(b"hello?")
        head = lambda **kw: msgpack.packb({"v": PROTOCOL_VERSION, "t": "RESULT", "run": run_id,
                                          "r": 0, "b": {}, **kw})
        array = lambda shape: msgpack.ExtType(1, msgpack.packb([0, "<f8", shape]))
        junk = [
            [rng.bytes(int(rng.integers(1, 200)))],
            [head(v=999)],
            [head(b={"x": array([2**40, 2**40])}), b""],
            [head(b={"x": array([10])}), b"\x00" * 3],
            [head(b={"x": array([True])}), b"\x00" * 8],
            [head(t="HELLO", b={"device": 1})],
            [head(b={"partials": {"0": {}}}, r=1)],
            [head(t="FAILED", b={"reason": "forged"})],
            [b""],
        ]
        while not stop.is_set():
            try:
                dealer.send_multipart(junk[len(sent) % len(junk)], flags=zmq.NOBLOCK)
                sent.append(1)
            except zmq.Again:  # not connected yet, or the scheduler is gone
                pass
            try:  # raw bytes that are not even ZMTP; refused once the run has ended
                with _raw_connection(address) as raw:
                    raw.sendall(rng.bytes(64))
            except OSError:
                pass
            time.sleep(0.01)
    finally:
        ctx.destroy(linger=0)


def _raw_connection(address: str) -> socket.socket:
    """A plain stream socket to a ZeroMQ address: a local cluster's Unix socket, or TCP."""
    if address.startswith("ipc://"):
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(2)
        raw.connect(address[len("ipc://"):])
        return raw
    host, port = address[len("tcp://"):].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=2)


def test_garbage_on_the_wire_does_not_stop_the_job(data, reference):
    with chaos(Lasso(lam=0.002, tol=TOL), data, workers=2, slowdown=SLOW) as c:
        stop, sent = threading.Event(), []
        sender = threading.Thread(target=_garbage, args=(c.server.address, c.server.run_id, stop, sent))
        sender.start()
        try:
            result = c.wait()
        finally:
            stop.set()
            sender.join(10)
    assert len(sent) > 10, f"only {len(sent)} junk messages were sent"
    assert_same_objective(result, reference)
    assert result.summary["dropped_messages"] > 0


def test_unauthenticated_workers_cannot_join(tmp_path, data, reference):
    from smpframe.security import generate_keys
    generate_keys(str(tmp_path / "keys"), ["scheduler", "worker0"])
    generate_keys(str(tmp_path / "rogue"), ["scheduler", "intruder"])
    keys = tmp_path / "keys"
    good = ["--curve-secret", str(keys / "worker0.key_secret"),
            "--curve-server", str(keys / "scheduler.key")]
    with chaos(Lasso(lam=0.002, tol=TOL), data, workers=1, worker_args=good,
               bind="tcp://127.0.0.1:0", curve_secret=str(keys / "scheduler.key_secret"),
               curve_allow=str(keys / "allowed")) as c:
        address = c.server.address
        rogue_key = ["--curve-secret", str(tmp_path / "rogue" / "intruder.key_secret"),
                     "--curve-server", str(keys / "scheduler.key")]
        rogues = [subprocess.Popen(worker_command(address, RunConfig(scheduler_timeout=3.0,
                                                                     worker_args=extra), "cpu", 1.0))
                  for extra in ([], rogue_key)]
        c.procs += rogues
        result = c.wait()
        codes = [r.wait(timeout=20) for r in rogues]
    assert_same_objective(result, reference)
    assert codes == [3, 3], "rogue workers never got a WELCOME and gave up"
    joins = [e for e in result.events if e["event"] == "joined"]
    assert len(joins) == 1
