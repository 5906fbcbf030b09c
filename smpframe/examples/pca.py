"""Example SMP program: top-k principal components by distributed subspace iteration.

Run it: ``python -m smpframe.examples.pca`` (a local cluster of 2 workers on random
data) or ``smpframe run smpframe.examples.pca:PCA --k 2``. It uses only the public API, like every built-in app:

* ``load_data`` returns the rows; the runtime splits them into fragments that live
  on the workers;
* ``schedule`` sends the current basis V (d x k) as the block;
* ``push`` returns each fragment's ``A_f^T (A_f V)`` and its column sums;
* ``pull`` sums the partials (``A^T A V``), centres, orthonormalises and commits.

Workers keep no state that changes, so ``sync`` is not needed.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from smpframe import Dataset, SMPProgram, run_local, sum_partials


class PCA(SMPProgram):
    """Top ``k`` principal components of the rows of a dense matrix.

    Parameters
    ----------
    k : int
        Number of components.
    iterations : int
        Most subspace iterations.
    tol : float
        Stop when no basis entry moves by more than this.
    """

    name = "pca"

    def __init__(self, k: int = 3, iterations: int = 100, tol: float = 1e-10) -> None:
        self.k = k
        self.iterations = iterations
        self.tol = tol

    # scheduler side
    def load_data(self, source: Any) -> Dataset:
        if source is None:  # built-in data: 2000 rows with a decaying spectrum
            rng = np.random.default_rng(0)
            source = rng.standard_normal((2000, 20)) @ np.diag(np.linspace(5, 0.5, 20))
        A = np.asarray(source, dtype=np.float64)
        return Dataset(rows={"A": A}, meta={"d": A.shape[1]})

    def init(self, ctx) -> None:
        A = ctx.dataset.rows["A"]
        basis, _ = np.linalg.qr(ctx.rng.standard_normal((A.shape[1], self.k)))
        ctx.model["V"] = basis
        ctx.state.update(n=A.shape[0], iteration=0)

    def schedule(self, ctx):
        if ctx.state["iteration"] >= self.iterations:
            return None
        return {"V": ctx.model["V"]}

    def pull(self, ctx, block, partials):
        n = ctx.state["n"]
        mean = sum_partials(partials, "colsum") / n
        V = block["V"]
        cov_v = (sum_partials(partials, "AtAV") - np.outer(mean, mean @ V) * n) / (n - 1)  # centred covariance @ V
        new_v, _ = np.linalg.qr(cov_v)
        new_v *= np.sign(np.sum(new_v * V, axis=0))  # keep orientation to measure change
        change = float(np.abs(new_v - V).max())
        ctx.model["V"] = new_v
        ctx.model["variance"] = np.linalg.norm(cov_v, axis=0)
        ctx.state["iteration"] += 1
        ctx.report(change=change)
        if change < self.tol:
            ctx.stop(converged=True)
        return None

    # worker side
    def load(self, wctx, fragment, data, model):
        return data["A"]  # kept as fragment.state

    def push(self, wctx, fragment, block):
        A = fragment.state
        return {"AtAV": A.T @ (A @ block["V"]), "colsum": A.sum(axis=0)}


def main() -> int:
    result = run_local(PCA(k=3), workers=2)
    print("explained variance:", np.round(result.model["variance"], 4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
