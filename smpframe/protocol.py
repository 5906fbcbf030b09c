"""Wire codec: a msgpack header frame followed by one raw frame per array.

A message is ``[header, buf_0, buf_1, ...]``. The header is a msgpack map::

    {"v": PROTOCOL_VERSION, "t": type, "run": run_id, "r": round,
     "b": body (small msgpack-able map), "a": [[name, dtype, shape], ...]}

Arrays never go through msgpack or pickle: each is sent as its own frame (zero-copy
for large ones) and rebuilt with ``np.frombuffer``. Decoding checks the version, the
message type, the dtype whitelist, every declared shape against its frame length and
a size bound, and raises :class:`ProtocolError` on any mismatch; callers log and drop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import msgpack
import numpy as np

from smpframe.errors import ProtocolError

PROTOCOL_VERSION = 1

#: Message types. Worker -> scheduler: HELLO, HEARTBEAT, RESULT, FAILED, BYE.
#: Scheduler -> worker: WELCOME, WORK, HEARTBEAT, EVICT, STOP.
MESSAGE_TYPES = frozenset(
    {"HELLO", "WELCOME", "WORK", "RESULT", "FAILED", "HEARTBEAT", "EVICT", "STOP", "BYE"}
)

#: dtypes allowed on the wire (little-endian, no objects, no pickled records).
ALLOWED_DTYPES = frozenset(
    {"<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1", "|b1"}
)

DEFAULT_MAX_BYTES = 1 << 31  # 2 GiB per message, arrays included
MAX_HEADER_BYTES = 1 << 20
MAX_ARRAYS = 100_000
MAX_NDIM = 8


@dataclass
class Message:
    """One protocol message: its type, run id, round number, a small body and arrays."""

    type: str
    run: str = ""
    round: int = -1
    body: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _wire_dtype(arr: np.ndarray) -> str:
    dt = arr.dtype
    if dt.byteorder == ">":
        raise ProtocolError(f"big-endian array {dt} cannot be sent")
    return dt.newbyteorder("<").str if dt.itemsize > 1 else dt.str


def encode(msg: Message) -> list[Any]:
    """Encode a message as frames: ``[header, *array buffers]``."""
    if msg.type not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {msg.type!r}")
    descriptors = []
    frames: list[Any] = []
    for name, value in msg.arrays.items():
        arr = np.ascontiguousarray(value)
        dtype = _wire_dtype(arr)
        if dtype not in ALLOWED_DTYPES:
            raise ProtocolError(f"array {name!r} has unsupported dtype {arr.dtype}")
        descriptors.append([name, dtype, list(arr.shape)])
        frames.append(memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else b"")
    header = {
        "v": PROTOCOL_VERSION,
        "t": msg.type,
        "run": msg.run,
        "r": int(msg.round),
        "b": msg.body,
        "a": descriptors,
    }
    return [msgpack.packb(header, use_bin_type=True), *frames]


def _check_descriptor(desc: Any) -> tuple[str, np.dtype, tuple[int, ...]]:
    if not (isinstance(desc, list) and len(desc) == 3):
        raise ProtocolError("malformed array descriptor")
    name, dtype, shape = desc
    if not isinstance(name, str) or not isinstance(dtype, str) or not isinstance(shape, list):
        raise ProtocolError("malformed array descriptor")
    if dtype not in ALLOWED_DTYPES:
        raise ProtocolError(f"array {name!r}: dtype {dtype!r} not allowed")
    if len(shape) > MAX_NDIM or not all(isinstance(s, int) and 0 <= s < 2**62 for s in shape):
        raise ProtocolError(f"array {name!r}: bad shape {shape!r}")
    return name, np.dtype(dtype), tuple(shape)


def decode(frames: list[Any], max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """Decode and validate frames produced by :func:`encode`.

    Raises :class:`ProtocolError` for anything that does not follow the protocol.
    """
    if not frames:
        raise ProtocolError("empty message")
    head = frames[0]
    head_bytes = head.bytes if hasattr(head, "bytes") else bytes(head)
    if len(head_bytes) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(head_bytes)} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(head_bytes, raw=False, strict_map_key=True,
                                 max_array_len=MAX_ARRAYS, max_map_len=MAX_ARRAYS)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"header is not msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a map")
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {header.get('v')!r} (expected {PROTOCOL_VERSION})")
    mtype, run, rnd = header.get("t"), header.get("run"), header.get("r")
    body, descs = header.get("b"), header.get("a")
    if mtype not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {mtype!r}")
    if not isinstance(run, str) or not isinstance(rnd, int) or isinstance(rnd, bool):
        raise ProtocolError("bad run id or round")
    if not isinstance(body, dict) or not isinstance(descs, list):
        raise ProtocolError("bad body or array list")
    if len(descs) != len(frames) - 1:
        raise ProtocolError(f"{len(descs)} arrays declared, {len(frames) - 1} frames sent")
    arrays: dict[str, np.ndarray] = {}
    total = len(head_bytes)
    for desc, frame in zip(descs, frames[1:]):
        name, dtype, shape = _check_descriptor(desc)
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        total += nbytes
        if total > max_bytes:
            raise ProtocolError(f"message exceeds {max_bytes} bytes")
        buf = frame.buffer if hasattr(frame, "buffer") else memoryview(frame)
        if buf.nbytes != nbytes:
            raise ProtocolError(f"array {name!r}: {buf.nbytes} bytes for {shape} {dtype}")
        if name in arrays:
            raise ProtocolError(f"array {name!r} sent twice")
        arrays[name] = np.frombuffer(buf, dtype=dtype).reshape(shape) if nbytes else np.empty(shape, dtype)
    return Message(type=mtype, run=run, round=rnd, body=body, arrays=arrays)


# ---- helpers for nested array maps --------------------------------------------------

SEP = "/"


def flatten(prefix: str, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{"grad": a}`` under prefix ``"3"`` -> ``{"3/grad": a}`` (arrays only)."""
    return {f"{prefix}{SEP}{k}": np.asarray(v) for k, v in arrays.items()}


