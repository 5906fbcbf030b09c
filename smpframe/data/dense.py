"""Dense feature matrices: ``.npy``, numeric CSV, Parquet and (densified) LIBSVM, plus Gaussian blobs.

:func:`load_dense` returns a C-contiguous float64 ``(n, d)`` array with at least one
row and one column and only finite values; every bad input raises
:class:`~smpframe.errors.InputError` naming the file and, for text formats, the
1-based line.

CSV rules: fields are separated by commas, or by runs of whitespace when the first
non-blank line has no comma; blank lines are skipped; every row must have the same
number of fields. The first non-blank line is a header (and skipped) when *none*
of its fields is a number (``x,y,z``); a first line that mixes numbers and other
text is data, so a typo on line 1 is reported rather than silently dropped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from smpframe.data import budget
from smpframe.errors import InputError

FORMATS = ("npy", "csv", "libsvm", "parquet")
_SUFFIXES = {
    ".npy": "npy", ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".dat": "csv",
    ".svm": "libsvm", ".libsvm": "libsvm", ".svmlight": "libsvm",
}
MAX_DENSE_CELLS = 2**31
"""Largest n * d accepted when densifying a sparse file (16 GiB of float64)."""


def guess_format(path: str | Path) -> str:
    """``npy``, ``csv`` or ``libsvm`` from the file's suffix (``.gz`` etc. not supported)."""
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"cannot tell the format from the suffix; pass --format "
                         f"({', '.join(FORMATS)})", str(path))
    return fmt


def load_dense(path: str | Path, fmt: str | None = None) -> np.ndarray:
    """Read a dense ``(n, d)`` float64 matrix from ``path`` (format by suffix unless ``fmt``)."""
    fmt = fmt or guess_format(path)
    if fmt == "npy":
        X = _load_npy(path)
    elif fmt == "csv":
        X = _load_csv(path)
    elif fmt == "libsvm":
        X = _load_libsvm_dense(path)
    elif fmt == "parquet":
        from smpframe.data.splits import read_whole
        X = read_whole("parquet", str(path))["X"]
    else:
        raise InputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return np.ascontiguousarray(X, dtype=np.float64)


