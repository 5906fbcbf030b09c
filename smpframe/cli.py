"""The ``smpframe`` command line: run an app locally, or start a scheduler/worker by hand.

Errors a user can fix (bad files, bad options) print one line and exit 2; a run
the cluster cannot finish exits 1.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from smpframe.errors import ClusterError, InputError
from smpframe.programs import BUILTIN_APPS, resolve_program
from smpframe.security import SecurityConfig

EXIT_INPUT = 2
EXIT_CLUSTER = 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``scheduler``."""
    parser.add_argument("--data", help="input file (default: a built-in synthetic problem)")
    parser.add_argument("--workers", type=_positive_int, default=2,
                        help="number of workers (default 2)")
    parser.add_argument("--output", help="folder for result.json, model.npz, metrics.jsonl")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--max-rounds", type=_positive_int, help="stop after this many rounds")
    parser.add_argument("--time-limit", type=float, help="stop after this many seconds")
    parser.add_argument("--fragments", type=_positive_int,
                        help="data fragments (default: 4 per worker; LDA: 1 per worker)")
    parser.add_argument("--pipeline-depth", type=int, default=0,
                        help="rounds dispatched ahead of the last commit (bounded staleness)")
    parser.add_argument("--heartbeat-timeout", type=float, default=10.0,
                        help="seconds of silence before a worker is declared dead (default 10)")
    parser.add_argument("--dispatch-v", type=float, default=1.0,
                        help="drift-plus-penalty V: balance (0) vs keeping data in place (large)")
    parser.add_argument("--no-balance", action="store_true",
                        help="keep fragments where first placed (no speed-proportional moves)")
    parser.add_argument("--checkpoint-every",
                        help="checkpoint into --output every N rounds, or every Ns seconds")
    parser.add_argument("--resume", help="continue from the last checkpoint in this folder")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--log-level", default="WARNING")


def _add_security_options(parser: argparse.ArgumentParser, side: str) -> None:
    parser.add_argument("--curve-secret", help="this side's secret key file (*.key_secret)")
    if side == "scheduler":
        parser.add_argument("--curve-allow", help="folder of allowed worker public keys")
    else:
        parser.add_argument("--curve-server", help="the scheduler's public key file (*.key)")


