"""A warm cluster: worker processes started once, running program after program.

``with Cluster(workers=4) as cluster:`` starts the workers and one listening socket;
``cluster.run(program, data)`` runs a program on them, and so does :func:`run_local`
while the cluster is open (the innermost open cluster is the default, as a dask
``Client`` is). A second run pays no process start-up, no imports and no kernel
loading. Between runs a thread of the cluster keeps the socket: it notes the workers
that wait (they reconnect after each run and say they are alive every second) and
hands them to the next run. Closing stops every worker; a worker that died between
runs is replaced first, so every run sees the cluster's full size and the same
fragments, and gives the result a fresh cluster would.
"""
from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from typing import Any

import zmq

from smpframe.api import SMPProgram
from smpframe.arrays import check_device
from smpframe.config import RunConfig
from smpframe.errors import InputError, ProtocolError
from smpframe.launch import launchers
from smpframe.launch.local import (all_exited, local_devices, resolve_config, start_workers,
                                   stop_workers, write_outputs)
from smpframe.protocol import Message, decode, encode
from smpframe.registry import program_spec
from smpframe.scheduler.outputs import RunResult, check_output_folder
from smpframe.scheduler.server import Endpoint, SchedulerServer
from smpframe.scheduler.state import valid_hello
from smpframe.sockets import NOBLOCK, recv_frames, send_frames

#: options fixed when the cluster starts; a run cannot change them
CLUSTER_OPTIONS = frozenset({"workers", "devices", "slowdowns", "bind", "curve_secret",
                             "curve_allow", "curve_server", "worker_args", "heartbeat_interval",
                             "scheduler_timeout", "max_message_bytes", "log_level", "launcher",
                             "port", "scheduler_host", "key_dir", "insecure", "ray_address"})
#: seconds a closing cluster waits for the last run's workers to report back
DRAIN = 3.0

_open: list["Cluster"] = []  # innermost last


