"""The thin layer over pyzmq sockets that the scheduler and worker loops use.

``send_multipart``/``recv_multipart`` combine their flags as Python enums on every
frame, which is a measurable share of an empty round; these helpers pass plain ints.
Leading frames (a ROUTER's peer identity, the msgpack header) arrive as bytes, the
array frames after them as zero-copy :class:`zmq.Frame` objects.
"""
from __future__ import annotations

from typing import Any, Sequence

import zmq

_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
NOBLOCK = int(zmq.NOBLOCK)


def send_frames(socket: zmq.Socket, frames: Sequence[Any]) -> None:
    """Send ``frames`` as one message (large buffers are not copied)."""
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        socket.send(frame, _SNDMORE if i < last else 0, copy=False)


def recv_frames(socket: zmq.Socket, flags: int = 0, leading: int = 1) -> list[Any]:
    """Receive one message: its first ``leading`` frames as bytes, the rest zero-copy.

    Raises :class:`zmq.Again` with ``flags=NOBLOCK`` when nothing is waiting.
    """
    frames: list[Any] = [socket.recv(flags)]
    while socket.get(_RCVMORE):
        frames.append(socket.recv(0, copy=len(frames) < leading))
    return frames
