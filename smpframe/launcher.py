"""Start a local cluster: the scheduler in this process, workers as child processes.

This is what ``smpframe run`` and :func:`run_local` use. Workers are real processes
talking to the scheduler over real ZeroMQ TCP sockets on loopback, exactly as when
they are started by hand on other hosts with ``smpframe worker --connect``.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence, TextIO

from smpframe.program import SMPProgram
from smpframe.programs import program_spec
from smpframe.servers.outputs import RunResult, check_output_folder, write_result
from smpframe.servers.server import SchedulerServer, ServerOptions, dump_events
from smpframe.servers.state import SchedulerConfig

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


@dataclass
class ClusterOptions:
    """How many workers, on which devices, and how they behave."""

    n_workers: int = 2
    devices: Sequence[str] | None = None
    slowdowns: Sequence[float] | None = None
    heartbeat_interval: float | None = None
    scheduler_timeout: float = 30.0
    worker_log_level: str = "WARNING"
    extra_worker_args: list[str] = field(default_factory=list)


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM if the launching process dies (no orphans)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def worker_command(address: str, device: str = "cpu", slowdown: float = 1.0,
                   heartbeat_interval: float | None = None, scheduler_timeout: float = 30.0,
                   log_level: str = "WARNING", extra: Sequence[str] = ()) -> list[str]:
    """The command line of one worker process."""
    cmd = [sys.executable, "-m", "smpframe.workers", "--connect", address, "--device", device,
           "--scheduler-timeout", str(scheduler_timeout), "--log-level", log_level]
    if slowdown != 1.0:
        cmd += ["--slowdown", str(slowdown)]
    if heartbeat_interval is not None:
        cmd += ["--heartbeat-interval", str(heartbeat_interval)]
    return cmd + list(extra)


def start_workers(address: str, options: ClusterOptions) -> list[subprocess.Popen]:
    """Spawn the worker processes (one BLAS/numba thread each unless the user set one)."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env.setdefault(var, "1")
    devices = list(options.devices or ["cpu"] * options.n_workers)
    slowdowns = list(options.slowdowns or [1.0] * len(devices))
    procs = []
    for device, slowdown in zip(devices, slowdowns):
        cmd = worker_command(address, device, slowdown, options.heartbeat_interval,
                             options.scheduler_timeout, options.worker_log_level,
                             options.extra_worker_args)
        procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                      preexec_fn=_die_with_parent if sys.platform == "linux" else None))
    return procs


def all_exited(procs: list[subprocess.Popen]) -> str | None:
    """A reason to give up when every worker process has exited (with their exit codes)."""
    codes = [p.poll() for p in procs]
    if procs and all(c is not None for c in codes):
        return f"all worker processes exited (exit codes {codes}); see their messages above"
    return None


def stop_workers(procs: list[subprocess.Popen], grace: float = 5.0) -> None:
    """Wait for workers told to STOP; terminate, then kill, any that linger."""
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)


def run_local(program: SMPProgram, data: Any = None, cluster: ClusterOptions | None = None,
              config: SchedulerConfig | None = None, output: str | None = None,
              seed: int = 0, progress: TextIO | None = sys.stderr,
              **server_options: Any) -> RunResult:
    """Run ``program`` on a local cluster and return its result.

    ``data`` is whatever the program's ``load_data`` accepts (a path, arrays, or None
    for built-in data). With ``output``, result.json, model.npz and metrics.jsonl are
    written there once the run has finished (nothing is written on failure).
    """
    cluster = cluster or ClusterOptions()
    n_workers = len(cluster.devices) if cluster.devices else cluster.n_workers
    config = config or SchedulerConfig()
    config.min_workers = n_workers
    if output:
        check_output_folder(output)
    options = ServerOptions(seed=seed, progress=progress, output=output, **server_options)
    server = SchedulerServer(program, program_spec(type(program)), data, config, options)
    procs = start_workers(server.address, cluster)
    try:
        result = server.run(watch=lambda: all_exited(procs))
    finally:
        stop_workers(procs)
    if output:
        write_result(output, result)
        dump_events(os.path.join(output, "events.jsonl"), result.events)
    return result


class LocalCluster:
    """A local cluster running in the background: the scheduler loop on a thread.

    ``with LocalCluster(program, data, n_workers=3) as c: ...; result = c.wait()``.
    Unlike :func:`run_local`, the caller keeps control during the run: it can watch
    ``c.server.ctx``/``c.server.state`` and signal or kill the worker processes in
    ``c.procs`` (chaos tests, demos, notebooks).
    """

    def __init__(self, program: SMPProgram, data: Any = None, n_workers: int = 2,
                 timeout: float | None = None, config: SchedulerConfig | None = None,
                 cluster: ClusterOptions | None = None, **server_options: Any) -> None:
        self.config = config or SchedulerConfig()
        self.config.min_workers = n_workers
        self.cluster = cluster or ClusterOptions(n_workers=n_workers)
        options = ServerOptions(progress=None, **server_options)
        self.server = SchedulerServer(program, program_spec(type(program)), data, self.config, options)
        self.timeout = timeout
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "LocalCluster":
        self.procs = start_workers(self.server.address, self.cluster)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self) -> None:
        try:
            self.result = self.server.run(watch=lambda: all_exited(self.procs))
        except BaseException as exc:  # surfaced by wait()
            self.error = exc

    def wait_for_round(self, n: int, timeout: float = 30.0) -> bool:
        """Block until the scheduler has committed ``n`` rounds; False if the run ended first."""
        deadline = time.monotonic() + timeout
        while self.server.ctx.round < n:
            if not self.thread.is_alive():
                return False
            if time.monotonic() > deadline:
                raise TimeoutError(f"round {n} not reached in {timeout}s (at {self.server.ctx.round})")
            time.sleep(0.005)
        return True

    def wait(self) -> RunResult:
        """Join the run; re-raise its error, if any."""
        self.thread.join(self.timeout)
        assert not self.thread.is_alive(), "scheduler did not finish in time"
        if self.error is not None:
            raise self.error
        return self.result

    def __exit__(self, *exc) -> None:
        if self.thread.is_alive():
            self.server.request_stop("test ended")
            self.thread.join(10)
        stop_workers(self.procs)