def unflatten(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Inverse of :func:`flatten` over several prefixes: ``{"3": {"grad": a}, ...}``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        prefix, sep, name = key.partition(SEP)
        if not sep:
            raise ProtocolError(f"array name {key!r} has no prefix")
        out.setdefault(prefix, {})[name] = value
    return out


def split_payload(payload: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a user payload into msgpack-able scalars and numpy arrays.

    Programs exchange plain dicts whose values are scalars, short lists, strings or
    arrays; arrays travel as frames and everything else in the header.
    """
    scalars: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for key, value in payload.items():
        if SEP in key:
            raise ValueError(f"payload key {key!r} may not contain {SEP!r}")
        if isinstance(value, np.ndarray):
            arrays[key] = value
        elif isinstance(value, np.generic):
            scalars[key] = value.item()
        else:
            scalars[key] = value
    return scalars, arrays


def join_payload(scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Inverse of :func:`split_payload`."""
    out = dict(scalars)
    out.update(arrays)
    return out


def pack_payloads(payloads: Mapping[Any, Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Pack ``{key: payload}`` into (header map, flat arrays) for one message."""
    head: dict[str, Any] = {}
    flat: dict[str, np.ndarray] = {}
    for key, payload in payloads.items():
        scalars, arrays = split_payload(payload)
        head[str(key)] = scalars
        flat.update(flatten(str(key), arrays))
    return head, flat


def unpack_payloads(head: Mapping[str, Any], flat: Mapping[str, np.ndarray],
                    keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Inverse of :func:`pack_payloads`; keys stay strings."""
    if not isinstance(head, dict):
        raise ProtocolError("payload map is not a map")
    grouped = unflatten(flat)
    names = list(head) if keys is None else list(keys)
    out = {}
    for key in names:
        scalars = head.get(key, {})
        if not isinstance(scalars, dict):
            raise ProtocolError(f"payload {key!r} is not a map")
        out[key] = join_payload(scalars, grouped.get(key, {}))
    stray = set(grouped) - set(out)
    if stray:
        raise ProtocolError(f"arrays for unknown payloads {sorted(stray)[:3]}")
    return out
