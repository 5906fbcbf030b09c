"""The thin layer over pyzmq sockets that the scheduler and worker loops use.

``send_multipart``/``recv_multipart`` combine their flags as Python enums on every
frame and ask the socket for RCVMORE after each, which is a measurable share of an
empty round; these helpers pass plain ints, copy small frames (cheaper than a
zero-copy frame object) and read "more" off the received frame. Leading frames (a
ROUTER's peer identity, the msgpack header) arrive as bytes, the array frames after
them as zero-copy :class:`zmq.Frame` objects.
"""
from __future__ import annotations

from typing import Any, Sequence

import zmq

_SNDMORE = int(zmq.SNDMORE)
NOBLOCK = int(zmq.NOBLOCK)
#: frames below this size are copied into the message (pyzmq's own threshold)
_COPY_BELOW = zmq.COPY_THRESHOLD


def send_frames(socket: zmq.Socket, frames: Sequence[Any]) -> None:
    """Send ``frames`` as one message (large buffers are not copied)."""
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        socket.send(frame, _SNDMORE if i < last else 0, copy=len(frame) < _COPY_BELOW)


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
