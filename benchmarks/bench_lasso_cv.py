"""LassoCV: smpframe.linear_model.LassoCV (2 workers) vs scikit-learn's, same grid and folds.

Both fit the same ``--alphas``-point grid (scikit-learn's, from alpha_max down to
``--eps`` x alpha_max) on the same KFold folds, then refit at the chosen alpha. Times
are whole fits (``LassoCV.fit``): for smpframe, cold (the fit opens its own cluster:
worker start-up included) and warm (on a cluster already open). Both warm-start down
the path: smpframe runs each fold's whole path as one run (the Lasso app's ``lambdas``).

    python benchmarks/bench_lasso_cv.py --out bench-out/lasso_cv.json
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LassoCV as SkLassoCV
from sklearn.model_selection import KFold

from common import bar_chart, markdown_table, parser, timed, write_json
from smpframe import Cluster
from smpframe.data.synthetic import make_regression
from smpframe.linear_model import LassoCV
from smpframe.linear_model._cv import alpha_grid


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5_000)
    p.add_argument("--d", type=int, default=20_000)
    p.add_argument("--density", type=float, default=0.002)
    p.add_argument("--informative", type=int, default=100)
    p.add_argument("--alphas", type=int, default=20)
    p.add_argument("--eps", type=float, default=1e-2)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    X, y, _ = make_regression(args.n, args.d, args.density, args.informative, seed=0)
    grid = alpha_grid(X, y, args.alphas, args.eps, fit_intercept=True)
    folds = KFold(args.folds)

    def ours(cluster=None):
        return LassoCV(alphas=grid, cv=folds, tol=args.tol, n_workers=args.workers,
                       cluster=cluster).fit(X, y)

    def theirs():
        return SkLassoCV(alphas=grid, cv=folds, tol=args.tol, max_iter=100_000).fit(X, y)

    cold, cold_s, cold_all = timed(ours, args.repeats)
    with Cluster(workers=args.workers, quiet=True) as cluster:
        warm, warm_s, warm_all = timed(lambda: ours(cluster), args.repeats)
    ref, ref_s, ref_all = timed(theirs, args.repeats)
    step = float(np.log(grid[0] / grid[1]))
    rows, record = [], {"n": args.n, "d": args.d, "density": args.density, "alphas": grid,
                        "folds": args.folds, "tol": args.tol, "workers": args.workers,
                        "fits": args.alphas * args.folds + 1}
    for name, model, best, times in (("smpframe, cold", cold, cold_s, cold_all),
                                     ("smpframe, warm cluster", warm, warm_s, warm_all),
                                     ("scikit-learn", ref, ref_s, ref_all)):
        grid_steps = abs(np.log(model.alpha_ / ref.alpha_)) / step
        record[name] = {"seconds": best, "all_seconds": times, "alpha": model.alpha_,
                        "grid_steps_from_sklearn": grid_steps,
                        "min_mean_mse": float(model.mse_path_.mean(axis=1).min())}
        rows.append([name, best, model.alpha_, int(round(grid_steps)),
                     float(model.mse_path_.mean(axis=1).min()), best / ref_s])
    print(markdown_table(["LassoCV", "whole fit (s)", "alpha_", "grid steps from scikit-learn",
                          "best mean held-out MSE", "time / scikit-learn"], rows))
    write_json(args.out, record)
    bar_chart(args.out, f"LassoCV {args.n:,} x {args.d:,}: {args.alphas} alphas x {args.folds} folds + refit",
              {row[0]: {"whole fit": row[1]} for row in rows})


if __name__ == "__main__":
    main()
