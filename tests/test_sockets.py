"""The socket helpers over real ZeroMQ sockets: frames in order, leading frames as bytes,
large ones zero-copy, and nothing waiting raising Again (never blocking past a timeout)."""
from __future__ import annotations

import numpy as np
import pytest
import zmq

from smpframe.sockets import NOBLOCK, recv_frames, send_frames, send_to


@pytest.fixture
def pair():
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    for s in (router, dealer):
        s.setsockopt(zmq.RCVTIMEO, 5000)
        s.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.IDENTITY, b"w-1")
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    yield router, dealer
    router.close(0)
    dealer.close(0)
    ctx.term()


def test_frames_round_trip_with_leading_bytes_and_zero_copy_arrays(pair):
    router, dealer = pair
    big = np.arange(100_000, dtype=np.float64)  # above the copy threshold
    send_frames(dealer, [b"header", memoryview(big.view(np.uint8)), b"tail"])
    frames = recv_frames(router, leading=2)
    assert frames[:2] == [b"w-1", b"header"]
    assert isinstance(frames[2], zmq.Frame) and isinstance(frames[3], zmq.Frame)
    np.testing.assert_array_equal(np.frombuffer(frames[2].buffer, dtype=np.float64), big)
    assert frames[3].bytes == b"tail"

    send_to(router, frames[0], [b"reply", b""])
    back = recv_frames(dealer)
    assert back[0] == b"reply" and back[1].bytes == b""


def test_nothing_waiting_raises_again(pair):
    router, dealer = pair
    with pytest.raises(zmq.Again):
        recv_frames(router, NOBLOCK)
    dealer.setsockopt(zmq.RCVTIMEO, 10)  # a blocking receive gives up at its timeout
    with pytest.raises(zmq.Again):
        recv_frames(dealer)
