"""Whole-process time, start to result: ``smpframe run`` against the peer's whole script.

What a user waits for is the whole run: interpreter start, imports, reading the file,
starting workers, loading kernels, the solve and shutting down. Each case times the
command line a user would type against the script a peer's user would write (same
file, same objective), alternating the two, and reports medians and their ratio:

* Lasso on the README's 20,000 x 100,000 LIBSVM file, λ = 0.1 λ_max, against celer
  (``load_svmlight_file`` + ``celer.Lasso``);
* K-Means on 270,000 x 3 points (.npy), k = 64, 20 iterations, the same initial
  centres, against scikit-learn (``np.load`` + ``KMeans(algorithm="lloyd")``).

    python benchmarks/bench_whole_run.py [--runs 5] [--out bench-out/whole_run.json]
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import markdown_table, parser, write_json

CELER = """
import sys
import numpy as np
from sklearn.datasets import load_svmlight_file
from celer import Lasso
X, y = load_svmlight_file(sys.argv[1])
X.indices, X.indptr = X.indices.astype(np.int32), X.indptr.astype(np.int32)
print(Lasso(alpha=float(sys.argv[2]), tol=1e-6).fit(X, y).coef_.nonzero()[0].size)
"""

SKLEARN_KMEANS = """
import sys
import numpy as np
from sklearn.cluster import KMeans
X, C = np.load(sys.argv[1]), np.load(sys.argv[2])
print(KMeans(n_clusters=len(C), init=C, n_init=1, max_iter=20, tol=0.0, algorithm="lloyd").fit(X).inertia_)
"""


def make_files(folder: Path) -> dict[str, list[str]]:
    """Write the two inputs; return each case's two command lines."""
    from sklearn.datasets import dump_svmlight_file

    from smpframe.data.dense import make_blobs
    from smpframe.data.synthetic import make_regression

    folder.mkdir(parents=True, exist_ok=True)
    X, y, _ = make_regression(20_000, 100_000, 0.001, 200, seed=0)
    lam = 0.1 * float(np.abs(X.T @ (y - y.mean())).max()) / X.shape[0]
    svm = folder / "lasso.svm"
    if not svm.exists():
        dump_svmlight_file(X, y, str(svm))
    points, _ = make_blobs()
    npy, init = folder / "kmeans.npy", folder / "kmeans_init.npy"
    np.save(npy, points)
    np.save(init, points[np.random.default_rng(0).choice(len(points), 64, replace=False)])
    smpframe = [sys.executable, "-m", "smpframe.cli", "run"]
    return {
        "lasso vs celer": [[*smpframe, "lasso", "--data", str(svm), "--lambda", repr(lam), "--quiet"],
                           [sys.executable, "-c", CELER, str(svm), repr(lam)]],
        "kmeans vs scikit-learn": [[*smpframe, "kmeans", "--data", str(npy), "--k", "64",
                                    "--iterations", "20", "--tol", "0", "--init", str(init),
                                    "--quiet"],
                                   [sys.executable, "-c", SKLEARN_KMEANS, str(npy), str(init)]],
    }


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - start


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--data", default="bench-out/whole-run", help="folder for the input files")
    args = p.parse_args()
    rows, record = [], {}
    for case, (ours, peer) in make_files(Path(args.data)).items():
        wall(ours), wall(peer)  # warm the caches (numba, the page cache) once
        times = {"smpframe": [], "peer": []}
        for _ in range(args.runs):  # alternate, so drift in the machine's speed hits both
            times["smpframe"].append(wall(ours))
            times["peer"].append(wall(peer))
        a, b = (statistics.median(times[k]) for k in ("smpframe", "peer"))
        record[case] = {**times, "median_smpframe": a, "median_peer": b, "ratio": a / b}
        rows.append([case, a, b, a / b])
        print(f"{case}: smpframe {a:.3f} s, peer {b:.3f} s, ratio {a / b:.2f}", flush=True)
    print(markdown_table(["case", "smpframe whole run (s)", "peer whole script (s)",
                          "smpframe / peer"], rows))
    write_json(args.out, record)


if __name__ == "__main__":
    main()
