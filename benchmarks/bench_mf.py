"""Matrix factorisation: smpframe (2 workers) vs scikit-surprise SVD at the same rank.

MovieLens-shaped ratings (671 users, 9,066 items, 100,000 half-star ratings with skewed
popularity, the shape of MovieLens' ml-latest-small; :func:`smpframe.data.synthetic.make_ratings`),
a random 80/20 split. For each rank (``--ranks``, default 50 and 10), smpframe runs with
its defaults otherwise (lambda 10, 20 epochs, ``--mode auto``) against surprise's biased
SVD with as many factors and 20 epochs (its other settings default). Both predict the
held-out ratings clipped to the rating range. smpframe's solve time is
``summary["seconds"]`` (the timed solve, ratings already on the workers; its test RMSE
is computed by the scheduler each epoch); its whole-process wall time (start workers,
ship data, solve, stop) is reported too. surprise's time is building its trainset plus
``fit`` (``fit`` alone is in the JSON). The two alternate, ``--repeats`` times each;
the best time of each is reported.

    python benchmarks/bench_mf.py --out bench-out/mf.json
"""
from __future__ import annotations

import time

import numpy as np

from common import bar_chart, markdown_table, parser, write_json
from smpframe import run_local
from smpframe.apps.mf import MatrixFactorization
from smpframe.data.synthetic import make_ratings, split_ratings


def run_smpframe(train, test, rank, args):
    start = time.perf_counter()
    program = MatrixFactorization(rank=rank, lam=args.lam, epochs=args.epochs)
    result = run_local(program, data={"train": train, "test": test},
                       workers=args.workers, quiet=True)
    wall = time.perf_counter() - start
    s = result.summary
    return s["test_rmse"], s["seconds"], {"wall_s": wall, "rounds": s["rounds"], "mode": s["mode"],
                                          "train_rmse": s["train_rmse"],
                                          "test_rmse_per_epoch": [h["test_rmse"] for h in s["history"]]}


def run_surprise(train, test, rank, args):
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    frame = pd.DataFrame({"user": train[0], "item": train[1], "rating": train[2]})
    start = time.perf_counter()
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(0.5, 5.0))).build_full_trainset()
    algo = SVD(n_factors=rank, n_epochs=args.epochs, biased=True, random_state=0)
    fit_start = time.perf_counter()
    algo.fit(trainset)
    end = time.perf_counter()
    pred = np.array([algo.predict(u, i).est for u, i in zip(test[0], test[1])])
    rmse = float(np.sqrt(np.mean((pred - test[2]) ** 2)))
    return rmse, end - start, {"fit_s": end - fit_start}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=671)
    p.add_argument("--items", type=int, default=9066)
    p.add_argument("--ratings", type=int, default=100_000)
    p.add_argument("--ranks", type=int, nargs="+", default=[50, 10])
    p.add_argument("--lambda", dest="lam", type=float, default=10.0)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    users, items, values = make_ratings(args.users, args.items, args.ratings, seed=0)
    train, test = split_ratings(users, items, values, 0.2, seed=1)
    print(f"data: {len(values)} ratings, {len(train[2])} train / {len(test[2])} test", flush=True)
    record = {"ratings": len(values), "users": args.users, "items": args.items, "lambda": args.lam,
              "epochs": args.epochs, "workers": args.workers, "ranks": {}}
    table = []
    methods = {"smpframe": run_smpframe, "surprise SVD": run_surprise}
    for rank in args.ranks:
        runs: dict[str, list] = {name: [] for name in methods}
        for _ in range(args.repeats):  # alternated, so both see the same machine load
            for name, fn in methods.items():
                runs[name].append(fn(train, test, rank, args))
        row = {}
        for name, results in runs.items():
            seconds = [r[1] for r in results]
            best = results[int(np.argmin(seconds))]
            row[name] = {"test_rmse": best[0], "seconds": min(seconds), "all_seconds": seconds, **best[2]}
            extra = f" wall={best[2]['wall_s']:.2f}s mode={best[2]['mode']}" if "wall_s" in best[2] else ""
            print(f"rank {rank} {name}: test RMSE {best[0]:.4f} t={min(seconds):.3f}s{extra}", flush=True)
        ours, theirs = row["smpframe"], row["surprise SVD"]
        row["speedup_vs_surprise"] = theirs["seconds"] / ours["seconds"]
        record["ranks"][str(rank)] = row
        table.append([f"MF {args.users}x{args.items}, {len(values)} ratings (80/20), rank {rank}",
                      ours["test_rmse"], ours["seconds"], ours["wall_s"], theirs["test_rmse"],
                      theirs["seconds"], row["speedup_vs_surprise"]])
    print(markdown_table(
        ["problem", "smpframe test RMSE", "smpframe solve s", "smpframe wall s",
         "surprise test RMSE", "surprise s", "surprise time / smpframe time"], table))
    write_json(args.out, record)
    bar_chart(args.out, f"MF {args.users} x {args.items}, {len(values):,} ratings, {args.epochs} epochs: solve",
              {f"rank {rank}": {name: row[name]["seconds"] for name in methods}
               for rank, row in record["ranks"].items()})


if __name__ == "__main__":
    main()
