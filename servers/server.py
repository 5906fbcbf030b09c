"""The scheduler's socket loop: ROUTER socket in, SchedulerState decisions out.

This module only moves bytes, keeps time and writes files; every decision is in
:mod:`smpframe.servers.state`.
"""
from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

import numpy as np
import zmq

from smpframe.errors import ClusterError, InputError, ProtocolError
from smpframe.program import SchedulerContext, SMPProgram
from smpframe.protocol import DEFAULT_MAX_BYTES, Message, decode, encode
from smpframe.security import SecurityConfig
from smpframe.servers.outputs import RunResult, read_checkpoint, restore, write_checkpoint
from smpframe.servers.state import SchedulerConfig, SchedulerState

log = logging.getLogger("smpframe.scheduler")


@dataclass
class ServerOptions:
    """Where to listen and what to write (``smpframe scheduler``/``run`` options)."""

    bind: str = "tcp://127.0.0.1:0"
    n_fragments: int | None = None
    seed: int = 0
    progress: TextIO | None = sys.stderr
    progress_interval: float = 1.0
    output: str | None = None
    checkpoint_every: str | None = None
    resume: str | None = None
    max_message_bytes: int = DEFAULT_MAX_BYTES
    security: SecurityConfig = field(default_factory=SecurityConfig)


