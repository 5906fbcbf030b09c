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

from smpframe.apps import sparse_ops


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
def newton_block(indptr, indices, data, cols, w, hess, g, g0, beta, lam, intercept, max_passes,
                 rel_tol):
    """Coordinate descent on the block's L1-regularised Newton model (GLMNET's subproblem).

    Minimises over the block step ``d`` (and the intercept step ``d0``)::

        g.d + g0 d0 + (1/2n) sum_i w_i (x_iB.d + d0)^2 + lam |beta + d|_1

    with ``g``, ``g0`` the gradient (already divided by n), ``w`` the rows'
    curvatures and ``hess`` the block's diagonal ``(1/n) sum_i w_i x_ij^2`` (the
    workers sum it with the gradient, in parallel). The product ``r = X_B d + d0`` is
    kept up to date (beside ``w``), so a pass costs the block's nonzeros (plus n for the
    intercept), with no Gram matrix. Passes stop when the largest change falls below
    ``rel_tol`` times the first pass's, or after ``max_passes``. Returns ``(d, d0, quad)``
    with ``quad = (1/n) sum w r^2``.
    """
    n = w.shape[0]
    kb = cols.shape[0]
    inv_n = 1.0 / n
    # (w_i, r_i) side by side: the column loops' random row accesses touch one cache line
    wr = np.zeros((n, 2))
    h0 = 0.0
    for i in range(n):
        wr[i, 0] = w[i]
        h0 += w[i]
    h0 *= inv_n
    # 0/1 data (bag-of-words): skip the multiplications by x (bit-identical results)
    unit = True
    for k in range(kb):
        j = cols[k]
        for p in range(indptr[j], indptr[j + 1]):
            if data[p] != 1.0:
                unit = False
                break
        if not unit:
            break
    delta = np.zeros(kb)
    d0 = 0.0
    first = -1.0
    for _ in range(max_passes):
        biggest = 0.0
        if intercept and h0 > 0.0:
            acc = 0.0
            for i in range(n):
                acc += wr[i, 0] * wr[i, 1]
            step = -(g0 + acc * inv_n) / h0
            if step != 0.0:
                d0 += step
                for i in range(n):
                    wr[i, 1] += step
                biggest = abs(step)
        for k in range(kb):
            hk = hess[k]
            if hk <= 0.0:
                continue
            j = cols[k]
            lo, hi = indptr[j], indptr[j + 1]
            acc = 0.0
            if unit:
                for p in range(lo, hi):
                    i = indices[p]
                    acc += wr[i, 0] * wr[i, 1]
            else:
                for p in range(lo, hi):
                    i = indices[p]
                    acc += data[p] * wr[i, 0] * wr[i, 1]
            grad = g[k] + acc * inv_n
            u = beta[k] + delta[k]
            z = hk * u - grad
            mag = abs(z) - lam
            new = (np.sign(z) * mag / hk) if mag > 0.0 else 0.0
            step = new - u
            if step != 0.0:
                delta[k] += step
                if unit:
                    for p in range(lo, hi):
                        wr[indices[p], 1] += step
                else:
                    for p in range(lo, hi):
                        wr[indices[p], 1] += step * data[p]
                biggest = max(biggest, abs(step))
        if first < 0.0:
            first = biggest
        if biggest <= rel_tol * first:
            break
    quad = 0.0
    for i in range(n):
        quad += wr[i, 0] * wr[i, 1] * wr[i, 1]
    return delta, d0, quad * inv_n


@njit(cache=True, nogil=True)
def full_sums(indptr, indices, data, dl, w, a, y):
    """For every column: ``g = sum x dl``, ``h = sum x^2 w`` and ``gp = sum_{y=+1} x a``."""
    d = indptr.shape[0] - 1
    n = dl.shape[0]
    ap = np.empty(n)  # a on the positive rows, 0 elsewhere: keeps the column loop branch-free
    for i in range(n):
        ap[i] = a[i] if y[i] > 0.0 else 0.0
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
            sp += v * ap[i]
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


def warm_up_scheduler() -> None:
    """Load the scheduler's kernels before the clock starts."""
    one = np.ones(1)
    tiny = (np.array([0, 1], np.int32), np.array([0], np.int32), one)
    newton_block(*tiny, np.zeros(1, np.int64), one, one, one, 0.0, one, 0.1, True, 2, 0.1)


def warm_up() -> None:
    """Load every worker kernel (numba cache) before the clock starts (int32 CSC indices)."""
    tiny = (np.array([0, 1], np.int32), np.array([0], np.int32), np.array([1.0]))
    v = np.zeros(1)
    one = np.ones(1)
    cols = np.zeros(1, np.int64)
    all_rows(v.copy(), one, v.copy(), v.copy(), v.copy(), v.copy())
    sparse_ops.warm_up()
    full_sums(*tiny, v, v, v, one)
    apply_step(*tiny, cols, one, 0.5, v.copy(), one, v.copy(), v.copy(), v.copy(), v.copy(),
               np.zeros(1, np.bool_), np.zeros(1, np.int64))
