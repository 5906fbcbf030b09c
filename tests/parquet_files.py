"""Parquet files for the tests of data the workers read (skips the test without pyarrow)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_columns(path: Path, X: np.ndarray, row_group_size: int, **targets: np.ndarray) -> Path:
    """``X``'s columns as x0, x1, ... (plus ``targets`` by name) in row groups of
    ``row_group_size`` rows."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    columns = {f"x{j}": X[:, j] for j in range(X.shape[1])}
    pq.write_table(pa.table({**columns, **targets}), str(path), row_group_size=row_group_size)
    return path
