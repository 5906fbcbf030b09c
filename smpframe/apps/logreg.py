"""Sparse (L1) logistic regression by scheduled Newton coordinate descent, on the SMP API.

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
from smpframe.arrays import compiled_kernels, sparse_module, to_host
from smpframe.errors import InputError
from smpframe.api import (Dataset, Fragment, Payload, PerFragment, SchedulerContext, Splits,
                          WorkerContext, expect_array, sum_partials)

#: Armijo constant: a step must achieve this fraction of the decrease its model predicts
SIGMA = 0.01
#: a step halved below this length is dropped
MIN_STEP = 1.0 / 1024
#: most passes of a fragment's inner coordinate descent in one round
INNER_PASSES = 100
#: the inner stop tolerance shrinks by this factor whenever one pass was enough
INNER_SHRINK = 0.25
#: ... and is at most this fraction of the outer subgradient norm (an inexact Newton
#: method's forcing term: each iteration gains at least this factor on the model)
INNER_FORCING = 0.1
#: a full round (every column's gradient, the stop tests) once the active columns'
#: subgradient norm is this fraction of the last full round's
REFRESH = 0.1
#: a fragment's rows weigh ``1 / (n_f^c n^(1-c))`` in the cross terms of its Newton model:
#: at c = 1 they stand for every row (right where the rows share their structure, as
#: frequent words do), at c = 0 for themselves alone (right where each pair of columns
#: meets in a few rows: the other fragments' cross terms are left out). c starts at 1
#: and falls by this much at every rejected step, or step that was no descent
CROSS_STEP = 0.25


class LogReg(L1Regression):
    """Sparse logistic regression (L1) by scheduled Newton coordinate descent (newGLMNET's
    outer loop, with its inner solve spread over the workers).

    Rows are partitioned across workers (one fragment each by default); each keeps the
    margins ``m = X beta + beta0`` of its rows and, per row, the loss and its first and
    second derivatives in m (``dl``, ``w``). The scheduler holds the model and an
    *active set* of columns (those that can move). Every Newton iteration is one
    *step* round:

    * each fragment applies the step committed last (updating its margins), returns its
      rows' loss and, for the columns B of this round, ``X_f^T dl`` and ``(X_f*X_f)^T w``;
    * and it solves the block's L1 Newton model (GLMNET's subproblem) by coordinate
      descent over its own rows: the cross terms of the Hessian estimated from those
      rows, the gradient tracked from the last exact sums (the scheduler sends them with
      the fragment's own sums there: ``g_ref + (X_f^T dl - X_f^T dl_ref) / n_f``, exact
      once the point stops moving) and returns its step.

    The scheduler checks the step that was committed (below), sums the exact gradient,
    shrinks the active set (a column at zero whose gradient is inside ``(-λ, λ)`` leaves
    it: liblinear's shrinking), averages the fragments' steps weighted by rows, commits
    the average and broadcasts ``(B, Δβ_B, Δβ0)``. No process but the workers holds X,
    and the inner solve, newGLMNET's serial part, runs on every worker at once, each
    over its own rows. A *full* round sums every column's gradient (and the duality
    gap's sums) and rebuilds the active set: whenever the active columns' minimum-norm
    subgradient has fallen to ``REFRESH`` of the last full round's. The first gradient
    comes from the workers' facts (at ``beta = 0`` every row has the same ``a`` and ``w``).

    A step is zero only at the optimum; the estimated cross terms and the tracked
    gradient change only how far an iteration gets. The inner solve visits columns in
    a random order each pass and stops at ``min(inner_eps x`` the first subgradient
    norm, ``INNER_FORCING x`` the current one), ``inner_eps`` shrinking as newGLMNET's
    does (``INNER_SHRINK`` whenever one pass was enough).

    **Safeguard.** The next round returns the loss at the committed point: the step is
    kept if the objective fell by at least ``SIGMA`` of the decrease its first-order
    model predicts (``g.d + λ(|β+d| - |β|)``, newGLMNET's Armijo test), else it is halved
    (a correction is broadcast; the partials computed at the rejected point are dropped).
    The accepted objective never rises; the reported model is always an accepted point.

    **Stop** (``tol``, at a full round): relative duality gap ``<= tol`` (its dual sums
    come back with the next round), or a relative objective decrease since the
    previous full round ``<= tol``; ``summary["stopped_by"]`` says which.

    **Schedules.** ``policy="priority"`` (the default) is the active set above, at most
    ``block_size`` columns a round (the largest violations first). The baselines
    ``uniform``/``cyclic`` take a random/the next block of ``block_size`` columns, each
    in two rounds (a *gradient* round on the block, then a *direction* round at that
    exact gradient), with a full round after each sweep. Rounds never overlap (every
    step is checked on the margins it produced), so ``--pipeline-depth`` and ``--rho``
    have nothing to do (nor has ``--eta``: the active set replaces priority sampling).

    **Summary** adds ``accuracy`` (training), ``nnz``, ``duality_gap`` (relative),
    ``objective_change``, ``lambda``/``lambda_max``; ``model.npz`` holds ``coef``
    and ``intercept``.
    """

    name = "logreg"
    reads_splits = True
    gpu = True  # the sums run on wctx.xp (kernel="array", every GPU worker); the inner CD on the host

    # the baselines' block, and the most columns a direction round moves
    default_block_size = 4096
    # a fragment's inner solve estimates the Hessian's cross terms from its own rows: one
    # fragment per worker gives each the most rows (and the fewest inner solves a round)
    fragments_per_worker = 1
    synthetic_kind = "classification"

    # ---- scheduler ------------------------------------------------------------------
    def load_data(self, source: Any) -> Dataset | Splits:
        dataset = super().load_data(source)
        if isinstance(dataset, Dataset):
            dataset.rows["y"] = check_labels(dataset.rows["y"],
                                             _label_file(source, self.fmt, self.labels))
        return dataset

    def init(self, ctx: SchedulerContext) -> None:
        facts = ctx.facts
        n = int(sum_partials(facts, "n"))
        path = ctx.dataset.path if isinstance(ctx.dataset, Splits) else None
        check_label_counts(facts, ctx.bounds, path)
        n_pos = int(sum_partials(facts, "n_pos"))
        xpos, xneg = sum_partials(facts, "xpos"), sum_partials(facts, "xneg")
        d = xpos.size
        intercept = bool(self.intercept)
        share = n_pos / n
        b0 = float(np.log(share / (1.0 - share))) if intercept else 0.0
        # X^T (y a0) at beta = 0: a0 = 1 - share on the positive rows, share on the others
        a_pos, a_neg = 1.0 / (1.0 + np.exp(b0)), 1.0 / (1.0 + np.exp(-b0))
        lam_max = float(np.max(np.abs(a_pos * xpos - a_neg * xneg), initial=0.0)) / n
        lam = float(self.lam) if self.lam is not None else float(self.lambda_ratio) * lam_max
        if not lam > 0:
            raise InputError(f"--lambda must be > 0 (lambda_max for this data is {lam_max:.6g})")
        loss0 = share * float(np.logaddexp(0.0, -b0)) + (1.0 - share) * float(np.logaddexp(0.0, b0))
        ctx.cache = {"n": n, "rows": np.array([b - a for a, b in ctx.bounds], np.float64)}
        ctx.model.update(coef=np.zeros(d), intercept=np.array([b0]), active=np.ones(d, np.int8),
                         grad=np.zeros(d), hdiag=np.zeros(d), viol=np.zeros(d),
                         work=np.zeros(0, np.int64), p_idx=np.zeros(0, np.int64),
                         p_delta=np.zeros(0), p_beta=np.zeros(0))
        accuracy = share if b0 > 0 else 1.0 - share  # every row predicted as the majority
        ctx.state.update(lam=lam, lam_max=lam_max, objective=loss0, next="full", pending=None,
                         g0=0.0, h0=0.0, gmax=None, gnorm=None, gnorm_full=None, gnorm_init=None,
                         inner_eps=1.0, gap=None, gap_scale=None, full_primal=None,
                         last_full=loss0, change=None, stopped_by=None, rejected=0, steps=0,
                         stalled=False, accuracy=accuracy, refs=0, cross=1.0)
        ctx.report(objective=loss0, lam=lam)
        # the first gradient from the facts (every row has the same a0 and w0 = a0 (1 - a0)):
        # the run starts with a step round, not a full one
        w0 = a_pos * (1.0 - a_pos)
        start = {"g": a_neg * xneg - a_pos * xpos, "h": w0 * sum_partials(facts, "col_sq"),
                 "sdl": a_neg * (n - n_pos) - a_pos * n_pos, "sw": w0 * n}
        gnorm = ctx.state["gnorm"] = self._take_gradient(ctx, np.arange(d), start, True)
        if self.policy == "priority":
            self._keep_local(ctx, np.arange(d), {
                f: (a_neg * fact["xneg"] - a_pos * fact["xpos"],
                    a_neg * (fact["n"] - fact["n_pos"]) - a_pos * fact["n_pos"])
                for f, fact in facts.items()})
        ctx.state.update(gnorm_full=gnorm, gnorm_init=max(gnorm, 1e-300))
        if gnorm > 0.0:
            self._plan(ctx, gnorm, True)

    def warm_up(self, role: str, xp: Any) -> None:
        if role == "worker":
            K.warm_up()

    def schedule(self, ctx: SchedulerContext) -> Payload | None:
        if ctx.inflight:
            return None  # a step is checked on the margins it produced: wait for the round in flight
        st, m = ctx.state, ctx.model
        if st["next"] == "full":
            return {"kind": "full"}
        if st["next"] == "grad":
            return {"kind": "grad", "idx": np.flatnonzero(m["active"]).astype(np.int64)}
        if st["next"] == "step" and ctx.cache["refs"] != st["refs"]:
            st["next"] = "full"  # resumed: the fragments' own sums are not checkpointed
            return {"kind": "full"}
        idx = m["work"]
        block: Payload = {"kind": st["next"], "idx": idx, "g": m["grad"][idx], "h": m["hdiag"][idx],
                          "beta": m["coef"][idx], "lam": st["lam"], "g0": st["g0"], "h0": st["h0"],
                          "tol": min(st["inner_eps"] * st["gnorm_init"], INNER_FORCING * st["gnorm"]),
                          "seed": ctx.round, "n": float(ctx.cache["n"]), "cross": st["cross"]}
        if st["gap_scale"] is not None:
            block["gap"] = np.array(st["gap_scale"])
        if st["next"] == "dir":
            return block
        local = ctx.cache["local"]
        return PerFragment({f: {**block, "gf": local[f][idx], "sdlf": ctx.cache["local_sdl"][f]}
                            for f in range(ctx.n_fragments)})

    def check_partial(self, ctx: SchedulerContext, block: Payload, fragment: int,
                      partial: Payload) -> None:
        kind = block["kind"]
        size = ctx.model["coef"].size if kind == "full" else len(block["idx"])
        keys = {"full": ("g", "h", "gp"), "grad": ("g", "h"), "dir": ("d",), "step": ("g", "h", "d")}[kind]
        for key in keys:
            expect_array(partial, key, (size,))

    def pull(self, ctx: SchedulerContext, block: Payload, partials: dict[int, Payload]) -> Payload | None:
        if isinstance(block, PerFragment):  # a step round: the same block but each fragment's own sums
            block = next(iter(block.values()))
        if block["kind"] == "dir":
            return self._pull_direction(ctx, block, partials)
        st, model, n = ctx.state, ctx.model, ctx.cache["n"]
        loss = float(sum_partials(partials, "loss"))
        objective = loss / n + st["lam"] * float(np.abs(model["coef"]).sum())
        if st["pending"] is not None:
            if not self._acceptable(st, objective):
                return self._backtrack(ctx)
            st["pending"] = None
            st["steps"] += 1
        st["objective"] = objective
        st["accuracy"] = float(sum_partials(partials, "correct")) / n
        full = block["kind"] == "full"
        idx = np.arange(model["coef"].size) if full else block["idx"]
        sums = {key: sum_partials(partials, key) for key in ("g", "h", "sdl", "sw")}
        gnorm = st["gnorm"] = self._take_gradient(ctx, idx, sums, full)
        if self.policy == "priority":  # each fragment's own sums at this point, for the step rounds
            self._keep_local(ctx, idx, {f: (p["g"], p["sdl"]) for f, p in partials.items()})
        if full:
            self._full_round(ctx, partials, objective, gnorm)
        if ctx.stop_requested:
            return None
        self._plan(ctx, gnorm, full)
        if block["kind"] == "step":
            return self._pull_direction(ctx, block, partials)
        return None

    @staticmethod
    def _keep_local(ctx: SchedulerContext, idx: np.ndarray, sums: dict[int, tuple[Any, Any]]) -> None:
        """Keep each fragment's ``X_f^T dl`` (columns ``idx``) and ``sum dl`` at the accepted point:
        with the exact sums there, a step round's fragment estimates the gradient at the next
        point from its own rows' change (gradient tracking)."""
        cache, d = ctx.cache, ctx.model["coef"].size
        local = cache.setdefault("local", {f: np.zeros(d) for f in range(ctx.n_fragments)})
        for f, (g, sdl) in sums.items():
            local[f][idx] = g
            cache.setdefault("local_sdl", {})[f] = float(sdl)
        # (a count in the checkpointed state and in the cache: they differ after a resume)
        cache["refs"] = ctx.state["refs"] = cache.get("refs", 0) + 1

    # ---- the safeguard ----------------------------------------------------------------
    @staticmethod
    def _acceptable(st: dict[str, Any], objective: float) -> bool:
        pend = st["pending"]
        return objective - pend["F0"] <= SIGMA * pend["t"] * pend["delta"] + 1e-13 * abs(pend["F0"])

    def _backtrack(self, ctx: SchedulerContext) -> Payload:
        """Halve the pending step (drop it once too short)."""
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
        st["rejected"] += 1
        st["cross"] = max(0.0, st["cross"] - CROSS_STEP)
        if t == 0.0:  # no step along this direction: back to the checked point, re-rank every column
            st["pending"] = None
            st["objective"] = pend["F0"]
            st["next"] = "full"
            st["inner_eps"] *= INNER_SHRINK
        else:
            pend["t"] = t
        moved = d != 0.0
        return {"idx": idx[moved], "d": d[moved], "d0": float(d0)}

    # ---- rounds -----------------------------------------------------------------------
    def _take_gradient(self, ctx: SchedulerContext, idx: np.ndarray, sums: Payload,
                       full: bool) -> float:
        """Store the gradient and curvature of ``idx`` (from the sums ``g = X^T dl``,
        ``h = (X*X)^T w``, ``sdl``, ``sw``) and shrink the active set; returns the
        minimum-norm subgradient's 1-norm over ``idx`` (and the intercept)."""
        st, m, n, lam = ctx.state, ctx.model, ctx.cache["n"], ctx.state["lam"]
        g = sums["g"] / n
        m["grad"][idx], m["hdiag"][idx] = g, sums["h"] / n
        beta = m["coef"][idx]
        viol = np.where(beta > 0, np.abs(g + lam), np.where(beta < 0, np.abs(g - lam),
                                                            np.maximum(np.abs(g) - lam, 0.0)))
        m["viol"][idx] = viol
        i_viol = 0.0
        if self.intercept:
            st["g0"] = float(sums["sdl"]) / n
            st["h0"] = float(sums["sw"]) / n
            i_viol = abs(st["g0"])
        gmax = max(float(viol.max(initial=0.0)), i_viol)
        if self.policy == "priority":
            # liblinear's shrinking: at zero, and inside (-lam, lam) by more than the last
            # round's largest violation / n
            margin = (gmax if st["gmax"] is None else st["gmax"]) / n
            keep = (beta != 0.0) | (np.abs(g) >= lam - margin)
            if full:
                m["active"][:] = keep
            else:
                m["active"][idx[~keep]] = 0
        st["gmax"] = gmax
        return float(viol.sum()) + i_viol

    def _plan(self, ctx: SchedulerContext, gnorm: float, full: bool) -> None:
        """After a gradient round: a direction round on the active columns, or a full round."""
        st, m = ctx.state, ctx.model
        if full:
            if self.policy != "priority":  # the baselines: a sweep starts
                block = self.baseline_block(ctx, self.columns_per_round)
                m["active"][:] = 0
                m["active"][block] = 1
        elif self.policy == "priority" and gnorm <= REFRESH * st["gnorm_full"]:
            st["next"] = "full"  # the active columns have settled: check every column
            return
        active = np.flatnonzero(m["active"])
        size = self.columns_per_round
        if active.size > size:  # the largest violations first
            active = np.sort(active[np.argsort(-m["viol"][active], kind="stable")[:size]])
        if active.size == 0 and not self.intercept:
            st["next"] = "full"
            return
        m["work"] = active.astype(np.int64)
        st["next"] = "step" if self.policy == "priority" else "dir"

    def _full_round(self, ctx: SchedulerContext, partials: dict[int, Payload], primal: float,
                    gnorm: float) -> None:
        """The stop tests, and the scale of the duality gap's dual point."""
        st, n, lam = ctx.state, ctx.cache["n"], ctx.state["lam"]
        st["gnorm_full"] = gnorm
        if st["gnorm_init"] is None:
            st["gnorm_init"] = max(gnorm, 1e-300)
        g_raw = ctx.model["grad"] * n
        gp = sum_partials(partials, "gp")
        st["gap_scale"] = list(dual_scale(g_raw, gp, float(sum_partials(partials, "spos")),
                                          float(sum_partials(partials, "sneg")), n, lam,
                                          bool(self.intercept)))
        st["full_primal"] = primal
        last = st["last_full"] if st["steps"] else None  # (no step since: nothing to compare)
        change = (last - primal) / primal if last is not None and primal > 0 else st["change"]
        st.update(steps=0, last_full=primal, change=change, blocks_since_full=0)
        ctx.report(objective=primal, nnz=int(np.count_nonzero(ctx.model["coef"])),
                   block=int(ctx.model["coef"].size))
        if last is not None and change <= float(self.tol):
            self._stop(ctx, "objective change")
        elif st["gnorm_full"] == 0.0:
            self._stop(ctx, "no step left")

    def _stop(self, ctx: SchedulerContext, why: str) -> None:
        ctx.state["stopped_by"] = why
        ctx.stop(converged=True)

    def _pull_direction(self, ctx: SchedulerContext, block: Payload,
                        partials: dict[int, Payload]) -> Payload | None:
        st, m, n = ctx.state, ctx.model, ctx.cache["n"]
        rows = ctx.cache["rows"]
        weights = {f: rows[f] / n for f in partials}
        if "gap" in block:  # the dual sums at the full round's point: the gap, and its stop test
            dual = float(sum_partials(partials, "dual")) / n
            primal = st["full_primal"]
            st["gap"] = max(primal - dual, 0.0) / primal if primal > 0 else 0.0
            st["gap_scale"] = None
            ctx.report(gap=st["gap"])
            if st["gap"] <= float(self.tol):
                self._stop(ctx, "duality gap")
                return None
        passes = max(float(p["passes"]) for p in partials.values())
        if passes <= 1.0:
            st["inner_eps"] *= INNER_SHRINK  # one pass met the tolerance: ask for more next time
        idx = block["idx"]
        delta = sum(weights[f] * p["d"] for f, p in partials.items())
        d0 = float(sum(weights[f] * float(p["d0"]) for f, p in partials.items())) if self.intercept else 0.0
        beta = m["coef"][idx]
        lam = st["lam"]
        g = m["grad"][idx]  # (a step round: the exact gradient just summed at this point)
        predicted = float(np.sum(g * delta + lam * (np.abs(beta + delta) - np.abs(beta)))) + st["g0"] * d0
        if self.policy != "priority":  # the baselines: the next block (a full round after a sweep)
            st["next"] = "grad"
            following = self.baseline_block(ctx, self.columns_per_round)
            if following is None:
                st["next"] = "full"
            else:
                m["active"][:] = 0
                m["active"][following] = 1
        if self.policy == "priority" and block["kind"] == "dir":
            st["next"] = "step"
        if not predicted < 0.0:
            if block["kind"] == "step":  # the tracked gradient misled it: solve at the exact one
                m["work"], st["next"] = idx, "dir"
                st["cross"] = max(0.0, st["cross"] - CROSS_STEP)
                return None
            st["next"] = "full"  # no descent left along the model: re-check every column
            if st["stalled"]:
                self._stop(ctx, "no step left")
            st["stalled"] = True
            return None
        st["stalled"] = False
        m["p_idx"], m["p_delta"], m["p_beta"] = idx, delta, beta.copy()
        st["pending"] = {"t": 1.0, "d0": d0, "delta": predicted, "F0": st["objective"],
                         "b0": float(m["intercept"][0])}
        m["coef"][idx] = beta + delta
        m["intercept"][0] += d0
        ctx.report(objective=st["objective"], nnz=int(np.count_nonzero(m["coef"])),
                   block=int(idx.size), inner_passes=int(passes))
        moved = delta != 0.0
        return {"idx": idx[moved], "d": delta[moved], "d0": d0}

    def snapshot(self, ctx: SchedulerContext, fragment: int) -> Payload:
        return {"coef": ctx.model["coef"], "intercept": ctx.model["intercept"]}

    def result(self, ctx: SchedulerContext) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        st, m = ctx.state, ctx.model
        coef, b0 = m["coef"].copy(), float(m["intercept"][0])
        if st["pending"] is not None:  # stopped before the last step was checked: use the last checked point
            coef[m["p_idx"]] = m["p_beta"]
            b0 = st["pending"]["b0"]
        summary = {"app": self.name, "objective": st["objective"], "duality_gap": st["gap"],
                   "accuracy": st["accuracy"], "nnz": int(np.count_nonzero(coef)), "lambda": st["lam"],
                   "lambda_max": st["lam_max"], "intercept": bool(self.intercept),
                   "objective_change": st["change"], "stopped_by": st["stopped_by"],
                   "rejected_steps": int(st["rejected"]), "schedule": self.policy}
        return summary, {"coef": coef, "intercept": np.array([b0])}

    # ---- worker ---------------------------------------------------------------------
    def describe(self, wctx: WorkerContext, fragment: Fragment, data: Payload) -> Payload:
        y = np.asarray(data["y"], dtype=np.float64).ravel()
        X = data["X"]
        bad = ~np.isin(y, (-1.0, 0.0, 1.0))
        first = int(np.flatnonzero(bad)[0]) if bad.any() else -1
        pos = y == 1.0
        return {"n": int(y.size), "n_pos": int(pos.sum()), "n_minus": int((y == -1.0).sum()),
                "n_zero": int((y == 0.0).sum()), "n_bad": int(bad.sum()), "first_bad": first,
                "bad_value": float(y[first]) if first >= 0 and np.isfinite(y[first]) else 0.0,
                "xpos": np.asarray(X.T @ pos.astype(np.float64)).ravel(),
                "xneg": np.asarray(X.T @ (~pos & ~bad).astype(np.float64)).ravel(),
                "col_sq": np.asarray(X.multiply(X).sum(axis=0)).ravel()}

    def load(self, wctx: WorkerContext, fragment: Fragment, data: Payload, model: Payload) -> dict:
        xp = wctx.xp
        y = np.where(np.asarray(data["y"], dtype=np.float64) > 0, 1.0, -1.0)  # {0,1} or {-1,+1}
        X = data["X"].tocsc()
        X.sort_indices()
        parts = csc_parts(X)  # the inner coordinate descent runs on the host on every path
        unit = bool(np.all(parts[2] == 1.0))
        if not compiled_kernels(xp, self.kernel):  # the sums as array code: numpy/scipy or cupy/cupyx
            Xd = sparse_module(xp).csc_matrix(X)
            yd = xp.asarray(y)
            m = Xd @ xp.asarray(model["coef"]) + float(model["intercept"][0])
            return {"X": Xd, "X2": Xd.multiply(Xd).tocsc(), "y": yd, "pos": yd > 0, "m": m,
                    "host": parts, "unit": unit, **row_terms(xp, m, yd)}
        m = np.ascontiguousarray(X @ model["coef"] + float(model["intercept"][0]), dtype=np.float64)
        n = y.shape[0]
        f = {"csc": parts, "unit": unit, "y": y, "m": m, "loss": np.empty(n), "a": np.empty(n), "dl": np.empty(n),
             "w": np.empty(n), "mark": np.zeros(n, np.bool_), "touched": np.empty(n, np.int64)}
        K.all_rows(m, y, f["loss"], f["a"], f["dl"], f["w"])
        return f

    def push(self, wctx: WorkerContext, fragment: Fragment, block: Payload) -> Payload:
        f = fragment.state
        if block["kind"] == "dir":
            return self._direction(f, block, block["g"], float(block["g0"]))
        xp = wctx.xp
        out: Payload = {"loss": float(f["loss"].sum()), "sdl": float(f["dl"].sum()),
                        "sw": float(f["w"].sum()), "correct": float(((f["m"] > 0) == (f["y"] > 0)).sum())}
        compiled = "csc" in f
        if block["kind"] == "full":
            if compiled:
                g, h, gp = K.full_sums(*f["csc"], f["dl"], f["w"], f["a"], f["y"])
            else:
                g, h, gp = f["X"].T @ f["dl"], f["X2"].T @ f["w"], f["X"].T @ (f["a"] * f["pos"])
            spos = float(f["a"][f["y"] > 0].sum())
            out.update(g=g, h=h, gp=gp, spos=spos, sneg=float(f["a"].sum()) - spos)
        else:
            idx = np.array(block["idx"], np.int64)
            if compiled:
                out["g"], out["h"] = cols_dot_weighted(*f["csc"], idx, f["dl"], f["w"])
            else:
                cols = xp.asarray(idx)
                g, h = f["X"][:, cols].T @ f["dl"], f["X2"][:, cols].T @ f["w"]
                out["g"], out["h"] = to_host(g), to_host(h)
        if block["kind"] == "step":  # the gradient here, estimated from this fragment's change
            rows = float(fragment.n_rows)
            g = np.asarray(block["g"]) + (out["g"] - np.asarray(block["gf"])) / rows
            g0 = float(block["g0"]) + (out["sdl"] - float(block["sdlf"])) / rows
            out.update(self._direction(f, block, g, g0))
        return out

    def _direction(self, f: dict[str, Any], block: Payload, g: np.ndarray, g0: float) -> Payload:
        """This fragment's step on the block's Newton model at gradient ``g``, ``g0`` (and the
        gap's dual sum, if asked)."""
        w = np.ascontiguousarray(to_host(f["w"]), dtype=np.float64)
        parts = f["csc"] if "csc" in f else f["host"]
        delta, d0, passes = K.local_newton(
            *parts, f["unit"], np.array(block["idx"], np.int64), w, np.array(g, np.float64),
            np.array(block["h"]), np.array(block["beta"]), float(block["lam"]), bool(self.intercept),
            g0, float(block["h0"]), INNER_PASSES, float(block["tol"]),
            int(block["seed"]), row_weight(w.shape[0], float(block["n"]), float(block["cross"])))
        out: Payload = {"d": delta, "d0": float(d0), "passes": float(passes)}
        if "gap" in block:
            out["dual"] = dual_sum(to_host(f["a"]), to_host(f["y"]), *map(float, block["gap"]))
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


def row_weight(rows: int, n: float, cross: float) -> float:
    """The weight ``1 / (rows^cross n^(1 - cross))`` of each of a fragment's ``rows`` in
    the cross terms of its Newton model (``n`` rows in all; see ``CROSS_STEP``)."""
    return 1.0 / (rows ** cross * n ** (1.0 - cross))


def row_terms(xp: Any, m: Any, y: Any) -> dict[str, Any]:
    """Every row's loss ``log(1 + e^-z)``, ``a = sigmoid(-z)``, ``dl = -y a`` and ``w = a(1 - a)``
    for ``z = y m`` (what the compiled kernel's ``all_rows`` computes, as array code)."""
    z = y * m
    a = xp.exp(-xp.logaddexp(0.0, z))
    return {"loss": xp.logaddexp(0.0, -z), "a": a, "dl": -y * a, "w": a * (1.0 - a)}


def dual_scale(g_raw: np.ndarray, gp: np.ndarray, s_pos: float, s_neg: float, n: int,
               lam: float, intercept: bool) -> tuple[float, float]:
    """The multipliers of the duality gap's dual point, per class: ``alpha_i = s_(y_i) a_i``.

    With ``a_i = sigmoid(-y_i m_i)`` the dual point is ``u_i = y_i alpha_i / n``:
    one class is rescaled so that ``sum u = 0`` (needed with an unpenalised intercept),
    and both by ``kappa`` so that ``||X^T u||_inf <= lambda``. The dual objective is then
    ``mean(H(alpha))`` (binary entropy, nats; :func:`dual_sum` over each fragment's rows).
    ``g_raw = X^T dl``; ``gp = X^T (a [y = +1])``; ``s_pos``, ``s_neg`` the sums of ``a``
    over each class.
    """
    if intercept:
        c_pos = min(1.0, s_neg / s_pos) if s_pos > 0 else 1.0
        c_neg = min(1.0, s_pos / s_neg) if s_neg > 0 else 1.0
    else:
        c_pos = c_neg = 1.0
    gm = g_raw + gp  # X^T (a [y = -1])
    vmax = float(np.abs(c_pos * gp - c_neg * gm).max(initial=0.0))
    kappa = min(1.0, n * lam / vmax) if vmax > 0 else 1.0
    return kappa * c_pos, kappa * c_neg


def dual_sum(a: np.ndarray, y: np.ndarray, s_pos: float, s_neg: float) -> float:
    """``sum_i H(alpha_i)`` over some rows, ``alpha_i = s_(y_i) a_i`` (see :func:`dual_scale`)."""
    alpha = np.where(y > 0, s_pos, s_neg) * a
    return float(np.sum(entr(alpha) + entr(1.0 - alpha)))


def check_label_counts(facts: dict[int, Payload], bounds: list[tuple[int, int]],
                       path: str | None) -> None:
    """The labels the fragments described: -1/+1 or 0/1 (not both), and both classes."""
    for frag in sorted(facts):
        fact = facts[frag]
        if fact["n_bad"]:
            raise InputError(f"labels must be -1/+1 or 0/1; row {bounds[frag][0] + int(fact['first_bad']) + 1} "
                             f"has {float(fact['bad_value']):g}", path=path)
    minus, zero = int(sum_partials(facts, "n_minus")), int(sum_partials(facts, "n_zero"))
    if minus and zero:
        raise InputError(f"labels must be -1/+1 or 0/1, not both: {minus} rows have -1 and "
                         f"{zero} have 0", path=path)
    n, n_pos = int(sum_partials(facts, "n")), int(sum_partials(facts, "n_pos"))
    if n_pos in (0, n):
        raise InputError(f"labels must include both classes; all are {'+1' if n_pos else '-1'}",
                         path=path)


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
