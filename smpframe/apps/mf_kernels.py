"""Compiled per-rating loops of the matrix-factorisation app (cyclic coordinate descent).

Layout: a fragment holds whole rows of the rating matrix for the *local* side (the
side with more ids): ratings ``indptr[a]:indptr[a+1]`` belong to local id ``a``, and
``lb[p]`` is the position of rating p's other-side id among the fragment's distinct
other-side ids. Parameters are stored per id as rows ``theta[id] = (bias, f_0, ...,
f_{K-1})`` (no bias column when biases are off); ``x_p`` is the other side's row with
its bias entry replaced by 1, so ``prediction = mu + bias_other + theta . x_p``.

Two schedules use these kernels:

* *epoch* rounds (:func:`epoch_partials`): for every local id, the exact coordinate
  minimisation of its row (bias, then each factor in turn, ``sweeps`` times) from
  the normal equations ``(G + lam I) theta = c`` with ``G = sum x x^T``, ``c = sum y x``;
  then, with the new local rows, the other side's ``G`` (packed lower triangle) and
  ``c`` partial sums, from which the scheduler does the same coordinate sweeps. One
  round is one epoch of cyclic coordinate descent over both sides.
* *factor* rounds (:func:`factor_partials`, :func:`bias_partials`): CCD++ rank-one
  updates of one column at a time on residuals ``e``, for ranks whose ``G`` would be
  too large to ship.

The data-parallel baseline uses :func:`sgd_epoch`: one stochastic-gradient pass over a
fragment's ratings against copies of the committed rows (the other side's rows being
stale copies that other fragments update too).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def cd_sweeps(gp, c, th, lam, sweeps):
    """Cyclic coordinate minimisation of ``th^T (G + lam I) th - 2 c . th``, in place.

    ``gp`` is G's packed lower triangle (row d holds ``G[d, 0..d]`` at ``d(d+1)/2``).
    Each coordinate is set to its exact minimiser given the others.
    """
    dim = th.shape[0]
    for _ in range(sweeps):
        for d in range(dim):
            acc = c[d]
            base = d * (d + 1) // 2
            for e in range(d):
                acc -= gp[base + e] * th[e]
            for e in range(d + 1, dim):
                acc -= gp[e * (e + 1) // 2 + d] * th[e]
            den = lam + gp[base + d]
            th[d] = acc / den if den > 0.0 else 0.0


@njit(cache=True, nogil=True)
def solve_rows(gp, c, theta, lam, sweeps):
    """:func:`cd_sweeps` for every row: ``gp`` (n x D(D+1)/2), ``c`` and ``theta`` (n x D)."""
    for j in range(theta.shape[0]):
        cd_sweeps(gp[j], c[j], theta[j], lam, sweeps)


@njit(cache=True, nogil=True, fastmath=True)
def _outer_rows(theta, has_bias):
    """Per row: the features ``x`` (the row with its bias entry set to 1) and the
    packed lower triangle of ``x x^T``."""
    n, dim = theta.shape
    tri = dim * (dim + 1) // 2
    xs = theta.copy()
    xx = np.empty((n, tri))
    for i in range(n):
        if has_bias:
            xs[i, 0] = 1.0
        k = 0
        for d in range(dim):
            for e in range(d + 1):
                xx[i, k] = xs[i, d] * xs[i, e]
                k += 1
    return xs, xx


@njit(cache=True, nogil=True, fastmath=True)
def epoch_partials(indptr, lb, r, mu, th_a, th_b, lam, sweeps, has_bias, n_b):
    """One epoch on a fragment: new local rows, then the other side's partial sums.

    Returns ``(new_a, c_b, g_b, yy)``: ``new_a`` (n_a x D) the local rows after
    ``sweeps`` coordinate sweeps each; ``c_b`` (n_b x D) ``= sum y x`` and ``g_b``
    (n_b x D(D+1)/2) ``= sum x x^T`` over the fragment's ratings of each other-side
    id, with ``x`` from ``new_a`` and ``y = r - mu - new local bias``; ``yy = sum y^2``.
    """
    n_a = indptr.shape[0] - 1
    dim = th_a.shape[1]
    tri = dim * (dim + 1) // 2
    # local side: x from the other side's rows, y = r - mu - other bias
    xb, xxb = _outer_rows(th_b, has_bias)
    new_a = th_a.copy()
    gp = np.empty(tri)
    c = np.empty(dim)
    for a in range(n_a):
        gp[:] = 0.0
        c[:] = 0.0
        for p in range(indptr[a], indptr[a + 1]):
            j = lb[p]
            y = r[p] - mu
            if has_bias:
                y -= th_b[j, 0]
            for d in range(dim):
                c[d] += y * xb[j, d]
            for k in range(tri):
                gp[k] += xxb[j, k]
        cd_sweeps(gp, c, new_a[a], lam, sweeps)
    # other side: x from the new local rows (one per local id: outer product reused)
    xa, xxa = _outer_rows(new_a, has_bias)
    c_b = np.zeros((n_b, dim))
    g_b = np.zeros((n_b, tri))
    yy = 0.0
    for a in range(n_a):
        y0 = -mu
        if has_bias:
            y0 -= new_a[a, 0]
        for p in range(indptr[a], indptr[a + 1]):
            j = lb[p]
            y = r[p] + y0
            yy += y * y
            for d in range(dim):
                c_b[j, d] += y * xa[a, d]
            for k in range(tri):
                g_b[j, k] += xxa[a, k]
    return new_a, c_b, g_b, yy


@njit(cache=True, nogil=True)
def side_loss(gp, c, theta, yy):
    """``sum (y - theta.x)^2`` from the sums: ``yy - sum_j (2 theta_j.c_j - theta_j^T G_j theta_j)``."""
    total = yy
    dim = theta.shape[1]
    for j in range(theta.shape[0]):
        th = theta[j]
        quad = 0.0
        for d in range(dim):
            base = d * (d + 1) // 2
            for e in range(d):
                quad += 2.0 * gp[j, base + e] * th[d] * th[e]
            quad += gp[j, base + d] * th[d] * th[d]
            total -= 2.0 * th[d] * c[j, d]
        total += quad
    return total


@njit(cache=True, nogil=True)
def residuals(indptr, lb, r, mu, th_a, th_b, has_bias):
    """``e = r - prediction`` for every rating of a fragment."""
    n_a = indptr.shape[0] - 1
    dim = th_a.shape[1]
    e = np.empty(r.shape[0])
    for a in range(n_a):
        for p in range(indptr[a], indptr[a + 1]):
            j = lb[p]
            pred = mu
            start = 0
            if has_bias:
                pred += th_a[a, 0] + th_b[j, 0]
                start = 1
            for d in range(start, dim):
                pred += th_a[a, d] * th_b[j, d]
            e[p] = r[p] - pred
    return e


@njit(cache=True, nogil=True)
def factor_partials(indptr, lb, e, th_a, th_b, col, lam, n_b):
    """CCD++ sums for column ``col``, the local side first (exact: a fragment holds
    all ratings of its local ids), then the other side with the updated local column.

    ``rho = e + a_col b_col`` (the residual with this factor removed). Returns
    ``(num_a, den_a, num_b, den_b, rr)``: ``num_a = sum rho b``, ``den_a = sum b^2``
    per local id; with ``a' = num_a / (lam + den_a)``, ``num_b = sum rho a'`` and
    ``den_b = sum a'^2`` per other-side id; ``rr = sum rho^2``.
    """
    n_a = indptr.shape[0] - 1
    num_a = np.empty(n_a)
    den_a = np.empty(n_a)
    num_b = np.zeros(n_b)
    den_b = np.zeros(n_b)
    rr = 0.0
    for a in range(n_a):
        old = th_a[a, col]
        num = 0.0
        den = 0.0
        for p in range(indptr[a], indptr[a + 1]):
            h = th_b[lb[p], col]
            rho = e[p] + old * h
            num += rho * h
            den += h * h
            rr += rho * rho
        num_a[a] = num
        den_a[a] = den
        total = lam + den
        new = num / total if total > 0.0 else 0.0
        new2 = new * new
        for p in range(indptr[a], indptr[a + 1]):
            j = lb[p]
            h = th_b[j, col]
            num_b[j] += (e[p] + old * h) * new
            den_b[j] += new2
    return num_a, den_a, num_b, den_b, rr


@njit(cache=True, nogil=True)
def bias_partials(indptr, lb, e, th_a, th_b, lam, n_b):
    """The same for the biases (column 0, weight 1): ``rho = e + bias_a + bias_b``.

    Returns ``(num_a, den_a, num_b, den_b, rr)`` with ``num_b = sum (rho - bias_a')``
    and ``rr = sum (rho - bias_a')^2``.
    """
    n_a = indptr.shape[0] - 1
    num_a = np.empty(n_a)
    den_a = np.empty(n_a)
    num_b = np.zeros(n_b)
    den_b = np.zeros(n_b)
    rr = 0.0
    for a in range(n_a):
        old = th_a[a, 0]
        num = 0.0
        for p in range(indptr[a], indptr[a + 1]):
            num += e[p] + old
        den = float(indptr[a + 1] - indptr[a])
        num_a[a] = num
        den_a[a] = den
        total = lam + den
        new = num / total if total > 0.0 else 0.0
        shift = old - new
        for p in range(indptr[a], indptr[a + 1]):
            j = lb[p]
            rest = e[p] + shift + th_b[j, 0]
            num_b[j] += rest
            den_b[j] += 1.0
            rr += rest * rest
    return num_a, den_a, num_b, den_b, rr


@njit(cache=True, nogil=True)
def apply_column(indptr, lb, e, th_a, th_b, col, new_a, new_b, is_bias):
    """Residuals after column ``col`` changed to ``new_a``/``new_b``; stores the new values."""
    n_a = indptr.shape[0] - 1
    for a in range(n_a):
        o = th_a[a, col]
        w = new_a[a]
        for p in range(indptr[a], indptr[a + 1]):
            j = lb[p]
            if is_bias:
                e[p] -= (w - o) + (new_b[j] - th_b[j, col])
            else:
                e[p] -= w * new_b[j] - o * th_b[j, col]
    for a in range(n_a):
        th_a[a, col] = new_a[a]
    for j in range(th_b.shape[0]):
        th_b[j, col] = new_b[j]


@njit(cache=True, nogil=True, fastmath=True)
def sgd_epoch(indptr, lb, r, mu, th_a, th_b, count_b, order, lam, lr, has_bias):
    """One SGD pass over a fragment's ratings, in ``order``, on copies of its rows.

    Each rating ``p`` steps both rows it touches along the negative gradient (halved) of
    ``e_p^2 + lam (|th_a|^2 / n_a + |th_b|^2 / count_b)``, the penalty's part taken as an
    implicit (proximal) step so that no step size makes it diverge: a row's penalty spread over all
    its ratings (``n_a``, a local row's, are all here; ``count_b`` counts the other side's
    over every fragment), so each fragment minimises its share of the objective.
    Returns ``(new_a, new_b)``; the inputs are not changed.
    """
    n_a = indptr.shape[0] - 1
    dim = th_a.shape[1]
    row_of = np.empty(r.shape[0], np.int64)
    reg_a = np.empty(n_a)
    for a in range(n_a):
        row_of[indptr[a]:indptr[a + 1]] = a
        reg_a[a] = lam / max(indptr[a + 1] - indptr[a], 1)
    reg_b = lam / np.maximum(count_b, 1.0)
    new_a = th_a.copy()
    new_b = th_b.copy()
    start = 1 if has_bias else 0
    for t in range(order.shape[0]):
        p = order[t]
        a = row_of[p]
        j = lb[p]
        pred = mu
        if has_bias:
            pred += new_a[a, 0] + new_b[j, 0]
        for d in range(start, dim):
            pred += new_a[a, d] * new_b[j, d]
        e = r[p] - pred
        shrink_a = 1.0 / (1.0 + lr * reg_a[a])  # the penalty's step taken implicitly:
        shrink_b = 1.0 / (1.0 + lr * reg_b[j])  # stable at any step size
        if has_bias:
            new_a[a, 0] = (new_a[a, 0] + lr * e) * shrink_a
            new_b[j, 0] = (new_b[j, 0] + lr * e) * shrink_b
        for d in range(start, dim):
            wa = new_a[a, d]
            wb = new_b[j, d]
            new_a[a, d] = (wa + lr * e * wb) * shrink_a
            new_b[j, d] = (wb + lr * e * wa) * shrink_b
    return new_a, new_b


@njit(cache=True, nogil=True)
def predict(th_a, th_b, mu, has_bias, a, b, lo, hi):
    """Predictions for code pairs ``(a[k], b[k])``, clipped to ``[lo, hi]``; a code -1
    (an id unseen in training) drops that side's bias and the factor term."""
    dim = th_a.shape[1]
    start = 1 if has_bias else 0
    out = np.empty(a.shape[0])
    for t in range(a.shape[0]):
        i = a[t]
        j = b[t]
        pred = mu
        if has_bias:
            if i >= 0:
                pred += th_a[i, 0]
            if j >= 0:
                pred += th_b[j, 0]
        if i >= 0 and j >= 0:
            for d in range(start, dim):
                pred += th_a[i, d] * th_b[j, d]
        out[t] = min(max(pred, lo), hi)
    return out


def warm_up() -> None:
    """Load every kernel (numba cache) before the clock starts."""
    indptr = np.array([0, 1], np.int64)
    lb = np.zeros(1, np.int64)
    one, th = np.ones(1), np.ones((1, 2))
    _outer_rows(th, True)
    epoch_partials(indptr, lb, one, 0.0, th, th, 1.0, 1, True, 1)
    solve_rows(np.ones((1, 3)), th.copy(), th.copy(), 1.0, 1)
    side_loss(np.ones((1, 3)), th, th, 1.0)
    e = residuals(indptr, lb, one, 0.0, th, th, True)
    factor_partials(indptr, lb, e, th, th, 1, 1.0, 1)
    bias_partials(indptr, lb, e, th, th, 1.0, 1)
    apply_column(indptr, lb, e, th.copy(), th.copy(), 1, one, one, False)
    sgd_epoch(indptr, lb, one, 0.0, th, th, one, lb, 1.0, 0.01, True)
    predict(th, th, 0.0, True, lb, lb, 0.0, 1.0)
