"""--metrics-port: live Prometheus metrics scraped from a real run, and the port's errors."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from smpframe import Cluster, LocalCluster
from smpframe.apps.lasso import Lasso
from smpframe.apps.mf import MatrixFactorization
from smpframe.cli import main
from smpframe.errors import InputError
from smpframe.scheduler.exporter import ROUND_BUCKETS, RoundTimes
from tests.clitools import SMPFRAME, TIMEOUT

parser = pytest.importorskip("prometheus_client.parser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """``/metrics`` parsed: family -> {(sample name, labels...): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {family.name: {(s.name, *sorted(s.labels.items())): s.value for s in family.samples}
            for family in parser.text_string_to_metric_families(text)}


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_running_job_is_scraped_and_its_counters_move():
    port = free_port()
    program = MatrixFactorization(epochs=100_000)  # runs until the cluster closes
    with LocalCluster(program, metrics_port=port, fragments=6, timeout=120) as cluster:
        assert cluster.wait_for_round(3, timeout=90)
        first = _scrape_until(port, lambda m: m["smpframe_rounds"][("smpframe_rounds_total",)] >= 3)
        assert cluster.wait_for_round(cluster.server.ctx.round + 5, timeout=60)
        second = _scrape_until(port, lambda m: m["smpframe_rounds"][("smpframe_rounds_total",)]
                               > first["smpframe_rounds"][("smpframe_rounds_total",)])
    assert port_is_free(port)  # closed with the run
    for family, sample in (("smpframe_rounds", "smpframe_rounds_total"),
                           ("smpframe_bytes_sent", "smpframe_bytes_sent_total"),
                           ("smpframe_bytes_received", "smpframe_bytes_received_total"),
                           ("smpframe_messages_sent", "smpframe_messages_sent_total"),
                           ("smpframe_messages_received", "smpframe_messages_received_total")):
        assert second[family][(sample,)] > first[family][(sample,)] > 0, family
    assert second["smpframe_workers_alive"][("smpframe_workers_alive",)] == 2
    assert len(second["smpframe_worker_fragments"]) == 2  # one sample per worker
    assert sum(second["smpframe_worker_fragments"].values()) == 6
    assert len(second["smpframe_worker_throughput"]) == 2
    assert all(v > 0 for v in second["smpframe_worker_throughput"].values())
    assert second["smpframe_workers_joined"][("smpframe_workers_joined_total",)] == 2
    assert set(second["smpframe_workers_removed"].values()) == {0}
    objective = second["smpframe_app_metric"][("smpframe_app_metric", ("name", "objective"))]
    assert 0 < objective <= first["smpframe_app_metric"][("smpframe_app_metric", ("name", "objective"))]
    hist = second["smpframe_round_seconds"]
    count = hist[("smpframe_round_seconds_count",)]
    assert 0 < count <= second["smpframe_rounds"][("smpframe_rounds_total",)]
    assert hist[("smpframe_round_seconds_bucket", ("le", "+Inf"))] == count
    assert hist[("smpframe_round_seconds_sum",)] > 0
    assert second["smpframe_run_info"][("smpframe_run_info", ("app", "mf"),
                                   ("run_id", cluster.server.run_id))] == 1


def _scrape_until(port, ready, timeout: float = 10.0):
    """Scrape until ``ready(metrics)`` (the loop publishes every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = scrape(port)
        if "smpframe_rounds" in metrics and ready(metrics):
            return metrics
        assert time.monotonic() < deadline, metrics
        time.sleep(0.05)


def test_a_hand_started_scheduler_serves_metrics_and_says_where():
    address, port = f"tcp://127.0.0.1:{free_port()}", free_port()
    sched = subprocess.Popen([*SMPFRAME, "scheduler", "mf", "--epochs", "100000", "--bind", address,
                              "--workers", "1", "--time-limit", "3", "--metrics-port", str(port),
                              "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    worker = None
    try:
        deadline = time.monotonic() + TIMEOUT
        while not _answers(port):  # up once the data is loaded: then the worker may join
            assert sched.poll() is None and time.monotonic() < deadline, sched.stderr.read()
            time.sleep(0.1)
        worker = subprocess.Popen([*SMPFRAME, "worker", "--connect", address])
        metrics = _scrape_until(port, lambda m: m["smpframe_rounds"][("smpframe_rounds_total",)] > 0,
                                timeout=TIMEOUT)
        assert metrics["smpframe_workers_alive"][("smpframe_workers_alive",)] == 1
        assert sched.wait(timeout=TIMEOUT) == 0
        assert worker.wait(timeout=30) == 0
        assert f"metrics at http://127.0.0.1:{port}/metrics" in sched.stderr.read()
    finally:
        for proc in (sched, worker):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert port_is_free(port)


def _answers(port: int) -> bool:
    try:
        scrape(port)
    except (urllib.error.URLError, ConnectionError):
        return False
    return True


def test_a_port_in_use_is_one_line_before_any_worker_starts(monkeypatch, capsys):
    import smpframe.launch.cluster as cluster

    started = []
    monkeypatch.setattr(cluster, "start_workers", lambda *a, **k: started.append(a) or [])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["run", "lasso", "--metrics-port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}" in err
    assert started == []


def test_a_warm_cluster_takes_the_port_when_it_starts():
    port = free_port()
    with Cluster(workers=1, metrics_port=port) as cluster:
        cluster.run(Lasso(synthetic={"n": 200, "d": 50}), quiet=True)
        after = scrape(port)  # the last run's figures stay up between runs
        assert after["smpframe_finished"][("smpframe_finished",)] == 1
        assert after["smpframe_rounds"][("smpframe_rounds_total",)] >= 1
        with pytest.raises(InputError, match="--metrics-port"):
            cluster.run(Lasso(synthetic={"n": 200, "d": 50}), metrics_port=free_port())
    assert port_is_free(port)
    with pytest.raises(urllib.error.URLError):
        scrape(port)


def test_round_times_split_what_one_look_finds():
    times = RoundTimes(rounds=10)  # resumed at round 10
    times.observe(10, now=5.0, started=1.0)  # nothing new
    assert times.buckets == [0] * (len(ROUND_BUCKETS) + 1)
    times.observe(12, now=1.5, started=1.0)  # two rounds in 0.5 s: 0.25 s each
    times.observe(13, now=2.5, started=1.0)  # then one of 1 s
    assert times.buckets[ROUND_BUCKETS.index(0.25)] == 2
    assert times.buckets[ROUND_BUCKETS.index(1.0)] == 1
    assert times.seconds == pytest.approx(1.5) and sum(times.buckets) == 3
    times.observe(14, now=100.0, started=1.0)  # beyond the last bound
    assert times.buckets[-1] == 1
