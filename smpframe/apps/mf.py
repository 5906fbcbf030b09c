"""Matrix factorisation of explicit ratings by scheduled CCD++ coordinate descent.

Objective, over the observed ratings Omega::

    sum_(u,i) (r_ui - mu - b_u - b_i - w_u . h_i)^2 + lambda (||W||^2 + ||H||^2 + ||b||^2)

``mu`` is the mean training rating (fixed); ``b`` stacks the user and item biases
(``biases=False`` drops them: plain ``w . h``).

See :class:`MatrixFactorization` for the schedule.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import scipy.sparse as sp

from smpframe.apps import mf_kernels as K
from smpframe.errors import InputError
from smpframe.api import (Dataset, Fragment, Payload, SchedulerContext, SMPProgram, WorkerContext,
                          concat_partials, expect_array, sum_partials)


class MatrixFactorization(SMPProgram):
    """Matrix factorisation of ratings (biased, low rank) by scheduled coordinate descent.

    **Data layout.** Ratings are partitioned across workers by whole rows of the
    rating matrix of the *local side*: the side with more ids (items on MovieLens),
    so every rating of a local id lives in one fragment (fragments own disjoint
    local rows). Workers keep their ratings and the parameter rows they touch.

    **Schedule.** Parameters are ``theta[id] = (bias, w_1..w_K)`` per user and item,
    updated one coordinate (bias, then factor k = 1..K: rank-one, CCD-style column
    updates) at a time, each set to its exact minimiser given the rest, so the
    objective never rises. Two schedules, chosen by size (``mode="auto"``):

    * ``epoch`` (one round per epoch): each fragment sweeps its local rows' coordinates
      (exact: it holds all their ratings), then returns, per other-side id, the
      numerator ``sum y x`` and the denominator/cross sums ``sum x x^T`` of that
      side's coordinate updates computed with the new local rows; the scheduler
      commits the local rows, adds the sums over fragments and sweeps the other
      side's coordinates (so no two workers ever write the same rows). ``inner``
      sweeps per side and epoch. Used when the ``(K+1)^2/2`` sums per other-side id
      stay small (rank up to ~20).
    * ``factor`` (CCD++, one round per factor): workers keep residuals; a round
      updates column k on both sides (local side in the fragment, other side from
      per-id numerator/denominator sums ``sum rho h``, ``sum h^2``); the bias
      columns take one round; ``inner`` repeats each factor (CCD++ inner iterations).

    Every round needs the previous one's commit, so rounds never overlap: with
    ``--pipeline-depth`` > 0 the scheduler still waits for the round in flight.

    **The data-parallel baseline** (``policy="data-parallel"``, ``--schedule
    data-parallel``) is not coordinate descent but parameter-server SGD with model
    averaging, for comparison: one round per epoch, in which every fragment makes one
    pass of stochastic gradient steps over its ratings (in a random order) against its
    copy of the factors committed at the end of the previous epoch. Its local rows are
    its own, but the other side's rows are stale copies that other fragments step
    too; the scheduler keeps each fragment's local rows and moves every other-side row
    by the mean of the fragments' changes to it (iterative parameter mixing; summing
    the changes instead diverges, as every fragment steps the same popular rows). The
    step size is ``learning_rate / sqrt(1 + epoch)``, and both sides start random (SGD
    does not leave zero factors). The objective may rise, and the run approaches a
    minimum without reaching it; averaging makes the shared rows' progress per epoch
    that of one fragment's share of their ratings, so it needs more epochs than the
    exact schedule. The scheduler computes the reported training loss from the ratings
    it holds, so the figures are those of the same objective.

    The training loss after a round is computed exactly from the same sums, so every
    epoch's objective, training RMSE and (with a test set) test RMSE are reported
    (progress lines, ``metrics``, ``summary["history"]``) at no extra round.

    **Prediction / unseen ids.** ``mu + b_u + b_i + w_u . h_i``, clipped to the
    training ratings' range; ``mu`` is the mean training rating. A test user (item)
    never seen in training has no bias or factors: its terms drop out, so an unseen
    user gets ``mu + b_i``, an unseen item ``mu + b_u``, and a pair of unseen ids
    the global mean ``mu`` (without biases: 0).

    **Saved model** (``model.npz``): ``user_factors`` (n_users x rank),
    ``item_factors``, ``user_bias``, ``item_bias``, ``global_mean``, ``rating_range``,
    and the original ids ``user_ids``/``item_ids`` (row c is the id of code c; string
    ids as unicode arrays). :func:`predict` maps raw ids through them.

    **Input.** ``--data``: rating triplets (see :mod:`smpframe.data.ratings`), or a
    ``(users, items, values)`` tuple, or ``{"train": (...), "test": (...)}``; none:
    the built-in MovieLens-shaped synthetic set (:func:`smpframe.data.synthetic.make_ratings`),
    of which a random 20% is held out as the test set unless ``test`` is given.

    Parameters
    ----------
    rank : int
        Factors per user and item.
    lam : float
        L2 strength on factors and biases.
    epochs : int
        Passes over all factors.
    inner : int
        Coordinate sweeps per side and epoch.
    biases : bool
        Model the mean and per-id biases (off: plain w.h).
    test : str, optional
        Held-out ratings (same format) for the test RMSE of every epoch.
    fmt : {"csv", "tsv", "dat", "space", "mm"}, optional
        Ratings format (default: by suffix and first line).
    tol : float
        Also stop when an epoch lowers the objective by less than this relative amount
        (0: run every epoch).
    mode : {"auto", "epoch", "factor"}
        One round per epoch, or one per factor (auto: by size).
    init_scale : float
        Standard deviation of the random initial factors.
    synthetic : dict, optional
        Arguments of the built-in ratings (when no data is given).
    policy : {"model-parallel", "data-parallel"}
        The schedule (``--schedule``): exact coordinate descent with every row written by
        its one owner (``mode`` picks the rounds), or the data-parallel SGD baseline
        (stale copies of the shared rows, averaged once per epoch).
    learning_rate : float
        Data-parallel: the SGD step size of the first epoch.
    """

    name = "mf"
    cli_flags = {"lam": "--lambda", "fmt": "--format", "policy": "--schedule"}

    def __init__(self, rank: int = 10, lam: float = 10.0, epochs: int = 20, inner: int = 2,
                 biases: bool = True, test: str | None = None,
                 fmt: Literal["csv", "tsv", "dat", "space", "mm"] | None = None,
                 tol: float = 0.0, mode: Literal["auto", "epoch", "factor"] = "auto",
                 init_scale: float = 0.1, synthetic: dict[str, Any] | None = None,
                 policy: Literal["model-parallel", "data-parallel"] = "model-parallel",
                 learning_rate: float = 0.2) -> None:
        self.rank = rank
        self.lam = lam
        self.epochs = epochs
        self.inner = inner
        self.biases = biases
        self.test = test
        self.fmt = fmt
        self.tol = tol
        self.mode = mode
        self.init_scale = init_scale
        self.synthetic = synthetic
        self.policy = policy
        self.learning_rate = learning_rate
        self._test: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._ids: tuple[np.ndarray, np.ndarray] | None = None

    def check_params(self) -> None:
        if int(self.rank) < 1:
            raise InputError(f"--rank must be >= 1, got {self.rank}")
        if not 0 <= float(self.lam) < float("inf"):
            raise InputError(f"--lambda must be a finite number >= 0, got {self.lam}")
        if not 0 <= float(self.tol) < float("inf"):
            raise InputError(f"--tol must be a finite number >= 0, got {self.tol}")
        if not 0 <= float(self.init_scale) < float("inf"):
            raise InputError(f"--init-scale must be a finite number >= 0, got {self.init_scale}")
        if int(self.epochs) < 0 or int(self.inner) < 1:
            raise InputError("--epochs must be >= 0 and --inner >= 1")
        if self.mode not in ("auto", "epoch", "factor"):
            raise InputError(f"mode must be auto, epoch or factor, got {self.mode!r}")
        if self.policy not in ("model-parallel", "data-parallel"):
            raise InputError(f"--schedule {self.policy}: expected model-parallel or data-parallel")
        if not 0 < float(self.learning_rate) < float("inf"):
            raise InputError(f"--learning-rate must be a finite number > 0, got {self.learning_rate}")
        if self.policy == "data-parallel" and self.mode != "auto":
            raise InputError("--mode is for --schedule model-parallel")

    @property
    def _data_parallel(self) -> bool:
        return self.policy == "data-parallel"

    @property
    def _dim(self) -> int:
        return int(self.rank) + int(bool(self.biases))

    # ---- scheduler ------------------------------------------------------------------
    def load_data(self, source: Any) -> Dataset:
        train, test = _read_source(source, self.params)
        users, items, values, user_ids, item_ids = train
        if not np.isfinite(values).all():
            raise InputError("ratings contain NaN or Inf")
        n_users, n_items = len(user_ids), len(item_ids)
        local_users = n_users > n_items
        a, b = (users, items) if local_users else (items, users)
        n_a, n_b = (n_users, n_items) if local_users else (n_items, n_users)
        order = np.argsort(a, kind="stable")
        indptr = np.zeros(n_a + 1, np.int64)
        np.cumsum(np.bincount(a, minlength=n_a), out=indptr[1:])
        # built from components: duplicate (user, item) pairs stay separate ratings
        R = sp.csr_matrix((values[order].astype(np.float64), b[order].astype(np.int32), indptr),
                          shape=(n_a, n_b))
        self._ids = (user_ids, item_ids)
        self._test = None
        if test is not None:
            t_users, t_items, t_values = test
            if not np.isfinite(t_values).all():
                raise InputError("test ratings contain NaN or Inf")
            self._test = (t_users, t_items, np.asarray(t_values, dtype=np.float64))
        mu = float(values.mean()) if self.biases else 0.0
        meta = {"n_a": n_a, "n_b": n_b, "local": "users" if local_users else "items",
                "mu": mu, "n_ratings": int(len(values))}
        return Dataset(rows={"R": R, "a": np.arange(n_a, dtype=np.int64)}, meta=meta)

    def init(self, ctx: SchedulerContext) -> None:
        p, meta = self.params, ctx.dataset.meta
        R = ctx.dataset.rows["R"]
        dim, n_a, n_b = self._dim, meta["n_a"], meta["n_b"]
        # every fragment's distinct other-side ids: where its partial sums go
        b_of = [np.unique(R.indices[R.indptr[lo]:R.indptr[hi]]).astype(np.int64)
                for lo, hi in ctx.bounds]
        tri = dim * (dim + 1) // 2
        volume = sum(len(b) for b in b_of) * (tri + dim)
        mode = "sgd" if self._data_parallel else p["mode"]
        if mode == "auto":
            mode = "epoch" if tri <= 256 and volume <= 4_000_000 else "factor"
        user_ids, item_ids = self._ids if self._ids is not None else (np.arange(0), np.arange(0))
        ctx.cache = {"b_of": b_of, "b_all": np.concatenate(b_of), "mode": mode,
                     "user_ids": user_ids, "item_ids": item_ids,
                     "range": (float(R.data.min()), float(R.data.max()))}
        if self._data_parallel:  # for the merge (fragments per row) and the loss (the ratings)
            ctx.cache.update(b_copies=np.bincount(ctx.cache["b_all"], minlength=n_b),
                             count_b=np.bincount(R.indices, minlength=n_b),
                             indptr=R.indptr.astype(np.int64), indices=R.indices.astype(np.int64))
        if self._test is not None:
            ctx.cache["test"] = _map_test(self._test, user_ids, item_ids, meta["local"])
        B = float(p["init_scale"]) * ctx.rng.standard_normal((n_b, dim))
        if p["biases"]:
            B[:, 0] = 0.0
        A = np.zeros((n_a, dim))
        if self._data_parallel:  # SGD needs both sides off the saddle at zero factors
            A[:, int(bool(p["biases"])):] = float(p["init_scale"]) * ctx.rng.standard_normal(
                (n_a, int(p["rank"])))
        ctx.model.update(A=A, B=B, mu=np.array([meta["mu"]]))
        e0 = R.data - meta["mu"]
        ctx.state.update(epoch=0, step=0, history=[], objective=None)
        if self._data_parallel:
            ctx.state["seed"] = int(ctx.rng.integers(0, 2**31 - 1))
        self._record_epoch(ctx, float(e0 @ e0))

    def warm_up(self, role: str, xp: Any) -> None:
        K.warm_up()

    def _steps_per_epoch(self, ctx: SchedulerContext) -> int:
        if ctx.cache["mode"] in ("epoch", "sgd"):
            return 1
        return int(bool(self.biases)) + int(self.rank) * int(self.inner)

    def schedule(self, ctx: SchedulerContext) -> Payload | None:
        st = ctx.state
        if st["epoch"] >= int(self.epochs) or ctx.inflight:
            return None  # every update needs the previous one's result: wait for the round in flight
        if ctx.cache["mode"] == "epoch":
            return {"kind": "epoch"}
        if ctx.cache["mode"] == "sgd":
            return {"kind": "sgd", "seed": int(st["seed"]) + st["epoch"],
                    "lr": float(self.learning_rate) / np.sqrt(1.0 + st["epoch"])}
        step = st["step"]
        if self.biases:
            if step == 0:
                return {"kind": "bias", "col": 0}
            return {"kind": "factor", "col": 1 + (step - 1) // int(self.inner)}
        return {"kind": "factor", "col": step // int(self.inner)}

    def check_partial(self, ctx: SchedulerContext, block: Payload, fragment: int,
                      partial: Payload) -> None:
        start, stop = ctx.bounds[fragment]
        rows, others = stop - start, len(ctx.cache["b_of"][fragment])
        if block["kind"] == "epoch":
            dim = self._dim
            expect_array(partial, "a", (rows, dim))
            expect_array(partial, "c", (others, dim))
            expect_array(partial, "g", (others, dim * (dim + 1) // 2))
            return
        if block["kind"] == "sgd":
            expect_array(partial, "a", (rows, self._dim))
            expect_array(partial, "db", (others, self._dim))
            return
        for key, size in (("num_a", rows), ("den_a", rows), ("num_b", others), ("den_b", others)):
            expect_array(partial, key, (size,))

    def pull(self, ctx: SchedulerContext, block: Payload, partials: dict[int, Payload]) -> Payload | None:
        st = ctx.state
        if block["kind"] == "epoch":
            update, loss = self._commit_epoch(ctx, partials)
        elif block["kind"] == "sgd":
            update, loss = self._commit_sgd(ctx, partials)
        else:
            update, loss = self._commit_column(ctx, block, partials)
        st["step"] += 1
        if st["step"] >= self._steps_per_epoch(ctx):
            st["step"] = 0
            st["epoch"] += 1
            stop = self._record_epoch(ctx, loss)
            if stop or st["epoch"] >= int(self.epochs):
                ctx.stop(converged=True)
        return update

    def _commit_epoch(self, ctx: SchedulerContext, partials: dict[int, Payload]) -> tuple[Payload, float]:
        model, cache = ctx.model, ctx.cache
        new_a = concat_partials(partials, "a")
        dim = new_a.shape[1]
        n_b = model["B"].shape[0]
        c = np.zeros((n_b, dim))
        g = np.zeros((n_b, dim * (dim + 1) // 2))
        for f, q in partials.items():
            ids = cache["b_of"][f]
            c[ids] += q["c"]
            g[ids] += q["g"]
        new_b = model["B"].copy()
        K.solve_rows(g, c, new_b, float(self.lam), int(self.inner))
        loss = K.side_loss(g, c, new_b, float(sum_partials(partials, "yy")))
        model["A"], model["B"] = new_a, new_b
        return {"kind": "epoch", "A": new_a, "B": new_b}, loss

    def _commit_sgd(self, ctx: SchedulerContext, partials: dict[int, Payload]) -> tuple[Payload, float]:
        """Data-parallel: the fragments' local rows, and every other-side row moved by the
        mean of the fragments' changes to it; the loss recomputed from the ratings."""
        model, cache = ctx.model, ctx.cache
        new_a = concat_partials(partials, "a")
        step = np.zeros_like(model["B"])
        for f, q in partials.items():
            step[cache["b_of"][f]] += q["db"]
        new_b = model["B"] + step / np.maximum(cache["b_copies"], 1)[:, None]
        model["A"], model["B"] = new_a, new_b
        R = ctx.dataset.rows["R"]
        e = K.residuals(cache["indptr"], cache["indices"], R.data, float(model["mu"][0]), new_a,
                        new_b, bool(self.biases))
        return {"kind": "epoch", "A": new_a, "B": new_b}, float(e @ e)  # synced as an epoch

    def _commit_column(self, ctx: SchedulerContext, block: Payload,
                       partials: dict[int, Payload]) -> tuple[Payload, float]:
        model, cache = ctx.model, ctx.cache
        lam = float(self.lam)
        num_a, den_a = concat_partials(partials, "num_a"), concat_partials(partials, "den_a")
        n_b = model["B"].shape[0]
        num_b = np.bincount(cache["b_all"], concat_partials(partials, "num_b"), n_b)
        den_b = np.bincount(cache["b_all"], concat_partials(partials, "den_b"), n_b)
        new_a = _ratio(num_a, den_a, lam)
        new_b = _ratio(num_b, den_b, lam)
        col = int(block["col"])
        model["A"][:, col] = new_a
        model["B"][:, col] = new_b
        rr = float(sum_partials(partials, "rr"))
        loss = rr - 2.0 * float(new_b @ num_b) + float((new_b * new_b) @ den_b)
        return {"kind": block["kind"], "col": col, "a": new_a, "b": new_b}, loss

    def _record_epoch(self, ctx: SchedulerContext, loss: float) -> bool:
        """File the epoch that just ended (training loss ``loss``); True: converged by --tol."""
        st, m = ctx.state, ctx.model
        n = ctx.dataset.meta["n_ratings"]
        reg = float(self.lam) * float(np.sum(m["A"] ** 2) + np.sum(m["B"] ** 2))
        entry = {"epoch": st["epoch"], "objective": loss + reg,
                 "train_rmse": float(np.sqrt(max(loss, 0.0) / n))}
        test = ctx.cache.get("test")
        if test is not None:
            a, b, values = test
            pred = _predict_codes(m["A"], m["B"], float(m["mu"][0]), bool(self.biases),
                                  a, b, ctx.cache["range"])
            entry["test_rmse"] = float(np.sqrt(np.mean((pred - values) ** 2)))
        history = st["history"]
        previous = history[-1]["objective"] if history else None
        history.append(entry)
        st["objective"] = entry["objective"]
        ctx.report(**entry)
        tol = float(self.tol)
        return previous is not None and tol > 0 and previous - entry["objective"] <= tol * abs(previous)

    def snapshot(self, ctx: SchedulerContext, fragment: int) -> Payload:
        out = {"A": ctx.model["A"], "B": ctx.model["B"], "mu": ctx.model["mu"],
               "factor_mode": np.array([ctx.cache["mode"] == "factor"])}
        if self._data_parallel:
            out["count_b"] = ctx.cache["count_b"]
        return out

    def expected_rounds(self, ctx: SchedulerContext) -> int:
        return int(self.epochs) * self._steps_per_epoch(ctx)

    def result(self, ctx: SchedulerContext) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        st, meta, cache = ctx.state, ctx.dataset.meta, ctx.cache
        history = st["history"]
        last = history[-1] if history else {}
        summary: dict[str, Any] = {
            "app": self.name, "schedule": self.policy, "objective": last.get("objective"),
            "train_rmse": last.get("train_rmse"), "epochs": int(last.get("epoch", 0)),
            "rank": int(self.rank), "lambda": float(self.lam),
            "biases": bool(self.biases), "mode": cache["mode"],
            "n_ratings": meta["n_ratings"], "n_users": int(len(cache["user_ids"])),
            "n_items": int(len(cache["item_ids"])),
        }
        if "test_rmse" in last:
            summary["test_rmse"] = last["test_rmse"]
        summary["history"] = history
        return summary, self.export_model(ctx)

    def export_model(self, ctx: SchedulerContext) -> dict[str, np.ndarray]:
        """The model in user/item terms, with the id mapping (what model.npz holds)."""
        m = ctx.model
        th_u, th_i = (m["A"], m["B"]) if ctx.dataset.meta["local"] == "users" else (m["B"], m["A"])
        if self.biases:
            bu, bi, fu, fi = th_u[:, 0], th_i[:, 0], th_u[:, 1:], th_i[:, 1:]
        else:
            bu, bi, fu, fi = np.zeros(len(th_u)), np.zeros(len(th_i)), th_u, th_i
        return {"user_factors": np.ascontiguousarray(fu), "item_factors": np.ascontiguousarray(fi),
                "user_bias": np.ascontiguousarray(bu), "item_bias": np.ascontiguousarray(bi),
                "global_mean": m["mu"].copy(), "rating_range": np.array(ctx.cache["range"]),
                "user_ids": _id_array(ctx.cache["user_ids"]),
                "item_ids": _id_array(ctx.cache["item_ids"])}

    # ---- worker ---------------------------------------------------------------------
    def load(self, wctx: WorkerContext, fragment: Fragment, data: Payload, model: Payload) -> dict:
        R = data["R"]
        a_rows = np.asarray(data["a"], dtype=np.int64)
        indptr = np.asarray(R.indptr, dtype=np.int64)
        b_ids, lb = np.unique(np.asarray(R.indices, dtype=np.int64), return_inverse=True)
        r = np.asarray(R.data, dtype=np.float64)
        frag = {"indptr": indptr, "lb": lb.astype(np.int64).ravel(), "r": r, "a": a_rows,
                "b": b_ids, "A": np.ascontiguousarray(model["A"][a_rows]),
                "B": np.ascontiguousarray(model["B"][b_ids]), "mu": float(model["mu"][0])}
        if "count_b" in model:  # data-parallel: every fragment's ratings of its other-side rows
            frag["count_b"] = np.asarray(model["count_b"], dtype=np.float64)[b_ids]
        if bool(model["factor_mode"][0]):
            frag["e"] = K.residuals(indptr, frag["lb"], r, frag["mu"], frag["A"], frag["B"],
                                    bool(self.biases))
        return frag

    def push(self, wctx: WorkerContext, fragment: Fragment, block: Payload) -> Payload:
        f = fragment.state
        lam = float(self.lam)
        if block["kind"] == "epoch":
            new_a, c, g, yy = K.epoch_partials(f["indptr"], f["lb"], f["r"], f["mu"], f["A"], f["B"],
                                               lam, int(self.inner), bool(self.biases), f["b"].size)
            return {"a": new_a, "c": c, "g": g, "yy": yy}
        if block["kind"] == "sgd":
            order = np.random.default_rng([int(block["seed"]), fragment.id]).permutation(f["r"].size)
            new_a, new_b = K.sgd_epoch(f["indptr"], f["lb"], f["r"], f["mu"], f["A"], f["B"],
                                       f["count_b"], order, lam, float(block["lr"]), bool(self.biases))
            return {"a": new_a, "db": new_b - f["B"]}
        if block["kind"] == "bias":
            out = K.bias_partials(f["indptr"], f["lb"], f["e"], f["A"], f["B"], lam, f["b"].size)
        else:
            out = K.factor_partials(f["indptr"], f["lb"], f["e"], f["A"], f["B"], int(block["col"]),
                                    lam, f["b"].size)
        return dict(zip(("num_a", "den_a", "num_b", "den_b", "rr"), out))

    def sync(self, wctx: WorkerContext, fragment: Fragment, update: Payload) -> None:
        f = fragment.state
        if update["kind"] == "epoch":
            f["A"] = np.ascontiguousarray(update["A"][f["a"]])
            f["B"] = np.ascontiguousarray(update["B"][f["b"]])
            return
        K.apply_column(f["indptr"], f["lb"], f["e"], f["A"], f["B"], int(update["col"]),
                       np.ascontiguousarray(update["a"][f["a"]]),
                       np.ascontiguousarray(update["b"][f["b"]]), update["kind"] == "bias")


