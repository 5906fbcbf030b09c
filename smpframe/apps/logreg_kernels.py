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
    # branch-free, one exp and one log (log1p costs ~3x log here; 1 + t loses at most
    # 1e-16 of a row's loss, far below any step the line search compares)
    z = y[i] * m[i]
    t = math.exp(-abs(z))
    q = 1.0 + t
    loss[i] = math.log(q) + max(-z, 0.0)
    p = (t if z >= 0.0 else 1.0) / q
    a[i] = p
    dl[i] = -y[i] * p
    w[i] = p * (1.0 - p)


@njit(cache=True, nogil=True)
def all_rows(m, y, loss, a, dl, w):
    """Recompute every row's terms from its margin."""
    for i in range(m.shape[0]):
        _row(m, y, i, loss, a, dl, w)


@njit(cache=True, nogil=True)
def local_newton(indptr, indices, data, unit, cols, w, g, h, beta, lam, intercept, g0, h0,
                 max_passes, tol, seed, weight):
    """Coordinate descent on one fragment's view of the block's L1 Newton model (newGLMNET's
    subproblem), over the fragment's own rows.

    Minimises over the block step ``d`` (and the intercept step ``d0``)::

        g.d + g0 d0 + (1/2) d^T H d + lam |beta + d|_1

    where ``g``, ``g0`` (the gradient) and ``h``, ``h0`` (the Hessian's diagonal) come
    from the scheduler, and the cross terms of ``H`` are this fragment's rows',
    ``weight x X_f^T W_f X_f`` (``weight`` = 1/n_f: they stand for every row; 1/n: for
    themselves). A diagonal is ``max(h_j, local)``, so the model stays convex (positive
    semi-definite) whatever the split. ``r = X_f d + d0`` is kept beside ``w`` (less a
    shift common to every row, kept apart), so a pass costs the block's local nonzeros;
    ``unit`` says every value is 1 (bag-of-words: the multiplications by x are skipped,
    with bit-identical results). Columns are visited in a new random order each pass
    (``seed``), as liblinear does: on correlated columns (frequent words) it converges
    in far fewer passes than a fixed order.

    With an intercept, a column's step moves along the column *centred* in the model's
    metric: ``d_j`` by t and ``d0`` by ``-mu_j t``, ``mu_j = H_j0 / H_00`` (the column's
    ``w``-weighted mean). That direction is orthogonal to the intercept's, so a column
    whose values sit far from 0 (uncentred dense features) no longer trades its step
    back and forth with the intercept; the model and its minimiser are the same.

    Columns at zero whose model gradient is inside ``(-lam, lam)`` by more than the last
    pass's largest violation x ``weight`` are shrunk (skipped); passes stop when the
    model's minimum-norm subgradient (1-norm, over the columns still in play) is
    ``<= tol``, once with every column back in, or after ``max_passes``. Returns
    ``(d, d0, passes)``.
    """
    n = w.shape[0]
    kb = cols.shape[0]
    inv_n = weight  # (of a row)
    # (w_i, r_i) side by side: the column loops' random row accesses touch one cache line
    wr = np.zeros((n, 2))
    sw = 0.0
    for i in range(n):
        wr[i, 0] = w[i]
        sw += w[i]
    s0 = sw * inv_n
    hh0 = max(h0, s0) + 1e-12
    shift = 0.0  # r_i = wr[i, 1] + shift
    swr = 0.0  # sum_i w_i wr[i, 1]
    local = np.empty(kb)  # this fragment's curvature per column (found in the first pass)
    hh = np.empty(kb)
    xw = np.zeros(kb)  # sum_i x_ij w_i: the column's cross term with the intercept, / inv_n
    mu = np.zeros(kb)
    curv = np.empty(kb)  # the curvature along the (centred) direction
    delta = np.zeros(kb)
    d0 = 0.0
    order = np.arange(kb)
    n_active = kb
    margin = np.inf
    passes = 0
    np.random.seed(seed)
    while passes < max_passes:
        passes += 1
        for a in range(n_active - 1, 0, -1):  # a random order each pass (as liblinear)
            b = np.random.randint(0, a + 1)
            order[a], order[b] = order[b], order[a]
        gmax = 0.0
        gnorm = 0.0
        grad0 = 0.0
        if intercept:
            grad0 = g0 + (swr + shift * sw) * inv_n + (hh0 - s0) * d0
            step = -grad0 / hh0
            d0 += step
            shift += step
            gnorm += abs(grad0)
            gmax = abs(grad0)
            grad0 = 0.0  # (its minimiser, until a column moves)
        a = 0
        while a < n_active:
            k = order[a]
            j = cols[k]
            lo, hi = indptr[j], indptr[j + 1]
            acc = 0.0
            if passes == 1:  # every column's first visit: its local curvature too
                acc2 = 0.0
                accw = 0.0
                if unit:
                    for p in range(lo, hi):
                        i = indices[p]
                        acc += wr[i, 0] * wr[i, 1]
                        accw += wr[i, 0]
                    acc2 = accw
                else:
                    for p in range(lo, hi):
                        i = indices[p]
                        acc += data[p] * wr[i, 0] * wr[i, 1]
                        accw += data[p] * wr[i, 0]
                        acc2 += data[p] * data[p] * wr[i, 0]
                local[k] = acc2 * inv_n
                hh[k] = max(h[k], local[k]) + 1e-12
                curv[k] = hh[k]
                if intercept:
                    xw[k] = accw
                    mu[k] = accw * inv_n / hh0  # H_j0 / H_00
                    curv[k] = max(hh[k] - mu[k] * accw * inv_n, 1e-6 * hh[k]) + 1e-12
            elif unit:
                for p in range(lo, hi):
                    i = indices[p]
                    acc += wr[i, 0] * wr[i, 1]
            else:
                for p in range(lo, hi):
                    i = indices[p]
                    acc += data[p] * wr[i, 0] * wr[i, 1]
            grad = (g[k] + (acc + shift * xw[k]) * inv_n
                    + (hh[k] - local[k]) * delta[k] - mu[k] * grad0)
            u = beta[k] + delta[k]
            if u == 0.0:
                if abs(grad) < lam - margin * inv_n:  # cannot move: out until the next check
                    n_active -= 1
                    order[a], order[n_active] = order[n_active], order[a]
                    continue
                viol = max(abs(grad) - lam, 0.0)
            elif u > 0.0:
                viol = abs(grad + lam)
            else:
                viol = abs(grad - lam)
            gnorm += viol
            gmax = max(gmax, viol)
            z = curv[k] * u - grad
            mag = abs(z) - lam
            step = ((np.sign(z) * mag / curv[k]) if mag > 0.0 else 0.0) - u
            if step != 0.0:
                delta[k] += step
                if unit:
                    for p in range(lo, hi):
                        wr[indices[p], 1] += step
                else:
                    for p in range(lo, hi):
                        wr[indices[p], 1] += step * data[p]
                if intercept:  # d0 moves by -mu step; the intercept's gradient follows
                    swr += step * xw[k]
                    d0 -= mu[k] * step
                    shift -= mu[k] * step
                    grad0 += step * (xw[k] * inv_n - mu[k] * hh0)  # (0: the directions are orthogonal)
            a += 1
        if gnorm <= tol:
            if n_active == kb:
                break
            n_active = kb  # converged on the columns in play: check every column once more
            margin = np.inf
            continue
        margin = gmax
    return delta, d0, passes


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
    """``m += X[:, cols] delta + d0`` and refresh the terms of every row that moved.

    When the step's nonzeros are many against the rows (or the intercept moved), every
    row is refreshed in one contiguous sweep instead of tracking which moved.
    """
    n = m.shape[0]
    work = 0
    for k in range(cols.shape[0]):
        if delta[k] != 0.0:
            j = cols[k]
            work += indptr[j + 1] - indptr[j]
    if d0 != 0.0 or 4 * work >= n:
        for k in range(cols.shape[0]):
            j = cols[k]
            dk = delta[k]
            if dk != 0.0:
                for p in range(indptr[j], indptr[j + 1]):
                    m[indices[p]] += dk * data[p]
        for i in range(n):
            m[i] += d0
            _row(m, y, i, loss, a, dl, w)
        return
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
    for t in range(n_touched):
        i = touched[t]
        mark[i] = False
        _row(m, y, i, loss, a, dl, w)


def warm_up() -> None:
    """Load every worker kernel (numba cache) before the clock starts (int32 CSC indices)."""
    tiny = (np.array([0, 1], np.int32), np.array([0], np.int32), np.array([1.0]))
    v = np.zeros(1)
    one = np.ones(1)
    cols = np.zeros(1, np.int64)
    all_rows(v.copy(), one, v.copy(), v.copy(), v.copy(), v.copy())
    sparse_ops.warm_up()
    local_newton(*tiny, True, cols, one, one, one, v, 0.1, True, 0.5, 1.0, 2, 0.0, 0, 1.0)
    full_sums(*tiny, v, v, v, one)
    apply_step(*tiny, cols, one, 0.5, v.copy(), one, v.copy(), v.copy(), v.copy(), v.copy(),
               np.zeros(1, np.bool_), np.zeros(1, np.int64))
