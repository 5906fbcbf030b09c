"""The scheduler's socket loop: ROUTER socket in, SchedulerState decisions out.

This module only moves bytes, keeps time and writes files; every decision is in
:mod:`smpframe.scheduler.state`.
"""
from __future__ import annotations

import json
import logging
import numbers
import os
import shutil
import tempfile
import time
import uuid
from typing import Any, Callable, Sequence

import numpy as np
import zmq

from smpframe import security
from smpframe.api import SchedulerContext, SMPProgram, Splits, rows_context
from smpframe.config import SCHEDULER, RunConfig
from smpframe.data import budget
from smpframe.errors import ClusterError, InputError, ProgramError, ProtocolError
from smpframe.protocol import Message, decode, encode
from smpframe.registry import program_spec
from smpframe.scheduler.exporter import LiveFigures, MetricsServer
from smpframe.scheduler.outputs import (RunResult, as_json, read_checkpoint, restore,
                                       write_checkpoint)
from smpframe.scheduler.progress import REFRESH, Progress
from smpframe.scheduler.state import SchedulerState
from smpframe.sockets import NOBLOCK, recv_frames, send_to

log = logging.getLogger("smpframe.scheduler")

#: the longest the loop waits for a message before its housekeeping (ticks, progress)
LOOP_TIMEOUT_MS = 20
#: messages handled in a row before the housekeeping runs
MAX_BATCH = 1000