def check_dense(X: np.ndarray, path: str | Path | None = None, first_row: int = 0,
                allow_empty: bool = False) -> np.ndarray:
    """``X`` as a C-contiguous 2-D float64 array, rejecting empty, non-numeric and non-finite data.

    Used for arrays given in memory and for ``.npy`` files (no line numbers:
    the first bad cell is named by 0-based row and column; ``X`` starts at row
    ``first_row`` of the file). ``allow_empty``: no rows is fine (a split of a file).
    """
    where = None if path is None else str(path)
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise InputError(f"expected a numeric array, got dtype {X.dtype}", where)
    if X.ndim != 2:
        raise InputError(f"expected a 2-D array (rows x features), got shape {X.shape}", where)
    if (X.shape[0] == 0 and not allow_empty) or X.shape[1] == 0:
        raise InputError(f"empty data: {X.shape[0]} rows x {X.shape[1]} features", where)
    X = np.ascontiguousarray(X, dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.unravel_index(int(np.argmax(bad)), X.shape)
        raise InputError(f"row {i + first_row}, column {j} (0-based): value {X[i, j]} is not finite",
                         where)
    return X


def _npy_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """(shape, dtype, header bytes) of a plain .npy file; None when it is not one."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                return None
            shape, _, dtype = read_header(fh)
            return tuple(int(n) for n in shape), dtype, fh.tell()
    except (OSError, ValueError, SyntaxError, TypeError):
        return None


def _check_npy_claim(path: str | Path, header: tuple[tuple[int, ...], np.dtype, int] | None = None) -> None:
    """Compare the shape an .npy header claims with the file's size and the budget."""
    header = header or _npy_header(path)
    if header is None:
        return  # not a plain .npy (np.load says what is wrong with it)
    shape, dtype, header_end = header
    size = Path(path).stat().st_size
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > size - header_end:
        raise InputError(f"its header claims a {' x '.join(map(str, shape))} {dtype} array "
                         f"({budget.human(nbytes)}) but the file holds {budget.human(size - header_end)}",
                         str(path))
    budget.check(nbytes, f"a {' x '.join(map(str, shape))} array", path)


def npy_shape(path: str | Path) -> tuple[int, ...]:
    """The (rows, columns) of a 2-D numeric ``.npy`` file, its claim checked (a split's reader)."""
    if not Path(path).is_file():
        raise InputError("file not found" if not Path(path).exists() else "is not a file", str(path))
    header = _npy_header(path)
    if header is None:
        raise InputError("not a readable .npy array", str(path))
    shape, dtype, _ = header
    if dtype.kind not in "biuf" or len(shape) != 2:
        raise InputError(f"expected a 2-D numeric array, got shape {shape} of {dtype}", str(path))
    _check_npy_claim(path, header)
    return shape


def _load_npy(path: str | Path) -> np.ndarray:
    _check_npy_claim(path)
    try:
        X = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError("file not found", str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", str(path)) from None
    except ValueError as exc:  # object arrays, a bad header, an .npz given as .npy ...
        raise InputError(f"not a readable .npy array: {exc}", str(path)) from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read .npy file: {exc}", str(path)) from None
    if not isinstance(X, np.ndarray):  # np.load of an .npz archive
        raise InputError("expected a single .npy array (got an .npz archive)", str(path))
    return check_dense(X, path)


def _first_line(data: bytes) -> tuple[int, bytes]:
    """(0-based index, text) of the first non-blank line; (-1, b"") when there is none."""
    for i, raw in enumerate(data.split(b"\n")):
        if raw.strip():
            return i, raw
    return -1, b""


def _load_csv(path: str | Path) -> np.ndarray:
    from smpframe.data.textio import read_text

    data = read_text(path)
    if _first_line(data)[0] < 0:
        raise InputError("file is empty", str(path))
    X = parse_csv(data, path, header=True)
    if X.shape[0] == 0:
        raise InputError("no data rows (only a header)", str(path))
    return X


def parse_csv(data: bytes, path: str | Path, header: bool) -> np.ndarray:
    """The numbers of CSV text ``data`` (rules above) as an ``(n, d)`` array; ``header``:
    its first non-blank line may be a header (false for a split that starts mid-file)."""
    from smpframe.data.textio import parse_number, read_table

    first, line = _first_line(data)
    if first < 0:
        return np.zeros((0, 0))
    sep = b"," if b"," in line else None
    fields = [f.strip().decode("utf-8", "replace") for f in
              (line.split(sep) if sep is not None else line.split())]
    skip = first
    if header and all(parse_number(f) is None for f in fields):
        skip = first + 1  # a header line
    parts = data.split(b"\n", skip)
    body = parts[skip] if len(parts) > skip else b""
    if not body.strip():
        return np.zeros((0, len(fields)))
    _, row = _first_line(body)
    width = len(row.split(sep) if sep is not None else row.split())
    table = read_table(body, path, sep, (width,), first_line=skip + 1)
    # every column parsed; the error reported is the one on the earliest line
    columns, first_error = [], None
    for col in range(width):
        try:
            columns.append(table.floats(col, "value"))
        except InputError as exc:
            if first_error is None or (exc.line or 0) < (first_error.line or 0):
                first_error = exc
    if first_error is not None:
        raise first_error
    return np.column_stack(columns)


def _load_libsvm_dense(path: str | Path) -> np.ndarray:
    from smpframe.data.matrix import load_libsvm

    X, _ = load_libsvm(path)
    n, d = X.shape
    if d == 0:
        raise InputError("no features in file", str(path))
    if n * d > MAX_DENSE_CELLS:
        raise InputError(f"{n} x {d} is too large to densify (more than {MAX_DENSE_CELLS} cells)",
                         str(path))
    return X.toarray()


def make_blobs(n: int = 270_000, d: int = 3, centers: int = 64, seed: int = 0,
               std: float = 1.0, box: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: ``centers`` centres uniform in ``[-box, box]^d``, spread ``std``.

    Points go to centres round-robin (sizes differ by at most one), then are shuffled.
    Returns ``(X, labels)``: float64 ``(n, d)`` points and each point's true blob.
    Deterministic in ``seed``.
    """
    if n < 1 or d < 1 or centers < 1:
        raise ValueError(f"need n, d, centers >= 1, got n={n}, d={d}, centers={centers}")
    rng = np.random.default_rng(seed)
    true_centers = rng.uniform(-box, box, size=(centers, d))
    labels = rng.permutation(np.arange(n) % centers)
    X = true_centers[labels] + std * rng.standard_normal((n, d))
    return X, labels.astype(np.int64)
