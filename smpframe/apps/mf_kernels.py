"""Compiled per-rating loops of the matrix-factorisation app (cyclic coordinate descent).

Layout: a fragment holds whole rows of the rating matrix for the *local* side (the
side with more ids): ratings ``indptr[a]:indptr[a+1]`` belong to local id ``a``, and
``lb[p]`` is the position of rating p's other-side id among the fragment's distinct
other-side ids. Parameters are stored per id as rows ``theta[id] = (bias, f_0, ...,
f_{K-1})`` (no bias column when biases are off); ``x_p`` is the other side's row with
its bias entry replaced by 1, so ``prediction = mu + bias_other + theta . x_p``.

Three schedules use these kernels:

* *sides* rounds (:func:`side_update`): one side's rows, each from the residuals of all
  its ratings with the other side fixed (exact cyclic coordinate minimisation, O(ratings
  x D) per sweep); a fragment holds the ratings twice, grouped by either side.
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

Every model-parallel loop has an array twin (``*_array``: whole-array code on ``xp``,
numpy or cupy) that GPU workers run, with the same results up to rounding.
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


LANES = 64
"""Rows swept side by side by :func:`side_update`'s short-row loop (one vector lane each)."""

SHORT = 32
"""Rows with at most this many ratings take the short-row loop; longer rows are swept
one at a time (their per-coordinate loops are long enough to vectorise on their own)."""


@njit(cache=True, nogil=True, fastmath=True)
def side_update(indptr, lb, r, mu, th_own, th_other, lam, sweeps, has_bias):
    """One side's rows given the other's: ``sweeps`` exact cyclic coordinate sweeps per row.

    Row ``i`` owns ratings ``indptr[i]:indptr[i+1]`` (all of its ratings), ``lb[p]`` is
    rating p's row in ``th_other``. Works on the residuals ``e = y - theta.x`` of the
    row's ratings (``x``: the other row with its bias entry set to 1, ``y = r - mu -
    other bias``): coordinate d's minimiser is ``(sum e x_d + theta_d |x_d|^2) / (lam +
    |x_d|^2)``, then ``e -= delta x_d``. The same iterates as :func:`cd_sweeps` on the
    row's normal equations, at O(ratings x D) per sweep instead of O(ratings x D^2)
    for the Gram sums; one pass over the ratings per coordinate (the residual update
    fused with the next coordinate's sum). Returns ``(new rows, sum e^2)`` (the
    residuals after the sweeps).

    Each row's coordinates are one chain of dependent steps, so a row with few ratings
    (most items of a MovieLens-like set: median 3) is all per-step overhead when swept
    alone: rows of at most :data:`SHORT` ratings, ordered by count, are swept
    :data:`LANES` at a time (:func:`_short_rows`), longer ones one by one (:func:`_long_rows`).
    """
    new = th_own.copy()
    order = _by_count(indptr)
    n_short = 0
    while n_short < order.shape[0] and indptr[order[n_short] + 1] - indptr[order[n_short]] <= SHORT:
        n_short += 1
    ee = 0.0
    if n_short > 0:
        ee += _short_rows(indptr, lb, r, mu, order[:n_short], new, th_other, lam, sweeps, has_bias)
    if n_short < order.shape[0]:
        ee += _long_rows(indptr, lb, r, mu, order[n_short:], new, th_other, lam, sweeps, has_bias)
    return new, ee


@njit(cache=True, nogil=True)
def _by_count(indptr):
    """The rows in rising order of rating count (a stable counting sort)."""
    n = indptr.shape[0] - 1
    longest = 0
    for i in range(n):
        longest = max(longest, indptr[i + 1] - indptr[i])
    start = np.zeros(longest + 2, np.int64)
    for i in range(n):
        start[indptr[i + 1] - indptr[i] + 1] += 1
    for c in range(1, longest + 2):
        start[c] += start[c - 1]
    order = np.empty(n, np.int64)
    for i in range(n):
        c = indptr[i + 1] - indptr[i]
        order[start[c]] = i
        start[c] += 1
    return order


