"""Building blocks of SMP schedules: which model variables a round updates, and where.

* :func:`priority_sample` draws candidate variables in proportion to how much
  they changed lately (plus a floor so none starves);
* :func:`dependency_filter` drops candidates too correlated with ones already
  kept, so the kept ones can be updated in parallel without interfering;
* :func:`rotation` hands P disjoint blocks to P slots, shifted every round;
* :func:`uniform_sweep` walks all variables in random order (warm-up, before
  there is any history to prioritise on).

All are O(d) numpy or numba; none loops over d in Python.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from numba import njit


def priority_sample(
    rng: np.random.Generator,
    delta: np.ndarray,
    eta: float,
    size: int,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Draw ``size`` distinct indices without replacement, p(j) proportional to ``|delta_j| + eta``.

    Exponential keys (Efraimidis-Spirakis, the same as Gumbel-top-k): key_j =
    E_j / w_j with E_j ~ Exp(1); the ``size`` smallest keys are a weighted sample
    without replacement, returned in draw order (highest priority first).
    ``exclude`` is a boolean mask over d or an array of indices never to draw.
    Weight-0 indices are drawn, uniformly, only once all positive ones are taken.
    """
    w = np.abs(np.asarray(delta, dtype=np.float64).ravel()) + eta
    if eta < 0 or not np.all(np.isfinite(w)):
        raise ValueError("delta must be finite and eta >= 0")
    eligible = np.ones(w.size, dtype=bool)
    if exclude is not None:
        exclude = np.asarray(exclude)
        if exclude.dtype == bool:
            eligible &= ~exclude
        elif exclude.size:
            eligible[exclude.astype(np.intp, copy=False)] = False
    n_eligible = int(np.count_nonzero(eligible))
    if not 0 <= size <= n_eligible:
        raise ValueError(f"cannot draw {size} distinct indices from {n_eligible} eligible")
    with np.errstate(divide="ignore"):
        keys = rng.standard_exponential(w.size) / w
    keys[~eligible] = np.inf
    n_positive = int(np.count_nonzero(keys < np.inf))
    top = min(size, n_positive)
    if top == 0:
        picked = np.empty(0, dtype=np.int64)
    else:
        picked = np.argpartition(keys, top - 1)[:top]
        picked = picked[np.argsort(keys[picked], kind="stable")]
    if top < size:
        zero = np.flatnonzero(eligible & ~(keys < np.inf))
        picked = np.concatenate([picked, rng.choice(zero, size - top, replace=False)])
    return picked.astype(np.int64, copy=False)


@njit(cache=True, nogil=True)
def _greedy_sparse(indptr, indices, data, inv_norm, rho, max_keep):
    kept = np.zeros(inv_norm.size, dtype=np.bool_)
    out = np.empty(min(inv_norm.size, max_keep), dtype=np.int64)
    n = 0
    for i in range(inv_norm.size):
        if n == max_keep:
            break
        ok = True
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if kept[j] and abs(data[p]) * inv_norm[i] * inv_norm[j] >= rho:
                ok = False
                break
        if ok:
            kept[i] = True
            out[n] = i
            n += 1
    return out[:n]


@njit(cache=True, nogil=True)
def _greedy_dense(gram, inv_norm, rho, max_keep):
    out = np.empty(min(inv_norm.size, max_keep), dtype=np.int64)
    n = 0
    for i in range(inv_norm.size):
        if n == max_keep:
            break
        ok = True
        for q in range(n):
            j = out[q]
            if abs(gram[i, j]) * inv_norm[i] * inv_norm[j] >= rho:
                ok = False
                break
        if ok:
            out[n] = i
            n += 1
    return out[:n]


def dependency_filter(
    candidates: np.ndarray,
    X: sp.spmatrix | sp.sparray | np.ndarray,
    rho: float,
    max_keep: int,
) -> np.ndarray:
    """Keep candidates in the given order, dropping any with |corr| >= ``rho`` to one kept.

    ``|corr(i, j)| = |x_i . x_j| / (||x_i|| ||x_j||)`` (cosine of the columns, not
    centred, so sparse X stays sparse); norms come from the diagonal of the
    candidates' Gram ``X_c^T X_c``, so columns need not be pre-scaled, and a zero
    column correlates with nothing. Stops at ``max_keep`` kept. X may be sparse
    (the Gram is sparse and the greedy pass visits only its non-zeros) or a
    dense ndarray. Returns the kept candidate indices, in order.
    """
    cand = np.asarray(candidates, dtype=np.int64).ravel()
    if cand.size == 0 or max_keep <= 0:
        return cand[:0]
    if sp.issparse(X):
        Xc = sp.csc_matrix(X)[:, cand]  # no copy when X is already CSC
        gram = (Xc.T @ Xc).tocsr()
        diag = gram.diagonal()
    else:
        Xc = np.asarray(X, dtype=np.float64)[:, cand]
        gram = Xc.T @ Xc
        diag = np.diagonal(gram)
    norms = np.sqrt(np.maximum(diag, 0.0))
    inv_norm = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    if sp.issparse(gram):
        keep = _greedy_sparse(gram.indptr, gram.indices, gram.data.astype(np.float64, copy=False),
                              inv_norm, float(rho), int(max_keep))
    else:
        keep = _greedy_dense(np.ascontiguousarray(gram), inv_norm, float(rho), int(max_keep))
    return cand[keep]


def rotation(n_blocks: int, n_slots: int, step: int) -> np.ndarray:
    """Static rotation: slot s gets block ``(s + step) % n_blocks``; blocks stay disjoint."""
    if not 0 < n_slots <= n_blocks:
        raise ValueError(f"need 0 < n_slots <= n_blocks, got {n_slots} slots, {n_blocks} blocks")
    return (np.arange(n_slots, dtype=np.int64) + step) % n_blocks


class SweepCursor(NamedTuple):
    """Where :func:`uniform_sweep` stands: the current epoch's order and how much is used."""

    order: np.ndarray
    pos: int


def uniform_sweep(
    rng: np.random.Generator,
    d: int,
    size: int,
    cursor: SweepCursor | None = None,
) -> tuple[np.ndarray, SweepCursor]:
    """Next ``size`` distinct indices of a random permutation of ``range(d)``, walked in chunks.

    Pass ``cursor=None`` to start. Every epoch visits each index exactly once; a
    chunk that runs past the end of an epoch is completed from a fresh
    permutation that starts with indices not already in the chunk.
    """
    if not 0 <= size <= d:
        raise ValueError(f"need 0 <= size <= d, got size={size}, d={d}")
    if cursor is None or cursor.order.size != d:
        cursor = SweepCursor(rng.permutation(d), 0)
    take = cursor.order[cursor.pos:cursor.pos + size]
    if take.size == size:
        return take.copy(), SweepCursor(cursor.order, cursor.pos + size)
    fresh = np.ones(d, dtype=bool)
    fresh[take] = False
    order = np.concatenate([rng.permutation(np.flatnonzero(fresh)), rng.permutation(take)])
    need = size - take.size
    return np.concatenate([take, order[:need]]), SweepCursor(order, need)
