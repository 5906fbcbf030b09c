"""Lasso: smpframe (2 workers) vs scikit-learn and celer, to the same objective.

Each solver is timed at the loosest tolerance from a ladder that reaches the best
objective any solver found to within ``--rel`` (default 1e-6 relative).

    python benchmarks/bench_lasso.py --out bench-out/lasso.json
"""
from __future__ import annotations

import time

import numpy as np

from common import bar_chart, markdown_table, parser, write_json
from smpframe import run_local
from smpframe.apps.lasso import Lasso
from smpframe.data.synthetic import make_regression

LADDER = [1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10]


def objective(X, y, coef, intercept, lam):
    r = y - X @ coef - intercept
    return float(r @ r / (2 * X.shape[0]) + lam * np.abs(coef).sum())


def run_smpframe(X, y, lam, tol, workers):
    start = time.perf_counter()
    result = run_local(Lasso(lam=lam, tol=tol), data=(X, y), workers=workers, quiet=True)
    wall = time.perf_counter() - start
    f = objective(X, y, result.model["coef"], result.model["intercept"][0], lam)
    return f, result.summary["seconds"], {"wall_s": wall, "rounds": result.summary["rounds"],
                                          "worker_peak_mb": result.summary["worker_peak_mb"]}


def run_sklearn(X, y, lam, tol, _):
    from sklearn.linear_model import Lasso as SkLasso
    start = time.perf_counter()
    model = SkLasso(alpha=lam, tol=tol, max_iter=100_000).fit(X, y)
    return objective(X, y, model.coef_, model.intercept_, lam), time.perf_counter() - start, {}


def run_celer(X, y, lam, tol, _):
    from celer import Lasso as CeLasso
    start = time.perf_counter()
    model = CeLasso(alpha=lam, tol=tol, fit_intercept=True).fit(X, y)
    return objective(X, y, model.coef_, model.intercept_, lam), time.perf_counter() - start, {}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--d", type=int, default=100_000)
    p.add_argument("--density", type=float, default=0.001)
    p.add_argument("--informative", type=int, default=200)
    p.add_argument("--lambda-ratio", type=float, default=0.1)
    p.add_argument("--rel", type=float, default=1e-6)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    X, y, _ = make_regression(args.n, args.d, args.density, args.informative, seed=0)
    yc = y - y.mean()
    lam = args.lambda_ratio * float(np.abs(X.T @ yc).max()) / X.shape[0]
    solvers = {"smpframe": run_smpframe, "scikit-learn": run_sklearn, "celer": run_celer}
    ladders: dict[str, list] = {}
    for name, fn in solvers.items():
        ladders[name] = []
        for tol in LADDER:
            times, last = [], None
            for _ in range(args.repeats):
                last = fn(X, y, lam, tol, args.workers)
                times.append(last[1])
            ladders[name].append({"tol": tol, "objective": last[0], "seconds": min(times), **last[2]})
            print(f"{name} tol={tol:g} obj={last[0]:.12g} t={min(times):.3f}s", flush=True)
    best = min(step["objective"] for steps in ladders.values() for step in steps)
    rows, record = [], {"n": args.n, "d": args.d, "density": args.density, "lambda": lam,
                        "best_objective": best, "ladders": ladders}
    for name, steps in ladders.items():
        hit = next((s for s in steps if s["objective"] <= best * (1 + args.rel)), None)
        record[name] = hit
        rows.append([name, None if hit is None else hit["tol"], None if hit is None else hit["seconds"],
                     None if hit is None else hit.get("worker_peak_mb")])
    base = record["smpframe"]["seconds"] if record["smpframe"] else None
    for row in rows:
        row.append(None if base is None or row[2] is None else row[2] / base)
    print(markdown_table(["solver", "tol reaching best*(1+rel)", "seconds", "peak worker MB",
                          "time / smpframe"], rows))
    write_json(args.out, record)
    bar_chart(args.out, f"Lasso {args.n:,} x {args.d:,}: seconds to the best objective x (1 + {args.rel:g})",
              {row[0]: {"solve": row[2]} for row in rows})


if __name__ == "__main__":
    main()