@njit(cache=True, nogil=True, fastmath=True)
def _short_rows(indptr, lb, r, mu, rows, new, th_other, lam, sweeps, has_bias):
    """:func:`side_update` for ``rows`` (few ratings each, by rising count), in place in
    ``new``, :data:`LANES` rows at a time: lane l holds one row, ``x[d, q, l]`` its q-th
    rating's feature d (``e[q, l]`` the residual), zeros past its count; every step then
    runs over all lanes at once, in vector registers, and the lanes' chains overlap.
    Returns the lanes' ``sum e^2``."""
    n = rows.shape[0]
    dim = new.shape[1]
    L = LANES
    longest = max(indptr[rows[n - 1] + 1] - indptr[rows[n - 1]], 1)
    xbuf = np.empty(dim * longest * L)
    ebuf = np.empty(longest * L)
    jbuf = np.empty(longest * L, np.int64)
    kbuf = np.empty(longest * L)
    th = np.empty((dim, L))
    nrm = np.empty((dim, L))
    inv = np.empty((dim, L))
    num = np.empty(L)
    step = np.empty(L)
    lo = np.zeros(L, np.int64)
    cnt = np.zeros(L, np.int64)
    start = 1 if has_bias else 0
    ee = 0.0
    for c0 in range(0, n, L):
        nl = min(L, n - c0)
        for l in range(L):
            cnt[l] = 0
            if l < nl:
                i = rows[c0 + l]
                lo[l] = indptr[i]
                cnt[l] = indptr[i + 1] - lo[l]
                for d in range(dim):
                    th[d, l] = new[i, d]
            else:
                for d in range(dim):
                    th[d, l] = 0.0
        M = cnt[nl - 1]  # the rows rise by count
        x = xbuf[:dim * M * L].reshape((dim, M, L))
        e = ebuf[:M * L].reshape((M, L))
        js = jbuf[:M * L].reshape((M, L))
        keep = kbuf[:M * L].reshape((M, L))  # 1 for a rating, 0 for an empty slot (row 0 read)
        for q in range(M):
            for l in range(L):
                if q < cnt[l]:
                    js[q, l] = lb[lo[l] + q]
                    e[q, l] = r[lo[l] + q] - mu
                    keep[q, l] = 1.0
                else:
                    js[q, l] = 0
                    e[q, l] = 0.0
                    keep[q, l] = 0.0
        if has_bias:
            for q in range(M):
                for l in range(L):
                    e[q, l] -= th_other[js[q, l], 0] * keep[q, l]
                    x[0, q, l] = keep[q, l]
        for d in range(start, dim):
            for q in range(M):
                for l in range(L):
                    x[d, q, l] = th_other[js[q, l], d] * keep[q, l]
        for d in range(dim):  # the residuals and |x_d|^2
            for l in range(L):
                nrm[d, l] = 0.0
            for q in range(M):
                for l in range(L):
                    v = x[d, q, l]
                    nrm[d, l] += v * v
                    e[q, l] -= th[d, l] * v
            for l in range(L):
                den = lam + nrm[d, l]
                inv[d, l] = 1.0 / den if den > 0.0 else 0.0
        for l in range(L):
            num[l] = 0.0
        for q in range(M):
            for l in range(L):
                num[l] += e[q, l] * x[0, q, l]
        for s in range(sweeps):
            for d in range(dim):
                for l in range(L):
                    old = th[d, l]
                    w = (num[l] + old * nrm[d, l]) * inv[d, l]
                    step[l] = w - old
                    th[d, l] = w
                    num[l] = 0.0
                if s == sweeps - 1 and d == dim - 1:  # the last: the residuals' squares
                    for q in range(M):
                        for l in range(L):
                            v = e[q, l] - step[l] * x[d, q, l]
                            e[q, l] = v
                            num[l] += v * v
                    for l in range(L):
                        ee += num[l]
                else:
                    nxt = d + 1 if d + 1 < dim else 0
                    for q in range(M):
                        for l in range(L):
                            v = e[q, l] - step[l] * x[d, q, l]
                            e[q, l] = v
                            num[l] += v * x[nxt, q, l]
        for l in range(nl):
            i = rows[c0 + l]
            for d in range(dim):
                new[i, d] = th[d, l]
    return ee


