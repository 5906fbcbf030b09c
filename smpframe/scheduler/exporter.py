"""Live metrics: a run's figures in Prometheus text format at ``http://HOST:PORT/metrics``.

:class:`MetricsServer` (prometheus_client's HTTP server, on its own daemon thread)
serves the latest :class:`Figures` the socket loop published. The loop builds them
from the state machine's fields (:class:`LiveFigures`) at most every few tenths of a
second, so a scrape costs the rounds nothing and never reads live state. The values
are the current run's: a warm cluster's next run starts them from zero, as a
restarted process would (Prometheus reads that as a counter reset).
"""
from __future__ import annotations

import bisect
import numbers
from dataclasses import dataclass
from typing import Any, Iterator

from smpframe.errors import InputError

#: upper bounds (seconds) of the round-time histogram's buckets
ROUND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                 5.0, 10.0, 30.0, 60.0)
#: why a worker was taken out of the run (the ``reason`` label), from its event's reason
REASONS = {"heartbeat timeout": "heartbeat_timeout", "faulty": "faulty", "left": "left"}


@dataclass(frozen=True)
class Figures:
    """One published look at a run (never changed once published)."""

    app: str
    run_id: str
    rounds: int
    solve_seconds: float
    finished: bool
    round_buckets: tuple[int, ...]  # rounds per bucket of ROUND_BUCKETS, then the overflow
    round_seconds: float  # their sum
    workers_alive: int
    throughput: dict[str, float]  # work units per second, by worker
    fragments: dict[str, int]  # fragments held, by worker
    joined: int
    removed: dict[str, int]  # by why (heartbeat_timeout, faulty, left)
    wire: dict[str, int]  # messages_in, messages_out, bytes_in, bytes_out
    app_metrics: dict[str, float]


class RoundTimes:
    """Seconds per committed round, for the histogram. The loop looks at the round
    counter once per pass (not per message); ``k`` new commits found there count as
    ``k`` rounds of (time since the last commit seen) / ``k`` each."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds  # committed at the last look
        self.at: float | None = None  # when they were seen (None: the run's start)
        self.buckets = [0] * (len(ROUND_BUCKETS) + 1)
        self.seconds = 0.0

    def observe(self, rounds: int, now: float, started: float) -> None:
        """``rounds`` are committed at ``now``; the run's clock started at ``started``."""
        new = rounds - self.rounds
        if new <= 0:
            return
        each = (now - (started if self.at is None else self.at)) / new
        self.buckets[bisect.bisect_left(ROUND_BUCKETS, each)] += new
        self.seconds += each * new
        self.rounds, self.at = rounds, now


class LiveFigures:
    """Builds :class:`Figures` from the scheduler's state (read, never changed)."""

    def __init__(self, app: str, run_id: str, rounds: int) -> None:
        self.app, self.run_id = app, run_id
        self.times = RoundTimes(rounds)
        self._seen_events = 0
        self._joined = 0
        self._removed: dict[str, int] = {}

    def look(self, state: Any, wire: dict[str, int]) -> Figures:
        """The figures of ``state`` (a SchedulerState) and the traffic ``wire`` now."""
        for event in state.events[self._seen_events:]:
            if event["event"] == "joined":
                self._joined += 1
            elif event["event"] == "worker_lost":
                reason = str(event.get("reason", "")).split(":", 1)[0]  # "faulty: why"
                why = REASONS.get(reason, "other")
                self._removed[why] = self._removed.get(why, 0) + 1
        self._seen_events = len(state.events)
        ctx = state.ctx
        speeds = {w: state.throughput.speed(w) for w in state.workers}
        return Figures(
            app=self.app, run_id=self.run_id, rounds=ctx.round, solve_seconds=ctx.elapsed,
            finished=state.finished, round_buckets=tuple(self.times.buckets),
            round_seconds=self.times.seconds, workers_alive=len(state.workers),
            throughput={w: s for w, s in speeds.items() if s is not None},
            fragments={w: len(r.fragments) for w, r in state.workers.items()},
            joined=self._joined, removed=dict(self._removed), wire=dict(wire),
            app_metrics={k: float(v) for k, v in ctx.metrics.items() if _is_number(v)})


class MetricsServer:
    """The ``/metrics`` endpoint on ``host:port``; bound at once, so a port in use
    fails before anything starts (an InputError naming ``--metrics-port``)."""

    def __init__(self, host: str, port: int) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise InputError("--metrics-port needs prometheus_client: "
                             "pip install 'smpframe[metrics]'") from None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise InputError(f"--metrics-port {port}: cannot listen on {host}:{port} "
                             f"({exc.strerror or exc})") from None
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}/metrics"
        self.figures: Figures | None = None

    def publish(self, figures: Figures) -> None:
        """Serve ``figures`` from now on (the HTTP thread reads the reference only)."""
        self.figures = figures

    def close(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


class _Collector:
    """prometheus_client's view of the last published figures."""

    def __init__(self, server: MetricsServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                            HistogramMetricFamily, InfoMetricFamily)
        from prometheus_client.utils import floatToGoString

        f = self.server.figures
        if f is None:
            return
        yield InfoMetricFamily("smpframe_run", "the run being served", value={
            "app": f.app, "run_id": f.run_id})
        yield CounterMetricFamily("smpframe_rounds", "rounds committed", value=f.rounds)
        cumulative, total = [], 0
        for bound, count in zip([*map(floatToGoString, ROUND_BUCKETS), "+Inf"], f.round_buckets):
            total += count
            cumulative.append((bound, total))
        yield HistogramMetricFamily("smpframe_round_seconds", "seconds per committed round",
                                    buckets=cumulative, sum_value=f.round_seconds)
        yield GaugeMetricFamily("smpframe_solve_seconds", "seconds of solving so far",
                                value=f.solve_seconds)
        yield GaugeMetricFamily("smpframe_finished", "1 once the run has ended", value=float(f.finished))
        yield GaugeMetricFamily("smpframe_workers_alive", "workers in the run", value=f.workers_alive)
        yield _labelled(GaugeMetricFamily("smpframe_worker_throughput", "a worker's measured "
                                           "speed, work units per second", labels=["worker"]),
                         f.throughput)
        yield _labelled(GaugeMetricFamily("smpframe_worker_fragments", "data fragments a "
                                           "worker holds", labels=["worker"]), f.fragments)
        yield CounterMetricFamily("smpframe_workers_joined", "workers that joined", value=f.joined)
        removed = CounterMetricFamily("smpframe_workers_removed", "workers taken out of the run, "
                                      "by why: heartbeat_timeout (lost: dead or stalled), faulty "
                                      "(evicted: its program failed or its result was rejected), "
                                      "left", labels=["reason"])
        for why in (*REASONS.values(), "other"):
            removed.add_metric([why], f.removed.get(why, 0))
        yield removed
        for name, key, doc in (("messages_received", "messages_in", "messages from workers"),
                               ("messages_sent", "messages_out", "messages to workers"),
                               ("bytes_received", "bytes_in", "bytes from workers"),
                               ("bytes_sent", "bytes_out", "bytes to workers")):
            yield CounterMetricFamily(f"smpframe_{name}", doc, value=f.wire.get(key, 0))
        yield _labelled(GaugeMetricFamily("smpframe_app_metric", "the program's reported "
                                           "figures (objective, gap, inertia, ...)",
                                           labels=["name"]), f.app_metrics)


def _labelled(family: Any, values: dict[str, float]) -> Any:
    for label, value in sorted(values.items()):
        family.add_metric([label], value)
    return family


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
