"""Heartbeats on their own socket and thread, so heavy compute cannot starve them."""
from __future__ import annotations

import threading
import time

import zmq

from smpframe import security
from smpframe.config import RunConfig
from smpframe.protocol import Message, decode, encode


#: the longest a stopped heartbeat thread takes to notice (a warm cluster's worker stops it
#: between runs, and each run waits for it)
STOP_LATENCY = 0.05


class Heartbeat(threading.Thread):
    """Sends HEARTBEAT every ``interval`` seconds; notes the scheduler's replies.

    ``lost`` is set once the scheduler has been silent for ``timeout`` seconds.
    ``evicted`` is set when the scheduler no longer knows this worker.
    """

    def __init__(self, context: zmq.Context, address: str, identity: str, run: str,
                 interval: float, timeout: float, config: RunConfig) -> None:
        super().__init__(name="smpframe-heartbeat", daemon=True)
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, f"{identity}#hb".encode())
        self.socket.setsockopt(zmq.LINGER, 0)
        security.apply_client(self.socket, config)
        self.socket.connect(address)
        self.run_id = run
        self.interval = interval
        self.timeout = timeout
        self.last_reply = time.monotonic()
        self.lost = threading.Event()
        self.evicted = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        next_beat = 0.0
        while not self._halt.is_set():
            now = time.monotonic()
            if now >= next_beat:
                self.socket.send_multipart(encode(Message("HEARTBEAT", self.run_id)))
                next_beat = now + self.interval
            if dict(poller.poll(timeout=int(min(self.interval / 2, STOP_LATENCY) * 1000))):
                try:
                    msg = decode(self.socket.recv_multipart())
                except Exception:
                    continue
                self.last_reply = time.monotonic()
                if msg.type == "EVICT":
                    self.evicted.set()
            if time.monotonic() - self.last_reply > self.timeout:
                self.lost.set()
        self.socket.close(linger=0)

    def stop(self) -> None:
        self._halt.set()
