"""Input that the workers read themselves: a file cut into splits, each read where it is used.

Line formats (LIBSVM, CSV) split into byte ranges aligned to records as Hadoop's
TextInputFormat does: a split owns every line that *starts* inside ``[start, stop)``.
Its reader skips the partial line at its start (unless ``start`` is 0) and reads on
past ``stop`` to the end of its last line, so the splits' lines are the file's lines,
each read once. ``.npy`` splits into row ranges of a memory map, Parquet into row
groups (:mod:`smpframe.data.parquet`).

A split is read in two steps, so that what depends on the whole file is decided once:

- :func:`read` gives a split's rows as written and its *facts* (``n_rows``; for LIBSVM
  the smallest and largest index seen);
- :func:`layout` combines every split's facts (LIBSVM: 0- or 1-based, the width);
- :func:`finish` applies that layout to a split's rows.

Errors are :class:`~smpframe.errors.InputError` naming the file and its 1-based line
(counted from the file's start, not the split's).
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from smpframe.arrays import is_sparse
from smpframe.errors import InputError

#: the smallest split worth a message round trip
MIN_SPLIT_BYTES = 4096
#: what one process reading a whole file parses at a time
WHOLE_CHUNK_BYTES = 64 << 20
#: how far past a split's end a reader looks for the end of its last line, per read
_TAIL_CHUNK = 1 << 16

Rows = dict[str, Any]
Facts = dict[str, Any]


# ---- cutting ------------------------------------------------------------------------------

def cut(reader: str, path: str, n: int, options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``path`` as at most ``n`` split descriptors: plain dicts (they travel to workers) with
    ``reader``, ``path``, a ``start``/``stop`` range (bytes; rows for ``.npy``; row groups
    for Parquet) and the reader's ``options``."""
    if reader not in READERS:
        raise InputError(f"no split reader {reader!r} (expected one of {', '.join(READERS)})")
    if reader == "parquet":
        from smpframe.data import parquet
        edges = parquet.group_edges(path, n)
    else:
        if reader == "npy":
            size = _npy_rows(path)
            n = max(1, min(n, size))
        else:
            size = _size(path)
            n = max(1, min(n, size // MIN_SPLIT_BYTES))
        edges = [size * i // n for i in range(n + 1)]
    return [{"reader": reader, "path": path, "start": a, "stop": b, "options": dict(options or {})}
            for a, b in zip(edges[:-1], edges[1:])]


def valid(split: Any) -> bool:
    """Whether ``split`` (from the wire) is a descriptor :func:`cut` makes."""
    return (isinstance(split, dict) and split.get("reader") in READERS
            and isinstance(split.get("path"), str) and type(split.get("start")) is int
            and type(split.get("stop")) is int and 0 <= split["start"] <= split["stop"]
            and isinstance(split.get("options", {}), dict))


def split_bytes(split: dict[str, Any]) -> float:
    """The work a split stands for (its bytes; rows for ``.npy``): fragment sizes for balancing."""
    return float(max(1, split["stop"] - split["start"]))


# ---- reading ------------------------------------------------------------------------------

def read(split: dict[str, Any]) -> tuple[Rows, Facts]:
    """A split's rows as written, and its facts (``n_rows`` at least)."""
    rows, facts = READERS[split["reader"]][0](split)
    first = next(iter(rows.values()))
    facts["n_rows"] = int(first.shape[0])
    return rows, facts


def layout(reader: str, facts: list[Facts], path: str) -> dict[str, Any]:
    """What every split's rows need to agree (checked: an empty file is an InputError)."""
    if sum(f["n_rows"] for f in facts) == 0:
        raise InputError("no samples in file", path)
    return READERS[reader][1](facts, path)


def finish(split: dict[str, Any], rows: Rows, plan: dict[str, Any]) -> Rows:
    """A split's rows under the file-wide layout ``plan``."""
    return READERS[split["reader"]][2](rows, plan)


def read_whole(reader: str, path: str, options: dict[str, Any] | None = None,
               layout_out: dict[str, Any] | None = None) -> Rows:
    """Every row of ``path`` in this process: data held where it is read. Read a chunk of
    about :data:`WHOLE_CHUNK_BYTES` at a time, so the parser's temporaries stay small.
    ``layout_out``, if given, receives the file-wide layout (what workers get as meta)."""
    parts = cut(reader, path, max(1, -(-_size(path) // WHOLE_CHUNK_BYTES)), options)
    read_parts = [read(part) for part in parts]
    plan = layout(reader, [facts for _, facts in read_parts], path)
    if layout_out is not None:
        layout_out.update(plan)
    done = [finish(part, rows, plan) for part, (rows, _) in zip(parts, read_parts)]
    del read_parts
    return {key: _stack([rows[key] for rows in done]) for key in done[0]}


def _stack(values: list[Any]) -> Any:
    if len(values) == 1:
        return values[0]
    if is_sparse(values[0]):
        import scipy.sparse as sp
        return sp.vstack(values, format="csr")
    return np.concatenate(values)


# ---- line formats -------------------------------------------------------------------------

def is_path(source: Any) -> bool:
    """Whether a ``load_data`` source names a file (else: arrays, or None for built-in data)."""
    return isinstance(source, (str, bytes)) or hasattr(source, "__fspath__")


def is_url(path: str) -> bool:
    """Whether ``path`` names a file through an fsspec file system (``s3://``, ``gs://``,
    ``hdfs://``, ``file://`` ...), not a local path."""
    return "://" in path


def open_binary(path: str) -> Any:
    """``path`` opened for reading bytes (seekable): a local file, or through fsspec."""
    if not is_url(path):
        return open(path, "rb")
    try:
        import fsspec
    except ImportError:
        raise InputError("reading a URL needs fsspec (and the file system's own package, "
                         "e.g. s3fs): pip install 'smpframe[remote]'", path) from None
    try:
        return fsspec.open(path, "rb").open()
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package missing
        raise InputError(f"cannot open: {exc}", path) from None


def _size(path: str) -> int:
    try:
        if is_url(path):
            with open_binary(path) as fh:
                return fh.seek(0, os.SEEK_END)
        return os.stat(path).st_size
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path) from None


def read_lines(path: str, start: int, stop: int) -> tuple[bytes, int]:
    """The whole lines that start in ``[start, stop)`` of ``path``, and the offset of the first."""
    try:
        with open_binary(path) as fh:
            begin = start
            if start > 0:
                fh.seek(start - 1)  # a line starts at `start` iff the byte before is a newline
                head = fh.read(stop - start + 1)
                skip = head.find(b"\n")
                if skip < 0 or skip >= stop - start:
                    return b"", stop  # no line starts inside the split
                body, begin = head[skip + 1:], start + skip
            else:
                body = fh.read(stop)
            if body and not body.endswith(b"\n"):
                tail = []
                while True:  # finish the last line
                    chunk = fh.read(_TAIL_CHUNK)
                    end = chunk.find(b"\n")
                    if end >= 0 or not chunk:
                        tail.append(chunk[:end + 1] if end >= 0 else chunk)
                        break
                    tail.append(chunk)
                body += b"".join(tail)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path) from None
    return body, begin


def line_of(path: str, offset: int) -> int:
    """The 1-based number of the line holding byte ``offset`` (read only when an error needs it)."""
    count = 0
    with open_binary(path) as fh:
        while offset > 0:
            chunk = fh.read(min(offset, 1 << 24))
            if not chunk:
                break
            count += chunk.count(b"\n")
            offset -= len(chunk)
    return count + 1


def split_text(split: dict[str, Any]) -> tuple[bytes, int]:
    """A split's lines, checked to be text, and the byte offset where they begin."""
    from smpframe.data.textio import check_text

    path = split["path"]
    data, begin = read_lines(path, split["start"], split["stop"])
    if begin > 0 and data.startswith(b"\xef\xbb\xbf"):
        data = b"   " + data[3:]  # a BOM is only a BOM at the file's start: here, bad text
    return in_file(lambda: check_text(data, path), path, begin), begin


def in_file(parse: Callable[[], Any], path: str, begin: int) -> Any:
    """Run ``parse`` on text that begins at byte ``begin``: its errors name the file's line."""
    try:
        return parse()
    except InputError as exc:
        if exc.line is None or begin == 0:
            raise
        raise InputError(exc.message, path, exc.line + line_of(path, begin) - 1) from None


def _read_libsvm(split: dict[str, Any]) -> tuple[Rows, Facts]:
    import scipy.sparse as sp  # here, not at import: a K-Means worker never needs scipy

    from smpframe.data.matrix import parse_libsvm

    data, begin = split_text(split)
    X, y = in_file(lambda: parse_libsvm(data, split["path"], raw=True), split["path"], begin)
    X = sp.csr_matrix(X, dtype=np.float64)
    return {"X": X, "y": np.asarray(y, dtype=np.float64)}, {
        "min_index": int(X.indices.min()) if X.nnz else None,
        "max_index": int(X.indices.max()) if X.nnz else -1}


def _libsvm_layout(facts: list[Facts], path: str) -> dict[str, Any]:
    from smpframe.data import budget

    lows = [f["min_index"] for f in facts if f["min_index"] is not None]
    shift = 0 if lows and min(lows) == 0 else 1  # 1-based unless some index is 0
    width = max(max(f["max_index"] for f in facts) + 1 - shift, 0)
    if width == 0:
        raise InputError("no features in file", path)
    budget.check(width * budget.BYTES_PER_FEATURE, f"{width} features (the largest index)", path)
    return {"shift": shift, "width": width}


def _libsvm_finish(rows: Rows, plan: dict[str, Any]) -> Rows:
    X = rows["X"]
    indices = X.indices - plan["shift"] if plan["shift"] else X.indices
    return {"X": type(X)((X.data, indices, X.indptr), shape=(X.shape[0], plan["width"])),
            "y": rows["y"]}


def _read_csv(split: dict[str, Any]) -> tuple[Rows, Facts]:
    from smpframe.data.dense import parse_csv

    data, begin = split_text(split)
    X = in_file(lambda: parse_csv(data, split["path"], header=begin == 0), split["path"], begin)
    return {"X": X}, {"width": int(X.shape[1]) if X.shape[0] else None, "begin": begin}


def same_width(facts: list[Facts], path: str) -> dict[str, Any]:
    """Every split's lines have the first split's field count (``width``; None: no lines)."""
    widths = [f for f in facts if f["width"] is not None]
    odd = next((f for f in widths if f["width"] != widths[0]["width"]), None)
    if odd is not None:
        try:
            line = line_of(path, odd["begin"])
        except OSError:
            line = None
        raise InputError(f"expected {widths[0]['width']} fields (as on the lines before), "
                         f"got {odd['width']}", path, line)
    return {"width": widths[0]["width"]}


def _same(rows: Rows, plan: dict[str, Any]) -> Rows:
    return rows


# ---- .npy ---------------------------------------------------------------------------------

def _npy_rows(path: str) -> int:
    """Rows of a 2-D numeric ``.npy`` file (its header checked against the file's size)."""
    from smpframe.data.dense import npy_shape

    _local(path, ".npy")
    return npy_shape(path)[0]


def _local(path: str, what: str) -> None:
    if is_url(path):
        raise InputError(f"{what} input is read from a local path (a memory map), not a URL", path)


def _read_npy(split: dict[str, Any]) -> tuple[Rows, Facts]:
    from smpframe.data.dense import check_dense, npy_shape

    path = split["path"]
    _local(path, ".npy")
    npy_shape(path)
    a, b = split["start"], split["stop"]
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)[a:b]
    except (OSError, ValueError) as exc:
        raise InputError(f"not a readable .npy array: {exc}", path) from None
    return {"X": check_dense(X, path, first_row=a, allow_empty=True)}, {}


def _read_parquet(split: dict[str, Any]) -> tuple[Rows, Facts]:
    from smpframe.data import parquet

    return parquet.read_groups(split["path"], split["start"], split["stop"], **split["options"])


def _parquet_layout(facts: list[Facts], path: str) -> dict[str, Any]:
    return {"width": len(facts[0]["features"])}


#: reader name -> (read one split, combine facts into a layout, apply the layout)
READERS: dict[str, tuple[Callable, Callable, Callable]] = {
    "libsvm": (_read_libsvm, _libsvm_layout, _libsvm_finish),
    "csv": (_read_csv, same_width, _same),
    "npy": (_read_npy, lambda facts, path: {}, _same),
    "parquet": (_read_parquet, _parquet_layout, _same),
}


def _register_formats() -> None:
    """LDA's corpus formats (UCI docword, LDA-C, plain text: :mod:`smpframe.data.text`) and
    rating triplets (:mod:`smpframe.data.rating_splits`)."""
    from smpframe.data import rating_splits, text
    READERS.update(text.SPLIT_READERS)
    READERS.update(rating_splits.SPLIT_READERS)


_register_formats()