def _run_user(method: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a program method before the cluster starts: input errors pass, bugs are named."""
    try:
        return fn(*args)
    except InputError:
        raise
    except Exception as exc:
        log.debug("%s raised", method, exc_info=True)
        raise ProgramError(f"{method} raised {type(exc).__name__}: {exc}") from exc


SOCKET_NAME = "scheduler"
#: the longest Unix socket path the kernel takes (sun_path, less its terminating NUL)
MAX_SOCKET_PATH = 107


def _socket_folder() -> str | None:
    """A new folder only this user can open (mkdtemp makes it 0700), for a local cluster's
    Unix socket; None where its path would be too long for one (then loopback TCP)."""
    folder = tempfile.mkdtemp(prefix="smpframe-")
    if len(os.fsencode(folder)) + 1 + len(SOCKET_NAME) > MAX_SOCKET_PATH:
        os.rmdir(folder)
        return None
    return folder


class Endpoint:
    """The scheduler's listening socket (ROUTER), its CURVE authenticator and, with
    ``--metrics-port``, the live metrics endpoint.

    A run binds its own; a warm cluster keeps one for run after run. ``local`` (a
    cluster this process launches on this machine) binds a Unix socket in a new folder
    only this user can open (no other user can connect, as any can to a loopback port),
    unless ``config.bind`` names an address. Both are bound here, before any worker
    starts, so an address in use is one line.
    """

    def __init__(self, config: RunConfig, local: bool = False) -> None:
        config.check_security(SCHEDULER)
        self.metrics = None if config.metrics_port is None else \
            MetricsServer(config.metrics_host, config.metrics_port)
        self.context = zmq.Context()
        self.authenticator = security.start_authenticator(self.context, config)
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.MAXMSGSIZE, config.max_message_bytes)
        self.socket.setsockopt(zmq.RCVTIMEO, LOOP_TIMEOUT_MS)  # a blocking recv is the loop's wait
        security.apply_server(self.socket, config)
        self._ipc_folder = _socket_folder() if local and config.bind is None else None
        bind = f"ipc://{self._ipc_folder}/{SOCKET_NAME}" if self._ipc_folder \
            else config.scheduler_bind(local)
        try:
            if bind.endswith(":0"):
                port = self.socket.bind_to_random_port(bind[: -len(":0")])
                self.address = f"{bind[: -len(':0')]}:{port}"
            else:
                self.socket.bind(bind)
                self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            self.close()
            raise InputError(f"--bind {bind}: {exc}") from None

    def close(self) -> None:
        self.socket.close(linger=500)
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.term()
        if self._ipc_folder is not None:
            shutil.rmtree(self._ipc_folder, ignore_errors=True)
        if self.metrics is not None:
            self.metrics.close()


class SchedulerServer:
    """Loads the data, binds the socket (unless given an ``endpoint``) and runs the
    round engine to the end. Program code runs here, in the constructor's thread;
    :meth:`run` only touches the socket (so a warm cluster's thread can serve it)."""

    def __init__(self, program: SMPProgram, source: Any, config: RunConfig,
                 local: bool = False, endpoint: Endpoint | None = None) -> None:
        self.program, self.config = program, config
        if endpoint is not None and config.metrics_port is not None and (
                endpoint.metrics is None or endpoint.metrics.port != config.metrics_port):
            raise InputError(f"--metrics-port {config.metrics_port}: set when the cluster starts; "
                             "open the Cluster with it")
        self.spec = program_spec(type(program))
        budget.set_limit(config.memory_budget())
        _run_user("check_params", program.check_params)
        dataset = _run_user("load_data", program.load_data, source)
        if isinstance(dataset, Splits) and config.read_on == "scheduler":
            dataset = _run_user("load_data", dataset.read)
        n_fragments = config.fragments or max(1, program.fragments_per_worker * config.n_workers)
        rng = np.random.default_rng(config.seed)
        if isinstance(dataset, Splits):  # the workers read it: bounds and facts come from them
            self.ctx = SchedulerContext(dataset, [(0, 0)] * len(dataset.cut(n_fragments)), rng)
        else:
            self.ctx = _run_user("describe", rows_context, program, dataset, n_fragments, rng)
        self.params = program.get_params()
        # the scheduler's kernels now, while the workers boot (and read their splits)
        _run_user("warm_up", program.warm_up, "scheduler", np)
        if self.ctx.has_rows:
            self.prepare()
        self.run_id = uuid.uuid4().hex[:12]
        self._owns_endpoint = endpoint is None
        self.endpoint = endpoint or Endpoint(config, local)
        self.socket, self.address = self.endpoint.socket, self.endpoint.address
        self.exporter = self.endpoint.metrics
        self.metrics: list[dict[str, Any]] = []
        self.dropped = 0
        #: traffic so far (benchmarks read it between rounds)
        self.wire = {"messages_in": 0, "messages_out": 0, "bytes_in": 0, "bytes_out": 0}
        self._stop_reason: str | None = None
        self.state: SchedulerState | None = None

    def prepare(self) -> None:
        """``init`` (from ``ctx.facts``) and the resumed checkpoint: once the facts are in
        (at once for in-memory rows; after the workers' first read for splits)."""
        config, program = self.config, self.program
        _run_user("init", program.init, self.ctx)
        if config.resume:
            state, model = read_checkpoint(config.resume)
            if not isinstance(state, dict) or state.get("program") != self.spec \
                    or state.get("params") != as_json(self.params):
                raise InputError(f"checkpoint is for {state.get('program') if isinstance(state, dict) else '?'} "
                                 "with other parameters; resume with the same app and options",
                                 path=config.resume)
            restore(self.ctx, state, model, config.resume)
            log.info("resumed from round %d", self.ctx.round)

    def request_stop(self, reason: str = "stopped by request") -> None:
        """Ask the loop (possibly on another thread) to end the run and stop the workers."""
        self._stop_reason = reason

    def _close(self) -> None:
        if self._owns_endpoint:
            self.endpoint.close()

    def run(self, watch: Callable[[], str | None] | None = None,
            waiting: Sequence[tuple[str, dict[str, Any]]] = ()) -> RunResult:
        """Serve until the run finishes; raise ClusterError if it cannot.

        ``watch`` is polled on every tick; a non-None answer (say, "all worker
        processes exited") aborts the run with that reason. ``waiting`` are workers
        (identity, HELLO body) that said hello before the run began (a warm cluster's).
        """
        now = time.monotonic()
        welcome = {"program": self.spec, "params": self.params,
                   "heartbeat_interval": self.config.worker_heartbeat_interval(),
                   "scheduler_timeout": self.config.worker_scheduler_timeout()}
        self.state = state = SchedulerState(self.program, self.ctx, self.run_id, self.config, now,
                                            welcome=welcome, prepare=self.prepare)
        for identity, info in waiting:
            self._send(state.on_hello(identity, info, now))
        self._progress = Progress.choose(self.program.name, self.config.quiet)
        self._live = None if self.exporter is None else \
            LiveFigures(self.program.name, self.run_id, self.ctx.round)
        times = None if self._live is None else self._live.times
        self._first_round, self._shown, self._next_line = self.ctx.round, None, now
        next_tick = next_look = now
        last_checkpoint = (self.ctx.round, now)
        try:
            while not state.finished:
                try:  # identity and header as bytes, arrays zero-copy
                    frames = recv_frames(self.socket, 0, leading=2)  # waits up to RCVTIMEO
                    for _ in range(MAX_BATCH):  # then what else is waiting, housekeeping after
                        out = self._handle(state, frames, time.monotonic())
                        if out:  # most results complete nothing: no reply
                            self._send(out)
                        frames = recv_frames(self.socket, NOBLOCK, leading=2)
                except zmq.Again:
                    pass
                now = time.monotonic()
                if times is not None and self.ctx.round != times.rounds:  # rounds committed
                    times.observe(self.ctx.round, now, self.ctx.started)
                if now >= next_tick:
                    self._send(state.on_tick(now))
                    next_tick = now + 0.1
                    problem = watch() if watch is not None else None
                    if problem is not None and not state.finished:
                        self._send(state.abort(problem, now))
                if now >= next_look:
                    self._look(state, now)
                    next_look = now + REFRESH
                last_checkpoint = self._maybe_checkpoint(last_checkpoint, now)
                if self._stop_reason is not None:
                    self._send(state.abort(self._stop_reason, now))
        except KeyboardInterrupt:
            self._send(state.abort("interrupted", time.monotonic()))
            raise
        finally:
            self._progress.close()
            if self._live is not None:  # the end, for scrapes between this run and the next
                if self.ctx.started is not None:
                    times.observe(self.ctx.round, time.monotonic(), self.ctx.started)
                self.exporter.publish(self._live.look(state, self.wire))
            self._close()
        seconds = self.ctx.elapsed
        if state.error is None:
            self._report(state, self.ctx.round / max(seconds, 1e-9), final=True)  # the run's average
        else:
            raise (InputError if state.bad_input else ClusterError)(state.error)
        summary, model = _run_user("result", self.program.result, self.ctx)
        summary.update(rounds=self.ctx.round, seconds=round(seconds, 4),
                       converged=bool(self.ctx.converged), workers=self.config.n_workers,
                       fragments=self.ctx.n_fragments, dropped_messages=self.dropped,
                       worker_peak_mb=max(state.peak_mb.values(), default=None),
                       scheduler_peak_mb=budget.peak_memory_mb(), read_on=(
                           "scheduler" if self.ctx.has_rows else "workers"),
                       round_history=state.history)
        files = _run_user("extra_outputs", self.program.extra_outputs, self.ctx)
        return RunResult(summary, model, self.metrics, state.events, files)

    # ---- internals ------------------------------------------------------------------
    def _handle(self, state: SchedulerState, frames: list[Any], now: float):
        wire = self.wire
        wire["messages_in"] += 1
        wire["bytes_in"] += sum(map(len, frames)) - len(frames[0])
        if len(frames) < 2:
            self.dropped += 1
            return []
        ident = frames[0].decode("utf-8", "replace")
        try:
            msg = decode(frames[1:], self.config.max_message_bytes)
        except ProtocolError as exc:
            self.dropped += 1
            log.warning("dropped malformed message from %r: %s", ident[:40], exc)
            return []
        if msg.type == "RESULT" and msg.run == self.run_id and not ident.endswith("#hb"):
            return state.on_result(ident, msg, now)  # the common case, first
        worker, is_hb = (ident[:-3], True) if ident.endswith("#hb") else (ident, False)
        if msg.type == "HEARTBEAT" and msg.run == "" and not is_hb and worker not in state.workers:
            # a warm cluster's worker still waiting for a run that began without it: rejoin
            return [(worker, Message("EVICT", self.run_id, body={"reason": "join the run"}))]
        if msg.type != "HELLO" and msg.run != self.run_id:
            self.dropped += 1
            log.debug("dropped %s for another run from %r", msg.type, ident[:40])
            return []
        if is_hb:
            return [(ident if m.type == "HEARTBEAT" else worker, m)
                    for _, m in state.on_heartbeat(worker, now)]
        if msg.type == "HELLO":
            return state.on_hello(worker, msg.body, now)
        if msg.type == "RESULT":
            return state.on_result(worker, msg, now)
        if msg.type == "FAILED":
            return state.on_failed(worker, str(msg.body.get("reason", "?")),
                                   msg.body.get("input") is True, now)
        if msg.type == "BYE":
            return state.on_bye(worker, now)
        self.dropped += 1
        return []

    def _send(self, outgoing: list[tuple[str, Message]]) -> None:
        # a message sent to several workers: encoded (and measured) once
        encoded: dict[int, tuple[list[Any], int]] = {}
        wire, socket = self.wire, self.socket
        for worker, msg in outgoing:
            known = encoded.get(id(msg))
            if known is None:
                try:
                    frames = encode(msg)
                except ProtocolError as exc:  # a program's block, update or snapshot
                    self._send(self.state.abort(f"cannot send {msg.type} to workers: {exc}",
                                                time.monotonic()))
                    return
                known = encoded[id(msg)] = frames, sum(map(len, frames))
            frames, size = known
            wire["messages_out"] += 1
            wire["bytes_out"] += size
            try:
                send_to(socket, worker.encode(), frames)
            except zmq.ZMQError as exc:
                log.warning("could not send %s to %s: %s", msg.type, worker, exc)

    def _look(self, state: SchedulerState, now: float) -> None:
        """Every REFRESH seconds: publish the live figures, refresh the bar and, a
        progress interval after the last, record (and in lines mode print) a progress
        line. No line before the first commit: it would say nothing but zeros."""
        if self._live is not None:
            self.exporter.publish(self._live.look(state, self.wire))
        if not state.ready or state.finished:
            return
        if self._shown is None:  # the run has just become ready: its clock runs
            self._shown = (self._first_round, self.ctx.started)
            try:
                total = self._total()
            except ProgramError as exc:
                self._send(state.abort(str(exc), now))
                return
            self._progress.start(total, self._first_round, now - self.ctx.started)
        self._progress.show(self.ctx.round, {**self._app_figures(), "workers": len(state.workers)})
        if self.ctx.round > self._first_round and now >= self._next_line:
            last_round, last_at = self._shown
            self._report(state, (self.ctx.round - last_round) / max(now - last_at, 1e-9))
            self._shown, self._next_line = (self.ctx.round, now), now + self.config.progress_interval

    def _total(self) -> int | None:
        """Rounds the run takes when known: ``--max-rounds`` or the program's expectation."""
        expected = _run_user("expected_rounds", self.program.expected_rounds, self.ctx)
        if expected is not None and not isinstance(expected, numbers.Integral):
            raise ProgramError(f"expected_rounds returned {expected!r}, not a whole number or None")
        known = [int(n) for n in (expected, self.config.max_rounds) if n is not None]
        return min(known) if known else None

    def _app_figures(self) -> dict[str, Any]:
        return {k: v for k, v in self.ctx.metrics.items() if _is_scalar(v)}

    def _report(self, state: SchedulerState, rate: float, final: bool = False) -> None:
        """A progress line into ``metrics`` (metrics.jsonl) and onto the display; the final
        one gives the run's average rate."""
        line = {"round": self.ctx.round, "elapsed": round(self.ctx.elapsed, 4),
                "rounds_per_s": round(rate, 2), "workers": len(state.workers),
                **self._app_figures()}
        self.metrics.append(line)
        self._progress.line(line, final)

    def _maybe_checkpoint(self, last: tuple[int, float], now: float) -> tuple[int, float]:
        schedule = self.config.checkpoint_schedule()
        if schedule is None or self.config.output is None:
            return last
        last_round, last_time = last
        kind, every = schedule
        due = (now - last_time >= every) if kind == "seconds" else (self.ctx.round - last_round >= every)
        if not due or self.ctx.round == last_round:
            return last
        write_checkpoint(self.config.output, self.ctx, self.spec, self.params)
        return self.ctx.round, now


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool, np.integer, np.floating))


def dump_events(path: str, events: list[dict[str, Any]]) -> None:
    """Cluster events (joins, losses, re-dispatches) as JSON lines, for post-mortems."""
    with open(path, "w") as fh:
        for event in events:
            fh.write(json.dumps(event, default=str) + "\n")