class Cluster:
    """Worker processes started once that run many programs (see the module docstring).

    ``launcher`` (a RunConfig field) is where the workers run: ``"local"`` (child processes
    of this one), ``"slurm"`` (one srun step in this allocation) or ``"env"`` (this is rank
    0 of a rank launcher; the other ranks are the workers, see
    :func:`~smpframe.launch.launchers.serve_env_worker`).
    """

    def __init__(self, config: RunConfig | None = None, *, one_run: bool = False,
                 **overrides: Any) -> None:
        """``one_run``: a cluster for a single run (``run_local`` outside a ``with
        Cluster``), whose workers exit when that run ends instead of waiting for another."""
        self.config = resolve_config(config, overrides)
        self.one_run, self._runs = one_run, 0
        self.devices = list(self.config.devices or ["cpu"] * self.config.n_workers)
        self.procs: list[Any] = []  # local worker processes
        self.remote: launchers.SlurmWorkers | launchers.RayWorkers | None = None
        self.keys: launchers.RunKeys | None = None
        self._worker_config = self.config.replace(persist=not one_run)
        if self.config.launcher == launchers.LOCAL:
            for device in self.devices:
                check_device(device)
            self.endpoint = Endpoint(self.config, local=True)
            self.procs = start_workers(self.endpoint.address, self.devices, self._worker_config)
        else:
            self._start_off_loopback()
        self._waiting: dict[str, tuple[dict[str, Any], float]] = {}
        self._next: Message | None = None  # the PREPARE of the run being set up
        self._prepared: set[str] = set()  # waiting workers told of it
        self._jobs: queue.Queue = queue.Queue()
        self._running: SchedulerServer | None = None  # the run being served
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="smpframe-cluster", daemon=True)
        self._thread.start()

    # ---- use ----------------------------------------------------------------------------
    def run(self, program: SMPProgram, data: Any = None, **overrides: Any) -> RunResult:
        """Run ``program`` on this cluster's workers; ``overrides`` are per-run options."""
        fixed = sorted(set(overrides) & CLUSTER_OPTIONS)
        if fixed:
            raise InputError(f"{', '.join(fixed)}: set when the cluster starts; open another "
                             "Cluster for other values")
        if self._closing.is_set():
            raise InputError("the cluster is closed")
        if self.one_run and self._runs:
            raise InputError("this cluster was opened for one run; open a Cluster for more")
        self._runs += 1
        config = self.config.replace(**overrides)
        local_devices(program, config)
        if config.output:
            check_output_folder(config.output)
        # the workers build the program and load its kernels while the data loads here
        self._next = Message("PREPARE", body={"program": program_spec(type(program)),
                                              "params": program.get_params()})
        try:
            server = SchedulerServer(program, data, config, endpoint=self.endpoint)
        finally:
            self._next = None
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((server, future))
        result = future.result()
        if config.output:
            write_outputs(config.output, result)
        return result

    def _start_off_loopback(self) -> None:
        """Slurm, Ray or rank-0-of-env: listen on every interface, with per-run keys."""
        config, launcher = self.config, self.config.launcher
        env, ray = launcher == launchers.ENV, launcher == launchers.RAY
        port = launchers.env_port(config) if env else (config.port or 0)
        if not config.insecure:
            self.keys = launchers.RunKeys(launchers.key_folder(config) if env else None)
            config = self.keys.scheduler(config)
        self.endpoint = Endpoint(config.replace(bind=f"tcp://0.0.0.0:{port}"))
        port = self.endpoint.address.rsplit(":", 1)[1]
        try:
            if ray:
                self.remote = launchers.RayWorkers(self._worker_config)
                self.address = f"tcp://{self.remote.node_address()}:{port}"
                self.remote.start(self.address, self.keys)
            else:
                host = launchers.advertised_host()
                self.address = f"tcp://{host}:{port}"
                if not env:
                    extra = [] if self.keys is None else self.keys.worker_args(self.keys.folder)
                    self.remote = launchers.SlurmWorkers(self.address, self._worker_config, extra)
        except BaseException:
            self.endpoint.close()
            if self.keys is not None:
                self.keys.remove()
            raise

    def _gone(self) -> str | None:
        """Why no worker can be left (None while some may be)."""
        if self.remote is not None:
            return self.remote.gone()
        return all_exited(self.procs) if self.procs else None

    def _live_workers(self) -> int:
        if self.procs:
            return sum(p.poll() is None for p in self.procs)
        return self.config.n_workers if self._gone() is None else 0

    def close(self) -> None:
        """Stop every worker and the socket (idempotent)."""
        if self._closing.is_set():
            return
        self._closing.set()
        running = self._running
        if running is not None:  # closed mid-run (Ctrl-C, an error in the caller): end it now
            running.request_stop("the cluster was closed")
        self._thread.join(30)
        stop_workers(self.procs)
        if self.remote is not None:
            self.remote.stop()
        self.endpoint.close()
        if self.keys is not None:
            self.keys.remove()

    def __enter__(self) -> "Cluster":
        _open.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self in _open:
            _open.remove(self)
        self.close()

    @staticmethod
    def current() -> "Cluster | None":
        """The innermost open cluster (``run_local`` runs there), if any."""
        return _open[-1] if _open else None

    def accepts(self, overrides: dict[str, Any]) -> bool:
        """Whether a run with these options can use this cluster as it is."""
        return all(overrides[k] == getattr(self.config, k) for k in set(overrides) & CLUSTER_OPTIONS)

    def run_options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """``overrides`` less the cluster options it already has."""
        return {k: v for k, v in overrides.items() if k not in CLUSTER_OPTIONS}

    # ---- the cluster's thread: the only user of the socket ------------------------------
    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                server, future = self._jobs.get_nowait()
            except queue.Empty:
                self._wait_between_runs(0.05)
                continue
            self._replace_dead_workers()
            # a waiting worker silent for its scheduler timeout has exited; one silent for
            # less may be busy loading kernels (PREPARE): it is handed to the run all the same
            stale = time.monotonic() - self.config.worker_scheduler_timeout()
            waiting = [(w, info) for w, (info, seen) in self._waiting.items() if seen > stale]
            self._waiting.clear()
            self._running = server
            try:
                future.set_result(server.run(watch=self._gone, waiting=waiting))
            except BaseException as exc:  # surfaced in run()
                future.set_exception(exc)
            finally:
                self._running = None
        # closing: let the workers of the last run report back, then stop them all
        deadline = time.monotonic() + DRAIN
        while len(self._waiting) < self._live_workers() \
                and time.monotonic() < deadline:
            self._wait_between_runs(0.05)
        for worker in list(self._waiting):
            self._reply(worker, Message("STOP", body={"reason": "cluster closed", "close": True}))

    def _wait_between_runs(self, timeout: float) -> None:
        """Note waiting workers (HELLO, then a HEARTBEAT a second) and answer WAIT."""
        if not self.endpoint.socket.poll(int(timeout * 1000)):
            self._tell_next_program()
            return
        while True:
            try:
                frames = recv_frames(self.endpoint.socket, NOBLOCK, leading=2)
            except zmq.Again:
                break  # all read: now tell the newcomers of the next program
            try:
                worker, msg = frames[0].decode("utf-8", "replace"), decode(frames[1:])
            except (ProtocolError, IndexError):
                continue
            if msg.type == "HELLO" and valid_hello(msg.body):
                self._waiting[worker] = (dict(msg.body), time.monotonic())
            elif msg.type == "HEARTBEAT" and worker in self._waiting:
                self._waiting[worker] = (self._waiting[worker][0], time.monotonic())
            else:
                continue  # late messages of the last run
            self._reply(worker, Message("WAIT"))
        self._tell_next_program()

    def _tell_next_program(self) -> None:
        """Send the PREPARE of the run being set up to waiting workers not yet told."""
        announcement = self._next
        if announcement is None:
            self._prepared.clear()
            return
        for worker in set(self._waiting) - self._prepared:
            self._reply(worker, announcement)
            self._prepared.add(worker)

    def _reply(self, worker: str, msg: Message) -> None:
        try:
            send_frames(self.endpoint.socket, [worker.encode(), *encode(msg)])
        except (zmq.ZMQError, ProtocolError):  # a peer gone, or parameters that cannot travel
            pass

    def _replace_dead_workers(self) -> None:
        slowdowns = list(self.config.slowdowns or [1.0] * len(self.devices))
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.procs[i] = start_workers(self.endpoint.address, [self.devices[i]],
                                              self._worker_config, [slowdowns[i]])[0]