# ---- helpers ------------------------------------------------------------------------

def _ratio(num: np.ndarray, den: np.ndarray, lam: float) -> np.ndarray:
    """``num / (lam + den)``, 0 where that is 0/0 (the same arithmetic as the workers')."""
    total = lam + den
    return np.divide(num, total, out=np.zeros_like(num), where=total > 0)


def _as_triplets(obj: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user codes, item codes, values, user ids, item ids) from a Ratings or a triplet."""
    from smpframe.data.ratings import Ratings
    if isinstance(obj, Ratings):
        return (np.asarray(obj.users, np.int64), np.asarray(obj.items, np.int64),
                np.asarray(obj.values, np.float64), obj.user_ids, obj.item_ids)
    try:
        users, items, values = obj
    except (TypeError, ValueError):
        raise InputError("ratings must be a path, a Ratings or a (users, items, values) triplet") \
            from None
    users, items = np.asarray(users), np.asarray(items)
    values = np.asarray(values, dtype=np.float64).ravel()
    if not (users.shape == items.shape == values.shape) or users.ndim != 1:
        raise InputError(f"users, items and values must be 1-d and of one length, got "
                         f"{users.shape}, {items.shape}, {values.shape}")
    if not len(values):
        raise InputError("no ratings")
    user_ids, u = np.unique(users, return_inverse=True)
    item_ids, i = np.unique(items, return_inverse=True)
    return u.ravel().astype(np.int64), i.ravel().astype(np.int64), values, user_ids, item_ids


def _raw(obj: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw user ids, raw item ids, values) of a test set."""
    from smpframe.data.ratings import Ratings
    if isinstance(obj, Ratings):
        return obj.user_ids[obj.users], obj.item_ids[obj.items], np.asarray(obj.values, np.float64)
    users, items, values = obj
    return np.asarray(users), np.asarray(items), np.asarray(values, dtype=np.float64)


