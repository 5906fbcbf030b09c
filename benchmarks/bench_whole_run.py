"""Whole-process time, start to result: ``smpframe run`` against the peer's whole script.

What a user waits for is the whole run: interpreter start, imports, reading the file,
starting workers, loading kernels, the solve and shutting down. Each case times the
command line a user would type against the script a peer's user would write (same
file, same objective), alternating the two, and reports medians and their ratio:

* Lasso on the README's 20,000 x 100,000 LIBSVM file, λ = 0.1 λ_max, against celer
  (``load_svmlight_file`` + ``celer.Lasso``);
* K-Means on 270,000 x 3 points (.npy), k = 64, 20 iterations, the same initial
  centres, against scikit-learn (``np.load`` + ``KMeans(algorithm="lloyd")``);
* MF at rank 50, 20 epochs, on a MovieLens-shaped CSV of 100,000 ratings (bench_mf's
  shape), against scikit-surprise (``Dataset.load_from_file`` + biased ``SVD``, same rank
  and epochs);
* with ``--big``, Lasso on a 200,000 x 100,000 LIBSVM file with 20M nonzeros (about
  480 MB of text) against celer, and MF (rank 10, 5 epochs) on 5M ratings of 60,000 users
  and 20,000 items (about 80 MB) against surprise, each once with the workers reading
  their own splits (the default) and once with the scheduler reading the file
  (``--read-on scheduler``), and the scheduler process's peak resident memory in each.

Every smpframe run also gives its solve time and its scheduler's peak memory (from the
summary it prints).

    python benchmarks/bench_whole_run.py [--runs 5] [--big] [--out bench-out/whole_run.json]
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import bar_chart, markdown_table, parser, write_json

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

SURPRISE = """
import sys
from surprise import SVD, Dataset, Reader
reader = Reader(line_format="user item rating", sep=",", skip_lines=1, rating_scale=(0.5, 5))
data = Dataset.load_from_file(sys.argv[1], reader).build_full_trainset()
print(SVD(n_factors=int(sys.argv[2]), n_epochs=int(sys.argv[3]), random_state=0).fit(data).bu.size)
"""


def ratings_file(folder: Path, users: int, items: int, ratings: int) -> Path:
    """A ratings CSV (header, then user,item,rating lines), written once."""
    path = folder / f"ratings-{users}x{items}-{ratings}.csv"
    if not path.exists():
        from smpframe.data.synthetic import make_ratings

        u, i, v = make_ratings(n_users=users, n_items=items, n_ratings=ratings, seed=0)
        order = np.random.default_rng(1).permutation(len(v))  # no id's ratings in one place
        lines = np.char.add(np.char.add(np.char.add(u[order].astype(str), ","),
                                        np.char.add(i[order].astype(str), ",")),
                            np.char.mod("%.1f", v[order]))
        path.write_text("user,item,rating\n" + "\n".join(lines.tolist()) + "\n")
    return path


def lasso_file(folder: Path, n: int, d: int, density: float) -> tuple[Path, float]:
    """A LIBSVM regression file and its lambda = 0.1 lambda_max (both written once, so
    this process never holds the data while it times others)."""
    svm, lam_file = folder / f"lasso-{n}x{d}.svm", folder / f"lasso-{n}x{d}.lambda"
    if not (svm.exists() and lam_file.exists()):
        from sklearn.datasets import dump_svmlight_file

        from smpframe.data.synthetic import make_regression
        X, y, _ = make_regression(n, d, density, 200, seed=0)
        lam_file.write_text(repr(0.1 * float(np.abs(X.T @ (y - y.mean())).max()) / X.shape[0]))
        dump_svmlight_file(X, y, str(svm))
    return svm, float(lam_file.read_text())


def make_files(folder: Path, big: bool) -> dict[str, list[list[str]]]:
    """Write the inputs; return each case's command lines (smpframe first, the peer last)."""
    from smpframe.data.dense import make_blobs

    folder.mkdir(parents=True, exist_ok=True)
    svm, lam = lasso_file(folder, 20_000, 100_000, 0.001)
    points, _ = make_blobs()
    npy, init = folder / "kmeans.npy", folder / "kmeans_init.npy"
    np.save(npy, points)
    np.save(init, points[np.random.default_rng(0).choice(len(points), 64, replace=False)])
    smpframe = [sys.executable, "-m", "smpframe.cli", "run"]
    cases = {
        "lasso vs celer": [[*smpframe, "lasso", "--data", str(svm), "--lambda", repr(lam), "--quiet"],
                           [sys.executable, "-c", CELER, str(svm), repr(lam)]],
        "kmeans vs scikit-learn": [[*smpframe, "kmeans", "--data", str(npy), "--k", "64",
                                    "--iterations", "20", "--tol", "0", "--init", str(init),
                                    "--quiet"],
                                   [sys.executable, "-c", SKLEARN_KMEANS, str(npy), str(init)]],
    }
    csv = ratings_file(folder, 671, 9066, 100_000)
    cases["mf rank 50 vs surprise"] = [
        [*smpframe, "mf", "--data", str(csv), "--rank", "50", "--epochs", "20", "--quiet"],
        [sys.executable, "-c", SURPRISE, str(csv), "50", "20"]]
    if big:
        svm, lam = lasso_file(folder, 200_000, 100_000, 0.001)
        ours = [*smpframe, "lasso", "--data", str(svm), "--lambda", repr(lam), "--quiet"]
        cases["lasso 200k x 100k vs celer"] = [ours, [*ours, "--read-on", "scheduler"],
                                               [sys.executable, "-c", CELER, str(svm), repr(lam)]]
        csv = ratings_file(folder, 60_000, 20_000, 5_000_000)
        ours = [*smpframe, "mf", "--data", str(csv), "--rank", "10", "--epochs", "5", "--quiet"]
        cases["mf 5M ratings vs surprise"] = [ours, [*ours, "--read-on", "scheduler"],
                                              [sys.executable, "-c", SURPRISE, str(csv), "10", "5"]]
    return cases


