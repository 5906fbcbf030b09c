"""What scheduling buys: each app's scheduled policy against its non-scheduled baseline.

Same data and the same warm cluster of ``--workers`` workers for every policy of an app,
``--repeats`` runs each, round robin (run r with ``--seed r``: for LDA another chain):

* **Lasso**, the built-in synthetic problem (5,000 x 20,000, density 0.002, 100-sparse
  truth, lambda = 0.1 lambda_max) to a relative duality gap of 1e-8: ``--schedule
  priority`` (scheduled) against ``uniform`` and ``cyclic``. Also priority with
  ``--pipeline-depth 1``, the dependency filter on (``--rho 0.1``) and off (``--rho 1``):
  rounds, seconds and objective at convergence.
* **LDA**, a corpus drawn from known topics: ``rotation`` (scheduled: exact counts) against
  ``data-parallel`` (AD-LDA: stale counts, merged every iteration), ll/token after every
  iteration (``ll_every=1`` for both, so both pay for it).
* **MF**, bench_mf's MovieLens-shaped ratings (80/20 split): ``model-parallel`` CCD
  (scheduled) against ``data-parallel`` SGD, the latter with the learning rate of a small
  grid that gives it the lowest test RMSE (tuned, so the baseline is at its best).

The curves come from every commit: each result's ``round_history`` notes the round, the
solve clock (which excludes start-up and data shipping) and the app's reported figures
after each commit, so they do not depend on the progress interval. The headline is the rounds and
seconds each policy takes to a fixed target: the worst of the policies' best values,
relaxed by ``--rels`` (a quality every policy reaches), with the baseline / scheduled
ratio. The PNGs (the figure against rounds, or LDA iterations and MF epochs, and against
seconds) go to ``--plots`` (default bench-out/schedules), every run's trace to ``--out``.

    python benchmarks/bench_schedules.py --workers 2 --out bench-out/schedules/w2.json
    python benchmarks/bench_schedules.py --workers 8 --out bench-out/schedules/w8.json
"""
from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common import markdown_table, parser, write_json
from smpframe import Cluster, SMPProgram
from smpframe.apps.lasso import Lasso
from smpframe.apps.lda import LDA
from smpframe.apps.mf import MatrixFactorization
from smpframe.errors import ClusterError
from smpframe.data.synthetic import make_ratings, make_regression, split_ratings
from smpframe.data.synthetic_corpus import make_corpus


@dataclass
class Case:
    """One app's comparison: policies (label -> program factory) on the same data."""

    app: str
    metric: str  # the figure the app reports (ctx.metrics), compared across policies
    better: str  # "min" or "max"
    axis: str  # the x of the first plot: "round", or the app's own count ("iteration", "epoch")
    scheduled: str
    policies: dict[str, Callable[[], SMPProgram]]
    data: Any
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def traced_run(cluster: Cluster, program: SMPProgram, data: Any, **options: Any) -> dict[str, Any]:
    """Run ``program``; its trace is the result's ``round_history`` (after every commit:
    the round, solve seconds and the app's figures)."""
    result = cluster.run(program, data, **options)
    trace = [{**{k: v for k, v in line.items() if k != "t"}, "seconds": line["t"]}
             for line in result.summary["round_history"]]
    return {"summary": {k: v for k, v in result.summary.items() if _scalar(v)}, "trace": trace}


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool, np.integer, np.floating))


def curve(run: dict[str, Any], case: Case) -> list[dict[str, Any]]:
    """The trace points where the metric changed (LDA's ll only changes once an iteration)."""
    points, last = [], None
    for point in run["trace"]:
        value = point.get(case.metric)
        if value is not None and value != last:
            points.append(point)
            last = value
    return points


def best(points: list[dict[str, Any]], case: Case) -> float:
    values = [p[case.metric] for p in points]
    return min(values) if case.better == "min" else max(values)


def target(case: Case, rel: float) -> float:
    """The worst of the policies' best values (median over repeats), relaxed by ``rel``."""
    bests = [statistics.median(best(curve(r, case), case) for r in runs) for runs in case.runs.values()]
    if case.better == "min":
        worst = max(bests)
        return worst + rel * abs(worst)
    worst = min(bests)
    return worst - rel * abs(worst)


def reached(points: list[dict[str, Any]], case: Case, goal: float) -> dict[str, Any] | None:
    """The first point at the goal, or None."""
    for p in points:
        if (p[case.metric] <= goal) if case.better == "min" else (p[case.metric] >= goal):
            return p
    return None


def run_case(case: Case, workers: int, repeats: int) -> None:
    with Cluster(workers=workers, quiet=True) as cluster:
        for repeat in range(repeats):  # round robin: load drifts hit every policy
            for label, make in case.policies.items():  # repeat r: seed r (another LDA chain)
                run = traced_run(cluster, make(), case.data, seed=repeat)
                case.runs.setdefault(label, []).append(run)
                s = run["summary"]
                print(f"{case.app} {label}: {s['rounds']} rounds, {s['seconds']:.3f} s, "
                      f"{case.metric} {best(curve(run, case), case):.6g}", file=sys.stderr, flush=True)


