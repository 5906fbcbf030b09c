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
def block_grad(indptr, indices, data, cols, dl, w):
    """Per column in ``cols``: ``g = sum x dl`` and ``c = sum x w`` (coupling to the intercept)."""
    kb = cols.shape[0]
    g = np.empty(kb)
    c = np.empty(kb)
    for k in range(kb):
        j = cols[k]
        sg = 0.0
        sc = 0.0
        for p in range(indptr[j], indptr[j + 1]):
            v = data[p]
            i = indices[p]
            sg += v * dl[i]
            sc += v * w[i]
        g[k] = sg
        c[k] = sc
    return g, c


@njit(cache=True, nogil=True)
def block_sums(indptr, indices, data, cols, dl, w):
    """Gradient, intercept coupling and weighted Gram of the columns ``cols``.

    Returns ``(g, c, gram)``: ``g_k = sum x_k dl``, ``c_k = sum x_k w`` and the packed
    lower triangle of ``X_B^T W X_B`` (entry (k, l), k >= l, at ``k(k+1)/2 + l``),
    formed row by row from the block's entries (cost: sum over rows of the squared
    number of block entries in the row).
    """
    n = dl.shape[0]
    kb = cols.shape[0]
    g = np.zeros(kb)
    c = np.zeros(kb)
    gram = np.zeros(kb * (kb + 1) // 2)
    count = np.zeros(n, np.int64)
    total = 0
    for k in range(kb):
        j = cols[k]
        for p in range(indptr[j], indptr[j + 1]):
            v = data[p]
            i = indices[p]
            g[k] += v * dl[i]
            c[k] += v * w[i]
            count[i] += 1
            total += 1
    # rows' block entries, grouped by row (counting sort), columns in block order
    start = np.empty(n + 1, np.int64)
    start[0] = 0
    for i in range(n):
        start[i + 1] = start[i] + count[i]
    ent_k = np.empty(total, np.int64)
    ent_v = np.empty(total)
    for k in range(kb):
        j = cols[k]
        for p in range(indptr[j], indptr[j + 1]):
            i = indices[p]
            q = start[i + 1] - count[i]
            count[i] -= 1
            ent_k[q] = k
            ent_v[q] = data[p]
    for i in range(n):
        lo = start[i]
        hi = start[i + 1]
        if lo == hi:
            continue
        wi = w[i]
        for q in range(lo, hi):
            ka = ent_k[q]
            va = ent_v[q] * wi
            base = ka * (ka + 1) // 2
            for r in range(lo, q + 1):
                gram[base + ent_k[r]] += va * ent_v[r]
    return g, c, gram


@njit(cache=True, nogil=True)
def solve_block(gram, g, c, g0, h0, beta, lam, intercept, max_passes, tol):
    """Exact coordinate descent on the block's L1 Newton subproblem.

    Minimises ``g.d + g0 d0 + d^T G d / 2 + d0 c.d + h0 d0^2 / 2 + lam |beta + d|_1``
    over the block step ``d`` and the intercept step ``d0`` (``G`` full symmetric).
    Returns ``(d, d0)``.
    """
    b = g.shape[0]
    delta = np.zeros(b)
    q = np.zeros(b)  # G @ delta
    cd = 0.0         # c . delta
    d0 = 0.0
    for _ in range(max_passes):
        biggest = 0.0
        if intercept and h0 > 0.0:
            new = -(g0 + cd) / h0
            biggest = abs(new - d0)
            d0 = new
        for j in range(b):
            gjj = gram[j, j]
            if gjj <= 0.0:
                continue
            u = beta[j] + delta[j]
            z = gjj * u - (g[j] + q[j] + c[j] * d0)
            mag = abs(z) - lam
            new = (np.sign(z) * mag / gjj) if mag > 0.0 else 0.0
            step = new - u
            if step != 0.0:
                delta[j] += step
                cd += c[j] * step
                for k in range(b):
                    q[k] += gram[k, j] * step
                biggest = max(biggest, abs(step))
        if biggest <= tol:
            break
    return delta, d0


@njit(cache=True, nogil=True)
def unpack_gram(packed, b):
    """Full symmetric matrix from a packed lower triangle."""
    out = np.empty((b, b))
    k = 0
    for i in range(b):
        for j in range(i + 1):
            out[i, j] = packed[k]
            out[j, i] = packed[k]
            k += 1
    return out


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


def warm_up_scheduler() -> None:
    """Load the scheduler's kernels before the clock starts."""
    one = np.ones(1)
    tiny = (np.array([0, 1], np.int32), np.array([0], np.int32), one)
    block_sums(*tiny, np.zeros(1, np.int64), one, one)
    solve_block(unpack_gram(one, 1), one, one, 0.0, 1.0, one, 0.1, True, 1, 0.0)


def warm_up(parts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Load every kernel (numba cache) with the dtypes of ``parts`` before the clock starts."""
    indptr, indices, data = parts
    tiny = (np.array([0, 1], indptr.dtype), np.array([0], indices.dtype), np.array([1.0], data.dtype))
    v = np.zeros(1)
    one = np.ones(1)
    cols = np.zeros(1, np.int64)
    all_rows(v.copy(), one, v.copy(), v.copy(), v.copy(), v.copy())
    block_sums(*tiny, cols, v, v)
    block_grad(*tiny, cols, v, v)
    full_sums(*tiny, v, v, v, one)
    apply_step(*tiny, cols, one, 0.5, v.copy(), one, v.copy(), v.copy(), v.copy(), v.copy(),
               np.zeros(1, np.bool_), np.zeros(1, np.int64))
