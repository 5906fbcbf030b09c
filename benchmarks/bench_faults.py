"""Reliability: random worker kills (kill -9) mid-run, over many seeds.

For each seed a 3-worker Lasso run loses 2 workers at random rounds; we record
whether it finished, the objective's difference from a fault-free run, and how long
the scheduler took to declare each dead worker lost (heartbeat timeout 1.5 s).

    python benchmarks/bench_faults.py --runs 10 --out bench-out/faults.json
"""
from __future__ import annotations

import random
import time

import numpy as np

from common import markdown_table, parser, write_json
from smpframe import LocalCluster, run_local
from smpframe.apps.lasso import Lasso
from smpframe.data.synthetic import make_regression


def one_run(data, seed: int, reference: float, timeout: float) -> dict:
    rng = random.Random(seed)
    kills = []
    with LocalCluster(Lasso(lam=0.002, tol=1e-9), data, timeout=120.0, workers=3,
                      slowdowns=[3.0] * 3, heartbeat_interval=timeout / 6,
                      heartbeat_timeout=timeout) as c:
        for victim, first_round in zip(rng.sample(range(3), 2), (1, 6)):
            assert c.wait_for_round(rng.randint(first_round, first_round + 4)), "run ended early"
            c.procs[victim].kill()
            kills.append(time.monotonic() - c.server.state.started_at)
        result = c.wait()
    lost = [e["t"] for e in result.events if e["event"] == "worker_lost"]
    return {"seed": seed, "converged": result.summary["converged"], "kills": len(kills),
            "detected": len(lost), "detection_s": [l - k for l, k in zip(sorted(lost), kills)],
            "objective_rel_diff": abs(result.summary["objective"] - reference) / reference,
            "redispatches": sum(e["event"] == "redispatch" for e in result.events)}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--heartbeat-timeout", type=float, default=1.5)
    args = p.parse_args()
    X, y, _ = make_regression(n=3000, d=8000, density=0.003, n_informative=60, seed=5)
    reference = run_local(Lasso(lam=0.002, tol=1e-9), data=(X, y), quiet=True).summary["objective"]
    runs = [one_run((X, y), seed, reference, args.heartbeat_timeout) for seed in range(args.runs)]
    detection = [d for r in runs for d in r["detection_s"]]
    row = [len(runs), sum(r["kills"] for r in runs), sum(r["converged"] for r in runs),
           max(r["objective_rel_diff"] for r in runs), float(np.median(detection)), max(detection)]
    print(markdown_table(["runs", "workers killed", "runs finished + converged",
                          "max objective rel. diff", "median detection s", "max detection s"], [row]))
    write_json(args.out, {"runs": runs, "heartbeat_timeout": args.heartbeat_timeout})


if __name__ == "__main__":
    main()
