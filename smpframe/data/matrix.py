"""Loaders for feature matrices and target vectors (LIBSVM, Matrix Market, one number per line).

Every bad input raises :class:`~smpframe.errors.InputError` naming the file and,
where there is one, the 1-based line.
"""

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import scipy.sparse as sp

from smpframe.data import budget
from smpframe.data.libsvm_fast import read_libsvm_fast
from smpframe.data.textio import (MAX_INDEX, Table, parse_int, parse_number, quote, read_table,
                                  read_text, too_large)
from smpframe.errors import InputError


def load_libsvm(path: str | Path, n_features: int | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """Load a LIBSVM/SVMlight file as (CSR float64 X, float64 y).

    Indices are 1-based unless some index is 0 (then the file is read as 0-based);
    ``qid:`` fields are ignored. Plain files take the vectorised reader; the rest
    (comments, ``qid:``, anything it will not judge) scikit-learn parses, and when
    that fails (or yields NaN/Inf) the file is re-scanned in Python to report the
    first bad line.
    """
    if n_features is not None and not 1 <= n_features <= MAX_INDEX:
        raise InputError(f"n_features must be between 1 and {MAX_INDEX}, got {n_features}")
    data = read_text(path)
    X, y = parse_libsvm(data, path, n_features)
    if X.shape[0] == 0:
        raise InputError("file is empty" if not data.strip() else "no samples in file", path)
    budget.check(X.shape[1] * budget.BYTES_PER_FEATURE, f"{X.shape[1]} features (the largest index)",
                 path)
    return X, y


def parse_libsvm(data: bytes, path: str | Path, n_features: int | None = None,
                 raw: bool = False) -> tuple[sp.csr_matrix, np.ndarray]:
    """(X, y) of LIBSVM text ``data`` read from ``path`` (named in errors, with the line).

    ``raw`` keeps indices as written (see :func:`read_libsvm_fast`); a split of a file
    passes it, and the file's base is decided from every split's smallest index.
    """
    fast = read_libsvm_fast(data, n_features, raw)
    if fast is not None:
        return fast
    if not data.strip():
        return sp.csr_matrix((0, n_features or 0)), np.zeros(0)
    from sklearn.datasets import load_svmlight_file  # half a second of import: only here

    try:
        X, y = load_svmlight_file(io.BytesIO(data), n_features=n_features, dtype=np.float64,
                                  zero_based=True if raw else "auto")
    except Exception as exc:  # ValueError, OverflowError...: translated to file:line below
        _raise_libsvm_error(data, path, n_features, str(exc))
    if not (np.isfinite(X.data).all() and np.isfinite(y).all()):
        _raise_libsvm_error(data, path, n_features, "non-finite value")
    return X, y


def _raise_libsvm_error(data: bytes, path: str | Path, n_features: int | None, fallback: str) -> NoReturn:
    """Re-scan a LIBSVM file that failed to load and raise at its first bad line.

    ``fallback`` describes the error when no line is found to blame.
    """
    zero_based = False
    over_1based = over_0based = None  # first (line, index) too large for n_features
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        tokens = [t.decode("utf-8") for t in raw.split(b"#", 1)[0].split()]
        if not tokens:
            continue
        indices = _libsvm_line(tokens, path, lineno)
        zero_based |= 0 in indices[:1]
        if n_features is not None and indices:
            if over_1based is None and indices[-1] > n_features:
                over_1based = (lineno, indices[-1])
            if over_0based is None and indices[-1] >= n_features:
                over_0based = (lineno, indices[-1])
    over = over_0based if zero_based else over_1based
    if over:
        raise InputError(f"feature index {over[1]} exceeds n_features={n_features}", path, over[0])
    raise InputError(f"cannot parse LIBSVM data: {fallback}", path)


def _libsvm_line(tokens: list[str], path: str | Path, lineno: int) -> list[int]:
    """Check one LIBSVM line (label, then index:value pairs); return its feature indices."""

    def fail(message: str) -> NoReturn:
        raise InputError(message, path, lineno)

    label = parse_number(tokens[0])
    if label is None:
        fail(f"label {quote(tokens[0])} is not a number")
    if not np.isfinite(label):
        fail(f"label {quote(tokens[0])} is not finite")
    indices: list[int] = []
    for tok in tokens[1:]:
        name, colon, value = tok.partition(":")
        if not colon:
            fail(f"expected index:value, got {quote(tok)}")
        if name == "qid":  # query ids are ignored
            continue
        index = parse_int(name)
        if index is None:
            fail(f"feature index {quote(name)} is not an integer")
        if index < 0:
            fail(f"feature index {index} is negative")
        if index > MAX_INDEX:
            fail(too_large(index, "feature index"))
        if indices and index <= indices[-1]:
            fail(f"feature indices must be increasing ({index} after {indices[-1]})")
        number = parse_number(value)
        if number is None:
            fail(f"value {quote(value)} is not a number")
        if not np.isfinite(number):
            fail(f"value {quote(value)} is not finite")
        indices.append(index)
    return indices


# --------------------------------------------------------------------------- Matrix Market

_MM_FIELDS = {"real", "double", "integer", "pattern"}
_MM_SYMMETRIES = {"general", "symmetric", "skew-symmetric"}


@dataclass
class _MMHeader:
    fmt: str  # "coordinate" or "array"
    field: str
    symmetry: str
    shape: tuple[int, int]
    nnz: int  # entries promised by the size line
    body: int  # byte offset of the first entry line
    body_line: int  # its line number


def mm_header(data: bytes, path: str | Path) -> _MMHeader:
    """Parse and check the banner and size line of a Matrix Market file."""
    if not data.strip():
        raise InputError("file is empty", path)
    first = data.split(b"\n", 1)[0]
    banner = first.decode("utf-8").split()
    if not banner or banner[0] != "%%MatrixMarket":
        raise InputError("missing '%%MatrixMarket' header", path, 1)
    if len(banner) != 5:
        raise InputError("header must be '%%MatrixMarket matrix <format> <field> <symmetry>'", path, 1)
    obj, fmt, field, symmetry = (t.lower() for t in banner[1:])
    problem = (
        f"unsupported object {quote(obj)} (expected 'matrix')" if obj != "matrix"
        else f"unknown format {quote(fmt)}" if fmt not in ("coordinate", "array")
        else "complex values are not supported" if field == "complex"
        else f"unknown field {quote(field)}" if field not in _MM_FIELDS
        else f"unsupported symmetry {quote(symmetry)}" if symmetry not in _MM_SYMMETRIES
        else "pattern matrices must use coordinate format" if field == "pattern" and fmt == "array"
        else None
    )
    if problem:
        raise InputError(problem, path, 1)
    start, lineno = len(first) + 1, 2
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        text = data[start:end].decode("utf-8").strip()
        if text and not text.startswith("%"):
            return _mm_size(text, fmt, field, symmetry, path, lineno, end + 1)
        start, lineno = end + 1, lineno + 1
    raise InputError("missing size line", path)


def _mm_size(text: str, fmt: str, field: str, symmetry: str, path: str | Path, lineno: int, offset: int) -> _MMHeader:
    """Check the size line ``rows cols [nnz]``."""
    parts = text.split()
    want = 3 if fmt == "coordinate" else 2
    if len(parts) != want:
        raise InputError(f"size line: expected {want} integers, got {len(parts)}", path, lineno)
    sizes = [parse_int(p) for p in parts]
    for part, size in zip(parts, sizes):
        if size is None or size < 0:
            raise InputError(f"size line: {quote(part)} is not a non-negative integer", path, lineno)
    if max(sizes[:2]) > MAX_INDEX:
        raise InputError(too_large(max(sizes[:2]), "dimension"), path, lineno)
    rows, cols = sizes[0], sizes[1]
    if symmetry != "general" and rows != cols:
        raise InputError(f"a {symmetry} matrix must be square, got {rows} x {cols}", path, lineno)
    if fmt == "coordinate":
        nnz = sizes[2]
    elif symmetry == "general":
        nnz = rows * cols
    else:
        nnz = rows * (rows + 1) // 2 if symmetry == "symmetric" else rows * (rows - 1) // 2
    return _MMHeader(fmt, field, symmetry, (rows, cols), nnz, offset, lineno + 1)


def _mm_entries(data: bytes, path: str | Path, head: _MMHeader) -> Table:
    """Split the entry lines, checking their count against the size line."""
    body = blank_comments(data[head.body :])
    width = 1 if head.fmt == "array" else 2 if head.field == "pattern" else 3
    table = read_table(body, path, None, (width,), head.body_line)
    if len(table) > head.nnz:
        raise table.fail(head.nnz, f"more entries than the {head.nnz} the size line promises")
    if len(table) < head.nnz:
        raise InputError(f"file is truncated: expected {head.nnz} entries, got {len(table)}", path)
    return table


def blank_comments(body: bytes) -> bytes:
    """Matrix Market entry lines with the comment lines among them blanked (line numbers kept)."""
    return re.sub(rb"(?m)^[ \t]*%[^\n]*", b"", body) if b"%" in body else body


def mm_index(table: Table, col: int, size: int, what: str) -> np.ndarray:
    """A 1-based index column, checked against the dimension, returned 0-based."""
    index = table.ints(col, what)
    table.require((index >= 1) & (index <= size), lambda r: f"{what} {index[r]} is out of range 1..{size}")
    return index - 1


def read_matrix_market(data: bytes, path: str | Path) -> sp.coo_matrix | np.ndarray:
    """Parse checked Matrix Market text: coordinate → COO (duplicates kept), array → dense; float64.

    Symmetric and skew-symmetric matrices are expanded to full storage.
    """
    head = mm_header(data, path)
    table = _mm_entries(data, path, head)
    rows, cols = head.shape
    if head.fmt == "array":
        values = table.floats(0, "value")
        if head.symmetry == "general":
            return np.ascontiguousarray(values.reshape(cols, rows).T)
        c, r = np.triu_indices(rows, 0 if head.symmetry == "symmetric" else 1)
        r, c, values = _expand(r, c, values, head.symmetry)
        dense = np.zeros((rows, cols))
        dense[r, c] = values
        return dense
    r = mm_index(table, 0, rows, "row index")
    c = mm_index(table, 1, cols, "column index")
    values = np.ones(len(table)) if head.field == "pattern" else table.floats(2, "value")
    r, c, values = _expand(r, c, values, head.symmetry)
    return sp.coo_matrix((values, (r, c)), shape=head.shape)


def _expand(r: np.ndarray, c: np.ndarray, v: np.ndarray, symmetry: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add the mirrored off-diagonal entries of a (skew-)symmetric matrix."""
    if symmetry == "general":
        return r, c, v
    off = r != c
    sign = 1.0 if symmetry == "symmetric" else -1.0
    return np.concatenate([r, c[off]]), np.concatenate([c, r[off]]), np.concatenate([v, sign * v[off]])


def load_matrix_market(path: str | Path) -> sp.csr_matrix | np.ndarray:
    """Load a Matrix Market file: coordinate → CSR float64 (duplicates summed), array → dense float64.

    Parsed strictly here rather than by ``scipy.io.mmread``, whose parser silently
    reads ``0x10`` as 0 and ``1_0`` as 1 and ignores extra fields on a line.
    """
    matrix = read_matrix_market(read_text(path), path)
    return matrix.tocsr() if sp.issparse(matrix) else matrix


# --------------------------------------------------------------------------- targets


def load_vector(path: str | Path) -> np.ndarray:
    """Load targets: one number per line (blank lines skipped), or a one-row/one-column .mtx file."""
    data = read_text(path)
    if data.startswith(b"%%MatrixMarket"):
        matrix = read_matrix_market(data, path)
        if min(matrix.shape) > 1 or matrix.shape == (0, 0):
            rows, cols = matrix.shape
            raise InputError(f"expected a vector (one row or one column), got a {rows} x {cols} matrix", path)
        values = (matrix.toarray() if sp.issparse(matrix) else matrix).ravel()
    else:
        values = read_table(data, path, None, (1,)).floats(0, "value")
    if not len(values):
        raise InputError("file is empty" if not data.strip() else "no values in file", path)
    return values


#: what a Parquet file's columns are for the linear apps: the target by name, sparse features
PARQUET_XY = {"target": "auto", "sparse": True}


def xy_format(path: str | Path, fmt: str | None = None) -> str:
    """``fmt``, or by suffix: ``.mtx``/``.mm`` are Matrix Market, ``.parquet``/``.pq``
    Parquet, the rest LIBSVM."""
    if fmt is not None:
        return fmt
    suffix = Path(path).suffix.lower()
    return {".mtx": "mm", ".mm": "mm", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "libsvm")


def load_xy(
    path: str | Path, fmt: str | None = None, labels: str | Path | None = None
) -> tuple[sp.csr_matrix | np.ndarray, np.ndarray]:
    """Load a design matrix and its targets.

    ``fmt`` is "libsvm", "mm" or "parquet" (None: by suffix, see :func:`xy_format`).
    LIBSVM targets come from the file unless ``labels`` overrides them; Matrix Market
    targets come from ``labels`` or the sibling ``<stem>.labels``; Parquet targets are
    the column named y, label or target (:mod:`smpframe.data.parquet`).
    """
    path = Path(path)
    fmt = xy_format(path, fmt)
    if fmt == "libsvm":
        X, y = load_libsvm(path)
    elif fmt == "parquet":
        from smpframe.data.splits import read_whole
        rows = read_whole("parquet", str(path), PARQUET_XY)
        X, y = rows["X"], rows["y"]
    elif fmt == "mm":
        X = load_matrix_market(path)
        if labels is None and not path.with_suffix(".labels").is_file():
            raise InputError(
                "Matrix Market input needs a target file: pass --labels PATH "
                "or put one number per line in <stem>.labels", path
            )
        labels = path.with_suffix(".labels") if labels is None else labels
    else:
        raise InputError(f"unknown data format {quote(fmt)} (expected 'libsvm', 'mm' or 'parquet')")
    if labels is not None:
        y = load_vector(labels)
    if len(y) != X.shape[0]:
        raise InputError(f"{labels} has {len(y)} targets but {path} has {X.shape[0]} rows")
    return X, y
