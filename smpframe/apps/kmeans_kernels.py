"""K-Means kernels: k-means++ seeding and one Lloyd pass over a row fragment.

A Lloyd round is split the model-parallel way: each worker runs
:func:`assign_and_accumulate` on its fragments and returns per-cluster sums,
counts and inertia; the server adds them over fragments and calls
:func:`update_centers`. Summing partial (sums, counts) gives exactly the
centres a single-machine Lloyd step would (up to float summation order), so
runs can be checked against ``sklearn.cluster.KMeans(algorithm="lloyd")``.
The kernels are numba-compiled, single threaded and release the GIL, so a
worker may run several fragments in threads.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _sq_dist_to_row(X, r):
    n, d = X.shape
    out = np.empty(n)
    for i in range(n):
        acc = 0.0
        for l in range(d):
            diff = X[i, l] - X[r, l]
            acc += diff * diff
        out[i] = acc
    return out


@njit(cache=True, nogil=True)
def _trial_potentials(X, cand, closest):
    n, d = X.shape
    pots = np.zeros(cand.size)
    for i in range(n):
        for t in range(cand.size):
            acc = 0.0
            for l in range(d):
                diff = X[i, l] - X[cand[t], l]
                acc += diff * diff
            pots[t] += min(acc, closest[i])
    return pots


def kmeans_plusplus(
    X: np.ndarray,
    k: int,
    rng: np.random.Generator,
    n_local_trials: int | None = None,
) -> np.ndarray:
    """Greedy k-means++ seeding, as in scikit-learn (same algorithm, not the same draws).

    The first centre is a uniformly random point; each next one is the best, by
    resulting potential (sum of squared distances to the nearest centre), of
    ``n_local_trials`` points (default ``2 + int(log k)``) drawn with probability
    proportional to their squared distance to the nearest centre so far.
    Returns a float64 (k, d) array of rows of X.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n_samples, got k={k}, n_samples={n}")
    trials = 2 + int(np.log(k)) if n_local_trials is None else int(n_local_trials)
    if trials < 1:
        raise ValueError(f"n_local_trials must be >= 1, got {n_local_trials}")
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(n)
    closest = _sq_dist_to_row(X, chosen[0])
    for c in range(1, k):
        cumulative = np.cumsum(closest)
        cand = np.searchsorted(cumulative, rng.uniform(size=trials) * cumulative[-1])
        cand = np.minimum(cand, n - 1).astype(np.int64)
        chosen[c] = cand[np.argmin(_trial_potentials(X, cand, closest))]
        np.minimum(closest, _sq_dist_to_row(X, chosen[c]), out=closest)
    return X[chosen].copy()


_BLOCK = 256


@njit(cache=True, nogil=True)
def _assign_and_accumulate(X, centers, x_sq_norms):
    # Rows go through in blocks of _BLOCK, transposed to (d, block), so the
    # innermost loops run over rows: the scores and the running argmin
    # vectorise (SIMD) however small d is.
    n, d = X.shape
    k = centers.shape[0]
    m2c = -2.0 * centers
    c_sq = np.zeros(k)
    for j in range(k):
        for l in range(d):
            c_sq[j] += centers[j, l] * centers[j, l]
    sums = np.zeros((k, d))
    counts = np.zeros(k, dtype=np.int64)
    inertia = 0.0
    xt = np.empty((d, _BLOCK))
    score = np.empty(_BLOCK)
    best_score = np.empty(_BLOCK)
    best = np.empty(_BLOCK, dtype=np.int64)
    for start in range(0, n, _BLOCK):
        m = min(_BLOCK, n - start)
        for i in range(m):
            for l in range(d):
                xt[l, i] = X[start + i, l]
        best_score[:m] = np.inf
        best[:m] = 0
        for j in range(k):
            score[:m] = c_sq[j]
            for l in range(d):
                cl = m2c[j, l]
                for i in range(m):
                    score[i] += xt[l, i] * cl
            for i in range(m):
                if score[i] < best_score[i]:
                    best_score[i] = score[i]
                    best[i] = j
        for i in range(m):
            b = best[i]
            counts[b] += 1
            for l in range(d):
                sums[b, l] += xt[l, i]
            inertia += max(x_sq_norms[start + i] + best_score[i], 0.0)
    return sums, counts, inertia


def assign_and_accumulate(
    X: np.ndarray,
    centers: np.ndarray,
    x_sq_norms: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One Lloyd pass over a fragment: label each row with its nearest centre.

    Uses ``||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2`` (``x_sq_norms`` holds the
    rows' ``||x||^2``, computed once per fragment); ties go to the lower centre
    index. Returns per-centre coordinate sums (float64, (k, d)), member counts
    (int64, (k,)) and the inertia (sum of squared distances to the nearest centre).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    centers = np.ascontiguousarray(centers, dtype=np.float64)
    x_sq_norms = np.ascontiguousarray(x_sq_norms, dtype=np.float64)
    if X.ndim != 2 or centers.ndim != 2 or centers.shape[1] != X.shape[1] or centers.shape[0] == 0:
        raise ValueError(f"X {X.shape} and centers {centers.shape} do not match")
    if x_sq_norms.shape != (X.shape[0],):
        raise ValueError(f"x_sq_norms has shape {x_sq_norms.shape}, expected ({X.shape[0]},)")
    sums, counts, inertia = _assign_and_accumulate(X, centers, x_sq_norms)
    return sums, counts, float(inertia)


def update_centers(sums: np.ndarray, counts: np.ndarray, old_centers: np.ndarray) -> np.ndarray:
    """New centres = member means; a cluster with no members keeps its old centre.

    (scikit-learn instead moves an empty cluster to a far-away point; keeping it
    needs no extra pass over the data and the cluster may win points back later.)
    """
    counts = np.asarray(counts)
    means = np.asarray(sums, dtype=np.float64) / np.maximum(counts, 1)[:, None]
    return np.where((counts > 0)[:, None], means, old_centers).astype(np.float64)


def center_shift(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Euclidean distance each centre moved, shape (k,).

    scikit-learn's ``tol`` test compares ``(center_shift(old, new) ** 2).sum()``
    with ``tol * mean(var(X, axis=0))``.
    """
    return np.sqrt(np.sum((np.asarray(new, dtype=np.float64) - old) ** 2, axis=1))
