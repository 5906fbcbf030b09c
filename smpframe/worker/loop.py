"""The worker process: registers with the scheduler and serves WORK messages.

The loop only moves messages; :func:`smpframe.worker.executor.execute` applies them.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket as pysocket
import time

import zmq

from smpframe import security
from smpframe.api import SMPProgram, WorkerContext
from smpframe.arrays import array_module
from smpframe.config import WORKER, RunConfig
from smpframe.errors import InputError, ProtocolError
from smpframe.protocol import EncodeError, Message, decode, encode
from smpframe.registry import resolve_program
from smpframe.sockets import recv_frames, send_frames
from smpframe.worker.executor import UserCodeFailed, call, execute, failed
from smpframe.worker.heartbeat import Heartbeat

log = logging.getLogger("smpframe.worker")

#: exit status of a worker whose scheduler fell silent
EXIT_SCHEDULER_LOST = 3
#: seconds an evicted worker waits before it rejoins (no hot loop of failing rejoins)
REJOIN_DELAY = 0.2
#: seconds between a waiting warm-cluster worker's signs of life
KEEPALIVE_INTERVAL = 1.0
#: the longest the loop waits for a message before it looks at the heartbeat's flags
LOOP_TIMEOUT_MS = 100


class Worker:
    """One worker process's connection and fragment store.

    Reads ``connect``, ``device``, ``name``, ``slowdown``, the CURVE keys and, when
    set, ``heartbeat_interval``/``scheduler_timeout`` of its :class:`RunConfig`
    (unset, it takes the scheduler's values from WELCOME).
    """

    def __init__(self, config: RunConfig) -> None:
        config.check_security(WORKER)
        self.config = config
        self.context = zmq.Context()
        self.xp = array_module(config.device)
        self.program: SMPProgram | None = None
        self.wctx: WorkerContext | None = None
        self.run_id = ""
        self.socket: zmq.Socket | None = None
        self.heartbeat: Heartbeat | None = None
        self.identity = ""
        self.connected_at = 0.0
        self.scheduler_timeout = config.worker_scheduler_timeout()
        self.prepared: tuple[str, dict, SMPProgram] | None = None  # built ahead (PREPARE)

    # ---- connection -----------------------------------------------------------------
    def _connect(self, delay: float = 0.0) -> None:
        """(Re)connect with a fresh identity: an evicted worker rejoins as a new one."""
        time.sleep(delay)
        self._close()
        base = self.config.name or f"{pysocket.gethostname()}-{os.getpid()}"
        self.identity = f"{base}-{secrets.token_hex(3)}"
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, self.identity.encode())
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.setsockopt(zmq.RCVTIMEO, LOOP_TIMEOUT_MS)
        security.apply_client(self.socket, self.config)
        self.socket.connect(self.config.connect)
        self.connected_at = self.last_keepalive = time.monotonic()
        self.program, self.wctx, self.run_id = None, None, ""
        self._send(Message("HELLO", body={"device": self.config.device, "pid": os.getpid(),
                                          "host": pysocket.gethostname(),
                                          "slowdown": self.config.slowdown}))
        log.info("worker %s connecting to %s", self.identity, self.config.connect)

    def _close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat.join(timeout=2)
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket, self.heartbeat = None, None

    def _send(self, msg: Message) -> None:
        msg.run = msg.run or self.run_id
        assert self.socket is not None
        send_frames(self.socket, encode(msg))

    # ---- main loop ------------------------------------------------------------------
    def run(self) -> int:
        """Serve until STOP (exit 0) or until the scheduler is silent too long (exit 3)."""
        self._connect()
        try:
            while True:
                assert self.socket is not None
                if self._scheduler_lost():
                    log.error("scheduler at %s silent for %.0fs; exiting", self.config.connect,
                              self.scheduler_timeout)
                    return EXIT_SCHEDULER_LOST
                if self.heartbeat is not None and self.heartbeat.evicted.is_set():
                    log.info("evicted by the scheduler; rejoining as a fresh worker")
                    self._connect(REJOIN_DELAY)
                    continue
                self._keep_alive()
                try:  # one blocking call per message (RCVTIMEO): a poll before it costs
                    frames = recv_frames(self.socket)
                except zmq.Again:
                    continue
                try:
                    msg = decode(frames, self.config.max_message_bytes)
                except ProtocolError as exc:
                    log.warning("dropping malformed message from scheduler: %s", exc)
                    continue
                if self.run_id and msg.run != self.run_id:
                    continue
                if msg.type == "WORK":  # the common case, first
                    self._work(msg)
                elif msg.type == "STOP":
                    log.info("scheduler says stop: %s", msg.body.get("reason", ""))
                    if not self.config.persist or msg.body.get("close"):
                        return 0
                    self._connect()  # a warm cluster's worker: ready for the next run
                elif msg.type == "WAIT":
                    self.connected_at = time.monotonic()  # the cluster is there, between runs
                elif msg.type == "EVICT":
                    log.info("evicted: %s; rejoining", msg.body.get("reason", ""))
                    self._connect(REJOIN_DELAY)
                elif msg.type == "PREPARE":
                    self._prepare(msg.body)
                elif msg.type == "WELCOME":
                    self._welcome(msg)
        finally:
            self._close()
            self.context.term()

    def _keep_alive(self) -> None:
        """A warm cluster's worker between runs says it is still there, every second."""
        if self.config.persist and self.program is None and \
                time.monotonic() - self.last_keepalive >= KEEPALIVE_INTERVAL:
            self.last_keepalive = time.monotonic()
            self._send(Message("HEARTBEAT"))

    def _scheduler_lost(self) -> bool:
        if self.heartbeat is not None:
            return self.heartbeat.lost.is_set()
        return time.monotonic() - self.connected_at > self.scheduler_timeout

    def _prepare(self, body: dict) -> None:
        """A warm cluster names the next run's program while its scheduler loads the
        data: build it and load its kernels now (best effort: WELCOME reports failures)."""
        if self.program is not None:
            return
        try:
            program = resolve_program(str(body["program"]))(**dict(body.get("params", {})))
            program.warm_up("worker", self.xp)
        except Exception:  # noqa: BLE001 - the WELCOME that follows names the error
            self.prepared = None
            return
        self.prepared = (body["program"], body.get("params", {}), program)

    def _welcome(self, msg: Message) -> None:
        """Build the program, its per-worker state and kernels; start heartbeats."""
        self.run_id = msg.run
        body = msg.body
        interval = self.config.heartbeat_interval or float(body.get("heartbeat_interval", 0.5))
        if self.config.scheduler_timeout is None:
            self.scheduler_timeout = float(body.get("scheduler_timeout", self.scheduler_timeout))
        self.heartbeat = Heartbeat(self.context, self.config.connect, self.identity, self.run_id,
                                   interval, self.scheduler_timeout, self.config)
        self.heartbeat.start()
        try:
            cls = resolve_program(str(body["program"]))
        except (InputError, KeyError) as exc:
            self._send(Message("FAILED", body={"reason": f"cannot build the program: {exc}"}))
            return
        prepared, self.prepared = self.prepared, None
        ready = prepared is not None and prepared[:2] == (body["program"], body.get("params", {}))
        try:
            params = dict(body.get("params", {}))
            program = prepared[2] if ready else call("__init__", lambda: cls(**params))
            wctx = WorkerContext(meta=dict(body.get("meta", {})), xp=self.xp, device=self.config.device)
            call("init_worker", program.init_worker, wctx)
            if not ready:
                call("warm_up", program.warm_up, "worker", self.xp)
        except UserCodeFailed as exc:
            log.info("program failed: %s", exc.reason)  # the scheduler reports it
            self._send(failed(-1, exc))
            return
        self.program, self.wctx = program, wctx
        log.info("joined run %s as %s (program %s)", self.run_id, self.identity, body["program"])

    def _work(self, msg: Message) -> None:
        if self.program is None or self.wctx is None:
            return
        try:
            reply = execute(self.program, self.wctx, msg, self.config.slowdown)
        except ProtocolError as exc:
            log.warning("dropping WORK message: %s", exc)
            return
        if reply is None:
            return
        reply.run = self.run_id
        try:
            frames = encode(reply)
        except EncodeError as exc:
            reply = Message("FAILED", self.run_id, reply.round,
                            {"reason": f"push returned a value that cannot be sent: {exc}"})
            frames = encode(reply)
        if reply.type == "FAILED":
            log.info("program failed: %s", reply.body["reason"])  # the scheduler reports it
        assert self.socket is not None
        send_frames(self.socket, frames)
