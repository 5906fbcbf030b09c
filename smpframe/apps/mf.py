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
from smpframe.arrays import compiled_kernels
from smpframe.data.rating_splits import decode_ids, ratings_splits
from smpframe.data.splits import is_path
from smpframe.errors import InputError
from smpframe.api import (Dataset, Fragment, Payload, SchedulerContext, SMPProgram, Splits,
                          WorkerContext, balanced_bounds, concat_partials, expect_array,
                          sum_partials)


class MatrixFactorization(SMPProgram):
    """Matrix factorisation of ratings (biased, low rank) by scheduled coordinate descent.

    **Data layout.** Ratings are partitioned across workers by whole rows of the
    rating matrix of the *local side*: the side with more ids (items on MovieLens),
    so every rating of a local id lives in one fragment (fragments own disjoint
    local rows). Workers keep their ratings and the parameter rows they touch.

    **Schedule.** Parameters are ``theta[id] = (bias, w_1..w_K)`` per user and item,
    updated one coordinate (bias, then factor k = 1..K: rank-one, CCD-style column
    updates) at a time, each set to its exact minimiser given the rest, so the
    objective never rises. Three schedules; ``mode="auto"`` picks the one a cost model
    (:func:`pick_mode`) says is fastest for the size and rank:

    * ``sides`` (two rounds per epoch, the ratings held twice): fragments also own
      whole rows of the other side (each other-side id is placed beside the local rows,
      so one contiguous range of the data holds about equal shares of both sides' ratings).
      The first round sweeps every local row's coordinates (``inner`` times) with the
      other side fixed, the second every other-side row with the new local rows; each
      row is updated by the one fragment holding all its ratings, from the residuals
      of those ratings, at O(ratings x K) per sweep (no Gram sums). Same iterates as
      ``epoch``; the fastest past the smallest ranks.
    * ``epoch`` (one round per epoch): each fragment sweeps its local rows' coordinates
      (exact: it holds all their ratings), then returns, per other-side id, the
      numerator ``sum y x`` and the denominator/cross sums ``sum x x^T`` of that
      side's coordinate updates computed with the new local rows; the scheduler
      commits the local rows, adds the sums over fragments and sweeps the other
      side's coordinates (so no two workers ever write the same rows). ``inner``
      sweeps per side and epoch. O(ratings x K^2) per epoch: for small ranks.
    * ``factor`` (CCD++, one round per factor): workers keep residuals; a round
      updates column k on both sides (local side in the fragment, other side from
      per-id numerator/denominator sums ``sum rho h``, ``sum h^2``); the bias
      columns take one round; ``inner`` repeats each factor (CCD++ inner iterations).
      The ratings are held once, but an epoch takes ``inner (K + 1)`` rounds.

    **Workers** run compiled numba loops on CPU; GPU workers (and ``kernel="array"``
    anywhere) run the same updates as array code through ``wctx.xp`` (per-id sums by
    ``bincount``, the Gram sums of ``epoch`` by sparse products), except the
    data-parallel baseline, whose sequential SGD pass runs on CPU workers only.

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
    A file is read by the workers (:mod:`smpframe.data.rating_splits`): the splits' ids
    and counts arrive as facts, ``init`` gives each fragment its id ranges, and each
    worker gathers its fragment's ratings from every split (:func:`_own_ratings`), so
    the scheduler never holds them. The data-parallel baseline reads on the scheduler
    (its loss is computed there, from the ratings).

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
    mode : {"auto", "sides", "epoch", "factor"}
        Two rounds per epoch (one per side), one per epoch, or one per factor
        (auto: the cheapest by :func:`pick_mode`).
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
    kernel : {"auto", "array"}
        CPU workers: numba loops (auto) or the array code GPU workers run.
    """

    name = "mf"
    reads_splits = True  # a ratings file: each worker gathers its ids' ratings itself
    #: one fragment a worker: a worker reading a file scans all of it once per fragment
    fragments_per_worker = 1
    gpu = True  # the array path (kernel="array", and every GPU worker) runs on wctx.xp
    cli_flags = {"lam": "--lambda", "fmt": "--format", "policy": "--schedule"}

    def __init__(self, rank: int = 10, lam: float = 10.0, epochs: int = 20, inner: int = 1,
                 biases: bool = True, test: str | None = None,
                 fmt: Literal["csv", "tsv", "dat", "space", "mm"] | None = None,
                 tol: float = 0.0, mode: Literal["auto", "sides", "epoch", "factor"] = "auto",
                 init_scale: float = 0.1, synthetic: dict[str, Any] | None = None,
                 policy: Literal["model-parallel", "data-parallel"] = "model-parallel",
                 learning_rate: float = 0.2, kernel: Literal["auto", "array"] = "auto") -> None:
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
        self.kernel = kernel
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
        if self.mode not in ("auto", "sides", "epoch", "factor"):
            raise InputError(f"--mode must be auto, sides, epoch or factor, got {self.mode!r}")
        if self.kernel not in ("auto", "array"):
            raise InputError(f"--kernel must be auto or array, got {self.kernel!r}")
        if self.policy not in ("model-parallel", "data-parallel"):
            raise InputError(f"--schedule {self.policy}: expected model-parallel or data-parallel")
        if not 0 < float(self.learning_rate) < float("inf"):
            raise InputError(f"--learning-rate must be a finite number > 0, got {self.learning_rate}")
        if self.policy == "data-parallel" and (self.mode != "auto" or self.kernel != "auto"):
            raise InputError("--mode and --kernel are for --schedule model-parallel")

    @property
    def _data_parallel(self) -> bool:
        return self.policy == "data-parallel"

    @property
    def _dim(self) -> int:
        return int(self.rank) + int(bool(self.biases))

    # ---- scheduler ------------------------------------------------------------------
    def load_data(self, source: Any) -> Dataset | Splits:
        if self.reads_splits and not self._data_parallel and is_path(source):
            splits = ratings_splits(str(source), self.fmt)
            if splits is not None:  # the workers read it (or, --read-on scheduler, this process)
                self._set_test(_test_file(self.params))
                splits.assemble = self._assemble
                return splits
        train, test = _read_source(source, self.params)
        self._set_test(test)
        return self._dataset(*train)

    def _set_test(self, test: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> None:
        if test is not None and not np.isfinite(test[2]).all():
            raise InputError("test ratings contain NaN or Inf")
        self._test = None if test is None else (test[0], test[1], np.asarray(test[2], np.float64))

    def _assemble(self, dataset: Dataset) -> Dataset:
        """A ratings file read whole here (``--read-on scheduler``), as in-memory ratings."""
        rows, meta = dataset.rows, dataset.meta
        return self._dataset(rows["users"], rows["items"], rows["values"],
                             decode_ids(meta["user_ids"]), decode_ids(meta["item_ids"]))

    def _dataset(self, users: np.ndarray, items: np.ndarray, values: np.ndarray,
                 user_ids: np.ndarray, item_ids: np.ndarray) -> Dataset:
        """Ratings held here: each fragment's rows (its local ids' ratings, and in mode
        ``sides`` its other-side ids') are shipped to its worker."""
        if not np.isfinite(values).all():
            raise InputError("ratings contain NaN or Inf")
        n_users, n_items = len(user_ids), len(item_ids)
        local_users = n_users > n_items
        a, b = (users, items) if local_users else (items, users)
        n_a, n_b = (n_users, n_items) if local_users else (n_items, n_users)
        self._ids = (user_ids, item_ids)
        mode = self._pick_mode(len(values), n_a, n_b)
        meta = {"n_a": n_a, "n_b": n_b, "local": "users" if local_users else "items",
                "mu": float(values.mean()) if self.biases else 0.0,
                "n_ratings": int(len(values)), "mode": mode}
        # built from components: duplicate (user, item) pairs stay separate ratings
        rows = {"R": _csr([(a, b, values)], n_a, n_b), "a": np.arange(n_a, dtype=np.int64)}
        if mode == "sides":
            rows.update(_other_side_rows(a, b, values, n_a, n_b))
        return Dataset(rows=rows, meta=meta)

    def _pick_mode(self, n_ratings: int, n_a: int, n_b: int) -> str:
        mode = "sgd" if self._data_parallel else self.mode
        return pick_mode(n_ratings, n_a, n_b, self._dim, int(self.inner)) if mode == "auto" else mode

    def describe(self, wctx: WorkerContext, fragment: Fragment, data: Payload) -> Payload:
        """A split's ratings per user and item, and its rating sums (for ``init``);
        nothing for ratings held on the scheduler."""
        if "R" in data:
            return {}
        v = np.asarray(data["values"], dtype=np.float64)
        facts = {"users": np.bincount(data["users"]), "items": np.bincount(data["items"]),
                 "n": int(v.size), "sum": float(v.sum()), "sumsq": float(v @ v)}
        if v.size:
            facts.update(low=float(v.min()), high=float(v.max()))
        return facts

    def init(self, ctx: SchedulerContext) -> None:
        p, meta = self.params, ctx.dataset.meta
        cache = self._cache_from_rows(ctx) if ctx.has_rows else self._cache_from_facts(ctx)
        ctx.cache = cache
        dim, n_a, n_b = self._dim, meta["n_a"], meta["n_b"]
        if self._data_parallel:  # the loss is computed here, from the ratings held here
            R = ctx.dataset.rows["R"]
            cache.update(count_b=np.bincount(R.indices, minlength=n_b),
                         indptr=R.indptr.astype(np.int64), indices=R.indices.astype(np.int64))
        if self._test is not None:
            cache["test"] = _map_test(self._test, cache["user_ids"], cache["item_ids"],
                                      meta["local"])
        B = float(p["init_scale"]) * ctx.rng.standard_normal((n_b, dim))
        if p["biases"]:
            B[:, 0] = 0.0
        A = np.zeros((n_a, dim))
        if self._data_parallel:  # SGD needs both sides off the saddle at zero factors
            A[:, int(bool(p["biases"])):] = float(p["init_scale"]) * ctx.rng.standard_normal(
                (n_a, int(p["rank"])))
        ctx.model.update(A=A, B=B, mu=np.array([meta["mu"]]))
        ctx.state.update(epoch=0, step=0, history=[], objective=None)
        if self._data_parallel:
            ctx.state["seed"] = int(ctx.rng.integers(0, 2**31 - 1))
        self._record_epoch(ctx, cache.pop("loss0"))

    def _cache_from_rows(self, ctx: SchedulerContext) -> dict[str, Any]:
        """Who owns what, the ids and the first loss, for ratings held here."""
        rows, meta = ctx.dataset.rows, ctx.dataset.meta
        R = rows["R"]
        e0 = R.data - meta["mu"]
        slot = np.flatnonzero(rows["j"] >= 0) if meta["mode"] == "sides" else None
        user_ids, item_ids = self._ids
        return _ownership(ctx.bounds, slot, ctx.n_fragments, mode=meta["mode"], user_ids=user_ids,
                          item_ids=item_ids, range=(float(R.data.min()), float(R.data.max())),
                          loss0=float(e0 @ e0))

    def _cache_from_facts(self, ctx: SchedulerContext) -> dict[str, Any]:
        """The same from the splits' facts (the workers hold the ratings): the sizes, the
        mean, the schedule and the fragments' id ranges, balanced as for ratings held here."""
        meta = ctx.dataset.meta
        facts = [ctx.facts[f] for f in range(ctx.n_fragments)]
        user_ids, item_ids = decode_ids(meta["user_ids"]), decode_ids(meta["item_ids"])
        count_u = _add_counts([f["users"] for f in facts], len(user_ids))
        count_i = _add_counts([f["items"] for f in facts], len(item_ids))
        n = sum(f["n"] for f in facts)
        total, sumsq = sum(f["sum"] for f in facts), sum(f["sumsq"] for f in facts)
        local_users = len(user_ids) > len(item_ids)
        count_a, count_b = (count_u, count_i) if local_users else (count_i, count_u)
        n_a, n_b = len(count_a), len(count_b)
        mu = total / n if self.biases else 0.0
        mode = self._pick_mode(n, n_a, n_b)
        meta.update(n_a=n_a, n_b=n_b, local="users" if local_users else "items", mu=mu,
                    n_ratings=n, mode=mode)  # what the workers' loads read
        weights = 1.0 + count_a  # as Dataset.row_weights weighs the rows held here
        slot = None
        if mode == "sides":
            slot = _slots(count_a, count_b)
            weights[slot] += count_b  # (slots are distinct)
        return _ownership(balanced_bounds(weights, ctx.n_fragments), slot, ctx.n_fragments,
                          mode=mode,
                          user_ids=user_ids, item_ids=item_ids,
                          range=(min(f["low"] for f in facts if f["n"]),
                                 max(f["high"] for f in facts if f["n"])),
                          loss0=max(sumsq - 2.0 * mu * total + n * mu * mu, 0.0))

    def warm_up(self, role: str, xp: Any) -> None:
        if role == "scheduler" or compiled_kernels(xp, self.kernel):
            K.warm_up()

    def _steps_per_epoch(self, ctx: SchedulerContext) -> int:
        if ctx.cache["mode"] in ("epoch", "sgd"):
            return 1
        if ctx.cache["mode"] == "sides":
            return 2
        return int(bool(self.biases)) + int(self.rank) * int(self.inner)

    def schedule(self, ctx: SchedulerContext) -> Payload | None:
        st = ctx.state
        if st["epoch"] >= int(self.epochs) or ctx.inflight:
            return None  # every update needs the previous one's result: wait for the round in flight
        if ctx.cache["mode"] == "epoch":
            return {"kind": "epoch"}
        if ctx.cache["mode"] == "sides":
            return {"kind": "side", "side": "ab"[st["step"]]}
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
        start, stop = ctx.cache["own_a"][fragment]
        rows = stop - start
        if block["kind"] == "side":
            start, stop = (start, stop) if block["side"] == "a" else ctx.cache["own_b"][fragment]
            expect_array(partial, "rows", (stop - start, self._dim))
            for key in ("ee", "ss"):
                if not isinstance(partial.get(key), float):
                    raise ValueError(f"{key!r} must be a float")
            return
        others = _expect_ids(partial, "b", ctx.dataset.meta["n_b"])
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
        elif block["kind"] == "side":
            update, loss = self._commit_side(ctx, block, partials)
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
        model = ctx.model
        new_a = concat_partials(partials, "a")
        dim = new_a.shape[1]
        n_b = model["B"].shape[0]
        c = np.zeros((n_b, dim))
        g = np.zeros((n_b, dim * (dim + 1) // 2))
        for q in partials.values():  # each fragment's sums over the other-side ids it rates
            c[q["b"]] += q["c"]
            g[q["b"]] += q["g"]
        new_b = model["B"].copy()
        K.solve_rows(g, c, new_b, float(self.lam), int(self.inner))
        loss = K.side_loss(g, c, new_b, float(sum_partials(partials, "yy")))
        model["A"], model["B"] = new_a, new_b
        return {"kind": "epoch", "A": new_a, "B": new_b}, loss

    def _commit_side(self, ctx: SchedulerContext, block: Payload,
                     partials: dict[int, Payload]) -> tuple[Payload, float | None]:
        """One side's rows, each from the one fragment that owns it (fragments own
        contiguous id ranges of both sides, in fragment order); after the second side,
        the training loss is the sum of the fragments' squared residuals. The side's sum
        of squares (for the penalty) comes from the fragments too."""
        side = block["side"]
        rows = concat_partials(partials, "rows")
        ctx.model["A" if side == "a" else "B"] = rows
        ctx.cache.setdefault("squares", {})[side.upper()] = float(sum_partials(partials, "ss"))
        loss = float(sum_partials(partials, "ee")) if side == "b" else None
        return {"kind": "side", "side": side, "rows": rows}, loss

    def _commit_sgd(self, ctx: SchedulerContext, partials: dict[int, Payload]) -> tuple[Payload, float]:
        """Data-parallel: the fragments' local rows, and every other-side row moved by the
        mean of the fragments' changes to it; the loss recomputed from the ratings."""
        model, cache = ctx.model, ctx.cache
        new_a = concat_partials(partials, "a")
        step = np.zeros_like(model["B"])
        for q in partials.values():
            step[q["b"]] += q["db"]
        copies = np.bincount(concat_partials(partials, "b"), minlength=len(step))
        new_b = model["B"] + step / np.maximum(copies, 1)[:, None]
        model["A"], model["B"] = new_a, new_b
        R = ctx.dataset.rows["R"]
        e = K.residuals(cache["indptr"], cache["indices"], R.data, float(model["mu"][0]), new_a,
                        new_b, bool(self.biases))
        return {"kind": "epoch", "A": new_a, "B": new_b}, float(e @ e)  # synced as an epoch

    def _commit_column(self, ctx: SchedulerContext, block: Payload,
                       partials: dict[int, Payload]) -> tuple[Payload, float]:
        model = ctx.model
        lam = float(self.lam)
        num_a, den_a = concat_partials(partials, "num_a"), concat_partials(partials, "den_a")
        n_b = model["B"].shape[0]
        b_all = concat_partials(partials, "b")
        num_b = np.bincount(b_all, concat_partials(partials, "num_b"), n_b)
        den_b = np.bincount(b_all, concat_partials(partials, "den_b"), n_b)
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
        squares = ctx.cache.get("squares", {})  # what side rounds summed (not after a resume)
        reg = float(self.lam) * sum(squares[k] if k in squares else _sum_squares(m[k]) for k in "AB")
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
        cache = ctx.cache
        out = {"A": ctx.model["A"], "B": ctx.model["B"], "mu": ctx.model["mu"],
               "own_a": np.array(cache["own_a"][fragment], dtype=np.int64)}
        if cache["own_b"] is not None:
            out["own_b"] = np.array(cache["own_b"][fragment], dtype=np.int64)
        if not ctx.has_rows:  # every split: the fragment's ratings may be in any of them
            out["splits"] = ctx.dataset.parts
        if self._data_parallel:
            out["count_b"] = cache["count_b"]
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
        mode = wctx.meta["mode"]
        compiled = compiled_kernels(wctx.xp, self.kernel)
        if mode == "sgd" and not compiled:
            raise InputError("--schedule data-parallel runs on CPU workers with --kernel auto "
                             "(its SGD pass is sequential)")
        xp = None if compiled else wctx.xp  # None: the compiled loops, on host arrays
        put = np.ascontiguousarray if xp is None else xp.asarray
        if "R" not in data:  # a split this worker read: gather the ratings of the fragment's ids
            data = _own_ratings(wctx.meta, fragment, data, model)
        R = data["R"]
        frag = {"xp": xp, "mu": float(model["mu"][0])}
        if mode == "sides":
            # both sides' committed rows once per worker (wctx.shared, kept by sync_worker);
            # each copy of the ratings indexes them by global id, and the fragment's own
            # rows are a contiguous range of each side
            wctx.shared.update(A=put(model["A"]), B=put(model["B"]))
            T = data["T"]
            keep = np.asarray(data["j"]) >= 0  # the slots between own ids hold no ratings
            frag.update(by_a=_grouped(xp, R.indptr, R.indices, R.data),
                        by_b=_grouped(xp, np.append(np.asarray(T.indptr[:-1])[keep], T.indptr[-1]),
                                      T.indices, T.data),
                        own_a=tuple(int(x) for x in model["own_a"]),
                        own_b=tuple(int(x) for x in model["own_b"]))
            return frag
        a_rows = np.asarray(data["a"], dtype=np.int64)
        b_ids, lb = np.unique(np.asarray(R.indices, dtype=np.int64), return_inverse=True)
        frag.update(a=a_rows, b=b_ids, by_a=_grouped(xp, R.indptr, lb, R.data),
                    A=put(model["A"][a_rows]), B=put(model["B"][b_ids]))
        if "count_b" in model:  # data-parallel: every fragment's ratings of its other-side rows
            frag["count_b"] = np.asarray(model["count_b"], dtype=np.float64)[b_ids]
        if mode == "factor":
            frag["e"] = _kernel(frag, frag["by_a"], K.residuals, K.residuals_array,
                                frag["by_a"]["r"], frag["mu"], frag["A"], frag["B"], bool(self.biases))
        return frag

    def push(self, wctx: WorkerContext, fragment: Fragment, block: Payload) -> Payload:
        f = fragment.state
        lam, sweeps, biases = float(self.lam), int(self.inner), bool(self.biases)
        g = f["by_a"]
        if block["kind"] == "side":
            A, B = wctx.shared["A"], wctx.shared["B"]
            if block["side"] == "a":
                own, other = A[slice(*f["own_a"])], B
            else:
                g, own, other = f["by_b"], B[slice(*f["own_b"])], A
            rows, ee = _kernel(f, g, K.side_update, K.side_update_array, g["r"], f["mu"], own, other,
                               lam, sweeps, biases)
            return {"rows": rows, "ee": float(ee), "ss": float((rows * rows).sum())}
        if block["kind"] == "epoch":
            new_a, c, gram, yy = _kernel(f, g, K.epoch_partials, K.epoch_partials_array, g["r"],
                                         f["mu"], f["A"], f["B"], lam, sweeps, biases, f["b"].size)
            return {"a": new_a, "b": f["b"], "c": c, "g": gram, "yy": float(yy)}
        if block["kind"] == "sgd":
            order = np.random.default_rng([int(block["seed"]), fragment.id]).permutation(g["r"].size)
            new_a, new_b = K.sgd_epoch(g["indptr"], g["lb"], g["r"], f["mu"], f["A"], f["B"],
                                       f["count_b"], order, lam, float(block["lr"]), biases)
            return {"a": new_a, "b": f["b"], "db": new_b - f["B"]}
        if block["kind"] == "bias":
            out = _kernel(f, g, K.bias_partials, K.bias_partials_array, f["e"], f["A"], f["B"],
                          lam, f["b"].size)
        else:
            out = _kernel(f, g, K.factor_partials, K.factor_partials_array, f["e"], f["A"], f["B"],
                          int(block["col"]), lam, f["b"].size)
        return {"b": f["b"], **dict(zip(("num_a", "den_a", "num_b", "den_b", "rr"),
                                        (*out[:4], float(out[4]))))}

    def sync_worker(self, wctx: WorkerContext, update: Payload) -> None:
        if update["kind"] == "side":  # the worker's one copy of the committed side
            xp = wctx.xp if not compiled_kernels(wctx.xp, self.kernel) else None
            wctx.shared[update["side"].upper()] = (np.ascontiguousarray(update["rows"])
                                                   if xp is None else xp.asarray(update["rows"]))

    def sync(self, wctx: WorkerContext, fragment: Fragment, update: Payload) -> None:
        f = fragment.state
        put = np.ascontiguousarray if f["xp"] is None else f["xp"].asarray
        if update["kind"] == "side":
            return
        if update["kind"] == "epoch":
            f["A"], f["B"] = put(update["A"][f["a"]]), put(update["B"][f["b"]])
            return
        _kernel(f, f["by_a"], K.apply_column, K.apply_column_array, f["e"], f["A"], f["B"],
                int(update["col"]), put(update["a"][f["a"]]), put(update["b"][f["b"]]),
                update["kind"] == "bias")


def _grouped(xp: Any, indptr: np.ndarray, lb: np.ndarray, r: np.ndarray) -> dict[str, Any]:
    """One copy of a fragment's ratings grouped by the row owning them (``indptr``),
    ``lb`` the position of each rating's other row: CSR pointers on the host for the
    compiled loops (``xp`` None), a per-rating row index on ``xp`` for the array code."""
    indptr = np.asarray(indptr, dtype=np.int64)
    lb = np.asarray(lb, dtype=np.int64).ravel()
    r = np.array(r, dtype=np.float64)  # writable: the loops are compiled for that
    if xp is None:
        return {"indptr": indptr, "lb": lb, "r": r}
    row = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    return {"row": xp.asarray(row), "lb": xp.asarray(lb), "r": xp.asarray(r)}


def _kernel(f: dict, g: dict, compiled: Any, array: Any, *args: Any) -> Any:
    """A compiled loop on the ratings ``g`` (by CSR pointers), or its array twin (by a
    per-rating row index, on the fragment's array module)."""
    if f["xp"] is None:
        return compiled(g["indptr"], g["lb"], *args)
    return array(f["xp"], g["row"], g["lb"], *args)


def pick_mode(n_ratings: int, n_a: int, n_b: int, dim: int, inner: int) -> str:
    """The model-parallel schedule with the least modelled time per epoch.

    Work is counted in inner-loop steps per epoch (multiply-adds over ratings and
    coordinates), plus a fixed cost per round (a message each way and a commit,
    expressed in the same steps): ``epoch`` 2 nnz (D(D+1)/2 + D) + (n_a + n_b) D^2 inner
    and one round; ``sides`` 2 nnz D (1 + inner) (a gather, then one pass per coordinate
    and sweep) and two rounds; ``factor`` 3 nnz D inner and ``D inner`` rounds. ``epoch``
    wins at the smallest ranks (one round), ``sides`` past them (no Gram sums): on
    MovieLens-shaped data from rank 5.
    """
    tri = dim * (dim + 1) // 2
    cost = {"epoch": 2 * n_ratings * (tri + dim) + (n_a + n_b) * dim * dim * inner + ROUND_STEPS,
            "sides": 2 * n_ratings * dim * (1 + inner) + 2 * ROUND_STEPS,
            "factor": 3 * n_ratings * dim * inner + dim * inner * ROUND_STEPS}
    return min(cost, key=cost.__getitem__)


ROUND_STEPS = 2_000_000
"""The fixed cost of a round (about 2 ms: messages, dispatch and commit) in kernel steps
(about 1 ns each), for :func:`pick_mode`."""


def _other_side_rows(a: np.ndarray, b: np.ndarray, values: np.ndarray, n_a: int,
                     n_b: int) -> dict[str, Any]:
    """The ratings again, grouped by other-side id, for mode ``sides``: other id ``j``'s
    ratings fill row ``slot[j]`` of ``T`` (one row per local id; indices = local ids),
    ``j[slot]`` names it (-1: a slot holding none; n_b <= n_a, so one id per slot).

    Slots rise with j, and j sits where the ratings before it, as a share of all, match
    the local rows' share before the slot, so every contiguous row range holds about
    the same share of both sides' ratings (fragments balance both rounds).
    """
    slot = _slots(np.bincount(a, minlength=n_a), np.bincount(b, minlength=n_b))
    owner = np.full(n_a, -1, np.int64)
    owner[slot] = np.arange(n_b)
    return {"T": _csr([(slot[b], a, values)], n_a, n_a), "j": owner}


def _slots(count_a: np.ndarray, count_b: np.ndarray) -> np.ndarray:
    """Other id j's slot (rising with j), from the ratings per local and per other id."""
    n_a, n_b = len(count_a), len(count_b)
    before = np.cumsum(count_b) - count_b
    slot = np.searchsorted(np.cumsum(count_a), before, side="right")
    k = np.arange(n_b)
    return np.minimum(np.maximum.accumulate(slot - k), n_a - n_b) + k  # rising, all fit


def _csr(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_rows: int,
         n_cols: int) -> sp.csr_matrix:
    """(row, column, value) triplets as CSR, each row's entries in the triplets' order
    (built from components: duplicate pairs stay separate ratings)."""
    rows, cols, values = (np.concatenate(x) for x in zip(*parts))
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return sp.csr_matrix((values[order].astype(np.float64), cols[order].astype(np.int32), indptr),
                         shape=(n_rows, n_cols))


def _ownership(own_a: list[tuple[int, int]], slot: np.ndarray | None, n_fragments: int,
               **cache: Any) -> dict[str, Any]:
    """The init cache with who updates what: fragment f the local rows ``own_a[f]`` and, in
    mode ``sides``, the other-side ids whose slot is among them (``own_b[f]``)."""
    end = own_a[-1][1]
    own_a = own_a + [(end, end)] * (n_fragments - len(own_a))  # more splits than local ids
    own_b = None if slot is None else [(int(np.searchsorted(slot, lo)), int(np.searchsorted(slot, hi)))
                                       for lo, hi in own_a]
    return {"own_a": own_a, "own_b": own_b, **cache}


def _add_counts(counts: list[np.ndarray], n: int) -> np.ndarray:
    """Per-id counts of the splits (each as long as its largest id) summed to ``n`` ids."""
    total = np.zeros(n, np.int64)
    for c in counts:
        c = np.asarray(c, dtype=np.int64)
        if c.size > n:
            raise ValueError(f"counts for {c.size} ids, but the file has {n}")
        total[:c.size] += c
    return total


def _own_ratings(meta: Mapping[str, Any], fragment: Fragment, data: Payload,
                 model: Payload) -> dict[str, Any]:
    """The ratings of a fragment's own ids, as the scheduler would ship them: gathered from
    every split of the file (an id's ratings may be anywhere in it), its own split (``data``,
    already read) and the others, read here one at a time and kept only where they belong."""
    from smpframe.data import splits

    lo, hi = (int(x) for x in model["own_a"])
    sides = "own_b" in model
    lo_b, hi_b = (int(x) for x in model["own_b"]) if sides else (0, 0)
    local_users = meta["local"] == "users"
    by_a, by_b = [], []
    for piece in _pieces(model["splits"], fragment.id):
        rows = data if piece is None else splits.finish(piece, splits.read(piece)[0], meta)
        a, b = (rows["users"], rows["items"]) if local_users else (rows["items"], rows["users"])
        values = rows["values"]
        mine = (a >= lo) & (a < hi)
        by_a.append((a[mine] - lo, b[mine], values[mine]))
        if sides:
            mine = (b >= lo_b) & (b < hi_b)
            by_b.append((b[mine] - lo_b, a[mine], values[mine]))
    out = {"R": _csr(by_a, hi - lo, meta["n_b"]), "a": np.arange(lo, hi, dtype=np.int64)}
    if sides:
        out.update(T=_csr(by_b, hi_b - lo_b, meta["n_a"]), j=np.arange(lo_b, hi_b, dtype=np.int64))
    return out


GATHER_CHUNK_BYTES = 16 << 20
"""How much of another split a worker parses at a time while it gathers its ratings
(the parser's temporaries are several times the text)."""


def _pieces(parts: list[dict[str, Any]], own: int) -> list[dict[str, Any] | None]:
    """Every split in file order, the others cut into pieces of at most
    :data:`GATHER_CHUNK_BYTES` (a piece owns the lines starting in its byte range, so the
    pieces' lines are the split's); None stands for split ``own``, already read."""
    out: list[dict[str, Any] | None] = []
    for k, part in enumerate(parts):
        if k == own:
            out.append(None)
            continue
        start, stop = part["start"], part["stop"]
        n = max(1, -(-(stop - start) // GATHER_CHUNK_BYTES))
        edges = [start + (stop - start) * i // n for i in range(n + 1)]
        out += [{**part, "start": a, "stop": b} for a, b in zip(edges[:-1], edges[1:])]
    return out


def _expect_ids(partial: Mapping[str, Any], key: str, n: int) -> int:
    """How many ids ``partial[key]`` lists, checked to be strictly increasing in [0, n)."""
    ids = expect_array(partial, key, (None,), kinds="iu")
    if ids.size and (ids[0] < 0 or ids[-1] >= n or (ids.size > 1 and (np.diff(ids) <= 0).any())):
        raise ValueError(f"{key!r} must be strictly increasing ids in [0, {n})")
    return int(ids.size)


# ---- helpers ------------------------------------------------------------------------

def _sum_squares(x: np.ndarray) -> float:
    """``sum x^2`` without a temporary."""
    flat = np.ascontiguousarray(x).ravel()
    return float(flat @ flat)


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
    return train, _test_file(params) or test


def _test_file(params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The ``test`` file's raw triplet (read here: the scheduler reports the test RMSE)."""
    from smpframe.data.ratings import load_ratings

    return None if params.get("test") is None else _raw(load_ratings(str(params["test"]),
                                                                     params.get("fmt")))


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
