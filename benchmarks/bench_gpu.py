"""K-Means throughput on CPU workers, one GPU worker, and a CPU + GPU hybrid cluster.

Same data, same initial centres, same number of Lloyd rounds for every setup;
throughput = rows x rounds / timed solve seconds (``result.summary["seconds"]``).
The hybrid cluster relies on the runtime's speed-proportional placement
(drift-plus-penalty), so use many fragments (``--fragments``, default 32); the
final share of the data on each device is reported. Needs cupy and a CUDA device;
elsewhere it exits at once with a "no GPU" message (exit status 1).

    python benchmarks/bench_gpu.py --out bench_gpu.json
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import bar_chart, markdown_table, parser, write_json  # noqa: E402


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4_000_000)
    p.add_argument("--d", type=int, default=16)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--cpu-workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) - 2)))
    p.add_argument("--gpu", default="gpu:0", help="the GPU device (default gpu:0)")
    p.add_argument("--fragments", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from smpframe.arrays import gpu_available
    if not gpu_available():
        print("bench_gpu: no GPU: cupy is not installed or sees no CUDA device; "
              "run this on a machine with one (pip install 'smpframe[gpu]')", file=sys.stderr)
        return 1

    from smpframe import run_local
    from smpframe.apps.kmeans import KMeans
    from smpframe.apps.kmeans_kernels import kmeans_plusplus
    from smpframe.data.dense import make_blobs

    X, _ = make_blobs(n=args.n, d=args.d, centers=args.k, seed=args.seed)
    init = kmeans_plusplus(X[:100_000], args.k, np.random.default_rng(args.seed)).tolist()
    bounds = KMeans(k=args.k).load_data(X).bounds(args.fragments)
    setups = {
        f"cpu x{args.cpu_workers}": ["cpu"] * args.cpu_workers,
        "gpu": [args.gpu],
        f"gpu + cpu x{args.cpu_workers}": [args.gpu] + ["cpu"] * args.cpu_workers,
    }
    rows, figures = [], {}
    for name, devices in setups.items():
        best = None
        for _ in range(max(1, args.repeats)):
            result = run_local(KMeans(k=args.k, iterations=args.iterations, tol=0.0,
                                      init_centers=init),
                               data=X, devices=devices, quiet=True, fragments=args.fragments)
            if best is None or result.summary["seconds"] < best.summary["seconds"]:
                best = result
        s = best.summary
        devices_of = {e["worker"]: e["device"] for e in best.events if e["event"] == "joined"}
        assigned = [e for e in best.events if e["event"] == "assigned"]
        shares: dict[str, float] = {}
        if assigned:
            for w, frags in assigned[-1]["owners"].items():
                kind = "gpu" if devices_of.get(w, "cpu").startswith("gpu") else "cpu"
                shares[kind] = shares.get(kind, 0.0) + sum(bounds[f][1] - bounds[f][0]
                                                           for f in frags) / len(X)
        throughput = len(X) * s["rounds"] / s["seconds"]
        figures[name] = {"devices": devices, "solve_seconds": s["seconds"], "rounds": s["rounds"],
                         "rows_per_second": throughput, "inertia": s["inertia"],
                         "final_shares": {k: round(v, 4) for k, v in shares.items()}}
        rows.append([name, s["seconds"], s["seconds"] / s["rounds"] * 1e3, throughput / 1e6,
                     f"{s['inertia']:.10g}", shares.get("gpu", 0.0)])
    print(markdown_table(["workers", "solve s", "round ms", "M rows/s", "inertia", "gpu share"],
                         rows))
    write_json(args.out, {"app": "kmeans", "n": args.n, "d": args.d, "k": args.k,
                          "iterations": args.iterations, "fragments": args.fragments,
                          "results": figures})
    bar_chart(args.out, f"K-Means {args.n:,} x {args.d}, k = {args.k}: CPU, GPU and both",
              {row[0]: {"M rows/s": row[3]} for row in rows}, unit="million rows per second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
