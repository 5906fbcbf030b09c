"""K-Means: smpframe (2 CPU workers) vs scikit-learn (Lloyd) vs faiss, same data, same init.

~270,000 x 3 Gaussian blobs (64 blobs), k = 64, 20 Lloyd iterations from the same
k-means++ centres for every method. Times: smpframe's timed solve
(``result.summary["seconds"]``: first round dispatched to last commit, data already
on the workers) and its whole-run wall time (process start, data shipping, numba
cache loads included); scikit-learn's and faiss's ``fit``/``train``, each at 1 and
at <cpus> threads (``--threads``; on a busy machine OpenMP at full width can be the
slower one). Every time is the best of ``--repeats`` runs. Inertia: each
method's final centres scored the same way (float64, exact squared distances), so
faiss's float32 arithmetic shows as a small difference.

    python benchmarks/bench_kmeans.py --out bench_kmeans.json
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import bar_chart, markdown_table, parser, timed, write_json  # noqa: E402


def inertia_of(X: np.ndarray, centers: np.ndarray) -> float:
    """Sum of squared distances to the nearest centre, in float64, chunked."""
    total = 0.0
    c_sq = (centers ** 2).sum(axis=1)
    for start in range(0, len(X), 65536):
        Xc = X[start:start + 65536]
        d2 = (Xc ** 2).sum(axis=1)[:, None] - 2.0 * Xc @ centers.T + c_sq
        labels = d2.argmin(axis=1)
        total += float(((Xc - centers[labels]) ** 2).sum())
    return total


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=270_000)
    p.add_argument("--d", type=int, default=3)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", default="", help="comma list of methods to leave out: sklearn,faiss")
    p.add_argument("--threads", default=f"1,{os.cpu_count() or 1}",
                   help="thread counts to run scikit-learn and faiss with (default 1,<cpus>)")
    args = p.parse_args()

    from smpframe import run_local
    from smpframe.apps.kmeans import KMeans
    from smpframe.apps.kmeans_kernels import kmeans_plusplus
    from smpframe.data.dense import make_blobs

    X, _ = make_blobs(n=args.n, d=args.d, centers=64, seed=args.seed)
    init = kmeans_plusplus(X, args.k, np.random.default_rng(args.seed))
    skip = set(filter(None, args.skip.split(",")))
    rows, record = [], {"n": args.n, "d": args.d, "k": args.k, "iterations": args.iterations,
                        "workers": args.workers, "methods": {}}

    def smp():
        return run_local(KMeans(k=args.k, iterations=args.iterations, tol=0.0,
                                init_centers=init.tolist()),
                         data=X, workers=args.workers, quiet=True)

    runs = []
    for _ in range(max(1, args.repeats)):
        result, wall, _ = timed(smp)
        runs.append((result.summary["seconds"], wall, result))
    solve, wall = min(r[0] for r in runs), min(r[1] for r in runs)
    result = runs[-1][2]
    inertia = inertia_of(X, result.model["centers"])
    record["methods"]["smpframe"] = {
        "solve_seconds": solve, "wall_seconds": wall, "solve_all": [r[0] for r in runs],
        "wall_all": [r[1] for r in runs], "inertia": inertia,
        "reported_inertia": result.summary["inertia"], "iterations": result.summary["iterations"]}
    rows.append([f"smpframe ({args.workers} workers)", solve, wall, f"{inertia:.10g}",
                 result.summary["iterations"]])

    threads_list = [int(t) for t in args.threads.split(",") if t.strip()]
    if "sklearn" not in skip:
        from sklearn.cluster import KMeans as SkKMeans
        from threadpoolctl import threadpool_limits

        fit = lambda: SkKMeans(n_clusters=args.k, init=init, n_init=1, algorithm="lloyd",  # noqa: E731
                               max_iter=args.iterations, tol=0.0).fit(X)
        for threads in threads_list:
            with threadpool_limits(limits=threads):
                sk, best, times = timed(fit, args.repeats)
            inertia = inertia_of(X, sk.cluster_centers_)
            record["methods"][f"sklearn_{threads}t"] = {
                "seconds": best, "all": times, "inertia": inertia,
                "reported_inertia": float(sk.inertia_), "iterations": int(sk.n_iter_),
                "threads": threads}
            rows.append([f"scikit-learn lloyd ({threads} thread{'s' if threads > 1 else ''})",
                         best, best, f"{inertia:.10g}", int(sk.n_iter_)])

    if "faiss" not in skip:
        import faiss

        Xf = np.ascontiguousarray(X, dtype=np.float32)

        def train():
            km = faiss.Kmeans(args.d, args.k, niter=args.iterations, seed=args.seed,
                              max_points_per_centroid=len(X), min_points_per_centroid=1,
                              update_index=False, verbose=False)
            km.train(Xf, init_centroids=init.astype(np.float32))
            return km
        default_threads = faiss.omp_get_max_threads()
        for threads in threads_list:
            faiss.omp_set_num_threads(threads)
            km, best, times = timed(train, args.repeats)
            inertia = inertia_of(X, km.centroids.astype(np.float64))
            record["methods"][f"faiss_{threads}t"] = {
                "seconds": best, "all": times, "inertia": inertia,
                "reported_obj_last": float(km.obj[-1]), "threads": threads}
            rows.append([f"faiss Kmeans ({threads} thread{'s' if threads > 1 else ''}, float32)",
                         best, best, f"{inertia:.10g}", args.iterations])
        faiss.omp_set_num_threads(default_threads)

    print(markdown_table(["method", "solve s", "wall s", "inertia", "iterations"], rows))
    write_json(args.out, record)
    bar_chart(args.out, f"K-Means {args.n:,} x {args.d}, k = {args.k}, {args.iterations} iterations",
              {row[0]: {"solve": row[1], "whole fit or run": row[2]} for row in rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