@njit(cache=True, nogil=True, fastmath=True)
def _long_rows(indptr, lb, r, mu, rows, new, th_other, lam, sweeps, has_bias):
    """:func:`side_update` for ``rows``, one at a time, in place in ``new``: the row's
    features copied four ratings at a time to one line per coordinate (``xt``), then the
    residuals and ``|x_d|^2`` as vector passes over those lines. Returns their ``sum e^2``."""
    dim = new.shape[1]
    longest = 1
    for t in range(rows.shape[0]):
        longest = max(longest, indptr[rows[t] + 1] - indptr[rows[t]])
    xt = np.empty((dim, longest))
    e = np.empty(longest)
    nrm = np.empty(dim)
    inv = np.empty(dim)
    ee = 0.0
    for t in range(rows.shape[0]):
        i = rows[t]
        lo = indptr[i]
        m = indptr[i + 1] - lo
        q = 0
        while q + 4 <= m:  # four ratings' rows at a time, written one line per coordinate
            j0 = lb[lo + q]
            j1 = lb[lo + q + 1]
            j2 = lb[lo + q + 2]
            j3 = lb[lo + q + 3]
            for d in range(dim):
                xt[d, q] = th_other[j0, d]
                xt[d, q + 1] = th_other[j1, d]
                xt[d, q + 2] = th_other[j2, d]
                xt[d, q + 3] = th_other[j3, d]
            q += 4
        while q < m:
            j0 = lb[lo + q]
            for d in range(dim):
                xt[d, q] = th_other[j0, d]
            q += 1
        for q in range(m):
            e[q] = r[lo + q] - mu
        if has_bias:
            for q in range(m):
                e[q] -= xt[0, q]
                xt[0, q] = 1.0
        for d in range(dim):
            w = new[i, d]
            s2 = 0.0
            for q in range(m):
                v = xt[d, q]
                s2 += v * v
                e[q] -= w * v
            nrm[d] = s2
            den = lam + s2
            inv[d] = 1.0 / den if den > 0.0 else 0.0
        num = 0.0  # sum e x_0, for the first coordinate
        for q in range(m):
            num += e[q] * xt[0, q]
        for s in range(sweeps):
            for d in range(dim):
                old = new[i, d]
                w = (num + old * nrm[d]) * inv[d]
                delta = w - old
                new[i, d] = w
                acc = 0.0
                if s == sweeps - 1 and d == dim - 1:  # the last: the residuals' squares
                    for q in range(m):
                        v = e[q] - delta * xt[d, q]
                        e[q] = v
                        acc += v * v
                    ee += acc
                else:
                    nxt = d + 1 if d + 1 < dim else 0
                    for q in range(m):
                        v = e[q] - delta * xt[d, q]
                        e[q] = v
                        acc += v * xt[nxt, q]
                    num = acc
    return ee


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


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def predict(th_a, th_b, mu, has_bias, a, b, lo, hi):
    """Predictions for code pairs ``(a[k], b[k])``, clipped to ``[lo, hi]``; a code -1
    (an id unseen in training) drops that side's bias and the factor term. The dot
    products may be reassociated (vector sums: the scheduler predicts the test set every
    epoch); NaN and infinity keep their meaning."""
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


# ---- array twins: the same updates as whole-array code on ``xp`` (numpy or cupy) ------
# ``row[p]`` is the fragment row owning rating p (the CSR pointers expanded); per-row and
# per-other-id sums are bincounts. Same arguments as the loops, after ``(xp, row, lb)``.

def _ratio_array(xp, num, den, lam):
    total = lam + den
    return xp.where(total > 0.0, num / xp.where(total > 0.0, total, 1.0), 0.0)


def side_update_array(xp, row, lb, r, mu, th_own, th_other, lam, sweeps, has_bias):
    """:func:`side_update`: every row's coordinate d at once, one d after another."""
    n, dim = th_own.shape
    xt = xp.ascontiguousarray(th_other[lb].T)  # (D, ratings): one line per coordinate
    y = r - mu
    if has_bias:
        y = y - xt[0]
        xt[0] = 1.0
    new = th_own.copy()
    e = y - (new[row] * xt.T).sum(axis=1)
    nrm = [xp.bincount(row, weights=xt[d] * xt[d], minlength=n) for d in range(dim)]
    for _ in range(sweeps):
        for d in range(dim):
            old = new[:, d].copy()
            w = _ratio_array(xp, xp.bincount(row, weights=e * xt[d], minlength=n) + old * nrm[d],
                             nrm[d], lam)
            e -= (w - old)[row] * xt[d]
            new[:, d] = w
    return new, float(e @ e)


