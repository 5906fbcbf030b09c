"""Rating triplets for matrix factorisation: CSV/TSV/whitespace, MovieLens, Matrix Market.

User and item ids may be any integers or strings; they are remapped to dense
0-based codes, and the original ids are kept so that a test file can be mapped
onto a training file's codes (:func:`apply_mapping`).  Parsing is vectorised
(:func:`~smpframe.data.matrix.read_table`), so 10M ratings load in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from smpframe.data.matrix import read_matrix_market
from smpframe.data.textio import Table, parse_number, quote, read_table, read_text
from smpframe.errors import InputError

SEPARATORS: dict[str, bytes | None] = {"csv": b",", "tsv": b"\t", "dat": b"::", "space": None}
"""Field separator of each delimited format ("space": runs of whitespace)."""


@dataclass
class Ratings:
    """Ratings with dense codes: rating k is ``values[k]`` by ``users[k]`` on ``items[k]``.

    ``user_ids[c]`` / ``item_ids[c]`` is the original id of code c (int64 array,
    or object array of str when some id is not a plain integer).
    """

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def load_ratings(path: str | Path, fmt: str | None = None) -> Ratings:
    """Load ``user item rating [timestamp]`` lines or a Matrix Market coordinate file.

    ``fmt`` is one of "csv", "tsv", "dat" (``::``, MovieLens ratings.dat), "space"
    (whitespace, e.g. MovieLens u.data) or "mm" (row = user, column = item, ids
    are the 1-based indices); None guesses from the suffix and the first line.  A
    first line whose rating field is not a number is a header and is skipped.
    """
    data = read_text(path)
    fmt = guess_format(path, data) if fmt is None else fmt
    if fmt == "mm":
        return _from_matrix_market(data, path)
    if fmt not in SEPARATORS:
        raise InputError(f"unknown ratings format {quote(fmt)} (expected one of csv, tsv, dat, space, mm)")
    sep = SEPARATORS[fmt]
    start, line = skip_header(data, sep)
    table = read_table(data[start:], path, sep, (3, 4), line)
    if not len(table):
        raise InputError("file is empty" if not data.strip() else "no ratings in file", path)
    users, user_ids = _encode_column(table, 0)
    items, item_ids = _encode_column(table, 1)
    return Ratings(users, items, table.floats(2, "rating"), user_ids, item_ids)


def _first_line(data: bytes) -> tuple[int, int, int]:
    """(start, end, line number) of the first non-blank line; start == len(data) if none."""
    start, lineno = 0, 1
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if data[start:end].strip():
            return start, end, lineno
        start, lineno = end + 1, lineno + 1
    return len(data), len(data), lineno


def guess_format(path: str | Path, data: bytes) -> str:
    """Matrix Market by suffix or banner; else "dat" or "csv" by the first line's
    separator; else "space" (which also reads tab-separated files)."""
    if Path(path).suffix.lower() in (".mtx", ".mm") or data.startswith(b"%%MatrixMarket"):
        return "mm"
    start, end, _ = _first_line(data)
    line = data[start:end]
    return next((fmt for fmt in ("dat", "csv") if SEPARATORS[fmt] in line), "space")


def skip_header(data: bytes, sep: bytes | None) -> tuple[int, int]:
    """(byte offset, line number) where the ratings start: after a header line, if any."""
    start, end, lineno = _first_line(data)
    fields = data[start:end].decode("utf-8").split(None if sep is None else sep.decode())
    if len(fields) >= 3 and parse_number(fields[2].strip()) is None:
        return end + 1, lineno + 1
    return 0, 1


def _encode_column(table: Table, col: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes and original ids of an id column: integers when every id is a
    canonical integer (no leading zeros, so "007" stays distinct from "7"), else str."""
    values = id_column(table, col)
    if values.dtype.kind == "i":
        return _encode_ints(values)
    uniq, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), as_str(uniq)


def id_column(table: Table, col: int) -> np.ndarray:
    """An id column as written: int64 when every id is a canonical integer, else bytes."""
    values, ok = table.try_ints(col)
    s, e, buf = table.starts[:, col], table.ends[:, col], table.buf
    first, second = buf[s], buf[np.minimum(s + 1, len(buf) - 1)]
    padded = ((first == ord("0")) & (e - s > 1)) | ((first == ord("-")) & (second == ord("0")))
    return values if (ok & ~padded).all() else table.strings(col)


def as_str(ids: np.ndarray) -> np.ndarray:
    """Bytes ids as the object array of str a :class:`Ratings` keeps."""
    return np.array([u.decode("utf-8") for u in ids], dtype=object)


def _encode_ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes (in sorted id order) and sorted unique ids of an int64 array.

    A lookup table is used when the ids are dense enough (O(n), faster than sorting).
    """
    lo, hi = int(values.min()), int(values.max())
    span = hi - lo + 1
    if span > 4 * len(values) + 1024:
        ids, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64), ids
    present = np.zeros(span, bool)
    present[values - lo] = True
    code_of = np.cumsum(present) - 1
    return code_of[values - lo], np.flatnonzero(present) + lo


def _from_matrix_market(data: bytes, path: str | Path) -> Ratings:
    """Ratings from a coordinate Matrix Market file; ids are the 1-based row/column numbers."""
    matrix = read_matrix_market(data, path)
    if not sp.issparse(matrix):
        raise InputError("Matrix Market ratings must use coordinate format, not array", path)
    if not matrix.nnz:
        raise InputError("no ratings in file", path)
    users, user_ids = _encode_ints(matrix.row.astype(np.int64) + 1)
    items, item_ids = _encode_ints(matrix.col.astype(np.int64) + 1)
    return Ratings(users, items, matrix.data.astype(np.float64), user_ids, item_ids)


def apply_mapping(
    ratings: Ratings, user_ids: np.ndarray, item_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map original ids (e.g. a test file's ``t.user_ids[t.users]``) to ``ratings``' codes.

    Returns (users, items, known_mask); an id unseen in ``ratings`` gets code -1,
    and known_mask is True where both user and item are known.
    """
    users = _lookup(ratings.user_ids, np.asarray(user_ids))
    items = _lookup(ratings.item_ids, np.asarray(item_ids))
    return users, items, (users >= 0) & (items >= 0)


def _lookup(known: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Position of each ``query`` id in ``known`` (-1 when absent).

    Integer ids compare as integers; if either side holds strings both compare as str.
    """
    if not (known.dtype.kind in "iu" and query.dtype.kind in "iu"):
        known, query = known.astype(str), query.astype(str)
    if not len(known):
        return np.full(len(query), -1, np.int64)
    order = np.argsort(known, kind="stable")
    pos = np.minimum(np.searchsorted(known[order], query), len(known) - 1)
    return np.where(known[order][pos] == query, order[pos], -1).astype(np.int64)

