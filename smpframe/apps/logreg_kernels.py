"""Compiled loops of sparse logistic regression: per-row loss terms and CSC column sums.

Per row i with label ``y_i`` in {-1,+1} and margin ``m_i = x_i.beta + beta0`` a
fragment keeps ``z = y m`` derived terms:

* ``loss_i = log(1 + exp(-z))``,
* ``a_i = sigmoid(-z)`` (the probability given to the wrong class),
* ``dl_i = -y_i a_i`` (d loss_i / d m_i) and ``w_i = a_i (1 - a_i)`` (d^2 loss_i / d m_i^2).

Only rows whose margin changes are recomputed after a step.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _row(m, y, i, loss, a, dl, w):
    z = y[i] * m[i]
    if z >= 0.0:
        t = math.exp(-z)
        loss[i] = math.log1p(t)
        p = t / (1.0 + t)
    else:
        t = math.exp(z)
        loss[i] = -z + math.log1p(t)
        p = 1.0 / (1.0 + t)
    a[i] = p
    dl[i] = -y[i] * p
    w[i] = p * (1.0 - p)


@njit(cache=True, nogil=True)
def all_rows(m, y, loss, a, dl, w):
    """Recompute every row's terms from its margin."""
    for i in range(m.shape[0]):
        _row(m, y, i, loss, a, dl, w)


@njit(cache=True, nogil=True)
def block_sums(indptr, indices, data, cols, dl, w, mass):
    """Per column c in ``cols``: ``g = sum x dl``, ``h = sum x^2 w``, ``c = sum x w`` and
    the safe curvature ``s = sum |x| r w``, where ``r_i = sum_{k in cols} |x_ik|``.

    ``s_j >= sum_k |H_jk|`` for the block's Hessian ``H = X_B^T W X_B``, so
    ``diag(s) >= H`` (Gershgorin): a separable model with curvature s bounds the
    block's quadratic model from above, and per-coordinate steps on it, taken all
    at once, still decrease it. ``mass`` is a zeroed row buffer, zeroed again on return.
    """
    k_cols = cols.shape[0]
    for k in range(k_cols):
        j = cols[k]
        for p in range(indptr[j], indptr[j + 1]):
            mass[indices[p]] += abs(data[p])
    g = np.empty(k_cols)
    h = np.empty(k_cols)
    c = np.empty(k_cols)
    s = np.empty(k_cols)
    for k in range(k_cols):
        j = cols[k]
        sg = 0.0
        sh = 0.0
        sc = 0.0
        ss = 0.0
        for p in range(indptr[j], indptr[j + 1]):
            v = data[p]
            i = indices[p]
            wi = w[i]
            sg += v * dl[i]
            vw = v * wi
            sc += vw
            sh += v * vw
            ss += abs(vw) * mass[i]
        g[k] = sg
        h[k] = sh
        c[k] = sc
        s[k] = ss
    for k in range(k_cols):
        j = cols[k]
        for p in range(indptr[j], indptr[j + 1]):
            mass[indices[p]] = 0.0
    return g, h, c, s


@njit(cache=True, nogil=True)
def full_sums(indptr, indices, data, dl, w, a, y):
    """For every column: ``g = sum x dl``, ``h = sum x^2 w`` and ``gp = sum_{y=+1} x a``."""
    d = indptr.shape[0] - 1
    g = np.empty(d)
    h = np.empty(d)
    gp = np.empty(d)
    for j in range(d):
        sg = 0.0
        sh = 0.0
        sp = 0.0
        for p in range(indptr[j], indptr[j + 1]):
            v = data[p]
            i = indices[p]
            sg += v * dl[i]
            sh += v * v * w[i]
            if y[i] > 0.0:
                sp += v * a[i]
        g[j] = sg
        h[j] = sh
        gp[j] = sp
    return g, h, gp


@njit(cache=True, nogil=True)
def apply_step(indptr, indices, data, cols, delta, d0, m, y, loss, a, dl, w, mark, touched):
    """``m += X[:, cols] delta + d0`` and refresh the terms of every row that moved."""
    n_touched = 0
    for k in range(cols.shape[0]):
        j = cols[k]
        dk = delta[k]
        if dk == 0.0:
            continue
        for p in range(indptr[j], indptr[j + 1]):
            i = indices[p]
            m[i] += dk * data[p]
            if not mark[i]:
                mark[i] = True
                touched[n_touched] = i
                n_touched += 1
    if d0 != 0.0:
        for i in range(m.shape[0]):
            m[i] += d0
            _row(m, y, i, loss, a, dl, w)
        for t in range(n_touched):
            mark[touched[t]] = False
        return
    for t in range(n_touched):
        i = touched[t]
        mark[i] = False
        _row(m, y, i, loss, a, dl, w)


def warm_up(parts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Load every kernel (numba cache) with the dtypes of ``parts`` before the clock starts."""
    indptr, indices, data = parts
    tiny = (np.array([0, 1], indptr.dtype), np.array([0], indices.dtype), np.array([1.0], data.dtype))
    v = np.zeros(1)
    one = np.ones(1)
    cols = np.zeros(1, np.int64)
    all_rows(v.copy(), one, v.copy(), v.copy(), v.copy(), v.copy())
    block_sums(*tiny, cols, v, v, np.zeros(1))
    full_sums(*tiny, v, v, v, one)
    apply_step(*tiny, cols, one, 0.5, v.copy(), one, v.copy(), v.copy(), v.copy(), v.copy(),
               np.zeros(1, np.bool_), np.zeros(1, np.int64))
