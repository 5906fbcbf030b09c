"""K-Means (Lloyd's algorithm) as an SMP program, on CPU (numba) or GPU (cupy) workers.

The model is the ``(k, d)`` centre matrix, held by the scheduler; workers hold row
fragments of the data (moved to their device once, in ``load``). A round:

* ``schedule`` sends the current centres ``C_t`` (the block is the whole model:
  ``k x d`` floats);
* ``push``: each worker labels its rows with the nearest centre and returns, per
  fragment, the per-centre coordinate sums, member counts and the inertia (sum of
  squared distances to the nearest centre) of ``C_t``;
* ``pull`` adds the partials (in fragment order, so the result does not depend on
  which worker held what) and moves every centre to the mean of its members.

This is exactly scikit-learn's ``KMeans(algorithm="lloyd")`` iteration, so a run
from the same initial centres gives the same centres and inertia (to float
summation order), including scikit-learn's handling of empty clusters
(``empty="relocate"``: an empty cluster takes the point farthest from its centre,
found in one extra round that only happens when a cluster empties) and its final
assignment pass (the reported inertia is that of the returned centres).

Stopping (as scikit-learn): after ``iterations`` centre updates, or when the
squared centre shift ``sum_j ||c_j(t+1) - c_j(t)||^2`` is at most
``tol * mean_l var(X[:, l])`` (``tol`` is relative to the data's mean feature
variance), or when the centres stop moving at all. A final round then computes
the inertia of the returned centres (skipped when they did not move).

Rounds never overlap: each needs the centres committed by the one before, so with
``--pipeline-depth > 0`` ``schedule`` waits (returns None) while a round is in
flight, and the run stays exact.

Workers: on CPU a numba kernel (a fused one for d <= 4, else
``kmeans_kernels.assign_and_accumulate``); on GPU, and with ``kernel="array"``
anywhere, :func:`lloyd_partials_array` through ``wctx.xp`` (distances by a GEMM,
argmin, sums and counts by ``bincount``), the data moved to the device once in ``load``.

Initial centres: greedy k-means++ at the scheduler (on a random sample of
``init_sample`` rows when the data is larger; seeded by the run's ``--seed``),
or given: ``init_centers`` (list of lists) or ``init_path`` (a ``.npy`` file).
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numba import njit

from smpframe.apps.kmeans_kernels import (
    assign_and_accumulate,
    center_shift,
    kmeans_plusplus,
    update_centers,
)
from smpframe.arrays import compiled_kernels
from smpframe.errors import InputError
from smpframe.api import (Dataset, Fragment, Splits, Payload, SchedulerContext, SMPProgram, WorkerContext,
                          concat_partials, expect_array, sum_partials)

#: score-matrix cells per chunk of the array (cupy/numpy) path: rows x k
_CHUNK_CELLS_GPU = 1 << 24
_CHUNK_CELLS_CPU = 1 << 18


# ---- worker-side computations: one copy, any array module --------------------------

def lloyd_partials_array(xp: Any, X: Any, x_sq: Any, centers: Any, chunk_cells: int
                         ) -> tuple[Any, Any, Any]:
    """One Lloyd pass over ``X`` with array-module ops (numpy or cupy, on its device).

    Distances by ``||x||^2 - 2 X C^T + ||c||^2`` (a GEMM), labels by argmin (ties
    to the lower index), sums and counts by ``bincount`` (a scatter-add on GPU).
    Returns device arrays: sums (k, d), counts (k,) int64, inertia (0-d).
    """
    n, d = X.shape
    k = centers.shape[0]
    c_sq = (centers * centers).sum(axis=1)
    sums = xp.zeros(k * d, dtype=xp.float64)
    counts = xp.zeros(k, dtype=xp.int64)
    inertia = xp.zeros((), dtype=xp.float64)
    offsets = xp.arange(d, dtype=xp.int64)
    step = max(1, chunk_cells // max(k, d))
    for start in range(0, n, step):
        Xc = X[start:start + step]
        scores = Xc @ centers.T
        scores *= -2.0
        scores += c_sq
        labels = scores.argmin(axis=1)
        best = xp.take_along_axis(scores, labels[:, None], axis=1)[:, 0]
        inertia += xp.maximum(x_sq[start:start + step] + best, 0.0).sum()
        counts += xp.bincount(labels, minlength=k)
        flat = (labels[:, None] * d + offsets).ravel()
        sums += xp.bincount(flat, weights=Xc.ravel(), minlength=k * d)
    return sums.reshape(k, d), counts, inertia


def farthest_points(xp: Any, X: Any, x_sq: Any, centers: Any, m: int, chunk_cells: int
                    ) -> tuple[Any, Any, Any]:
    """The ``m`` rows farthest from their nearest centre: (squared distances, labels, rows)."""
    n = X.shape[0]
    k = centers.shape[0]
    c_sq = (centers * centers).sum(axis=1)
    dist = xp.empty(n, dtype=xp.float64)
    labels = xp.empty(n, dtype=xp.int64)
    step = max(1, chunk_cells // k)
    for start in range(0, n, step):
        scores = X[start:start + step] @ centers.T
        scores *= -2.0
        scores += c_sq
        lab = scores.argmin(axis=1)
        labels[start:start + step] = lab
        best = xp.take_along_axis(scores, lab[:, None], axis=1)[:, 0]
        dist[start:start + step] = xp.maximum(x_sq[start:start + step] + best, 0.0)
    m = min(m, n)
    idx = xp.argpartition(dist, n - m)[n - m:] if m < n else xp.arange(n)
    return dist[idx], labels[idx], X[idx]


_BLOCK = 256


@njit(cache=True, nogil=True)
def _lloyd_small_d(X, centers, x_sq):  # pragma: no cover - compiled
    # assign_and_accumulate for d <= 4, ~2.5x faster there: each block of rows is
    # copied to 4 column buffers (zero-padded), so one fused, vectorised loop per
    # centre computes ||c||^2 - 2 x.c for all 4 dims at once instead of one pass
    # over the score array per dimension. Same operations in the same order (the
    # padded terms add exactly 0.0), so the same labels, sums and inertia.
    n, d = X.shape
    k = centers.shape[0]
    a = np.zeros((k, 4))
    c_sq = np.zeros(k)
    for j in range(k):
        for l in range(d):
            a[j, l] = -2.0 * centers[j, l]
            c_sq[j] += centers[j, l] * centers[j, l]
    sums = np.zeros((k, 4))
    counts = np.zeros(k, dtype=np.int64)
    inertia = 0.0
    x0, x1, x2, x3 = np.zeros(_BLOCK), np.zeros(_BLOCK), np.zeros(_BLOCK), np.zeros(_BLOCK)
    best_score = np.empty(_BLOCK)
    best = np.empty(_BLOCK, dtype=np.int64)
    for start in range(0, n, _BLOCK):
        m = min(_BLOCK, n - start)
        for i in range(m):
            x0[i] = X[start + i, 0]
            if d > 1:
                x1[i] = X[start + i, 1]
            if d > 2:
                x2[i] = X[start + i, 2]
            if d > 3:
                x3[i] = X[start + i, 3]
            best_score[i] = np.inf
            best[i] = 0
        for j in range(k):
            cj, a0, a1, a2, a3 = c_sq[j], a[j, 0], a[j, 1], a[j, 2], a[j, 3]
            for i in range(m):
                s = cj + x0[i] * a0 + x1[i] * a1 + x2[i] * a2 + x3[i] * a3
                if s < best_score[i]:
                    best_score[i] = s
                    best[i] = j
        for i in range(m):
            b = best[i]
            counts[b] += 1
            sums[b, 0] += x0[i]
            sums[b, 1] += x1[i]
            sums[b, 2] += x2[i]
            sums[b, 3] += x3[i]
            inertia += max(x_sq[start + i] + best_score[i], 0.0)
    return sums[:, :d].copy(), counts, inertia


def lloyd_partials_numba(X: np.ndarray, centers: np.ndarray, x_sq: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, float]:
    """One Lloyd pass on the CPU: the fused small-d kernel for d <= 4, else
    :func:`~smpframe.apps.kmeans_kernels.assign_and_accumulate` (same results)."""
    if X.shape[1] <= 4 and centers.shape[0] > 0 and centers.shape[1] == X.shape[1]:
        sums, counts, inertia = _lloyd_small_d(X, centers, x_sq)
        return sums, counts, float(inertia)
    return assign_and_accumulate(X, centers, x_sq)


def _warm_up_numba() -> None:
    """Load the compiled Lloyd kernels (numba cache) before the solve clock starts."""
    X = np.zeros((2, 1))
    assign_and_accumulate(X, np.zeros((1, 1)), np.zeros(2))
    _lloyd_small_d(X, np.zeros((1, 1)), np.zeros(2))


class KMeans(SMPProgram):
    """K-Means clustering by Lloyd's algorithm (k-means++ init; CPU or GPU workers).

    Parameters
    ----------
    k : int
        Number of clusters.
    iterations : int
        Maximum Lloyd iterations.
    tol : float
        Stop when the summed squared centre shift is at most tol x mean feature
        variance (scikit-learn's rule).
    init_centers : list of lists, optional
        Initial centres, k x d (default: k-means++).
    init_path : str, optional
        Initial centres from a (k, d) .npy (or .csv) file.
    init_sample : int
        Run k-means++ on a random sample of this many rows.
    empty : {"relocate", "keep"}
        An empty cluster moves to the farthest point (scikit-learn) or keeps its centre.
    kernel : {"auto", "array"}
        CPU workers: numba kernels (auto) or the array code GPU workers run.
    fmt : {"npy", "csv", "libsvm", "parquet"}, optional
        Input format (default: by suffix .npy/.csv/.svm/.parquet; Parquet: every column
        numeric).
    synthetic : dict, optional
        Arguments of the built-in blobs (when no data is given).
    """

    name = "kmeans"
    gpu = True
    cli_flags = {"init_path": "--init", "fmt": "--format"}

    def __init__(self, k: int = 8, iterations: int = 300, tol: float = 1e-4,
                 init_centers: list[list[float]] | None = None, init_path: str | None = None,
                 init_sample: int = 100_000, empty: Literal["relocate", "keep"] = "relocate",
                 kernel: Literal["auto", "array"] = "auto",
                 fmt: Literal["npy", "csv", "libsvm", "parquet"] | None = None,
                 synthetic: dict[str, Any] | None = None) -> None:
        self.k = k
        self.iterations = iterations
        self.tol = tol
        self.init_centers = init_centers
        self.init_path = init_path
        self.init_sample = init_sample
        self.empty = empty
        self.kernel = kernel
        self.fmt = fmt
        self.synthetic = synthetic

    def check_params(self) -> None:
        if int(self.k) < 1:
            raise InputError(f"--k must be >= 1, got {self.k}")
        if int(self.iterations) < 1:
            raise InputError(f"--iterations must be >= 1, got {self.iterations}")
        if not 0 <= float(self.tol) < float("inf"):
            raise InputError(f"--tol must be a finite number >= 0, got {self.tol}")
        if int(self.init_sample) < 1:
            raise InputError(f"--init-sample must be >= 1, got {self.init_sample}")
        if self.empty not in ("relocate", "keep"):
            raise InputError(f"empty must be 'relocate' or 'keep', got {self.empty!r}")
        if self.kernel not in ("auto", "array"):
            raise InputError(f"kernel must be 'auto' or 'array', got {self.kernel!r}")
        if self.init_centers is not None:
            try:
                np.asarray(self.init_centers, dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError("init_centers must be a k x d list of numbers") from None

    # ---- scheduler ------------------------------------------------------------------
    def load_data(self, source: Any) -> Dataset | Splits:
        from smpframe.data.splits import is_path
        from smpframe.data.dense import check_dense, guess_format, load_dense, make_blobs

        if is_path(source) and (self.fmt or guess_format(str(source))) in ("npy", "csv", "parquet"):
            return Splits(self.fmt or guess_format(str(source)), str(source))  # the workers read it
        if source is None:
            X, _ = make_blobs(**(self.synthetic or {}))
        elif is_path(source):
            X = load_dense(str(source), self.fmt)
        else:
            X = check_dense(source)
        return Dataset(rows={"X": X}, meta={"n_rows": X.shape[0], "n_features": X.shape[1]},
                       weights=np.ones(X.shape[0]))

    def init(self, ctx: SchedulerContext) -> None:
        p, facts = self.params, ctx.facts
        n, mean, m2 = _combine_moments(facts)
        if p["k"] > n:
            raise InputError(f"--k {p['k']} is more than the {n} rows of the data")
        ctx.model["centers"] = self._initial_centers(_row_sample(facts, p["init_sample"], ctx.rng),
                                                     mean.size, ctx.rng)
        ctx.model["counts"] = np.zeros(p["k"], dtype=np.int64)
        # scikit-learn's tolerance: tol times the mean per-feature variance
        tol_abs = float(np.mean(m2 / n)) * p["tol"]
        ctx.state.update(phase="lloyd", iteration=0, inertia=None, history=[], shift=None,
                         tol_abs=tol_abs, n_empty=0, relocated=0, converged=False,
                         n_rows=n, n_features=int(mean.size))

    def _initial_centers(self, sample: np.ndarray, d: int, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        k = p["k"]
        given, path = None, None
        if p["init_centers"] is not None:
            given = np.asarray(p["init_centers"], dtype=np.float64)
        elif p["init_path"]:
            from smpframe.data.dense import load_dense
            path = p["init_path"]
            given = load_dense(path)  # .npy, or .csv by suffix
        if given is not None:
            if given.shape != (k, d):
                raise InputError(f"initial centres have shape {given.shape}, expected ({k}, {d}) "
                                 f"for --k {k} and {d} features", path)
            if not np.isfinite(given).all():
                raise InputError("initial centres contain NaN or Inf", path)
            return np.ascontiguousarray(given, dtype=np.float64)
        if k > sample.shape[0]:
            raise InputError(f"--k {k} is more than the {sample.shape[0]} rows sampled "
                             "for k-means++ (raise --init-sample)")
        return kmeans_plusplus(sample, k, rng)

    def schedule(self, ctx: SchedulerContext) -> Payload | None:
        # Every Lloyd round needs the centres of the one before, so a round is only
        # scheduled once the previous one has committed: with --pipeline-depth > 0 the
        # run stays exact (and synchronous) instead of computing rounds on stale centres.
        if ctx.inflight:
            return None
        st = ctx.state
        if st["phase"] == "relocate":
            return {"kind": "far", "centers": ctx.model["centers"], "m": int(st["n_empty"])}
        return {"kind": "lloyd", "centers": ctx.model["centers"]}

    def check_partial(self, ctx: SchedulerContext, block: Payload, fragment: int,
                      partial: Payload) -> None:
        k, d = ctx.model["centers"].shape
        if block["kind"] == "far":
            labels = expect_array(partial, "labels", (None,), kinds="iu")
            expect_array(partial, "dist", labels.shape)
            if partial["rows"].size != labels.size * d or labels.size > int(block["m"]):
                raise ValueError("farthest points: rows, labels and dist disagree")
            if labels.size and (labels.min() < 0 or labels.max() >= k):
                raise ValueError("a label is out of range")
            return
        expect_array(partial, "sums", (k, d))
        counts = expect_array(partial, "counts", (k,), kinds="iu")
        start, stop = ctx.bounds[fragment]
        if counts.min(initial=0) < 0 or int(counts.sum()) != stop - start:
            raise ValueError(f"counts must be >= 0 and add up to the fragment's {stop - start} rows")

    def pull(self, ctx: SchedulerContext, block: Payload, partials: dict[int, Payload]) -> None:
        st, model = ctx.state, ctx.model
        if block["kind"] == "far":
            self._relocate(ctx, block, partials)
            return None
        sums = np.asarray(sum_partials(partials, "sums"), dtype=np.float64)
        counts = np.asarray(sum_partials(partials, "counts"), dtype=np.int64)
        inertia = float(sum_partials(partials, "inertia"))
        st["inertia"] = inertia  # of the centres sent in this round
        st["history"].append(inertia)
        model["counts"] = counts
        ctx.report(inertia=inertia, iteration=st["iteration"])
        if st["phase"] == "final":
            ctx.stop(converged=bool(st["converged"]))
            return None
        empty = int(np.count_nonzero(counts == 0))
        if empty and self.empty == "relocate":
            model["pending_sums"], model["pending_counts"] = sums, counts
            st.update(phase="relocate", n_empty=empty)
            return None
        self._update(ctx, sums, counts)
        return None

    def _relocate(self, ctx: SchedulerContext, block: Payload, partials: dict[int, Payload]) -> None:
        """scikit-learn's empty-cluster rule: each empty cluster takes one of the points
        farthest from their centre, which leaves its old cluster."""
        st, model = ctx.state, ctx.model
        sums = np.array(model.pop("pending_sums"), dtype=np.float64)
        counts = np.array(model.pop("pending_counts"), dtype=np.int64)
        dist = concat_partials(partials, "dist").astype(np.float64)
        labels = concat_partials(partials, "labels").astype(np.int64)
        rows = np.concatenate([np.asarray(q["rows"], dtype=np.float64).reshape(-1, sums.shape[1])
                               for q in partials.values()])
        empties = np.flatnonzero(counts == 0)
        order = np.argsort(-dist, kind="stable")[:empties.size]
        for new, far in zip(empties, order):
            old = labels[far]
            sums[old] -= rows[far]
            counts[old] -= 1
            sums[new] = rows[far]
            counts[new] = 1
        st.update(phase="lloyd", n_empty=0, relocated=int(st["relocated"]) + int(order.size))
        self._update(ctx, sums, counts)

    def _update(self, ctx: SchedulerContext, sums: np.ndarray, counts: np.ndarray) -> None:
        st, model = ctx.state, ctx.model
        old = model["centers"]
        new = update_centers(sums, counts, old)
        shift = float(np.sum(center_shift(old, new) ** 2))
        model["centers"] = new
        st["iteration"] += 1
        st["shift"] = shift
        ctx.report(center_shift=shift)
        if shift == 0.0:  # nothing moved: the inertia just measured is the final one
            st["converged"] = True
            ctx.stop(converged=True)
        elif shift <= st["tol_abs"] or st["iteration"] >= self.iterations:
            st["converged"] = shift <= st["tol_abs"]
            st["phase"] = "final"  # one more pass: the inertia of the returned centres

    def snapshot(self, ctx: SchedulerContext, fragment: int) -> Payload:
        return {}  # workers keep no model state: the centres ride on every block

    def expected_rounds(self, ctx: SchedulerContext) -> int:
        return int(self.iterations) + 1  # and the inertia of the returned centres

    def result(self, ctx: SchedulerContext) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        st, p = ctx.state, self.params
        n, d = st["n_rows"], st["n_features"]
        summary = {"app": self.name, "k": p["k"], "inertia": st["inertia"],
                   "iterations": st["iteration"], "center_shift": st["shift"],
                   "tol_abs": st["tol_abs"], "empty_relocations": st["relocated"],
                   "n_rows": n, "n_features": d, "inertia_history": list(st["history"])}
        return summary, {"centers": ctx.model["centers"], "counts": ctx.model["counts"]}

    # ---- worker ---------------------------------------------------------------------
    def warm_up(self, role: str, xp: Any) -> None:
        if role == "worker" and compiled_kernels(xp, self.kernel):
            _warm_up_numba()

    def describe(self, wctx: WorkerContext, fragment: Fragment, data: Payload) -> Payload:
        """Rows, per-feature mean and squared deviations (for the tolerance), and a random
        sample of up to ``init_sample`` rows in random order (for k-means++)."""
        X = np.asarray(data["X"], dtype=np.float64)
        n = X.shape[0]
        mean = X.mean(axis=0) if n else np.zeros(X.shape[1])
        rng = np.random.default_rng([fragment.id, n])
        take = rng.permutation(n)[:int(self.init_sample)] if n > int(self.init_sample) else np.arange(n)
        return {"n": n, "mean": mean, "m2": ((X - mean) ** 2).sum(axis=0), "sample": X[take]}

    def load(self, wctx: WorkerContext, fragment: Fragment, data: Payload, model: Payload) -> dict:
        xp = wctx.xp
        # to the device once; on CPU a writable copy (arrays off the wire are read-only,
        # and numba compiles read-only arguments as a separate signature)
        X = xp.array(data["X"], dtype=xp.float64, order="C")
        return {"X": X, "x_sq": (X * X).sum(axis=1)}

    def push(self, wctx: WorkerContext, fragment: Fragment, block: Payload) -> Payload:
        xp = wctx.xp
        f = fragment.state
        chunk = _CHUNK_CELLS_CPU if xp is np else _CHUNK_CELLS_GPU
        if block["kind"] == "far":
            C = xp.asarray(block["centers"], dtype=xp.float64)
            dist, labels, rows = farthest_points(xp, f["X"], f["x_sq"], C, int(block["m"]), chunk)
            return {"dist": dist, "labels": labels, "rows": rows}
        if compiled_kernels(xp, self.kernel):
            C = np.array(block["centers"], dtype=np.float64, order="C")  # writable, as warmed up
            sums, counts, inertia = lloyd_partials_numba(f["X"], C, f["x_sq"])
        else:
            C = xp.asarray(block["centers"], dtype=xp.float64)
            sums, counts, inertia = lloyd_partials_array(xp, f["X"], f["x_sq"], C, chunk)
        return {"sums": sums, "counts": counts, "inertia": float(inertia)}




def _combine_moments(facts: dict[int, Payload]) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, per-feature mean, summed squared deviations) of every fragment together
    (Chan et al.'s pairwise update: no precision lost to a raw sum of squares)."""
    n = sum(int(f["n"]) for f in facts.values())
    if n == 0:
        raise InputError("no rows in the data")
    mean = sum(f["n"] * np.asarray(f["mean"]) for f in facts.values()) / n
    m2 = sum(np.asarray(f["m2"]) + f["n"] * (np.asarray(f["mean"]) - mean) ** 2
             for f in facts.values())
    return n, mean, m2


def _row_sample(facts: dict[int, Payload], size: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform sample of ``size`` rows of the whole data (every row when fewer), from
    each fragment's own random sample: how many come from each is hypergeometric."""
    counts = np.array([int(f["n"]) for f in facts.values()], dtype=np.int64)
    if counts.sum() > size:
        counts = rng.multivariate_hypergeometric(counts, size)
    return np.concatenate([np.asarray(f["sample"])[:c] for f, c in zip(facts.values(), counts)])
