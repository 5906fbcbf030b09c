"""Sparse logistic regression: smpframe (2 workers) vs scikit-learn's liblinear, same objective.

Two text-like problems (binary bag-of-words, Zipf word frequencies;
:func:`smpframe.data.synthetic.make_text_classification`):

* ``bow``: 60,000 documents x 15,000 words, ~65 words a document (3.65M nonzeros),
  lambda = 0.002 lambda_max;
* ``issue``: issue 12's shape, 63,000 documents x 14,000 words, ~10 words a document
  (635k nonzeros), 12% positives (the labels redrawn from the same sparse model with
  the offset that gives that share), lambda = 1e-3.

Objective ``(1/n) sum log(1 + exp(-y x.w)) + lambda ||w||_1`` with no intercept, so that
liblinear (``C = 1/(n lambda)``; it would penalise an intercept) solves exactly the same
problem. Each solver is timed at the loosest tolerance from its ladder that reaches the
best objective any run found to within ``--rel`` (default 1e-6 relative); smpframe's
solve time is ``summary["seconds"]`` (the timed solve, data already on the workers), and
its whole-process wall time (start workers, ship data, solve, stop) is reported too.

    python benchmarks/bench_logreg.py --out bench-out/logreg.json
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from common import bar_chart, markdown_table, parser, write_json
from smpframe import run_local
from smpframe.apps.logreg import LogReg
from smpframe.data.synthetic import make_text_classification

SMPFRAME_LADDER = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
LIBLINEAR_LADDER = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]


def objective(X, y, coef, lam):
    return float(np.mean(np.logaddexp(0.0, -y * (X @ coef))) + lam * np.abs(coef).sum())


def run_smpframe(X, y, lam, tol, args):
    start = time.perf_counter()
    result = run_local(LogReg(lam=lam, tol=tol, intercept=False, block_size=args.block_size),
                       data=(X, y), workers=args.workers, quiet=True)
    wall = time.perf_counter() - start
    s = result.summary
    return objective(X, y, result.model["coef"], lam), s["seconds"], {
        "wall_s": wall, "rounds": s["rounds"], "nnz": s["nnz"], "stopped_by": s["stopped_by"],
        "worker_peak_mb": s.get("worker_peak_mb")}


def run_liblinear(X, y, lam, tol, args):
    from sklearn.linear_model import LogisticRegression
    kw = dict(solver="liblinear", C=1.0 / (X.shape[0] * lam), tol=tol, max_iter=1000,
              fit_intercept=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        try:
            model = LogisticRegression(l1_ratio=1.0, **kw).fit(X, y)  # scikit-learn >= 1.8
        except (TypeError, ValueError):
            model = LogisticRegression(penalty="l1", **kw).fit(X, y)
        seconds = time.perf_counter() - start
    coef = model.coef_.ravel()
    return objective(X, y, coef, lam), seconds, {"nnz": int(np.count_nonzero(coef)),
                                                 "iterations": int(np.max(model.n_iter_))}


def bow_problem():
    """60,000 x 15,000, ~65 words a document; lambda = 0.002 lambda_max."""
    X, y, _ = make_text_classification(60_000, 15_000, 60.0, seed=0)
    return X.tocsr(), y, 0.002 * float(np.abs(X.T @ y).max()) / (2 * X.shape[0])


def issue_problem(positives: float = 0.12):
    """63,000 x 14,000, ~10 words a document, ``positives`` of the labels +1; lambda = 1e-3."""
    X, _, beta = make_text_classification(63_000, 14_000, 5.2, seed=0)
    margin = X @ beta
    u = np.random.default_rng(1).random(X.shape[0])
    lo, hi = -20.0, 20.0  # the offset giving that share of positives, by bisection
    for _ in range(60):
        mid = (lo + hi) / 2
        share = float(np.mean(u < 1.0 / (1.0 + np.exp(-(margin + mid)))))
        lo, hi = (mid, hi) if share < positives else (lo, mid)
    y = np.where(u < 1.0 / (1.0 + np.exp(-(margin + lo))), 1.0, -1.0)
    return X.tocsr(), y, 1e-3


PROBLEMS = {"bow": bow_problem, "issue": issue_problem}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--problem", choices=[*PROBLEMS, "both"], default="both")
    p.add_argument("--rel", type=float, default=1e-6)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--block-size", type=int, default=None,
                   help="most columns a direction round moves (default: the app's)")
    args = p.parse_args()
    names = list(PROBLEMS) if args.problem == "both" else [args.problem]
    records = {name: bench(name, *PROBLEMS[name](), args) for name in names}
    write_json(args.out, records)
    bar_chart(args.out, f"L1 logistic regression: seconds to the best objective x (1 + {args.rel:g})",
              {f"{name} {r['n']:,} x {r['d']:,}": {
                  solver: r[solver] and r[solver]["seconds"]
                  for solver in ("smpframe", "liblinear (scikit-learn)")} for name, r in records.items()})


def bench(name: str, X, y, lam: float, args) -> dict:
    """Both ladders on one problem: the record, and its markdown row printed."""
    print(f"{name}: {X.shape[0]} x {X.shape[1]}, {X.nnz} nonzeros, {np.mean(y > 0):.1%} positive; "
          f"lambda = {lam:.6g}", flush=True)
    solvers = {"smpframe": (run_smpframe, SMPFRAME_LADDER),
               "liblinear (scikit-learn)": (run_liblinear, LIBLINEAR_LADDER)}
    ladders: dict[str, list] = {}
    for solver, (fn, ladder) in solvers.items():
        ladders[solver] = []
        for tol in ladder:
            runs = [fn(X, y, lam, tol, args) for _ in range(args.repeats)]
            seconds = [r[1] for r in runs]
            best = runs[int(np.argmin(seconds))]
            step = {"tol": tol, "objective": best[0], "seconds": min(seconds), "all_seconds": seconds,
                    **best[2]}
            ladders[solver].append(step)
            extra = f" wall={step['wall_s']:.2f}s rounds={step['rounds']}" if "wall_s" in step else ""
            print(f"{solver} tol={tol:g} obj={best[0]:.13g} t={min(seconds):.3f}s{extra}", flush=True)
    reference = min(s["objective"] for steps in ladders.values() for s in steps)
    record = {"problem": name, "n": X.shape[0], "d": X.shape[1], "nnz": int(X.nnz), "lambda": lam,
              "positives": float(np.mean(y > 0)), "rel": args.rel,
              "workers": args.workers, "block_size": args.block_size,
              "reference_objective": reference, "ladders": ladders}
    hits = {}
    for solver, steps in ladders.items():
        hits[solver] = next((s for s in steps if s["objective"] <= reference * (1 + args.rel)), None)
        record[solver] = hits[solver]
    ours, theirs = hits["smpframe"], hits["liblinear (scikit-learn)"]
    ratio = theirs["seconds"] / ours["seconds"] if ours and theirs else None
    record["speedup_vs_liblinear"] = ratio
    print(markdown_table(
        ["problem", "smpframe solve s", "smpframe wall s", "rounds", "liblinear s",
         "liblinear time / smpframe time", "nnz(w)"],
        [[f"L1 logreg {name} {X.shape[0]}x{X.shape[1]} ({X.nnz} nnz), rel {args.rel:g}",
          ours and ours["seconds"], ours and ours["wall_s"], ours and ours["rounds"],
          theirs and theirs["seconds"], ratio, ours and ours["nnz"]]]), flush=True)
    return record


if __name__ == "__main__":
    main()
