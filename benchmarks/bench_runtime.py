"""The runtime's own cost: an empty SMP round against a raw pyzmq round, same processes.

An *empty round* is a tiny block out to every worker and a tiny partial back (one
fragment per worker), through the whole runtime: state machine, codec, sockets,
executor. The *raw round* is the floor: a ROUTER sends a small msgpack message to W
DEALER processes and waits for W small replies, nothing else. Both are measured in
the same run, at 1, 2, 4, 8 and 16 workers, with the median of ``--repeats`` runs. Both go
over one transport (``--transport``): ``ipc`` (default), the Unix socket a local cluster
listens on, or ``tcp``, loopback TCP as a cluster's workers on other hosts use it.

    python benchmarks/bench_runtime.py [--rounds 2000] [--workers 1,2,4,8,16] [--repeats 3]
                                       [--transport ipc|tcp]
    python benchmarks/bench_runtime.py --sizes 1,1000,100000,1000000 --workers 2,8

Prints a table (and writes bench-out/runtime.json): µs per round for each, their ratio,
the scheduler's CPU µs per round, and messages and bytes per round. With ``--sizes``,
the block and every partial carry that many float64s (the model slice a round moves),
to measure the scheduler's cost against model size as well as against workers.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import numpy as np
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # common, here and in the workers
from common import bar_chart  # noqa: E402
from smpframe import Dataset, LocalCluster, SMPProgram  # noqa: E402

RAW_WORKER = """
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.connect(sys.argv[1])
s.send(b"ready")
while True:
    frames = s.recv_multipart()
    if frames[0] == b"stop":
        break
    s.send_multipart(frames)
