"""Example SMP program: L2 logistic regression by minibatch SGD, a model replica per worker.

Run it: ``python -m smpframe.examples.sgd`` (2 workers on built-in sparse data) or
``smpframe run smpframe.examples.sgd:SparseSGD --lam 0.01 --rounds 400``.

It exercises the parts of the API the PCA example does not:

* **per-worker state**: ``init_worker`` gives every worker one replica of the weights
  in ``wctx.shared``, shared by all its fragments; ``sync_worker`` applies each commit
  to it once per worker (not once per fragment);
* **sparse partials and updates**: a minibatch touches few columns, so ``push`` returns
  its gradient as a 1 x d scipy CSR matrix, ``pull`` adds them with ``sum_partials``
  and broadcasts the sparse step;
* **the fragment object**: each fragment draws its minibatch from its own rows, seeded
  by the round and ``fragment.id``, so a round redone elsewhere draws the same rows.

The weights are kept as ``w = scale * v`` (Bottou's trick): the L2 shrinkage of a
step only changes ``scale``, so a step stays as sparse as its gradient. The step size
is scikit-learn's "optimal" schedule, ``1 / (lam (t0 + t))``.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np
import scipy.sparse as sp

from smpframe import Dataset, SMPProgram, run_local, sum_partials


def logistic_loss(margins: np.ndarray) -> np.ndarray:
    """``log(1 + exp(-m))``, stable for any margin."""
    return np.logaddexp(0.0, -margins)


class SparseSGD(SMPProgram):
    """L2-regularised logistic regression by minibatch SGD with a model replica per worker.

    Minimises ``mean_i log(1 + exp(-y_i x_i.w)) + lam/2 ||w||^2`` (labels -1/+1).

    Parameters
    ----------
    lam : float
        L2 strength.
    batch : int
        Rows each fragment samples per round.
    rounds : int
        SGD steps (one per round).
    eta0 : float
        First step size.
    eval_every : int
        Rounds between full-data objective evaluations (and the last round).
    seed : int
        Seed of the minibatch draws.
    """

    name = "sgd"

    def __init__(self, lam: float = 0.01, batch: int = 64, rounds: int = 300, eta0: float = 0.5,
                 eval_every: int = 50, seed: int = 0) -> None:
        self.lam = lam
        self.batch = batch
        self.rounds = rounds
        self.eta0 = eta0
        self.eval_every = eval_every
        self.seed = seed

    # ---- scheduler side ---------------------------------------------------------------
    def load_data(self, source: Any) -> Dataset:
        if source is None:  # built-in: sparse rows, labels from a sparse true model
            rng = np.random.default_rng(1)
            X = sp.random(4000, 500, density=0.02, format="csr", random_state=rng)
            truth = rng.standard_normal(500) * (rng.random(500) < 0.2)
            source = (X, np.where(X @ truth + 0.1 * rng.standard_normal(4000) > 0, 1.0, -1.0))
        X, y = source
        return Dataset(rows={"X": sp.csr_matrix(X, dtype=np.float64), "y": np.asarray(y, float)},
                       meta={"d": X.shape[1]})

    def init(self, ctx) -> None:
        d = ctx.dataset.meta["d"]
        ctx.model.update(v=np.zeros(d), scale=np.ones(1))
        ctx.state.update(n=ctx.dataset.n_rows, objective=None, history=[])

    def schedule(self, ctx):
        if ctx.round >= self.rounds or ctx.inflight:
            return None  # a step needs the previous one committed
        last = ctx.round == self.rounds - 1
        if last or (ctx.round + 1) % self.eval_every == 0:
            return {"kind": "eval"}
        return {"kind": "step", "t": ctx.round}

    def pull(self, ctx, block, partials):
        model, n = ctx.model, ctx.state["n"]
        if block["kind"] == "eval":
            w = model["scale"][0] * model["v"]
            objective = sum_partials(partials, "loss") / n + 0.5 * self.lam * float(w @ w)
            ctx.state["objective"] = objective
            ctx.state["history"].append([ctx.round, objective])
            ctx.report(objective=objective)
            return None
        lr = 1.0 / (self.lam * (1.0 / (self.lam * self.eta0) + block["t"]))
        scale = model["scale"][0] * (1.0 - lr * self.lam)
        rows = sum_partials(partials, "rows")
        step = sum_partials(partials, "g") * (-lr / (rows * scale))  # a sparse 1 x d matrix
        model["v"][step.indices] += step.data
        model["scale"][0] = scale
        return {"scale": scale, "step": step}

    def result(self, ctx):
        w = ctx.model["scale"][0] * ctx.model["v"]
        summary = {"app": self.name, "objective": ctx.state["objective"],
                   "history": ctx.state["history"]}
        return summary, {"coef": w}

    # ---- worker side ------------------------------------------------------------------
    def init_worker(self, wctx) -> None:
        wctx.shared.update(v=np.zeros(wctx.meta["d"]), scale=1.0)  # this worker's replica

    def sync_worker(self, wctx, update) -> None:
        step = update["step"]
        wctx.shared["v"][step.indices] += step.data
        wctx.shared["scale"] = update["scale"]

    def load(self, wctx, fragment, data, model):
        return {"X": data["X"], "y": data["y"]}

    def push(self, wctx, fragment, block):
        X, y = fragment.state["X"], fragment.state["y"]
        v, scale = wctx.shared["v"], wctx.shared["scale"]
        if block["kind"] == "eval":
            return {"loss": float(logistic_loss(y * (scale * (X @ v))).sum())}
        rng = np.random.default_rng([self.seed, block["t"], fragment.id])
        rows = rng.integers(0, fragment.n_rows, size=min(self.batch, fragment.n_rows))
        Xb, yb = X[rows], y[rows]
        margins = yb * (scale * (Xb @ v))
        dloss = -yb / (1.0 + np.exp(margins))  # d loss / d (x.w) per row
        gradient = sp.csr_matrix(dloss[None, :]) @ Xb  # 1 x d, only the touched columns
        return {"g": gradient, "rows": int(rows.size)}


def main() -> int:
    result = run_local(SparseSGD(), workers=2)
    print("objective:", result.summary["objective"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