class SchedulerServer:
    """Loads the data, binds the socket and runs the round engine to the end."""

    def __init__(self, program: SMPProgram, spec: str, source: Any, config: SchedulerConfig,
                 options: ServerOptions) -> None:
        self.program, self.spec, self.config, self.options = program, spec, config, options
        dataset = program.load_data(source)
        n_fragments = options.n_fragments or max(1, program.fragments_per_worker * config.min_workers)
        self.ctx = SchedulerContext(dataset=dataset, bounds=dataset.bounds(n_fragments),
                                    params=program.get_params(),
                                    rng=np.random.default_rng(options.seed))
        program.init(self.ctx)
        if options.resume:
            state, model = read_checkpoint(options.resume)
            if state["program"] != spec or state["params"] != self.ctx.params:
                raise InputError(f"checkpoint is for {state['program']} with other parameters; "
                                 "resume with the same app and options", path=options.resume)
            restore(self.ctx, state, model)
            log.info("resumed from round %d", self.ctx.round)
        self.run_id = uuid.uuid4().hex[:12]
        self.context = zmq.Context()
        self.authenticator = options.security.start_authenticator(self.context)
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.MAXMSGSIZE, options.max_message_bytes)
        options.security.apply_server(self.socket)
        if options.bind.endswith(":0"):
            port = self.socket.bind_to_random_port(options.bind[: -len(":0")])
            self.address = f"{options.bind[: -len(':0')]}:{port}"
        else:
            self.socket.bind(options.bind)
            self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.metrics: list[dict[str, Any]] = []
        self.dropped = 0
        self._stop_reason: str | None = None
        self.state: SchedulerState | None = None

    def request_stop(self, reason: str = "stopped by request") -> None:
        """Ask the loop (possibly on another thread) to end the run and stop the workers."""
        self._stop_reason = reason

    def run(self, watch: Callable[[], str | None] | None = None) -> RunResult:
        """Serve until the run finishes; raise ClusterError if it cannot.

        ``watch`` is polled on every tick; a non-None answer (say, "all worker
        processes exited") aborts the run with that reason.
        """
        now = time.monotonic()
        self.state = state = SchedulerState(self.program, self.ctx, self.run_id, self.config, now,
                                            welcome={"program": self.spec, "params": self.ctx.params})
        next_tick = next_report = now
        rounds_at_report, last_report = self.ctx.round, now
        last_checkpoint = (self.ctx.round, now)
        try:
            while not state.finished:
                if self.socket.poll(timeout=20):
                    for _ in range(1000):
                        try:
                            frames = self.socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._send(self._handle(state, frames, time.monotonic()))
                now = time.monotonic()
                if now >= next_tick:
                    self._send(state.on_tick(now))
                    next_tick = now + 0.1
                    problem = watch() if watch is not None else None
                    if problem is not None and not state.finished:
                        self._send(state.abort(problem, now))
                if now >= next_report and state.running:
                    self._report(state, (self.ctx.round - rounds_at_report) / max(now - last_report, 1e-9))
                    rounds_at_report, last_report = self.ctx.round, now
                    next_report = now + self.options.progress_interval
                last_checkpoint = self._maybe_checkpoint(last_checkpoint, now)
                if self._stop_reason is not None:
                    self._send(state.abort(self._stop_reason, now))
        except KeyboardInterrupt:
            self._send(state.abort("interrupted", time.monotonic()))
            raise
        finally:
            self.socket.close(linger=500)
            if self.authenticator is not None:
                self.authenticator.stop()
            self.context.term()
        seconds = self.ctx.elapsed
        self._report(state, 0.0, final=True)
        if state.error:
            raise ClusterError(state.error)
        summary, model = self.program.result(self.ctx)
        summary.update(rounds=self.ctx.round, seconds=round(seconds, 4),
                       converged=bool(self.ctx.converged), workers=self.config.min_workers,
                       fragments=self.ctx.n_fragments, dropped_messages=self.dropped,
                       worker_peak_mb=max(state.peak_mb.values(), default=None))
        return RunResult(summary, model, self.metrics, state.events,
                         self.program.extra_outputs(self.ctx))

    # ---- internals ------------------------------------------------------------------
    def _handle(self, state: SchedulerState, frames: list[Any], now: float):
        if len(frames) < 2:
            self.dropped += 1
            return []
        ident = frames[0].bytes.decode("utf-8", "replace")
        try:
            msg = decode(frames[1:], self.options.max_message_bytes)
        except ProtocolError as exc:
            self.dropped += 1
            log.warning("dropped malformed message from %r: %s", ident[:40], exc)
            return []
        worker, is_hb = (ident[:-3], True) if ident.endswith("#hb") else (ident, False)
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
            return state.on_failed(worker, str(msg.body.get("reason", "?")), now)
        if msg.type == "BYE":
            return state.on_bye(worker, now)
        self.dropped += 1
        return []

    def _send(self, outgoing: list[tuple[str, Message]]) -> None:
        for worker, msg in outgoing:
            try:
                self.socket.send_multipart([worker.encode(), *encode(msg)], copy=False)
            except zmq.ZMQError as exc:
                log.warning("could not send %s to %s: %s", msg.type, worker, exc)

    def _report(self, state: SchedulerState, rate: float, final: bool = False) -> None:
        line = {"round": self.ctx.round, "elapsed": round(self.ctx.elapsed, 4),
                "rounds_per_s": round(rate, 2), "workers": len(state.workers),
                **{k: v for k, v in self.ctx.metrics.items() if _is_scalar(v)}}
        if not final:
            self.metrics.append(line)
        stream = self.options.progress
        if stream is not None:
            shown = "  ".join(f"{k} {_fmt(v)}" for k, v in line.items())
            print(f"[{self.program.name}] {'done ' if final else ''}{shown}", file=stream, flush=True)

    def _maybe_checkpoint(self, last: tuple[int, float], now: float) -> tuple[int, float]:
        every = self.options.checkpoint_every
        if not every or not self.options.output:
            return last
        last_round, last_time = last
        due = (now - last_time >= float(every[:-1])) if every.endswith("s") \
            else (self.ctx.round - last_round >= int(every))
        if not due or self.ctx.round == last_round:
            return last
        write_checkpoint(self.options.output, self.ctx, self.spec, self.ctx.params)
        return self.ctx.round, now


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool, np.integer, np.floating))


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


def dump_events(path: str, events: list[dict[str, Any]]) -> None:
    """Cluster events (joins, losses, re-dispatches) as JSON lines, for post-mortems."""
    with open(path, "w") as fh:
        for event in events:
            fh.write(json.dumps(event, default=str) + "\n")
