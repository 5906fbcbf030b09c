"""Sparse (L1) logistic regression by scheduled coordinate descent, on the SMP API.

Objective::

    (1/n) sum_i log(1 + exp(-y_i (x_i . beta + beta0))) + lambda ||beta||_1

with labels ``y`` in {-1,+1} ({0,1} is accepted and mapped) and an unpenalised
intercept ``beta0`` unless ``intercept=False``.

See :class:`LogReg` for the schedule.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import entr

from smpframe.apps import logreg_kernels as K
from smpframe.apps.l1 import L1Regression
from smpframe.apps.sparse_ops import cols_dot_weighted, csc_parts
from smpframe.arrays import compiled_kernels, sparse_module
from smpframe.errors import InputError
from smpframe.api import (Dataset, Fragment, Payload, SchedulerContext, WorkerContext,
                          concat_partials, expect_array, sum_partials)
from smpframe.scheduling.blocks import priority_sample

#: Armijo constant: a step must achieve this fraction of the decrease its model predicts
SIGMA = 0.01
#: a step halved below this length is dropped
MIN_STEP = 1.0 / 1024
#: inner coordinate-descent passes on a block's Newton model: at most, and the relative stop
INNER_PASSES = 4
INNER_TOL = 1e-2
#: a full round comes at least every max(CYCLE_MIN, CYCLE_SWEEPS x blocks to cover the pool) rounds
CYCLE_MIN = 6
CYCLE_SWEEPS = 1
#: a block's columns hold at most this share of X's nonzeros, or BLOCK_NNZ_MIN if more
#: (block_size caps their number)
BLOCK_NNZ = 0.25
BLOCK_NNZ_MIN = 1 << 20


class LogReg(L1Regression):
    """Sparse logistic regression (L1) by scheduled coordinate descent.

    Rows are partitioned across workers; each keeps the margins ``m = X beta + beta0``
    of its rows and, per row, the loss and its first and second derivatives in m
    (``dl``, ``w``). A round is either

    * a *block* round: the scheduler picks columns B by priority (the largest, or
      sampled with p ∝ |Δβ_j| + η when many are pending), at most ``block_size`` of
      them holding at most a quarter of X's nonzeros; workers return the block's gradient partials
      ``sum x dl``, their rows' curvatures ``w`` and their loss sum; the scheduler,
      which also holds X, takes a soft-thresholded Newton step on B (and the
      intercept): a few passes of coordinate descent on the block's L1 Newton
      model ``g.d + (1/2n) sum w (x_B.d + d0)^2 + λ|β_B + d|`` (GLMNET's
      subproblem, exact curvature, cross terms included); it commits the step and
      broadcasts ``(B, Δβ_B, Δβ0)``, and workers update their margins; or
    * a *full* round: workers return ``sum x dl``, ``sum x^2 w`` for every column
      and the rows' probabilities; the scheduler computes the relative duality gap
      and refreshes every column's priority to the Newton step it would take alone.

    **Stop** (``tol``, at a full round): relative duality gap ``<= tol``, or a
    relative objective decrease since the previous full round ``<= tol`` (the gap's
    dual point is loose on text-like data, so the objective test usually ends the
    run first; ``summary["stopped_by"]`` says which).

    **Safeguard.** Every round also returns the loss at the current point, so a
    step committed in one round is checked in the next: it is kept if the
    objective fell by at least 1% of what the step's Newton model predicted, else
    it is halved (a correction is broadcast; the partials computed at the rejected
    point are dropped) and later steps are damped. The accepted objective never
    rises; the reported model is always an accepted (checked) point.

    **Dependency scheduling.** Correlated columns in one block need no filtering:
    the block's Newton step accounts for their interaction exactly. Nor do rounds
    overlap: every step is checked on the margins it produced, so with
    ``--pipeline-depth`` > 0 the scheduler still waits for the round in flight, and
    ``--rho`` (which filters against blocks in flight) has nothing to do.

    **Summary** adds ``accuracy`` (training), ``nnz``, ``duality_gap`` (relative),
    ``objective_change``, ``lambda``/``lambda_max``; ``model.npz`` holds ``coef``
    and ``intercept``.
    """

    name = "logreg"
    gpu = True  # the array path (kernel="array", and every GPU worker) runs on wctx.xp

    # a block's cost here is its nonzeros (capped at BLOCK_NNZ of X's), so allow many columns
    default_block_size = 1024
    synthetic_kind = "classification"

    # ---- scheduler ------------------------------------------------------------------
    def load_data(self, source: Any) -> Dataset:
        dataset = super().load_data(source)
        dataset.rows["y"] = check_labels(dataset.rows["y"], _label_file(source, self.fmt, self.labels))
        return dataset

    def init(self, ctx: SchedulerContext) -> None:
        X = ctx.dataset.rows["X"].tocsc()
        y = np.asarray(ctx.dataset.rows["y"], dtype=np.float64)
        n, d = X.shape
        intercept = bool(self.intercept)
        share = float(np.mean(y > 0))
        b0 = float(np.log(share / (1.0 - share))) if intercept else 0.0
        z0 = y * b0
        a0 = 1.0 / (1.0 + np.exp(z0))
        lam_max = float(np.max(np.abs(X.T @ (y * a0)))) / n if d else 0.0
        lam = float(self.lam) if self.lam is not None else float(self.lambda_ratio) * lam_max
        if not lam > 0:
            raise InputError(f"--lambda must be > 0 (lambda_max for this data is {lam_max:.6g})")
        X.sort_indices()
        col_nnz = np.diff(X.indptr)
        ctx.cache = {"X": X, "y": y, "n": n, "csc": csc_parts(X), "col_nnz": col_nnz,
                     "nnz_budget": max(BLOCK_NNZ * float(col_nnz.sum()), BLOCK_NNZ_MIN)}
        loss0 = float(np.mean(np.logaddexp(0.0, -z0)))
        ctx.model.update(coef=np.zeros(d), intercept=np.array([b0]), priority=np.zeros(d),
                         p_idx=np.zeros(0, np.int64), p_delta=np.zeros(0), p_beta=np.zeros(0),
                         p_g=np.zeros(0))
        ctx.state.update(lam=lam, lam_max=lam_max, objective=loss0, need_full=True, epoch_max=0.0,
                         gap=None, nu=1.0, pending=None, i_prio=0.0, rejected=0,
                         since_full=0, last_full=None, change=None, stopped_by=None, accepted=0)
        ctx.report(objective=loss0, lam=lam)

    def warm_up(self, role: str, xp: Any) -> None:
        if role == "scheduler":
            K.warm_up_scheduler()
        elif compiled_kernels(xp, self.kernel):
            K.warm_up()

    def schedule(self, ctx: SchedulerContext) -> Payload | None:
        if ctx.inflight:
            return None  # a step is checked on the margins it produced: wait for the round in flight
        return self._next_block(ctx)

    def _next_block(self, ctx: SchedulerContext) -> Payload:
        st = ctx.state
        if st["need_full"]:
            return {"kind": "full"}
        if self.policy != "priority":
            block = self.baseline_block(ctx, self.columns_per_round)
            if block is None:
                st["need_full"] = True
                return {"kind": "full"}
            return {"kind": "block", "idx": block}
        prio = ctx.model["priority"]
        pool = np.flatnonzero(prio > 0)
        floor = 0.05 * st["epoch_max"]
        size = self.columns_per_round
        budget = ctx.cache["nnz_budget"]
        col_nnz = ctx.cache["col_nnz"]
        sweep = max(-(-pool.size // size), int(np.ceil(col_nnz[pool].sum() / budget)))
        st["since_full"] += 1
        if st["since_full"] > max(CYCLE_MIN, CYCLE_SWEEPS * sweep):
            st["need_full"] = True  # an epoch's worth of blocks: time to re-rank every column
            return {"kind": "full"}
        if pool.size == 0 or prio[pool].max() <= floor:
            if self.intercept and st["i_prio"] > floor:
                return {"kind": "block", "idx": np.zeros(0, np.int64)}
            st["need_full"] = True
            return {"kind": "full"}
        if pool.size > 2 * size:
            pick = pool[priority_sample(ctx.rng, prio[pool], float(self.eta) * st["epoch_max"],
                                        2 * size)]
        else:
            pick = pool[np.argsort(-prio[pool], kind="stable")]
        block = pick[:size]
        # a round's cost is its columns' nonzeros: cap them (rare columns come many at a time)
        block = block[:max(1, int(np.searchsorted(np.cumsum(col_nnz[block]), budget, side="right")))]
        return {"kind": "block", "idx": np.sort(block).astype(np.int64)}

    def check_partial(self, ctx: SchedulerContext, block: Payload, fragment: int,
                      partial: Payload) -> None:
        start, stop = ctx.bounds[fragment]
        full = block["kind"] == "full"
        size = ctx.model["coef"].size if full else len(block["idx"])
        for key in ("g", "h", "gp") if full else ("g", "h"):
            expect_array(partial, key, (size,))
        expect_array(partial, "a" if full else "w", (stop - start,))

    def pull(self, ctx: SchedulerContext, block: Payload, partials: dict[int, Payload]) -> Payload | None:
        st, model = ctx.state, ctx.model
        n = ctx.cache["n"]
        loss = float(sum_partials(partials, "loss"))
        objective = loss / n + st["lam"] * float(np.abs(model["coef"]).sum())
        if st["pending"] is not None:
            if not self._acceptable(ctx, objective):
                return self._backtrack(ctx)
            if st["pending"]["t"] == 1.0:
                st["nu"] = max(1.0, st["nu"] * 0.8)
            st["pending"] = None
            st["accepted"] += 1
        st["objective"] = objective
        if block["kind"] == "full":
            self._pull_full(ctx, partials, loss)
            return None
        return self._pull_block(ctx, block["idx"], partials)

    # ---- the safeguard ----------------------------------------------------------------
    def _model_change(self, ctx: SchedulerContext, t: float) -> float:
        """What the pending step's quadratic model predicts the objective does at length t.

        The first-order and L1 parts are summed per coordinate first, so the
        prediction stays accurate for the tiny steps near the optimum.
        """
        m, pend, lam = ctx.model, ctx.state["pending"], ctx.state["lam"]
        beta, step = m["p_beta"], t * m["p_delta"]
        first = float(np.sum(m["p_g"] * step + lam * (np.abs(beta + step) - np.abs(beta))))
        return first + t * pend["g0"] * pend["d0"] + 0.5 * t * t * pend["quad"]

    def _acceptable(self, ctx: SchedulerContext, objective: float) -> bool:
        pend = ctx.state["pending"]
        predicted = min(self._model_change(ctx, pend["t"]), 0.0)
        return objective - pend["F0"] <= SIGMA * predicted + 1e-13 * abs(pend["F0"])

    def _backtrack(self, ctx: SchedulerContext) -> Payload:
        """Halve the pending step (drop it once too short); damp later steps."""
        st, m = ctx.state, ctx.model
        pend = st["pending"]
        t = pend["t"] / 2.0
        if t < MIN_STEP:
            t = 0.0
        idx = m["p_idx"]
        new_coef = m["p_beta"] + t * m["p_delta"]
        d = new_coef - m["coef"][idx]
        d0 = (t - pend["t"]) * pend["d0"]
        m["coef"][idx] = new_coef
        m["intercept"][0] = pend["b0"] + t * pend["d0"]
        st["nu"] = min(st["nu"] * 2.0, 1e12)
        st["rejected"] += 1
        if t == 0.0:
            st["pending"] = None
            st["objective"] = pend["F0"]
            m["priority"][idx] *= 0.5
        else:
            pend["t"] = t
        moved = d != 0.0
        return {"idx": idx[moved], "d": d[moved], "d0": float(d0)}

    # ---- rounds -----------------------------------------------------------------------
    def _pull_block(self, ctx: SchedulerContext, idx: np.ndarray,
                    partials: dict[int, Payload]) -> Payload | None:
        st, model, n = ctx.state, ctx.model, ctx.cache["n"]
        g = sum_partials(partials, "g") / n
        hess = st["nu"] * sum_partials(partials, "h") / n
        g0 = float(sum_partials(partials, "sdl")) / n
        w = concat_partials(partials, "w")
        intercept = bool(self.intercept)
        if intercept:
            h0 = float(w.sum()) / n
            st["i_prio"] = abs(g0) / h0 if h0 > 0 else 0.0
        beta = model["coef"][idx]
        # the Newton model of the block (exact curvature: the scheduler holds X, the
        # workers sent the rows' w); damped by nu after a rejected step
        delta, d0, quad = K.newton_block(*ctx.cache["csc"], idx, st["nu"] * w, hess, g, g0, beta, st["lam"],
                                         intercept, INNER_PASSES, INNER_TOL)
        model["priority"][idx] = np.abs(delta)
        if not (d0 != 0.0 or np.any(delta != 0.0)):
            return None
        model["p_idx"], model["p_delta"], model["p_beta"], model["p_g"] = idx, delta, beta.copy(), g
        st["pending"] = {"t": 1.0, "d0": d0, "g0": g0, "quad": quad / st["nu"], "F0": st["objective"],
                         "b0": float(model["intercept"][0])}
        if self._model_change(ctx, 1.0) >= 0.0:  # no predicted decrease: nothing worth trying
            st["pending"] = None
            return None
        model["coef"][idx] = beta + delta
        model["intercept"][0] += d0
        ctx.report(objective=st["objective"], nnz=int(np.count_nonzero(model["coef"])),
                   block=int(idx.size))
        moved = delta != 0.0
        return {"idx": idx[moved], "d": delta[moved], "d0": float(d0)}

    def _pull_full(self, ctx: SchedulerContext, partials: dict[int, Payload], loss: float) -> None:
        st, model, cache = ctx.state, ctx.model, ctx.cache
        n, lam, y = cache["n"], st["lam"], cache["y"]
        g_raw = sum_partials(partials, "g")
        h = sum_partials(partials, "h") / n
        gp = sum_partials(partials, "gp")
        a = concat_partials(partials, "a")
        beta = model["coef"]
        primal = loss / n + lam * float(np.abs(beta).sum())
        gap = duality_gap(primal, g_raw, gp, a, y, lam, bool(self.intercept))
        g = g_raw / n
        prio = np.abs(newton_steps(beta, g, st["nu"] * h, lam))
        model["priority"][:] = prio
        i_prio = 0.0
        if self.intercept:
            h0 = float(sum_partials(partials, "sw")) / n
            i_prio = abs(float(sum_partials(partials, "sdl")) / n) / h0 if h0 > 0 else 0.0
        rel = gap / primal if primal > 0 else 0.0
        last = st["last_full"] if st["accepted"] else None  # (no step since: nothing to compare)
        change = (last - primal) / primal if last is not None and primal > 0 else st["change"]
        st["accepted"] = 0
        st.update(objective=primal, need_full=False, gap=rel, i_prio=i_prio, since_full=0,
                  blocks_since_full=0,
                  epoch_max=max(float(prio.max(initial=0.0)), i_prio), last_full=primal,
                  change=change)
        ctx.report(objective=primal, gap=rel, nnz=int(np.count_nonzero(beta)), block=int(beta.size))
        tol = float(self.tol)
        if rel <= tol:
            st["stopped_by"] = "duality gap"
        elif last is not None and change <= tol:
            st["stopped_by"] = "objective change"
        elif st["epoch_max"] == 0.0:
            st["stopped_by"] = "no step left"
        else:
            return
        ctx.stop(converged=True)

    def snapshot(self, ctx: SchedulerContext, fragment: int) -> Payload:
        return {"coef": ctx.model["coef"], "intercept": ctx.model["intercept"]}

    def result(self, ctx: SchedulerContext) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        st, m = ctx.state, ctx.model
        coef, b0 = m["coef"].copy(), float(m["intercept"][0])
        if st["pending"] is not None:  # stopped before the last step was checked: use the last checked point
            coef[m["p_idx"]] = m["p_beta"]
            b0 = st["pending"]["b0"]
        margin = ctx.cache["X"] @ coef + b0
        accuracy = float(np.mean(np.where(margin > 0, 1.0, -1.0) == ctx.cache["y"]))
        summary = {"app": self.name, "objective": st["objective"], "duality_gap": st["gap"],
                   "accuracy": accuracy, "nnz": int(np.count_nonzero(coef)), "lambda": st["lam"],
                   "lambda_max": st["lam_max"], "intercept": bool(self.intercept),
                   "objective_change": st["change"], "stopped_by": st["stopped_by"],
                   "rejected_steps": int(st["rejected"]), "schedule": self.policy}
        return summary, {"coef": coef, "intercept": np.array([b0])}

    # ---- worker ---------------------------------------------------------------------
    def load(self, wctx: WorkerContext, fragment: Fragment, data: Payload, model: Payload) -> dict:
        xp = wctx.xp
        y = np.ascontiguousarray(data["y"], dtype=np.float64)
        if not compiled_kernels(xp, self.kernel):  # the array code: numpy/scipy or cupy/cupyx
            X = sparse_module(xp).csc_matrix(data["X"].tocsc())
            y = xp.asarray(y)
            m = X @ xp.asarray(model["coef"]) + float(model["intercept"][0])
            return {"X": X, "X2": X.multiply(X).tocsc(), "y": y, "pos": y > 0, "m": m,
                    **row_terms(xp, m, y)}
        X = data["X"].tocsc()
        X.sort_indices()
        parts = csc_parts(X)
        m = np.ascontiguousarray(X @ model["coef"] + float(model["intercept"][0]), dtype=np.float64)
        n = y.shape[0]
        f = {"csc": parts, "y": y, "m": m, "loss": np.empty(n), "a": np.empty(n), "dl": np.empty(n),
             "w": np.empty(n), "mark": np.zeros(n, np.bool_), "touched": np.empty(n, np.int64)}
        K.all_rows(m, y, f["loss"], f["a"], f["dl"], f["w"])
        return f

    def push(self, wctx: WorkerContext, fragment: Fragment, block: Payload) -> Payload:
        f = fragment.state
        out: Payload = {"loss": float(f["loss"].sum()), "sdl": float(f["dl"].sum()),
                        "sw": float(f["w"].sum())}
        compiled = "csc" in f
        if block["kind"] == "full":
            if compiled:
                g, h, gp = K.full_sums(*f["csc"], f["dl"], f["w"], f["a"], f["y"])
            else:
                g, h, gp = f["X"].T @ f["dl"], f["X2"].T @ f["w"], f["X"].T @ (f["a"] * f["pos"])
            out.update(g=g, h=h, gp=gp, a=f["a"].copy())
        else:
            idx = np.array(block["idx"], np.int64)
            if compiled:
                out["g"], out["h"] = cols_dot_weighted(*f["csc"], idx, f["dl"], f["w"])
            else:
                cols = wctx.xp.asarray(idx)
                out["g"], out["h"] = f["X"][:, cols].T @ f["dl"], f["X2"][:, cols].T @ f["w"]
            out["w"] = f["w"].copy()
        return out

    def sync(self, wctx: WorkerContext, fragment: Fragment, update: Payload) -> None:
        f = fragment.state
        idx = np.asarray(update["idx"], np.int64)
        d = np.asarray(update["d"], np.float64)
        if "csc" in f:
            K.apply_step(*f["csc"], idx, d, float(update["d0"]), f["m"], f["y"], f["loss"], f["a"],
                         f["dl"], f["w"], f["mark"], f["touched"])
            return
        xp = wctx.xp
        if idx.size:
            f["m"] += f["X"][:, xp.asarray(idx)] @ xp.asarray(d)
        f["m"] += float(update["d0"])
        f.update(row_terms(xp, f["m"], f["y"]))


def row_terms(xp: Any, m: Any, y: Any) -> dict[str, Any]:
    """Every row's loss ``log(1 + e^-z)``, ``a = sigmoid(-z)``, ``dl = -y a`` and ``w = a(1 - a)``
    for ``z = y m`` (what the compiled kernel's ``all_rows`` computes, as array code)."""
    z = y * m
    a = xp.exp(-xp.logaddexp(0.0, z))
    return {"loss": xp.logaddexp(0.0, -z), "a": a, "dl": -y * a, "w": a * (1.0 - a)}


def newton_steps(beta: np.ndarray, g: np.ndarray, h: np.ndarray, lam: float) -> np.ndarray:
    """Per coordinate, the step minimising ``g d + h d^2 / 2 + lam |beta + d|`` (0 where h <= 0)."""
    safe = np.where(h > 0, h, 1.0)
    z = h * beta - g
    target = np.sign(z) * np.maximum(np.abs(z) - lam, 0.0) / safe
    return np.where(h > 0, target - beta, 0.0)


def duality_gap(primal: float, g_raw: np.ndarray, gp: np.ndarray, a: np.ndarray, y: np.ndarray,
                lam: float, intercept: bool) -> float:
    """Primal minus the dual objective at the dual point built from the residuals.

    With ``a_i = sigmoid(-y_i m_i)`` the dual point is ``u_i = y_i alpha_i / n``,
    ``alpha = kappa * c_(y_i) * a_i``: ``c_+``, ``c_-`` rescale one class so that
    ``sum u = 0`` (needed with an unpenalised intercept), ``kappa`` makes
    ``||X^T u||_inf <= lambda``. The dual objective is ``mean(H(alpha))`` (binary
    entropy, nats). ``g_raw = X^T dl``; ``gp = X^T (a [y = +1])``.
    """
    n = y.shape[0]
    pos = y > 0
    if intercept:
        s_pos, s_neg = float(a[pos].sum()), float(a[~pos].sum())
        c_pos = min(1.0, s_neg / s_pos) if s_pos > 0 else 1.0
        c_neg = min(1.0, s_pos / s_neg) if s_neg > 0 else 1.0
    else:
        c_pos = c_neg = 1.0
    gm = g_raw + gp  # X^T (a [y = -1])
    v = c_pos * gp - c_neg * gm
    vmax = float(np.abs(v).max(initial=0.0))
    kappa = min(1.0, n * lam / vmax) if vmax > 0 else 1.0
    alpha = kappa * np.where(pos, c_pos, c_neg) * a
    dual = float(np.mean(entr(alpha) + entr(1.0 - alpha)))
    return max(primal - dual, 0.0)


def check_labels(y: np.ndarray, path: str | None = None) -> np.ndarray:
    """Labels as -1.0/+1.0 from {-1,+1} or {0,1}; anything else is an InputError."""
    y = np.asarray(y, dtype=np.float64).ravel()
    values = np.unique(y)
    if np.isin(values, (-1.0, 1.0)).all():
        out = y.copy()
    elif np.isin(values, (0.0, 1.0)).all():
        out = 2.0 * y - 1.0
    else:
        bad = [v for v in values if v not in (-1.0, 0.0, 1.0)] or [values[0]]
        row = int(np.flatnonzero(y == bad[0])[0]) if not np.isnan(bad[0]) else 0
        raise InputError(f"labels must be -1/+1 or 0/1; row {row + 1} has {bad[0]:g} "
                         f"(values seen: {', '.join(f'{v:g}' for v in values[:6])}"
                         f"{', ...' if len(values) > 6 else ''})", path=path)
    if np.unique(out).size < 2:
        raise InputError(f"labels must include both classes; all are {out[0]:+g}", path=path)
    return out


def _label_file(source: Any, fmt: str | None, labels: str | None) -> str | None:
    """The file the labels came from (for error messages), if any."""
    if labels:
        return str(labels)
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        path = Path(str(source))
        sibling = path.with_suffix(".labels")
        if (fmt == "mm" or path.suffix.lower() in (".mtx", ".mm")) and sibling.is_file():
            return str(sibling)
        return str(path)
    return None
