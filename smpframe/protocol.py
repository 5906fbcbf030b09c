"""Wire codec: a msgpack header frame followed by one raw frame per array.

A message is ``[header, buf_0, buf_1, ...]``. The header is a msgpack map::

    {"v": PROTOCOL_VERSION, "t": type, "run": run_id, "r": round, "b": body}

The body is a tree of maps (string keys), lists and plain values (None, bool, int,
float, str, bytes). Arrays may stand anywhere in it; how a value travels is chosen by
its type (:func:`_pack`), never by its key:

* a numpy array is a msgpack extension ``[frame, dtype, shape]`` and its bytes are a
  frame of their own (zero-copy both ways);
* a scipy sparse matrix or array (CSR, CSC, COO; other formats travel as CSR) is an
  extension ``[format, is_sparray, rows, cols, components]``, each component an array
  descriptor as above;
* device arrays (cupy) are copied to the host first; numpy scalars become plain values.

Anything else raises :class:`EncodeError`, naming where in the body it stands. Nothing
is ever pickled. Decoding checks the version, the message type, the dtype whitelist,
every declared shape against its frame, a size bound and sparse index ranges, and
raises :class:`ProtocolError` on any mismatch; callers log and drop the message.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from smpframe.arrays import is_sparse
from smpframe.errors import ProtocolError

PROTOCOL_VERSION = 3  # 3: LOAD items may name a split for the worker to read
#: the phases of a WORK message's ``load`` items, in order: a worker reads its split
#: (READ), describes it under the file-wide layout (DESCRIBE), then loads it (LOAD;
#: in-memory rows arrive at LOAD directly)
READ, DESCRIBE, LOAD = "read", "describe", "load"

#: Message types. Worker -> scheduler: HELLO, HEARTBEAT, RESULT, FAILED, BYE.
#: Scheduler -> worker: WELCOME, WORK, HEARTBEAT, EVICT, STOP; from a warm cluster
#: between runs also WAIT (stay connected, the next run will welcome you) and PREPARE
#: (the next run's program: build it and load its kernels while the data loads).
MESSAGE_TYPES = frozenset({"HELLO", "WELCOME", "WORK", "RESULT", "FAILED", "HEARTBEAT", "EVICT",
                           "STOP", "BYE", "WAIT", "PREPARE"})

#: dtypes allowed on the wire (little-endian, no objects, no pickled records).
ALLOWED_DTYPES = frozenset(
    {"<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1", "|b1"}
)

DEFAULT_MAX_BYTES = 1 << 31  # 2 GiB per message, arrays included
MAX_HEADER_BYTES = 16 << 20
MAX_NDIM = 8

_EXT_ARRAY = 1
_EXT_SPARSE = 2
#: sparse formats on the wire and the names of their component arrays, in order
_SPARSE_PARTS = {"csr": ("data", "indices", "indptr"), "csc": ("data", "indices", "indptr"),
                 "coo": ("data", "row", "col")}


class EncodeError(ProtocolError, TypeError):
    """A value that cannot travel; ``where`` is its place in the body (``partials/3/g``)."""

    def __init__(self, where: str, message: str) -> None:
        self.where, self.message = where, message
        super().__init__(f"{where or 'message'}: {message}")

    def within(self, step: str) -> "EncodeError":
        """The same error one level up: ``step`` is ``"/key"`` or ``"[i]"``."""
        return EncodeError((step + ("/" if self.where and self.where[0] != "[" else "")
                            + self.where).lstrip("/"), self.message)


@dataclass(slots=True)
class Message:
    """One protocol message: its type, run id, round number and body (arrays anywhere)."""

    type: str
    run: str = ""
    round: int = -1
    body: dict[str, Any] = field(default_factory=dict)


# ---- encoding --------------------------------------------------------------------------

_WIRE_NAMES: dict[np.dtype, str] = {}  # dtype -> its wire name (computed once per dtype)


def _wire_dtype(arr: np.ndarray, where: str) -> str:
    dt = arr.dtype
    name = _WIRE_NAMES.get(dt)
    if name is not None:
        return name
    if dt.byteorder == ">":
        raise EncodeError(where, f"big-endian array {dt} cannot be sent")
    name = dt.newbyteorder("<").str if dt.itemsize > 1 else dt.str
    if name not in ALLOWED_DTYPES:
        raise EncodeError(where, f"arrays of dtype {dt} cannot be sent (numeric and bool only)")
    _WIRE_NAMES[dt] = name
    return name


def _array_desc(arr: np.ndarray, where: str, frames: list[Any]) -> list[Any]:
    arr = np.ascontiguousarray(arr)
    dtype = _wire_dtype(arr, where)
    frames.append(memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else b"")
    return [len(frames) - 1, dtype, list(arr.shape)]


def _pack_sparse(value: Any, frames: list[Any]) -> msgpack.ExtType:
    import scipy.sparse as sp

    fmt = value.format if value.format in _SPARSE_PARTS else "csr"
    m = value.asformat(fmt)
    descs = [_array_desc(getattr(m, part), f".{part}", frames) for part in _SPARSE_PARTS[fmt]]
    is_array = isinstance(value, sp.sparray) if hasattr(sp, "sparray") else False
    head = [fmt, is_array, int(m.shape[0]), int(m.shape[1]), descs]
    return msgpack.ExtType(_EXT_SPARSE, msgpack.packb(head))


_PLAIN = frozenset({str, float, bool, bytes, type(None)})


def _pack(value: Any, frames: list[Any]) -> Any:
    """``value`` as msgpack-native data; arrays are appended to ``frames``.

    Dispatch is on the exact type first (the common case, kept fast), then on
    ``isinstance`` for subclasses and the rarer kinds. Plain leaves are not visited,
    and a dict or list whose items all travel as they are is returned itself (copied
    only where an item changes). Errors name their place on the way up
    (:meth:`EncodeError.within`), so success builds no path strings.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list or kind is tuple:
        out_list = None
        for i, item in enumerate(value):
            if type(item) in _PLAIN:
                continue
            try:
                packed = _pack(item, frames)
            except EncodeError as exc:
                raise exc.within(f"[{i}]") from None
            if packed is not item:
                if out_list is None:
                    out_list = list(value)
                out_list[i] = packed
        return value if out_list is None else out_list
    if kind is dict or isinstance(value, dict):
        out = None
        for key, item in value.items():
            if type(key) is not str:
                raise EncodeError("", f"map key {key!r} is not a string")
            if type(item) in _PLAIN:
                continue
            try:
                packed = _pack(item, frames)
            except EncodeError as exc:
                raise exc.within("/" + key) from None
            if packed is not item:
                if out is None:
                    out = dict(value)
                out[key] = packed
        if out is None:
            return value if kind is dict else dict(value)
        return out
    if kind is int or isinstance(value, int):
        if not -(1 << 63) <= value < (1 << 64):
            raise EncodeError("", f"integer {value} does not fit in 64 bits")
        return value if kind is int else int(value)
    if kind is np.ndarray:
        return msgpack.ExtType(_EXT_ARRAY, msgpack.packb(_array_desc(value, "", frames)))
    if isinstance(value, np.generic):
        return _pack(value.item(), frames)
    for plain in (str, float, bytes):  # subclasses (enums...) travel as their base
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, np.ndarray):
        return _pack(np.asarray(value), frames)
    if is_sparse(value):
        return _pack_sparse(value, frames)
    if hasattr(value, "__cuda_array_interface__") and hasattr(value, "get"):
        return _pack(value.get(), frames)  # a device array: to the host
    raise EncodeError("", f"a {type(value).__name__} cannot be sent (use numbers, strings, "
                          "lists, dicts, numpy arrays or scipy sparse matrices)")


