"""The worker process: registers with the scheduler, holds fragments, runs push/sync.

The loop only moves messages; the program's ``load``/``push``/``sync`` do the work.
A WORK message is applied in order: committed updates (to the fragments already
held), drops, loads (built from a snapshot at the same commit), then tasks.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket as pysocket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import zmq

from smpframe.arrays import array_module, to_host
from smpframe.errors import ProtocolError
from smpframe.program import SMPProgram, WorkerContext, unpack_arrays
from smpframe.programs import resolve_program
from smpframe.protocol import Message, decode, encode, pack_payloads, unpack_payloads
from smpframe.security import SecurityConfig
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
        self.heartbeat = Heartbeat(self.context, self.options.connect, self.identity, self.run_id,
                                   self.options.heartbeat_interval,
                                   self.options.scheduler_timeout, self.options.security)
        self.heartbeat.start()
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
                assert self.socket is not None and self.heartbeat is not None
                if self.heartbeat.lost.is_set():
                    log.error("scheduler at %s silent for %.0fs; exiting", self.options.connect,
                              self.options.scheduler_timeout)
                    return 3
                if self.heartbeat.evicted.is_set():
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

    def _welcome(self, msg: Message) -> None:
        self.run_id = msg.run
        if self.heartbeat is not None:
            self.heartbeat.run_id = msg.run
        body = msg.body
        self.program = resolve_program(body["program"])(**body.get("params", {}))
        self.wctx = WorkerContext(params=dict(body.get("params", {})), meta=body.get("meta", {}),
                                  xp=self.xp, device=self.options.device)
        log.info("joined run %s as %s (program %s)", self.run_id, self.identity, body["program"])

    def _work(self, msg: Message) -> None:
        if self.program is None or self.wctx is None:
            return
        program, wctx = self.program, self.wctx
        try:
            payloads = unpack_payloads(msg.body["payloads"], msg.arrays)
            for seq in msg.body["commits"]:
                update = payloads[f"c{seq}"]
                if update:
                    for frag in list(wctx.fragments):
                        program.sync(wctx, frag, update)
            for frag in msg.body["drop"]:
                wctx.fragments.pop(frag, None)
            for frag in msg.body["load"]:
                data = unpack_arrays(payloads[f"d{frag}"])
                program.load(wctx, frag, data, payloads[f"s{frag}"])
            tasks = msg.body["tasks"]
            if not tasks:
                if msg.body["load"]:
                    self._send(Message("RESULT", round=-1, body={"loaded": msg.body["load"]}))
                return
            started = time.perf_counter()
            partials: dict[str, dict[str, Any]] = {}
            for frag in tasks:
                block = payloads.get("b*", payloads.get(f"b{frag}"))
                result = program.push(wctx, frag, block)
                partials[str(frag)] = {k: to_host(v) for k, v in result.items()}
            seconds = time.perf_counter() - started
            if self.options.slowdown > 1.0:
                time.sleep(seconds * (self.options.slowdown - 1.0))
                seconds *= self.options.slowdown
        except Exception as exc:
            log.error("program failed: %s", exc)
            self._send(Message("FAILED", round=msg.round, body={
                "reason": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}))
            return
        head, arrays = pack_payloads(partials)
        self._send(Message("RESULT", round=msg.round,
                           body={"partials": head, "seconds": seconds}, arrays=arrays))
