"""The wire codec: values by type, zero-copy, and every kind of malformed message."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

from smpframe.errors import ProtocolError
from smpframe.protocol import PROTOCOL_VERSION, EncodeError, Message, decode, encode


def roundtrip(body: dict) -> dict:
    return decode([bytes(f) for f in encode(Message("RESULT", "run1", 7, body))]).body


def test_round_trip_keeps_plain_values_and_arrays_at_any_depth():
    arrays = {"a": np.arange(12, dtype=np.float64).reshape(3, 4), "b": np.array([1, -2], np.int32),
              "empty": np.zeros((0, 5), np.float32), "flag": np.array([True, False])}
    body = {"x": 1, "s": "txt", "l": [1, 2.5, None], "n": {"deep": [arrays["a"], {"b": arrays["b"]}]},
            **arrays}
    out = roundtrip(body)
    assert (out["x"], out["s"], out["l"]) == (1, "txt", [1, 2.5, None])
    np.testing.assert_array_equal(out["n"]["deep"][0], arrays["a"])
    np.testing.assert_array_equal(out["n"]["deep"][1]["b"], arrays["b"])
    for name, value in arrays.items():
        np.testing.assert_array_equal(out[name], value)
        assert out[name].dtype == value.dtype


def test_a_dense_array_is_kept_whatever_its_key():
    """Key suffixes mean nothing: ``y.data`` is an ordinary dense array."""
    out = roundtrip({"y.data": np.arange(3.0), "X.indptr": np.arange(2), "m.sparse": [1]})
    np.testing.assert_array_equal(out["y.data"], np.arange(3.0))
    assert set(out) == {"y.data", "X.indptr", "m.sparse"}


@pytest.mark.parametrize("make", [sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array,
                                  sp.lil_matrix])
def test_sparse_matrices_round_trip(make):
    dense = np.array([[0, 1.5, 0], [2.0, 0, 0], [0, 0, 0], [0, 0, -3.0]])
    out = roundtrip({"m": make(dense), "nested": [make(dense)]})
    for value in (out["m"], out["nested"][0]):
        assert sp.issparse(value) and value.shape == dense.shape
        np.testing.assert_array_equal(value.toarray(), dense)
    assert out["m"].format == (make(dense).format if make(dense).format in ("csr", "csc", "coo")
                               else "csr")
    assert isinstance(out["m"], sp.sparray) == isinstance(make(dense), sp.sparray)


def test_numpy_scalars_become_plain_values():
    out = roundtrip({"f": np.float64(1.5), "i": np.int32(-3), "b": np.bool_(True)})
    assert out == {"f": 1.5, "i": -3, "b": True}


def test_non_contiguous_and_big_endian_inputs():
    out = roundtrip({"t": np.arange(20.0).reshape(4, 5).T})
    np.testing.assert_array_equal(out["t"], np.arange(20.0).reshape(4, 5).T)
    with pytest.raises(EncodeError):
        encode(Message("WORK", body={"be": np.arange(3, dtype=">f8")}))


def test_large_array_is_not_copied_into_the_header():
    big = np.ones(1_000_000)
    frames = encode(Message("WORK", body={"big": big}))
    assert len(frames[0]) < 200 and memoryview(frames[1]).nbytes == big.nbytes


@pytest.mark.parametrize("dtype", [object, "U4", "c16", "V8"])
def test_unsupported_dtypes_are_refused_on_encode(dtype):
    with pytest.raises(EncodeError, match="cannot be sent"):
        encode(Message("WORK", body={"x": np.zeros(2, dtype=dtype)}))


@pytest.mark.parametrize("value, where", [
    ({"partials": {"3": {"g": {1, 2}}}}, "partials/3/g"),
    ({"a": [1, object()]}, "a[1]"),
    ({"big": 1 << 70}, "big"),
    ({"k": {5: 1}}, "k"),
])
def test_unencodable_values_name_where_they_are(value, where):
    with pytest.raises(EncodeError) as err:
        encode(Message("RESULT", body=value))
    assert err.value.where == where and str(err.value).startswith(where)


def descriptor(frame, dtype="<f8", shape=(2,)):
    return msgpack.ExtType(1, msgpack.packb([frame, dtype, list(shape)]))


def sparse_ext(fmt, n, m, descs, is_array=False):
    return msgpack.ExtType(2, msgpack.packb([fmt, is_array, n, m, descs]))


def header(body=None, **overrides):
    base = {"v": PROTOCOL_VERSION, "t": "RESULT", "run": "r", "r": 0, "b": {} if body is None else body}
    base.update(overrides)
    return msgpack.packb(base)


EIGHT = b"\x00" * 8


@pytest.mark.parametrize("frames", [
    [],
    [b"\xc1garbage"],
    [msgpack.packb([1, 2, 3])],
    [header(v=99)],
    [header(v=1)],
    [header(t="PICKLE")],
    [header(run=5)],
    [header(r="x")],
    [header(r=True)],
    [header(b=[1])],
    [header({"x": descriptor(0)})],                                   # declared, not sent
    [header({"x": descriptor(0)}), EIGHT],                            # wrong length
    [header({"x": descriptor(0, "|O", [1])}), EIGHT],                 # object dtype
    [header({"x": descriptor(0, "<f8", [2**40, 2**40])}), b""],       # absurd declared shape
    [header({"x": descriptor(0, "<f8", [-1])}), b""],
    [header({"x": descriptor(0, "<f8", [True])}), EIGHT],             # a bool is not a length
    [header({"x": descriptor(0, "<f8", [1.0])}), EIGHT],
    [header({"x": msgpack.ExtType(1, msgpack.packb([0, "<f8"]))}), EIGHT],
    [header({"x": msgpack.ExtType(1, b"\xc1")}), EIGHT],
    [header({"x": descriptor(1, "<f8", [1])}), EIGHT],                # frame out of range
    [header({"x": descriptor(0, "<f8", [1]), "y": descriptor(0, "<f8", [1])}), EIGHT],
    [header({"x": msgpack.ExtType(9, b"")})],                         # unknown extension
    [header(), b"extra frame"],
    [header({"m": sparse_ext("bsr", 1, 1, [])})],
    [header({"m": sparse_ext("csr", 2, 2, [descriptor(0, "<f8", [1]), descriptor(1, "<i4", [1]),
                                           descriptor(2, "<i4", [3])])}),
     EIGHT, np.array([7], np.int32).tobytes(), np.array([0, 1, 1], np.int32).tobytes()],  # col 7 of 2
    [header({"m": sparse_ext("csr", 2, 2, [descriptor(0, "<f8", [1]), descriptor(1, "<f8", [1]),
                                           descriptor(2, "<i4", [3])])}),
     EIGHT, EIGHT, np.array([0, 1, 1], np.int32).tobytes()],       # float indices
    [header({"m": sparse_ext("coo", 2, 2, [descriptor(0, "<f8", [1]), descriptor(1, "<i4", [1]),
                                           descriptor(2, "<i4", [1])])}),
     EIGHT, np.array([5], np.int32).tobytes(), np.array([0], np.int32).tobytes()],  # row 5 of 2
])
def test_malformed_messages_raise_protocol_error(frames):
    with pytest.raises(ProtocolError):
        decode(frames)


def test_size_bound_is_enforced():
    frames = [bytes(f) for f in encode(Message("WORK", body={"x": np.zeros(1000)}))]
    with pytest.raises(ProtocolError, match="size bound"):
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
    frames = [bytes(f) for f in encode(Message("WORK", body={"x": np.arange(30.0)}))]
    frames[1] = frames[1][: max(0, len(frames[1]) - cut)]
    with pytest.raises(ProtocolError):
        decode(frames)


def test_decoded_arrays_are_read_only_views():
    out = roundtrip({"x": np.arange(4.0)})
    assert not out["x"].flags.writeable


def test_encoding_leaves_the_callers_values_as_they_were():
    inner = {"s": np.float32(2.5), "t": (1, np.int64(2)), "a": np.arange(3.0)}
    body = {"p": {"0": inner}, "plain": [1.0, "x"]}
    out = roundtrip(body)
    assert out["p"]["0"]["s"] == 2.5 and out["p"]["0"]["t"] == [1, 2] and out["plain"] == [1.0, "x"]
    np.testing.assert_array_equal(out["p"]["0"]["a"], np.arange(3.0))
    assert type(inner["s"]) is np.float32 and type(inner["t"][1]) is np.int64  # not rewritten
    assert isinstance(body["p"]["0"]["a"], np.ndarray)