#: each thread's msgpack packer, reused (``packb`` builds one, and its buffer, per call)
_packers = threading.local()
#: a header longer than this drops its packer (which would keep a buffer that large)
_KEEP_PACKER_BELOW = 1 << 20


def encode(msg: Message) -> list[Any]:
    """Encode a message as frames: ``[header, *array buffers]``."""
    if msg.type not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {msg.type!r}")
    frames: list[Any] = []
    header = {"v": PROTOCOL_VERSION, "t": msg.type, "run": msg.run, "r": int(msg.round),
              "b": _pack(msg.body, frames)}
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    head = packer.pack(header)
    if len(head) >= _KEEP_PACKER_BELOW:
        _packers.packer = None
    return [head, *frames]


# ---- decoding --------------------------------------------------------------------------

class _Frames:
    """The array frames of one message: each used once, within the size bound."""

    def __init__(self, frames: list[Any], budget: int) -> None:
        self.frames = frames
        self.used = [False] * len(frames)
        self.budget = budget

    def array(self, desc: Any) -> np.ndarray:
        if not (isinstance(desc, list) and len(desc) == 3):
            raise ProtocolError("malformed array descriptor")
        index, dtype, shape = desc
        if type(index) is not int or not 0 <= index < len(self.frames) or self.used[index]:
            raise ProtocolError(f"array descriptor names frame {index!r}: missing or used twice")
        if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
            raise ProtocolError(f"dtype {dtype!r} not allowed")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM \
                or not all(type(s) is int and 0 <= s < 2**62 for s in shape):
            raise ProtocolError(f"bad array shape {shape!r}")
        dt = np.dtype(dtype)
        nbytes = math.prod(shape) * dt.itemsize
        self.budget -= nbytes
        if self.budget < 0:
            raise ProtocolError("message exceeds its size bound")
        frame = self.frames[index]
        buf = frame.buffer if hasattr(frame, "buffer") else memoryview(frame)
        if buf.nbytes != nbytes:
            raise ProtocolError(f"frame {index}: {buf.nbytes} bytes for {shape} {dtype}")
        self.used[index] = True
        if not nbytes:
            return np.empty(shape, dt)
        flat = np.frombuffer(buf, dtype=dt)
        return flat if len(shape) == 1 else flat.reshape(shape)

    def sparse(self, head: Any) -> Any:
        if not (isinstance(head, list) and len(head) == 5):
            raise ProtocolError("malformed sparse descriptor")
        fmt, is_array, n, m, descs = head
        if fmt not in _SPARSE_PARTS or not isinstance(descs, list) or len(descs) != 3 \
                or not all(type(s) is int and 0 <= s < 2**62 for s in (n, m)):
            raise ProtocolError("malformed sparse descriptor")
        import scipy.sparse as sp  # only messages that hold sparse matrices need it

        parts = [self.array(d) for d in descs]
        if any(p.ndim != 1 for p in parts) or parts[1].dtype.kind not in "iu" \
                or parts[2].dtype.kind not in "iu":
            raise ProtocolError("sparse components must be 1-d, with integer indices")
        try:
            if fmt == "coo":
                data, row, col = parts
                if not (data.size == row.size == col.size) or (row.size and (
                        row.min() < 0 or row.max() >= n or col.min() < 0 or col.max() >= m)):
                    raise ValueError("coordinates out of range")
                kind = sp.coo_array if is_array else sp.coo_matrix
                return kind((data, (row, col)), shape=(n, m))
            kind = {("csr", False): sp.csr_matrix, ("csc", False): sp.csc_matrix,
                    ("csr", True): sp.csr_array, ("csc", True): sp.csc_array}[fmt, bool(is_array)]
            value = kind(tuple(parts), shape=(n, m))
            value.check_format(full_check=True)
            return value
        except (ValueError, TypeError, IndexError) as exc:
            raise ProtocolError(f"bad sparse matrix: {exc}") from None

    def ext_hook(self, code: int, data: bytes) -> Any:
        """msgpack's hook for our extension values: arrays and sparse matrices."""
        try:
            desc = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception as exc:  # msgpack raises several unrelated types
            raise ProtocolError(f"bad extension value: {exc}") from None
        if code == _EXT_ARRAY:
            return self.array(desc)
        if code == _EXT_SPARSE:
            return self.sparse(desc)
        raise ProtocolError(f"unknown extension type {code}")

    def check_all_used(self) -> None:
        if not all(self.used):
            raise ProtocolError(f"{self.used.count(False)} frames sent but not declared")