def _read_source(source: Any, params: Mapping[str, Any]):
    """(train triplets with ids, raw test triplet or None) from any accepted source."""
    from smpframe.data.ratings import load_ratings
    from smpframe.data import synthetic

    test = None
    if source is None:
        users, items, values = synthetic.make_ratings(**(params.get("synthetic") or {}))
        if params.get("test") is None:
            train_t, test = synthetic.split_ratings(users, items, values, 0.2, seed=1)
        else:
            train_t = (users, items, values)
        train = _as_triplets(train_t)
    elif isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        train = _as_triplets(load_ratings(str(source), params.get("fmt")))
    elif isinstance(source, Mapping):
        if "train" not in source:
            raise InputError("a ratings mapping needs a 'train' entry")
        train = _as_triplets(source["train"])
        test = _raw(source["test"]) if source.get("test") is not None else None
    else:
        train = _as_triplets(source)
    if params.get("test") is not None:
        test = _raw(load_ratings(str(params["test"]), params.get("fmt")))
    return train, test


def _map_test(test, user_ids, item_ids, local: str):
    """Test ratings as (local-side codes, other-side codes, values), -1 = unseen id."""
    from smpframe.data.ratings import Ratings, apply_mapping
    raw_users, raw_items, values = test
    known = Ratings(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), user_ids, item_ids)
    users, items, _ = apply_mapping(known, raw_users, raw_items)
    a, b = (users, items) if local == "users" else (items, users)
    return a, b, values