def headline(case: Case, rels: list[float]) -> tuple[list[list[Any]], dict[str, Any]]:
    """Rows (per target and policy) of rounds and seconds to the target, and the record."""
    rows, record = [], {}
    for rel in rels:
        goal = target(case, rel)
        hits: dict[str, list[dict[str, Any] | None]] = {
            label: [reached(curve(r, case), case, goal) for r in runs] for label, runs in case.runs.items()}
        seconds = {label: _median([h["seconds"] for h in hs if h]) for label, hs in hits.items()}
        record[str(rel)] = {"target": goal, "policies": {}}
        for label, hs in hits.items():
            done = [h for h in hs if h]
            entry = {"reached": f"{len(done)}/{len(hs)}", "seconds": seconds[label],
                     "seconds_all": [h["seconds"] for h in done],
                     "rounds": _median([h["round"] for h in done]),
                     case.axis: _median([h.get(case.axis, h["round"]) for h in done])}
            ratio = None if seconds[label] is None or not seconds[case.scheduled] else \
                seconds[label] / seconds[case.scheduled]
            entry["time_vs_scheduled"] = ratio
            record[str(rel)]["policies"][label] = entry
            spread = f"{min(entry['seconds_all']):.3g}-{max(entry['seconds_all']):.3g}" if done else None
            rows.append([case.app, f"{case.metric} {goal:.6g} (rel {rel:g})", label, entry["reached"],
                         entry["rounds"], entry[case.axis] if case.axis != "round" else None,
                         entry["seconds"], spread, ratio])
    return rows, record


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def plot(case: Case, workers: int, rel: float, folder: Path) -> Path:
    """The metric against rounds (or the app's count) and against seconds; one run per policy
    (the one with the median time to the target at ``rel``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    goal = target(case, rel)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    floor = best([p for runs in case.runs.values() for r in runs for p in curve(r, case)], case)
    for label, runs in case.runs.items():
        run = _median_run(runs, case, goal)
        points = curve(run, case)
        y = np.array([p[case.metric] for p in points])
        if case.app == "lasso":  # relative suboptimality, on a log scale
            y = np.maximum((y - floor) / abs(floor), 1e-12)
        xs = np.array([p.get(case.axis, p["round"]) for p in points], dtype=float)
        ts = np.array([p["seconds"] for p in points])
        style = "-" if label == case.scheduled else "--"
        for ax, x in zip(axes, (xs, ts)):
            ax.plot(x, y, style, marker=".", markersize=3, label=label)
    for ax, xlabel in zip(axes, (case.axis + "s", "solve seconds")):
        ax.set_xlabel(xlabel)
        if case.app == "lasso":
            ax.set_xscale("symlog", linthresh=1.0 if xlabel != "solve seconds" else 1e-3)
            ax.set_yscale("log")
            ax.axhline((goal - floor) / abs(floor), color="grey", lw=0.8, ls=":")
        else:
            ax.axhline(goal, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("(objective - best) / best" if case.app == "lasso" else case.metric)
    axes[0].legend()
    fig.suptitle(f"{case.app}: scheduled ({case.scheduled}) vs baseline, {workers} workers "
                 f"(dotted: the target at rel {rel:g})")
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case.app}-w{workers}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _median_run(runs: list[dict[str, Any]], case: Case, goal: float) -> dict[str, Any]:
    def seconds(run: dict[str, Any]) -> float:
        hit = reached(curve(run, case), case, goal)
        return float("inf") if hit is None else hit["seconds"]
    return sorted(runs, key=seconds)[len(runs) // 2]


# ---- the cases ----------------------------------------------------------------------------

def lasso_case() -> Case:
    X, y, _ = make_regression(seed=0)
    policies = {policy: (lambda policy=policy: Lasso(tol=1e-8, policy=policy))
                for policy in ("priority", "uniform", "cyclic")}
    return Case("lasso", "objective", "min", "round", "priority", policies, (X, y))


def lda_case(a) -> Case:
    corpus = make_corpus(a.docs, a.words, a.topics, a.doc_length, 0.1, 0.01, seed=0)[0]
    policies = {policy: (lambda policy=policy: LDA(topics=a.topics, iterations=a.iterations,
                                                   ll_every=1, policy=policy))
                for policy in ("rotation", "data-parallel")}
    return Case("lda", "ll_per_token", "max", "iteration", "rotation", policies, corpus)


def mf_case(a) -> Case:
    users, items, values = make_ratings(600, 9000, 100_000, seed=0)
    train, test = split_ratings(users, items, values, 0.2, seed=1)
    data = {"train": train, "test": test}
    lr = tuned_learning_rate(data, a)
    policies = {"model-parallel": lambda: MatrixFactorization(epochs=a.epochs),
                f"data-parallel (lr {lr:g})": lambda: MatrixFactorization(
                    epochs=a.dp_epochs, policy="data-parallel", learning_rate=lr)}
    return Case("mf", "test_rmse", "min", "epoch", "model-parallel", policies, data)


def tuned_learning_rate(data: Any, a) -> float:
    """The grid's learning rate with the lowest final test RMSE (one run each)."""
    finals = {}
    with Cluster(workers=a.workers, quiet=True) as cluster:
        for lr in a.learning_rates:
            try:
                summary = cluster.run(MatrixFactorization(epochs=a.dp_epochs, policy="data-parallel",
                                                          learning_rate=lr), data).summary
            except ClusterError as exc:  # a step size that diverges is out of the running
                print(f"mf data-parallel lr {lr:g}: {exc}", file=sys.stderr)
                continue
            finals[lr] = summary["test_rmse"]
            print(f"mf data-parallel lr {lr:g}: test RMSE {finals[lr]:.4f}", file=sys.stderr, flush=True)
    return min(finals, key=finals.get)