def epoch_partials_array(xp, row, lb, r, mu, th_a, th_b, lam, sweeps, has_bias, n_b):
    """:func:`epoch_partials`: the local rows by :func:`side_update_array` (the same
    iterates as sweeping their normal equations), the other side's sums by sparse products."""
    from smpframe.arrays import sparse_module

    new_a, _ = side_update_array(xp, row, lb, r, mu, th_a, th_b, lam, sweeps, has_bias)
    xa = new_a.copy()
    y = r - mu
    if has_bias:
        y = y - new_a[row, 0]
        xa[:, 0] = 1.0
    d, e = np.tril_indices(th_a.shape[1])  # the packed order: row d, columns 0..d
    xxa = xa[:, xp.asarray(d)] * xa[:, xp.asarray(e)]
    sparse = sparse_module(xp)
    shape = (n_b, th_a.shape[0])
    ones = sparse.coo_matrix((xp.ones(row.shape[0]), (lb, row)), shape=shape).tocsr()
    ys = sparse.coo_matrix((y, (lb, row)), shape=shape).tocsr()
    return new_a, xp.asarray(ys @ xa), xp.asarray(ones @ xxa), float(y @ y)


def residuals_array(xp, row, lb, r, mu, th_a, th_b, has_bias):
    """:func:`residuals`."""
    start = 1 if has_bias else 0
    pred = mu + (th_a[row, start:] * th_b[lb, start:]).sum(axis=1)
    if has_bias:
        pred = pred + th_a[row, 0] + th_b[lb, 0]
    return r - pred


def factor_partials_array(xp, row, lb, e, th_a, th_b, col, lam, n_b):
    """:func:`factor_partials`."""
    n_a = th_a.shape[0]
    h = th_b[lb, col]
    rho = e + th_a[row, col] * h
    num_a = xp.bincount(row, weights=rho * h, minlength=n_a)
    den_a = xp.bincount(row, weights=h * h, minlength=n_a)
    new = _ratio_array(xp, num_a, den_a, lam)[row]
    return (num_a, den_a, xp.bincount(lb, weights=rho * new, minlength=n_b),
            xp.bincount(lb, weights=new * new, minlength=n_b), float(rho @ rho))


def bias_partials_array(xp, row, lb, e, th_a, th_b, lam, n_b):
    """:func:`bias_partials`."""
    n_a = th_a.shape[0]
    old = th_a[:, 0]
    num_a = xp.bincount(row, weights=e + old[row], minlength=n_a)
    den_a = xp.bincount(row, minlength=n_a).astype(xp.float64)
    rest = e + (old - _ratio_array(xp, num_a, den_a, lam))[row] + th_b[lb, 0]
    return (num_a, den_a, xp.bincount(lb, weights=rest, minlength=n_b),
            xp.bincount(lb, minlength=n_b).astype(xp.float64), float(rest @ rest))


def apply_column_array(xp, row, lb, e, th_a, th_b, col, new_a, new_b, is_bias):
    """:func:`apply_column`, in place."""
    if is_bias:
        e -= (new_a - th_a[:, col])[row] + (new_b - th_b[:, col])[lb]
    else:
        e -= new_a[row] * new_b[lb] - th_a[row, col] * th_b[lb, col]
    th_a[:, col] = new_a
    th_b[:, col] = new_b


def warm_up() -> None:
    """Load every kernel (numba cache) before the clock starts."""
    indptr = np.array([0, 1], np.int64)
    lb = np.zeros(1, np.int64)
    one, th = np.ones(1), np.ones((1, 2))
    _outer_rows(th, True)
    epoch_partials(indptr, lb, one, 0.0, th, th, 1.0, 1, True, 1)
    solve_rows(np.ones((1, 3)), th.copy(), th.copy(), 1.0, 1)
    side_loss(np.ones((1, 3)), th, th, 1.0)
    frozen = np.ones((2, 2))  # the shared rows a worker holds are read-only views of the wire
    frozen.flags.writeable = False
    both = np.array([0, 1, SHORT + 2], np.int64)  # a short row and a long one: both loops
    many, ones = np.zeros(SHORT + 2, np.int64), np.ones(SHORT + 2)
    side_update(both, many, ones, 0.0, np.ones((2, 2)), th, 1.0, 1, True)
    side_update(both, many, ones, 0.0, frozen, frozen, 1.0, 1, True)
    e = residuals(indptr, lb, one, 0.0, th, th, True)
    factor_partials(indptr, lb, e, th, th, 1, 1.0, 1)
    bias_partials(indptr, lb, e, th, th, 1.0, 1)
    apply_column(indptr, lb, e, th.copy(), th.copy(), 1, one, one, False)
    sgd_epoch(indptr, lb, one, 0.0, th, th, one, lb, 1.0, 0.01, True)
    predict(th, th, 0.0, True, lb, lb, 0.0, 1.0)
