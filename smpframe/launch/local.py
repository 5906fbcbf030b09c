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
from typing import Any

from smpframe.api import SMPProgram
from smpframe.arrays import check_device
from smpframe.config import RunConfig
from smpframe.errors import InputError
from smpframe.scheduler.outputs import RunResult, check_output_folder, write_result
from smpframe.scheduler.server import SchedulerServer, dump_events

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM if the launching process dies (no orphans)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def resolve_config(config: RunConfig | None, overrides: dict[str, Any]) -> RunConfig:
    """``config`` (default: all defaults) with keyword ``overrides`` applied and checked."""
    config = config or RunConfig()
    return config.replace(**overrides) if overrides else config


def local_devices(program: SMPProgram, config: RunConfig) -> list[str]:
    """One device per local worker; GPUs only for programs with GPU kernels."""
    devices = list(config.devices or ["cpu"] * config.n_workers)
    for device in devices:
        if check_device(device)[0] == "gpu" and not program.gpu:
            raise InputError(f"--devices {device}: {program.name} has no GPU kernels; "
                             "use cpu workers")
    return devices


def worker_command(address: str, config: RunConfig, device: str, slowdown: float) -> list[str]:
    """The command line of one local worker process."""
    cmd = [sys.executable, "-m", "smpframe.worker", "--connect", address, "--device", device,
           "--log-level", config.log_level]
    if slowdown != 1.0:
        cmd += ["--slowdown", str(slowdown)]
    if config.heartbeat_interval is not None:
        cmd += ["--heartbeat-interval", str(config.heartbeat_interval)]
    if config.scheduler_timeout is not None:
        cmd += ["--scheduler-timeout", str(config.scheduler_timeout)]
    if config.persist:
        cmd.append("--persist")
    return cmd + list(config.worker_args)


def start_workers(address: str, devices: list[str], config: RunConfig,
                  slowdowns: list[float] | None = None) -> list[subprocess.Popen]:
    """Spawn the worker processes (one BLAS/numba thread each unless the user set one)."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env.setdefault(var, "1")
    slowdowns = list(slowdowns or config.slowdowns or [1.0] * len(devices))
    return [subprocess.Popen(worker_command(address, config, device, slowdown), env=env,
                             stdin=subprocess.DEVNULL,
                             preexec_fn=_die_with_parent if sys.platform == "linux" else None)
            for device, slowdown in zip(devices, slowdowns)]


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


def write_outputs(folder: str, result: RunResult) -> None:
    """result.json, model.npz, metrics.jsonl, events.jsonl and the program's own files."""
    write_result(folder, result)
    dump_events(os.path.join(folder, "events.jsonl"), result.events)


def run_local(program: SMPProgram, data: Any = None, config: RunConfig | None = None,
              **overrides: Any) -> RunResult:
    """Run ``program`` on a local cluster and return its result.

    ``data`` is whatever the program's ``load_data`` accepts (a path, arrays, or None
    for built-in data). ``config`` holds the run's options; keyword ``overrides`` change
    single fields (``run_local(Lasso(), data, workers=3, quiet=True)``). With
    ``output``, the result files are written there once the run has finished (nothing
    is written on failure). Inside ``with Cluster(...)``, the run goes to that warm
    cluster when it can (no ``config`` given, and no cluster option changed); else a
    cluster is started for this run alone, its workers booting while the data loads.
    """
    from smpframe.launch.cluster import Cluster

    cluster = Cluster.current()
    if cluster is not None and config is None and cluster.accepts(overrides):
        return cluster.run(program, data, **cluster.run_options(overrides))
    config = resolve_config(config, overrides)
    local_devices(program, config)
    if config.output:
        check_output_folder(config.output)
    with Cluster(config, one_run=True) as one_off:
        return one_off.run(program, data)


class LocalCluster:
    """A local cluster running in the background: the scheduler loop on a thread.

    ``with LocalCluster(program, data, workers=3) as c: ...; result = c.wait()``.
    Unlike :func:`run_local`, the caller keeps control during the run: it can watch
    ``c.server.ctx``/``c.server.state`` and signal or kill the worker processes in
    ``c.procs`` (chaos tests, demos, notebooks). ``timeout`` bounds :meth:`wait`.
    """

    def __init__(self, program: SMPProgram, data: Any = None, config: RunConfig | None = None,
                 timeout: float | None = None, **overrides: Any) -> None:
        background = {"quiet": True} if config is None else {}  # a thread has no terminal
        self.config = resolve_config(config, {**background, **overrides})
        self.devices = local_devices(program, self.config)
        self.server = SchedulerServer(program, data, self.config, local=True)
        self.timeout = timeout
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "LocalCluster":
        self.procs = start_workers(self.server.address, self.devices, self.config)
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
        if self.thread.is_alive():
            raise TimeoutError(f"the run did not finish within {self.timeout}s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def __exit__(self, *exc: Any) -> None:
        if self.thread.is_alive():
            self.server.request_stop("cluster closed")
            self.thread.join(10)
        stop_workers(self.procs)