"""


class Empty(SMPProgram):
    """Rounds that do nothing: a one-number block out, a one-number partial back.

    Parameters
    ----------
    rounds : int
        Rounds to run.
    size : int
        float64s in the block and in every partial (0: one number, no array).
    """

    name = "empty"
    fragments_per_worker = 1

    def __init__(self, rounds: int = 2000, size: int = 0) -> None:
        self.rounds = rounds
        self.size = size

    def load_data(self, source):
        return Dataset(rows={"x": np.zeros(64)})

    def init(self, ctx):
        ctx.model["x"] = np.zeros(1)

    def schedule(self, ctx):
        if ctx.round >= self.rounds or ctx.inflight:
            return None
        return {"t": ctx.round, "v": ctx.cache.setdefault("v", np.ones(self.size))} if self.size \
            else {"t": ctx.round}

    def pull(self, ctx, block, partials):
        return None

    def load(self, wctx, fragment, data, model):
        return None

    def push(self, wctx, fragment, block):
        return {"x": block["v"]} if self.size else {"x": 1.0}


def smp_round(workers: int, rounds: int, size: int = 0, transport: str = "ipc") -> dict[str, float]:
    """µs per empty round, scheduler CPU µs per round, messages and bytes per round."""
    warm = min(200, rounds // 5)
    bind = {"bind": "tcp://127.0.0.1:0"} if transport == "tcp" else {}  # else the local default
    with LocalCluster(Empty(rounds=rounds, size=size), workers=workers, fragments=workers,
                      timeout=600, **bind) as cluster:
        cluster.wait_for_round(warm, timeout=120)
        server = cluster.server
        t0, c0, w0 = time.perf_counter(), time.process_time(), dict(server.wire)
        cluster.wait_for_round(rounds - 1, timeout=300)
        t1, c1, w1 = time.perf_counter(), time.process_time(), dict(server.wire)
        cluster.wait()
    n = rounds - 1 - warm
    per = {k: (w1[k] - w0[k]) / n for k in w1}
    return {"us": (t1 - t0) / n * 1e6, "cpu_us": (c1 - c0) / n * 1e6,
            "messages": per["messages_in"] + per["messages_out"],
            "bytes": per["bytes_in"] + per["bytes_out"]}


def raw_round(workers: int, rounds: int, transport: str = "ipc") -> float:
    """µs per ROUTER -> DEALERs broadcast + gather of small msgpack messages."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    folder = tempfile.mkdtemp(prefix="raw-round-")
    if transport == "tcp":
        address = f"tcp://127.0.0.1:{router.bind_to_random_port('tcp://127.0.0.1')}"
    else:
        address = f"ipc://{folder}/router"
        router.bind(address)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", RAW_WORKER, address], env=env)
             for _ in range(workers)]
    try:
        idents = [router.recv_multipart()[0] for _ in range(workers)]
        payload = msgpack.packb({"t": "WORK", "r": 0, "b": {"x": 1.0}})
        warm = min(200, rounds // 5)
        for r in range(rounds):
            if r == warm:
                t0 = time.perf_counter()
            for ident in idents:
                router.send_multipart([ident, payload])
            for _ in idents:
                router.recv_multipart()
        elapsed = time.perf_counter() - t0
        for ident in idents:
            router.send_multipart([ident, b"stop"])
    finally:
        for p in procs:
            p.wait(timeout=10)
        router.close(0)
        ctx.term()
        shutil.rmtree(folder, ignore_errors=True)
    return elapsed / (rounds - warm) * 1e6


def save(name: str, rows: list[dict]) -> int:
    """The figures as JSON under bench-out/ (the exit status of main)."""
    out = Path("bench-out")
    out.mkdir(exist_ok=True)
    (out / name).write_text(json.dumps(rows, indent=2))
    return 0


def by_size(args: argparse.Namespace) -> int:
    """The scheduler's CPU and bytes per round against the floats a round moves."""
    rows = []
    print(f"{'workers':>7} {'floats':>9} {'smp µs':>9} {'sched cpu µs':>12} {'MB/round':>9} "
          f"{'sched MB/s':>10}", flush=True)
    for w in [int(x) for x in args.workers.split(",")]:
        for size in [int(x) for x in args.sizes.split(",")]:
            rounds = max(50, min(args.rounds, int(2e8 / max(size * 8 * w, 1))))
            runs = [smp_round(w, rounds, size, args.transport) for _ in range(args.repeats)]
            row = {"workers": w, "floats": size, "smp_us": statistics.median(r["us"] for r in runs),
                   "sched_cpu_us": statistics.median(r["cpu_us"] for r in runs),
                   "bytes": runs[0]["bytes"]}
            row["sched_mb_per_s"] = row["bytes"] / row["smp_us"]  # bytes/µs = MB/s
            rows.append(row)
            print(f"{w:>7} {size:>9} {row['smp_us']:>9.0f} {row['sched_cpu_us']:>12.0f} "
                  f"{row['bytes'] / 1e6:>9.3f} {row['sched_mb_per_s']:>10.0f}", flush=True)
    return save("runtime_sizes.json", rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4,8,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--transport", choices=("ipc", "tcp"), default="ipc",
                        help="ipc: a local cluster's Unix socket; tcp: loopback TCP")
    parser.add_argument("--sizes", help="comma list of float64s per block and partial: the "
                        "scheduler's cost against model size (no raw comparison)")
    args = parser.parse_args()
    if args.sizes:
        return by_size(args)
    rows = []
    print(f"{'workers':>7} {'smp µs':>9} {'raw µs':>8} {'ratio':>6} {'sched cpu µs':>12} "
          f"{'msgs':>5} {'bytes':>7}", flush=True)
    for w in [int(x) for x in args.workers.split(",")]:
        smp = [smp_round(w, args.rounds, 0, args.transport) for _ in range(args.repeats)]
        raw = [raw_round(w, args.rounds, args.transport) for _ in range(args.repeats)]
        row = {"workers": w, "smp_us": statistics.median(s["us"] for s in smp),
               "raw_us": statistics.median(raw),
               "sched_cpu_us": statistics.median(s["cpu_us"] for s in smp),
               "messages": smp[0]["messages"], "bytes": smp[0]["bytes"]}
        row["ratio"] = row["smp_us"] / row["raw_us"]
        rows.append(row)
        print(f"{w:>7} {row['smp_us']:>9.0f} {row['raw_us']:>8.0f} {row['ratio']:>6.2f} "
              f"{row['sched_cpu_us']:>12.0f} {row['messages']:>5.1f} {row['bytes']:>7.0f}", flush=True)
    name = "runtime.json" if args.transport == "ipc" else f"runtime-{args.transport}.json"
    bar_chart(f"bench-out/{name}", f"An empty round against a raw pyzmq round ({args.transport}, median)",
              {f"{r['workers']} workers": {"smpframe": r["smp_us"], "raw pyzmq": r["raw_us"]}
               for r in rows}, unit="µs per round")
    return save(name, [{**r, "transport": args.transport} for r in rows])


if __name__ == "__main__":
    sys.exit(main())
