"""The wire codec: round trips, zero-copy, and every kind of malformed message."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from smpframe.errors import ProtocolError
from smpframe.protocol import (PROTOCOL_VERSION, Message, decode, encode, pack_payloads,
                               unpack_payloads)


def roundtrip(msg: Message) -> Message:
    return decode([bytes(f) for f in encode(msg)])


def test_round_trip_keeps_header_and_arrays():
    arrays = {"a": np.arange(12, dtype=np.float64).reshape(3, 4), "b": np.array([1, -2], np.int32),
              "empty": np.zeros((0, 5), np.float32), "flag": np.array([True, False])}
    out = roundtrip(Message("RESULT", "run1", 7, {"x": 1, "s": "txt", "l": [1, 2]}, arrays))
    assert (out.type, out.run, out.round, out.body) == ("RESULT", "run1", 7, {"x": 1, "s": "txt", "l": [1, 2]})
    for name, value in arrays.items():
        np.testing.assert_array_equal(out.arrays[name], value)
        assert out.arrays[name].dtype == value.dtype


def test_non_contiguous_and_big_endian_inputs():
    out = roundtrip(Message("WORK", arrays={"t": np.arange(20.0).reshape(4, 5).T}))
    np.testing.assert_array_equal(out.arrays["t"], np.arange(20.0).reshape(4, 5).T)
    with pytest.raises(ProtocolError):
        encode(Message("WORK", arrays={"be": np.arange(3, dtype=">f8")}))


def test_large_array_is_not_copied_into_the_header():
    big = np.ones(1_000_000)
    frames = encode(Message("WORK", arrays={"big": big}))
    assert len(frames[0]) < 200 and memoryview(frames[1]).nbytes == big.nbytes


@pytest.mark.parametrize("dtype", [object, "U4", "c16", "V8"])
def test_unsupported_dtypes_are_refused_on_encode(dtype):
    with pytest.raises(ProtocolError):
        encode(Message("WORK", arrays={"x": np.zeros(2, dtype=dtype)}))


def header(**overrides):
    base = {"v": PROTOCOL_VERSION, "t": "RESULT", "run": "r", "r": 0, "b": {}, "a": []}
    base.update(overrides)
    return msgpack.packb(base)


@pytest.mark.parametrize("frames", [
    [],
    [b"\xc1garbage"],
    [msgpack.packb([1, 2, 3])],
    [header(v=99)],
    [header(t="PICKLE")],
    [header(run=5)],
    [header(r="x")],
    [header(b=[1])],
    [header(a=[["x", "<f8", [2]]])],                       # declared, not sent
    [header(a=[["x", "<f8", [2]]]), b"\x00" * 8],          # wrong length
    [header(a=[["x", "|O", [1]]]), b"\x00" * 8],           # object dtype
    [header(a=[["x", "<f8", [2**40, 2**40]]]), b""],       # absurd declared shape
    [header(a=[["x", "<f8", [-1]]]), b""],
    [header(a=[["x", "<f8"]]), b""],
    [header(a=[["x", "<f8", [1]], ["x", "<f8", [1]]]), b"\x00" * 8, b"\x00" * 8],
    [header(), b"extra frame"],
])
def test_malformed_messages_raise_protocol_error(frames):
    with pytest.raises(ProtocolError):
        decode(frames)


def test_size_bound_is_enforced():
    frames = [bytes(f) for f in encode(Message("WORK", arrays={"x": np.zeros(1000)}))]
    with pytest.raises(ProtocolError, match="exceeds"):
        decode(frames, max_bytes=4000)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_random_frames_never_crash_the_decoder(frames):
    try:
        decode(frames)
    except ProtocolError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=200))
def test_truncated_valid_messages_are_rejected(cut):
    frames = [bytes(f) for f in encode(Message("WORK", arrays={"x": np.arange(30.0)}))]
    frames[1] = frames[1][: max(0, len(frames[1]) - cut)]
    with pytest.raises(ProtocolError):
        decode(frames)


def test_payload_packing_round_trip():
    payloads = {"3": {"grad": np.arange(4.0), "loss": 1.5, "name": "a"}, "c7": {"idx": np.arange(2)}}
    head, flat = pack_payloads(payloads)
    out = unpack_payloads(head, {k: v for k, v in flat.items()})
    assert out["3"]["loss"] == 1.5 and out["3"]["name"] == "a"
    np.testing.assert_array_equal(out["c7"]["idx"], np.arange(2))


def test_payload_arrays_without_a_payload_are_rejected():
    with pytest.raises(ProtocolError):
        unpack_payloads({}, {"9/x": np.zeros(1)})