def _predict_codes(A: np.ndarray, B: np.ndarray, mu: float, biases: bool, a: np.ndarray,
                   b: np.ndarray, clip: tuple[float, float] | None) -> np.ndarray:
    """Predictions for (local, other) code pairs; a -1 code (unseen id) drops its terms."""
    lo, hi = clip if clip is not None else (-np.inf, np.inf)
    return K.predict(np.ascontiguousarray(A), np.ascontiguousarray(B), float(mu), bool(biases),
                     np.ascontiguousarray(a, dtype=np.int64), np.ascontiguousarray(b, dtype=np.int64),
                     float(lo), float(hi))


def _id_array(ids: np.ndarray) -> np.ndarray:
    """Ids as a numeric or unicode array (npz without pickle)."""
    ids = np.asarray(ids)
    return ids.astype(str) if ids.dtype == object else ids


def predict(model: Mapping[str, np.ndarray], users: Any, items: Any, clip: bool = True) -> np.ndarray:
    """Predicted ratings for raw ``(users[k], items[k])`` ids with a saved model (model.npz).

    Unseen users/items fall back to the biases and the global mean, as in training's
    test RMSE; predictions are clipped to the training ratings' range unless ``clip=False``.
    """
    from smpframe.data.ratings import Ratings, apply_mapping
    known = Ratings(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                    np.asarray(model["user_ids"]), np.asarray(model["item_ids"]))
    u, i, _ = apply_mapping(known, np.atleast_1d(np.asarray(users)), np.atleast_1d(np.asarray(items)))
    A = np.column_stack([model["user_bias"], model["user_factors"]])
    B = np.column_stack([model["item_bias"], model["item_factors"]])
    rng = tuple(np.asarray(model["rating_range"], dtype=float)) if clip else None
    return _predict_codes(A, B, float(np.asarray(model["global_mean"])[0]), True, u, i, rng)
