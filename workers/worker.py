"""The worker process: registers with the scheduler and serves WORK messages.

The loop only moves messages; :func:`smpframe.workers.executor.execute` applies them.
"""
from __future__ import annotations

import logging
import os
import secrets
import time
import socket as pysocket
from dataclasses import dataclass, field

import zmq

from smpframe.arrays import array_module
from smpframe.errors import ProtocolError
from smpframe.program import SMPProgram, WorkerContext
from smpframe.programs import resolve_program
from smpframe.protocol import Message, decode, encode
from smpframe.security import SecurityConfig
from smpframe.workers.executor import execute
from smpframe.workers.heartbeat import Heartbeat

log = logging.getLogger("smpframe.worker")


@dataclass
class WorkerOptions:
    """How a worker connects and behaves (``smpframe worker`` options)."""

    connect: str = "tcp://127.0.0.1:5555"
    name: str | None = None
    device: str = "cpu"
    slowdown: float = 1.0
    heartbeat_interval: float = 0.5
    scheduler_timeout: float = 30.0
    security: SecurityConfig = field(default_factory=SecurityConfig)


class Worker:
    """One worker process's connection and fragment store."""

    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.context = zmq.Context()
        self.xp = array_module(options.device)
        self.program: SMPProgram | None = None
        self.wctx: WorkerContext | None = None
        self.run_id = ""
        self.socket: zmq.Socket | None = None
        self.heartbeat: Heartbeat | None = None
        self.identity = ""
        self.connected_at = 0.0

    # ---- connection -----------------------------------------------------------------
    def _connect(self) -> None:
        """(Re)connect with a fresh identity: an evicted worker rejoins as a new one."""
        self._close()
        base = self.options.name or f"{pysocket.gethostname()}-{os.getpid()}"
        self.identity = f"{base}-{secrets.token_hex(3)}"
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, self.identity.encode())
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.options.security.apply_client(self.socket)
        self.socket.connect(self.options.connect)
        self.connected_at = time.monotonic()
        self.program, self.wctx = None, None
        self._send(Message("HELLO", body={"device": self.options.device, "pid": os.getpid(),
                                          "host": pysocket.gethostname(),
                                          "slowdown": self.options.slowdown}))
        log.info("worker %s connecting to %s", self.identity, self.options.connect)

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
        self.socket.send_multipart(encode(msg), copy=False)

    # ---- main loop ------------------------------------------------------------------
    def run(self) -> int:
        """Serve until STOP (exit 0) or until the scheduler is silent too long (exit 3)."""
        self._connect()
        try:
            while True:
                assert self.socket is not None
                if self._scheduler_lost():
                    log.error("scheduler at %s silent for %.0fs; exiting", self.options.connect,
                              self.options.scheduler_timeout)
                    return 3
                if self.heartbeat is not None and self.heartbeat.evicted.is_set():
                    log.warning("evicted by the scheduler; rejoining as a fresh worker")
                    self._connect()
                    continue
                if not self.socket.poll(timeout=100):
                    continue
                frames = self.socket.recv_multipart(copy=False)
                try:
                    msg = decode(frames)
                except ProtocolError as exc:
                    log.warning("dropping malformed message from scheduler: %s", exc)
                    continue
                if self.run_id and msg.run != self.run_id:
                    continue
                if msg.type == "STOP":
                    log.info("scheduler says stop: %s", msg.body.get("reason", ""))
                    return 0
                if msg.type == "EVICT":
                    log.warning("evicted: %s; rejoining", msg.body.get("reason", ""))
                    self._connect()
                elif msg.type == "WELCOME":
                    self._welcome(msg)
                elif msg.type == "WORK":
                    self._work(msg)
        finally:
            self._close()
            self.context.term()

    def _scheduler_lost(self) -> bool:
        if self.heartbeat is not None:
            return self.heartbeat.lost.is_set()
        return time.monotonic() - self.connected_at > self.options.scheduler_timeout

    def _welcome(self, msg: Message) -> None:
        """Build the program and start heartbeats (only now is the run id known)."""
        self.run_id = msg.run
        self.heartbeat = Heartbeat(self.context, self.options.connect, self.identity, self.run_id,
                                   self.options.heartbeat_interval,
                                   self.options.scheduler_timeout, self.options.security)
        self.heartbeat.start()
        body = msg.body
        self.program = resolve_program(body["program"])(**body.get("params", {}))
        self.wctx = WorkerContext(params=dict(body.get("params", {})), meta=body.get("meta", {}),
                                  xp=self.xp, device=self.options.device)
        log.info("joined run %s as %s (program %s)", self.run_id, self.identity, body["program"])

    def _work(self, msg: Message) -> None:
        if self.program is None or self.wctx is None:
            return
        reply = execute(self.program, self.wctx, msg, self.options.slowdown)
        if reply is not None:
            if reply.type == "FAILED":
                log.error("program failed: %s", reply.body["reason"])
            self._send(reply)
