"""Parquet input (pyarrow): numeric columns as rows, split by row groups.

Every column must be numeric (integers, floats or booleans) and free of nulls, NaN and
Inf; errors name the file, the column and the row (0-based, counted from the file's
start). With ``target`` the column of that name (or the first of several candidate
names present) is the target ``y`` and the others are the features; ``sparse`` makes
the features a CSR matrix (what the linear apps take).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from smpframe.errors import InputError

#: the names a target column may have, first match wins (``target="auto"``)
TARGET_NAMES = ("y", "label", "target")


def _open(path: str) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("reading Parquet needs pyarrow: pip install 'smpframe[parquet]'",
                         path) from None
    from smpframe.data.splits import is_url, open_binary

    try:
        return pq.ParquetFile(open_binary(path) if is_url(path) else path)
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except Exception as exc:  # pyarrow's ArrowInvalid and friends: not Parquet
        raise InputError(f"not a readable Parquet file: {exc}", path) from None


def group_edges(path: str, n: int) -> list[int]:
    """Row-group boundaries cutting ``path`` into at most ``n`` runs of about equal rows."""
    meta = _open(path).metadata
    groups = meta.num_row_groups
    if groups == 0 or meta.num_rows == 0:
        raise InputError("no rows in file", path)
    rows = np.cumsum([meta.row_group(i).num_rows for i in range(groups)])
    n = max(1, min(n, groups))
    cuts = np.searchsorted(rows, rows[-1] * np.arange(1, n) / n, side="left") + 1
    edges = sorted({0, groups, *(int(c) for c in cuts if 0 < c < groups)})
    return edges


def read_groups(path: str, start: int, stop: int, target: str | None = None,
                sparse: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rows of row groups ``start:stop`` (``{"X"}``, plus ``"y"`` with ``target``) and facts
    (the feature columns' names)."""
    pf = _open(path)
    meta = pf.metadata
    first_row = sum(meta.row_group(i).num_rows for i in range(start))
    table = pf.read_row_groups(list(range(start, stop))) if stop > start \
        else pf.schema_arrow.empty_table()
    names = list(table.column_names)
    target_name = _target(names, target, path)
    features = [name for name in names if name != target_name]
    if not features:
        raise InputError("no feature columns", path)
    columns = {name: _numeric(table.column(name), name, path, first_row) for name in names}
    X = np.column_stack([columns[name] for name in features]) if table.num_rows \
        else np.zeros((0, len(features)))
    rows: dict[str, Any] = {"X": X}
    if sparse:
        import scipy.sparse as sp
        rows["X"] = sp.csr_matrix(X)
    if target_name is not None:
        rows["y"] = columns[target_name]
    return rows, {"features": features}


def _target(names: list[str], target: str | None, path: str) -> str | None:
    if target is None:
        return None
    wanted = TARGET_NAMES if target == "auto" else (target,)
    for name in wanted:
        if name in names:
            return name
    raise InputError(f"no target column (expected one named {' or '.join(wanted)}; "
                     f"the columns are {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})",
                     path)


def _numeric(column: Any, name: str, path: str, first_row: int) -> np.ndarray:
    """A column as float64, or an InputError naming the column and the first bad row."""
    import pyarrow as pa

    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise InputError(f"column {name!r} is {kind}, not a number", path)
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"column {name!r}, row {first_row + row} (0-based): no value (null)", path)
    values = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(f"column {name!r}, row {first_row + row} (0-based): value {values[row]} "
                         "is not finite", path)
    return values
