"""Data files for the tests of data the workers read."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import dump_svmlight_file

from smpframe.data.synthetic import make_regression


def regression_svm(path: Path, **problem) -> str:
    """The built-in sparse regression problem (``problem``: make_regression's arguments)
    as a LIBSVM file at ``path``."""
    X, y, _ = make_regression(**problem)
    dump_svmlight_file(X, y, str(path))
    return str(path)


def write_columns(path: Path, X: np.ndarray, row_group_size: int, **targets: np.ndarray) -> Path:
    """``X``'s columns as x0, x1, ... (plus ``targets`` by name) in a Parquet file with
    row groups of ``row_group_size`` rows (skips the test without pyarrow)."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    columns = {f"x{j}": X[:, j] for j in range(X.shape[1])}
    pq.write_table(pa.table({**columns, **targets}), str(path), row_group_size=row_group_size)
    return path