def wall(cmd: list[str]) -> tuple[float, dict]:
    """Seconds start to end, and the summary an smpframe run prints ({} for a peer)."""
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, timeout=900).stdout
    seconds = time.perf_counter() - start
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return seconds, json.loads(last) if last.startswith("{") else {}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--data", default="bench-out/whole-run", help="folder for the input files")
    p.add_argument("--big", action="store_true", help="add the 200k x 100k Lasso case (480 MB)")
    args = p.parse_args()
    rows, record = [], {}
    for case, commands in make_files(Path(args.data), args.big).items():
        for cmd in commands:
            wall(cmd)  # warm the caches (numba, the page cache) once
        runs: list[list[tuple[float, dict]]] = [[] for _ in commands]
        for _ in range(args.runs):  # alternate, so drift in the machine's speed hits each
            for i, cmd in enumerate(commands):
                runs[i].append(wall(cmd))
        peer = statistics.median(t for t, _ in runs[-1])
        record[case] = {"peer_seconds": [t for t, _ in runs[-1]], "median_peer": peer, "smpframe": []}
        for cmd, timed in zip(commands[:-1], runs[:-1]):
            whole = statistics.median(t for t, _ in timed)
            solve = statistics.median(s["seconds"] for _, s in timed)
            peak = max(s["scheduler_peak_mb"] for _, s in timed)
            how = f"{case} (read on {timed[0][1]['read_on']})"
            record[case]["smpframe"].append({"command": cmd, "seconds": [t for t, _ in timed],
                                             "median": whole, "solve": solve,
                                             "scheduler_peak_mb": peak, "ratio": whole / peer})
            rows.append([how, whole, solve, peak, peer, whole / peer])
            print(f"{how}: smpframe {whole:.3f} s (solve {solve:.3f} s, scheduler peak {peak:.0f} MB), "
                  f"peer {peer:.3f} s, ratio {whole / peer:.2f}", flush=True)
    print(markdown_table(["case", "smpframe whole run (s)", "solve (s)", "scheduler peak (MB)",
                          "peer whole script (s)", "smpframe / peer"], rows))
    write_json(args.out, record)
    bar_chart(args.out, "Whole process, start to result (median)",
              {row[0]: {"smpframe": row[1], "peer's whole script": row[4]} for row in rows})


if __name__ == "__main__":
    main()