def pipelined_lasso(a) -> tuple[list[list[Any]], dict[str, Any]]:
    """Priority Lasso with rounds overlapping (depth 1), the dependency filter on and off."""
    X, y, _ = make_regression(seed=0)
    variants = {"depth 0, rho 0.1": (0.1, 0), "depth 1, rho 0.1": (0.1, 1), "depth 1, rho 1 (off)": (1.0, 1)}
    record: dict[str, Any] = {}
    with Cluster(workers=a.workers, quiet=True) as cluster:
        for _ in range(a.repeats):
            for label, (rho, depth) in variants.items():
                s = cluster.run(Lasso(tol=1e-8, rho=rho), (X, y), pipeline_depth=depth).summary
                record.setdefault(label, []).append({k: s[k] for k in ("rounds", "seconds", "objective",
                                                                       "converged")})
                print(f"lasso {label}: {s['rounds']} rounds, {s['seconds']:.3f} s", file=sys.stderr,
                      flush=True)
    rows = [[label, f"{min(r['rounds'] for r in runs)}-{max(r['rounds'] for r in runs)}",
             f"{min(r['seconds'] for r in runs):.3g}-{max(r['seconds'] for r in runs):.3g}",
             max(r["objective"] for r in runs), all(r["converged"] for r in runs)]
            for label, runs in record.items()]
    return rows, record


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(repeats=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--apps", default="lasso,lda,mf")
    p.add_argument("--rels", default="1e-2,1e-3,1e-6",
                   help="targets: the worst of the policies' bests, relaxed by these")
    p.add_argument("--docs", type=int, default=2000)
    p.add_argument("--words", type=int, default=10_000)
    p.add_argument("--doc-length", type=float, default=150.0)
    p.add_argument("--topics", type=int, default=50)
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--epochs", type=int, default=20, help="MF model-parallel epochs")
    p.add_argument("--dp-epochs", type=int, default=60, help="MF data-parallel epochs")
    p.add_argument("--learning-rates", type=lambda s: [float(x) for x in s.split(",")],
                   default=[0.1, 0.2, 0.3], help="MF data-parallel learning-rate grid")
    p.add_argument("--plot-rel", type=float, default=1e-3, help="the target the plots mark")
    p.add_argument("--plots", default="bench-out/schedules")
    a = p.parse_args()
    rels = [float(r) for r in a.rels.split(",")]
    apps = a.apps.split(",")
    record: dict[str, Any] = {"workers": a.workers, "repeats": a.repeats, "apps": {}}
    rows = []
    for app in apps:
        case = {"lasso": lasso_case, "lda": lambda: lda_case(a), "mf": lambda: mf_case(a)}[app]()
        run_case(case, a.workers, a.repeats)
        case_rows, case_record = headline(case, rels)
        rows += case_rows
        png = plot(case, a.workers, a.plot_rel, Path(a.plots))
        print(f"wrote {png}", file=sys.stderr)
        record["apps"][app] = {"targets": case_record, "plot": str(png),
                               "runs": {label: runs for label, runs in case.runs.items()}}
    print(markdown_table(["app", "target", "policy", "reached", "rounds", "iterations/epochs",
                          "seconds (median)", "seconds (range)", "time / scheduled"], rows))
    if "lasso" in apps:
        pipe_rows, record["lasso_pipelined"] = pipelined_lasso(a)
        print(markdown_table(["Lasso priority", "rounds", "seconds", "objective (max)", "converged"],
                             pipe_rows))
    write_json(a.out, record)


if __name__ == "__main__":
    main()
