"""Lasso by scheduled block coordinate descent, written only against the SMP API.

Objective (scikit-learn's scaling): ``(1/2n)||y - X beta - beta0||^2 + lambda ||beta||_1``,
with an unpenalised intercept ``beta0`` unless ``intercept=False``.

Rows are partitioned across workers; each keeps the residual ``r = y - X beta - beta0``
of its rows. A round is either

* a *block* round: the scheduler picks columns B by priority sampling
  (p ∝ |Δβ_j| + η); workers return ``X_B^T r``, ``sum(r)`` and their rows' block Gram
  ``X_B^T X_B`` (sparse); the scheduler sums them and solves the block subproblem
  exactly by coordinate descent (intercept included), commits, and broadcasts
  ``(B, Δβ_B, Δβ0)``. Because a block is solved exactly, correlation *inside* it is
  harmless (and splitting correlated columns across rounds would only zig-zag); the
  dependency filter guards what does run concurrently: with pipelining, a candidate
  whose |corr| with a column of a block still in flight is >= ρ is dropped (that
  needs the columns, so with data the workers read, block rounds do not overlap); or
* a *full* round: workers return ``X^T r``, ``||r||^2`` and ``r.y``; the scheduler
  computes the duality gap (stop test) and refreshes every column's priority to
  the size of the step it would take (its KKT violation).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numba import njit

from smpframe.apps.sparse_ops import (all_cols_dot, cols_axpy, cols_dot, csc_parts,
                                      warm_up as warm_up_kernels)
from smpframe.arrays import compiled_kernels, is_sparse, sparse_module
from smpframe.errors import InputError
from smpframe.apps.l1 import L1Regression
from smpframe.api import (Fragment, Payload, SchedulerContext, WorkerContext, expect_array,
                          sum_partials)
from smpframe.scheduling.blocks import dependency_filter, priority_sample


@njit(cache=True, nogil=True)
def solve_block(G, c, s, sr, n, beta, lam_n, intercept, max_passes, tol):
    """Exact coordinate descent on the block subproblem.

    ``G = X_B^T X_B``, ``c = X_B^T r``, ``s = 1^T X_B``, ``sr = sum(r)``. Returns
    (Δβ_B, Δβ0, decrease of ||r||^2).
    """
    b = c.shape[0]
    delta = np.zeros(b)
    q = np.zeros(b)  # G @ delta
    d0 = 0.0
    for _ in range(max_passes):
        biggest = 0.0
        if intercept:
            step = (sr - np.dot(s, delta) - n * d0) / n
            d0 += step
            biggest = abs(step)
        for j in range(b):
            gjj = G[j, j]
            if gjj <= 0.0:
                continue
            corr = c[j] - q[j] - d0 * s[j]
            w = beta[j] + delta[j]
            z = w * gjj + corr
            mag = abs(z) - lam_n
            new = (np.sign(z) * mag / gjj) if mag > 0.0 else 0.0
            step = new - w
            if step != 0.0:
                delta[j] += step
                for k in range(b):  # G is symmetric: its row j is contiguous
                    q[k] += G[j, k] * step
                biggest = max(biggest, abs(step))
        if biggest <= tol:
            break
    rr_drop = 2.0 * np.dot(c, delta) + 2.0 * d0 * sr - np.dot(delta, q) \
        - 2.0 * d0 * np.dot(s, delta) - n * d0 * d0
    return delta, d0, rr_drop


class Lasso(L1Regression):
    """Lasso (L1-regularised least squares) by scheduled block coordinate descent."""

    name = "lasso"
    reads_splits = True
    follows_paths = True
    gpu = True  # the array path (kernel="array", and every GPU worker) runs on wctx.xp

    # ---- scheduler ------------------------------------------------------------------
    def init(self, ctx: SchedulerContext) -> None:
        facts = ctx.facts
        n = int(sum_partials(facts, "n"))
        if n == 0:
            raise InputError("no samples in the data")
        col_sum, col_norm2 = sum_partials(facts, "col_sum"), sum_partials(facts, "col_norm2")
        d = col_sum.size
        intercept = bool(self.intercept)
        ybar = float(sum_partials(facts, "sum_y")) / n if intercept else 0.0
        xty = sum_partials(facts, "xty") - ybar * col_sum
        lam_max = float(np.max(np.abs(xty))) / n if d else 0.0
        if self.lambdas is not None:
            lam = float(self.lambdas[0])
            k = len(self.lambdas)
            ctx.model.update(coef_path=np.zeros((k, d)), intercept_path=np.zeros(k))
            ctx.state.update(path_index=0, path_rounds=[], path_gaps=[])
        else:
            lam = float(self.lam) if self.lam is not None else self.lambda_ratio * lam_max
        if not lam > 0:
            raise InputError(f"--lambda must be > 0 (lambda_max for this data is {lam_max:.6g})")
        ctx.cache = {"col_sum": col_sum, "col_norm2": col_norm2, "n": n, "ybar": ybar}
        rr = max(float(sum_partials(facts, "yy")) - n * ybar * ybar, 0.0)  # ||y - ybar||^2
        ctx.model.update(coef=np.zeros(d), intercept=np.array([ybar]), priority=np.zeros(d))
        ctx.state.update(lam=lam, lam_max=lam_max, rr=rr, objective=rr / (2 * n),
                         need_full=True, epoch_max=0.0, gap=None)
        ctx.report(objective=ctx.state["objective"], lam=lam)

    def warm_up(self, role: str, xp: Any) -> None:
        if role == "scheduler":
            one = np.ones(1)
            solve_block(np.eye(1), one, one, 1.0, 1.0, np.zeros(1), 0.1, True, 1, 0.0)
            dependency_filter(np.arange(2), sp.csc_matrix(np.eye(2)), 0.5, 2)
        elif compiled_kernels(xp, self.kernel):
            warm_up_kernels()

    def schedule(self, ctx: SchedulerContext) -> Payload | None:
        st, size = ctx.state, self.columns_per_round
        if ctx.inflight and not ctx.has_rows:
            return None  # the dependency filter needs the columns: rounds do not overlap
        if not st["need_full"]:
            if self.policy != "priority":
                block = self.baseline_block(ctx, size)
            else:
                block = None if self._epoch_done(ctx) else self._priority_block(ctx, size)
            if block is not None:
                return {"kind": "block", "idx": block}
        st["need_full"] = True
        if ctx.inflight:
            return None  # a full pass waits for the blocks in flight
        return {"kind": "full"}

    def _priority_block(self, ctx: SchedulerContext, size: int) -> np.ndarray:
        """Up to ``size`` columns sampled by priority, none coupled to a block in flight."""
        prio = ctx.model["priority"]
        pool = np.flatnonzero(prio > 0)
        if pool.size > 2 * size:
            pick = pool[priority_sample(ctx.rng, prio[pool], float(self.eta) * ctx.state["epoch_max"],
                                        2 * size)]
        else:
            pick = pool[np.argsort(-prio[pool], kind="stable")]
        return np.sort(self._independent_of_inflight(ctx, pick)[:size]).astype(np.int64)

    def _independent_of_inflight(self, ctx: SchedulerContext, pick: np.ndarray) -> np.ndarray:
        """Drop candidates with |corr| >= rho to a column of a block still in flight."""
        busy = [b["idx"] for b in ctx.inflight if b["kind"] == "block"]
        if not busy:
            return pick
        guard = np.unique(np.concatenate(busy))
        pick = pick[~np.isin(pick, guard)]  # a column in flight is not updated again (|corr| 1)
        rho = float(self.rho)
        if rho >= 1.0:
            return pick
        if "X" not in ctx.cache:
            ctx.cache["X"] = ctx.dataset.rows["X"].tocsc()
        kept = dependency_filter(np.concatenate([guard, pick]), ctx.cache["X"], rho, guard.size + pick.size)
        return kept[~np.isin(kept, guard)]

    @staticmethod
    def _epoch_done(ctx: SchedulerContext) -> bool:
        """The columns found violating at the last full pass have settled."""
        prio = ctx.model["priority"]
        return not prio.any() or prio.max() <= 0.05 * ctx.state["epoch_max"]

    def check_partial(self, ctx: SchedulerContext, block: Payload, fragment: int,
                      partial: Payload) -> None:
        full = block["kind"] == "full"
        size = ctx.model["coef"].size if full else len(block["idx"])
        expect_array(partial, "g" if full else "c", (size,))
        if not full and not (is_sparse(partial.get("G")) and partial["G"].shape == (size, size)):
            raise ValueError(f"'G' must be a sparse {size} x {size} matrix")

    def pull(self, ctx: SchedulerContext, block: Payload, partials: dict[int, Payload]) -> Payload | None:
        if block["kind"] == "full":
            self._pull_full(ctx, partials)
            return None
        return self._pull_block(ctx, block["idx"], partials)

    def _pull_block(self, ctx: SchedulerContext, idx: np.ndarray, partials: dict[int, Payload]) -> Payload:
        st, cache, model = ctx.state, ctx.cache, ctx.model
        c = sum_partials(partials, "c")
        sr = float(sum_partials(partials, "sr"))
        G = np.ascontiguousarray(sum_partials(partials, "G").toarray())
        n = cache["n"]
        beta_B = model["coef"][idx]
        lam_n = st["lam"] * n
        delta, d0, rr_drop = solve_block(G, c, cache["col_sum"][idx], sr, float(n), beta_B, lam_n,
                                         bool(self.intercept), 200,
                                         1e-12 * max(1.0, float(np.abs(beta_B).max(initial=0.0))))
        new_B = beta_B + delta
        model["coef"][idx] = new_B
        model["intercept"][0] += d0
        model["priority"][idx] = np.abs(delta)
        st["rr"] -= rr_drop
        st["objective"] += -rr_drop / (2 * n) + st["lam"] * (np.abs(new_B).sum() - np.abs(beta_B).sum())
        ctx.report(objective=st["objective"], nnz=int(np.count_nonzero(model["coef"])),
                   block=int(idx.size))
        moved = delta != 0.0
        return {"idx": idx[moved], "d": delta[moved], "d0": float(d0)}

    def _pull_full(self, ctx: SchedulerContext, partials: dict[int, Payload]) -> None:
        cache = ctx.cache
        n = cache["n"]
        g = sum_partials(partials, "g")
        rr, ry, sr = (float(sum_partials(partials, key)) for key in ("rr", "ry", "sr"))
        if self.intercept:
            g = g - cache["col_sum"] / n * sr
            rr_c, ry_c = rr - sr * sr / n, ry - cache["ybar"] * sr
        else:
            rr_c, ry_c = rr, ry
        # a full pass's sums do not depend on lambda: on a path, every lambda this
        # solution already solves is recorded and the next one scored from the same sums
        while self._score(ctx, g, rr, rr_c, ry_c):
            if not self._next_lambda(ctx):
                ctx.stop(converged=True)
                break
        beta = ctx.model["coef"]
        ctx.report(objective=ctx.state["objective"], gap=ctx.state["gap"],
                   nnz=int(np.count_nonzero(beta)), block=int(beta.size))

    def _score(self, ctx: SchedulerContext, g: np.ndarray, rr: float, rr_c: float,
               ry_c: float) -> bool:
        """Objective, relative duality gap and priorities at the current lambda from a
        full pass's (centred) sums; whether this lambda is solved."""
        st, cache, beta = ctx.state, ctx.cache, ctx.model["coef"]
        n, lam = cache["n"], st["lam"]
        primal = rr / (2 * n) + lam * float(np.abs(beta).sum())
        scale = max(n * lam, float(np.abs(g).max(initial=0.0)))
        dual = lam * ry_c / scale - n * lam * lam * rr_c / (2 * scale * scale)
        gap = max(primal - dual, 0.0)
        # priority: the step each coordinate would take alone (its KKT violation)
        norm2 = cache["col_norm2"]
        z = beta * norm2 + g
        target = np.sign(z) * np.maximum(np.abs(z) - n * lam, 0.0) / np.where(norm2 > 0, norm2, 1.0)
        prio = np.abs(np.where(norm2 > 0, target - beta, 0.0))
        ctx.model["priority"][:] = prio
        st.update(rr=rr, objective=primal, need_full=False, epoch_max=float(prio.max(initial=0.0)),
                  gap=gap / primal if primal > 0 else 0.0, blocks_since_full=0)
        return st["gap"] <= self.tol or st["epoch_max"] == 0.0

    def _next_lambda(self, ctx: SchedulerContext) -> bool:
        """On a path: record the solution at this lambda and move to the next; False at
        the end of the path (or without one)."""
        st, model = ctx.state, ctx.model
        if self.lambdas is None:
            return False
        i = st["path_index"]
        model["coef_path"][i] = model["coef"]
        model["intercept_path"][i] = model["intercept"][0]
        st["path_rounds"].append(ctx.round)
        st["path_gaps"].append(st["gap"])
        if i + 1 == len(self.lambdas):
            return False
        st.update(path_index=i + 1, lam=float(self.lambdas[i + 1]))
        return True

    def snapshot(self, ctx: SchedulerContext, fragment: int) -> Payload:
        return {"coef": ctx.model["coef"], "intercept": ctx.model["intercept"]}

    def result(self, ctx: SchedulerContext) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        st = ctx.state
        summary = {"app": self.name, "objective": st["objective"], "duality_gap": st["gap"],
                   "nnz": int(np.count_nonzero(ctx.model["coef"])), "lambda": st["lam"],
                   "lambda_max": st["lam_max"], "intercept": bool(self.intercept),
                   "schedule": self.policy}
        model = {"coef": ctx.model["coef"], "intercept": ctx.model["intercept"]}
        if self.lambdas is not None:  # how far the path got, and where each lambda was solved
            summary.update(path_solved=len(st["path_rounds"]), path_rounds=st["path_rounds"],
                           path_gaps=st["path_gaps"])
            model.update(coef_path=ctx.model["coef_path"], intercept_path=ctx.model["intercept_path"])
        return summary, model

    # ---- worker ---------------------------------------------------------------------
    def describe(self, wctx: WorkerContext, fragment: Fragment, data: Payload) -> Payload:
        X, y = data["X"], np.asarray(data["y"], dtype=np.float64)
        return {"n": int(y.size), "sum_y": float(y.sum()), "yy": float(y @ y), "xty": X.T @ y,
                "col_sum": np.asarray(X.sum(axis=0)).ravel(),
                "col_norm2": np.asarray(X.multiply(X).sum(axis=0)).ravel()}

    def load(self, wctx: WorkerContext, fragment: Fragment, data: Payload, model: Payload) -> dict:
        xp = wctx.xp
        y = np.asarray(data["y"], dtype=np.float64)
        if compiled_kernels(xp, self.kernel):
            X = data["X"].tocsc()
            r = y - X @ model["coef"] - float(model["intercept"][0])
            return {"X": X, "csc": csc_parts(X), "y": y, "r": r}
        X = sparse_module(xp).csc_matrix(data["X"].tocsc())  # to the device once
        y = xp.asarray(y)
        r = y - X @ xp.asarray(model["coef"]) - float(model["intercept"][0])
        return {"X": X, "y": y, "r": r}

    def push(self, wctx: WorkerContext, fragment: Fragment, block: Payload) -> Payload:
        f = fragment.state
        r, X = f["r"], f["X"]
        compiled = "csc" in f
        if block["kind"] == "full":
            g = all_cols_dot(*f["csc"], r) if compiled else X.T @ r
            return {"g": g, "rr": float(r @ r), "ry": float(r @ f["y"]), "sr": float(r.sum())}
        idx = block["idx"].copy()  # wire arrays are read-only; numba would compile a variant
        XB = X[:, idx if compiled else wctx.xp.asarray(idx)]
        c = cols_dot(*f["csc"], idx, r) if compiled else XB.T @ r
        return {"c": c, "sr": float(r.sum()), "G": (XB.T @ XB).tocsr()}

    def sync(self, wctx: WorkerContext, fragment: Fragment, update: Payload) -> None:
        f = fragment.state
        if "csc" in f:
            cols_axpy(*f["csc"], update["idx"].copy(), -update["d"], f["r"])
        elif update["idx"].size:
            xp = wctx.xp
            f["r"] -= f["X"][:, xp.asarray(update["idx"])] @ xp.asarray(update["d"])
        if update["d0"]:
            f["r"] -= update["d0"]