def decode(frames: list[Any], max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """Decode and validate frames produced by :func:`encode`.

    Raises :class:`ProtocolError` for anything that does not follow the protocol.
    """
    if not frames:
        raise ProtocolError("empty message")
    head_bytes = frames[0]
    if type(head_bytes) is not bytes:
        head_bytes = head_bytes.bytes if hasattr(head_bytes, "bytes") else bytes(head_bytes)
    if len(head_bytes) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(head_bytes)} bytes exceeds {MAX_HEADER_BYTES}")
    if len(frames) == 1:  # no arrays (most control messages): no frame bookkeeping
        ext_hook = _no_frames
        arrays = None
    else:
        arrays = _Frames(list(frames[1:]), max_bytes - len(head_bytes))
        ext_hook = arrays.ext_hook
    try:
        header = msgpack.unpackb(head_bytes, raw=False, strict_map_key=True, ext_hook=ext_hook)
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"header is not msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a map")
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {header.get('v')!r} (expected {PROTOCOL_VERSION})")
    mtype, run, rnd, body = header.get("t"), header.get("run"), header.get("r"), header.get("b")
    if mtype not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {mtype!r}")
    if not isinstance(run, str) or type(rnd) is not int:
        raise ProtocolError("bad run id or round")
    if not isinstance(body, dict):
        raise ProtocolError("body is not a map")
    if arrays is not None:
        arrays.check_all_used()
    return Message(mtype, run, rnd, body)


def _no_frames(code: int, data: bytes) -> Any:
    raise ProtocolError("an array is declared but no frames were sent")

