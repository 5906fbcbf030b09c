"""The thin layer over pyzmq sockets that the scheduler and worker loops use.

``send_multipart``/``recv_multipart`` combine their flags as Python enums on every
frame and ask the socket for RCVMORE after each, which is a measurable share of an
empty round; these helpers pass plain ints, copy small frames (cheaper than a
zero-copy frame object), read "more" off the received frame and send through the
backend's method (the ``zmq.Socket`` wrapper adds a Python call per frame, for draft
options not used here). Leading frames (a ROUTER's peer identity, the msgpack
header) arrive as bytes, the array frames after them as zero-copy :class:`zmq.Frame`
objects.
"""
from __future__ import annotations

from typing import Any, Sequence

import zmq
from zmq.backend import Socket as _Backend

_send = _Backend.send
_SNDMORE = int(zmq.SNDMORE)
NOBLOCK = int(zmq.NOBLOCK)
#: frames below this size are copied into the message (pyzmq's own threshold)
_COPY_BELOW = zmq.COPY_THRESHOLD


def send_frames(socket: zmq.Socket, frames: Sequence[Any]) -> None:
    """Send ``frames`` as one message (large buffers are not copied)."""
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        _send(socket, frame, _SNDMORE if i < last else 0, len(frame) < _COPY_BELOW)


def send_to(socket: zmq.Socket, identity: bytes, frames: Sequence[Any]) -> None:
    """Send ``frames`` as one message to a ROUTER's peer ``identity``."""
    _send(socket, identity, _SNDMORE, True)
    send_frames(socket, frames)


def recv_frames(socket: zmq.Socket, flags: int = 0, leading: int = 1) -> list[Any]:
    """Receive one message: its first ``leading`` frames as bytes, the rest zero-copy.

    Raises :class:`zmq.Again` with ``flags=NOBLOCK`` (or a receive timeout) when
    nothing is waiting.
    """
    frame = socket.recv(flags, copy=False)
    frames: list[Any] = [frame.bytes if leading > 0 else frame]
    while frame.more:
        frame = socket.recv(0, copy=False)
        frames.append(frame.bytes if len(frames) < leading else frame)
    return frames