def _security(args: argparse.Namespace) -> SecurityConfig:
    return SecurityConfig(secret_file=getattr(args, "curve_secret", None),
                          server_key_file=getattr(args, "curve_server", None),
                          allow_dir=getattr(args, "curve_allow", None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smpframe", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an app on a local cluster (scheduler + workers)")
    run_apps = run.add_subparsers(dest="app", required=True, metavar="APP")
    sched = sub.add_parser("scheduler", help="start a scheduler and wait for workers")
    sched_apps = sched.add_subparsers(dest="app", required=True, metavar="APP")
    for name in BUILTIN_APPS:
        cls = _app_class(name)
        if cls is None:
            continue
        for apps, side in ((run_apps, "run"), (sched_apps, "scheduler")):
            p = apps.add_parser(name, help=(cls.__doc__ or "").strip().splitlines()[0])
            _add_cluster_options(p)
            cls.add_arguments(p)
            if side == "run":
                p.add_argument("--devices", help="comma list per worker: cpu,gpu:0,... (overrides --workers)")
                p.add_argument("--slowdowns", help="comma list of per-worker slow-down factors (testing)")
            else:
                p.add_argument("--bind", default="tcp://127.0.0.1:5555",
                               help="address to listen on (default loopback only)")
                p.add_argument("--start-timeout", type=float, default=300.0,
                               help="seconds to wait for --workers workers before starting")
                _add_security_options(p, "scheduler")

    worker = sub.add_parser("worker", help="start a worker that joins a scheduler")
    worker.add_argument("--connect", default="tcp://127.0.0.1:5555", help="scheduler address")
    worker.add_argument("--device", default="cpu", help="cpu, gpu, gpu:N or auto")
    worker.add_argument("--name", help="stable worker name (default host-pid)")
    worker.add_argument("--slowdown", type=float, default=1.0,
                        help="straggler switch: make this worker N times slower")
    worker.add_argument("--heartbeat-interval", type=float, default=0.5)
    worker.add_argument("--scheduler-timeout", type=float, default=30.0,
                        help="exit after this many seconds without the scheduler")
    worker.add_argument("--log-level", default="INFO")
    _add_security_options(worker, "worker")

    keys = sub.add_parser("keys", help="CURVE key management")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser("generate", help="make scheduler and worker key pairs")
    gen.add_argument("folder")
    gen.add_argument("--workers", type=_positive_int, default=1, help="worker key pairs to make")
    return parser


def _app_class(name: str):
    """The app's class, or None while that app is not part of this installation."""
    import importlib.util
    if importlib.util.find_spec(BUILTIN_APPS[name].split(":")[0]) is None:
        return None
    return resolve_program(name)


def _scheduler_config(args: argparse.Namespace, n_workers: int):
    from smpframe.servers.state import SchedulerConfig
    return SchedulerConfig(min_workers=n_workers, heartbeat_timeout=args.heartbeat_timeout,
                           pipeline_depth=args.pipeline_depth, max_rounds=args.max_rounds,
                           time_limit=args.time_limit, dispatch_v=args.dispatch_v,
                           balance=not args.no_balance,
                           start_timeout=getattr(args, "start_timeout", 30.0))


def _csv(text: str | None) -> list[str] | None:
    return None if not text else [t.strip() for t in text.split(",") if t.strip()]


def cmd_run(args: argparse.Namespace) -> int:
    from smpframe.arrays import check_device
    from smpframe.launcher import ClusterOptions, run_local

    program = resolve_program(args.app).from_args(args)
    devices = _csv(args.devices)
    for device in devices or []:
        if check_device(device)[0] == "gpu" and not program.gpu:
            raise InputError(f"--devices {device}: {args.app} has no GPU kernels yet "
                             "(kmeans has); use cpu workers")
    slowdowns = [float(s) for s in _csv(args.slowdowns) or []] or None
    n_workers = len(devices) if devices else args.workers
    if slowdowns and len(slowdowns) != n_workers:
        raise InputError(f"--slowdowns has {len(slowdowns)} values for {n_workers} workers")
    cluster = ClusterOptions(n_workers=n_workers, devices=devices, slowdowns=slowdowns,
                             scheduler_timeout=max(30.0, 3 * args.heartbeat_timeout),
                             heartbeat_interval=min(0.5, args.heartbeat_timeout / 5))
    result = run_local(program, data=args.data, cluster=cluster,
                       config=_scheduler_config(args, n_workers), output=args.output,
                       seed=args.seed, progress=None if args.quiet else sys.stderr,
                       n_fragments=args.fragments, checkpoint_every=args.checkpoint_every,
                       resume=args.resume)
    _print_summary(result.summary)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from smpframe.servers.outputs import check_output_folder, write_result
    from smpframe.servers.server import SchedulerServer, ServerOptions

    program = resolve_program(args.app).from_args(args)
    if args.output:
        check_output_folder(args.output)
    options = ServerOptions(bind=args.bind, n_fragments=args.fragments, seed=args.seed,
                            progress=None if args.quiet else sys.stderr, output=args.output,
                            checkpoint_every=args.checkpoint_every, resume=args.resume,
                            security=_security(args))
    server = SchedulerServer(program, args.app, args.data, _scheduler_config(args, args.workers),
                             options)
    print(f"scheduler listening on {server.address}; waiting for {args.workers} worker(s)",
          file=sys.stderr, flush=True)
    result = server.run()
    if args.output:
        write_result(args.output, result)
    _print_summary(result.summary)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from smpframe.workers.worker import Worker, WorkerOptions

    options = WorkerOptions(connect=args.connect, name=args.name, device=args.device,
                            slowdown=args.slowdown, heartbeat_interval=args.heartbeat_interval,
                            scheduler_timeout=args.scheduler_timeout, security=_security(args))
    return Worker(options).run()


def cmd_keys(args: argparse.Namespace) -> int:
    from smpframe.security import generate_keys

    names = ["scheduler"] + [f"worker{i}" for i in range(args.workers)]
    for path in generate_keys(args.folder, names):
        print(path)
    return 0


def _print_summary(summary: dict) -> None:
    """The scalar figures as one JSON line (lists such as histories stay in result.json)."""
    import json
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (list, dict))},
                     default=str))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smpframe`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING)
                        if hasattr(args, "log_level") else logging.WARNING,
                        format=f"%(asctime)s %(name)s[{os.getpid()}] %(levelname)s %(message)s")
    commands = {"run": cmd_run, "scheduler": cmd_scheduler, "worker": cmd_worker, "keys": cmd_keys}
    try:
        return commands[args.command](args)
    except InputError as exc:
        print(f"smpframe: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ClusterError as exc:
        print(f"smpframe: run failed: {exc}", file=sys.stderr)
        return EXIT_CLUSTER
    except KeyboardInterrupt:
        print("smpframe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
