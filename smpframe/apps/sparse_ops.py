"""Compiled column operations on CSC matrices, shared by the regression apps.

Each takes the CSC arrays directly (``indptr, indices, data``) so a block of columns
costs its nonzeros, not scipy's per-call overhead.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def cols_dot(indptr, indices, data, cols, vec):
    """``out[k] = X[:, cols[k]] . vec``."""
    out = np.empty(cols.shape[0])
    for k in range(cols.shape[0]):
        j = cols[k]
        acc = 0.0
        for p in range(indptr[j], indptr[j + 1]):
            acc += data[p] * vec[indices[p]]
        out[k] = acc
    return out


@njit(cache=True, nogil=True)
def cols_dot_weighted(indptr, indices, data, cols, vec, weight):
    """``out[k] = sum_i X[i, c] * vec[i]`` and ``curv[k] = sum_i X[i, c]^2 * weight[i]``."""
    out = np.empty(cols.shape[0])
    curv = np.empty(cols.shape[0])
    for k in range(cols.shape[0]):
        j = cols[k]
        acc = 0.0
        acc2 = 0.0
        for p in range(indptr[j], indptr[j + 1]):
            v = data[p]
            i = indices[p]
            acc += v * vec[i]
            acc2 += v * v * weight[i]
        out[k] = acc
        curv[k] = acc2
    return out, curv


@njit(cache=True, nogil=True)
def all_cols_dot(indptr, indices, data, vec):
    """``X^T vec`` for every column."""
    d = indptr.shape[0] - 1
    out = np.empty(d)
    for j in range(d):
        acc = 0.0
        for p in range(indptr[j], indptr[j + 1]):
            acc += data[p] * vec[indices[p]]
        out[j] = acc
    return out


@njit(cache=True, nogil=True)
def cols_axpy(indptr, indices, data, cols, coef, vec):
    """``vec += sum_k coef[k] * X[:, cols[k]]`` in place."""
    for k in range(cols.shape[0]):
        j = cols[k]
        c = coef[k]
        if c == 0.0:
            continue
        for p in range(indptr[j], indptr[j + 1]):
            vec[indices[p]] += c * data[p]


def csc_parts(matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of a CSC matrix, as contiguous arrays numba accepts."""
    return (np.ascontiguousarray(matrix.indptr), np.ascontiguousarray(matrix.indices),
            np.ascontiguousarray(matrix.data, dtype=np.float64))


def warm_up() -> None:
    """Run every kernel once on a 1x1 CSC matrix (int32 indices, float64 values).

    numba loads (or compiles) on first call; doing it before the first round keeps
    that cost out of the timed solve.
    """
    tiny = (np.array([0, 1], np.int32), np.array([0], np.int32), np.array([1.0]))
    vec, cols = np.zeros(1), np.zeros(1, np.int64)
    cols_dot(*tiny, cols, vec)
    cols_dot_weighted(*tiny, cols, vec, vec)
    all_cols_dot(*tiny, vec)
    cols_axpy(*tiny, cols, np.zeros(1), vec)
