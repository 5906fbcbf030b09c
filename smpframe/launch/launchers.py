"""Where a cluster's workers run: child processes, one Slurm ``srun`` step, the other
ranks of a rank launcher (srun, mpirun, a Kubernetes Indexed Job, torchrun), or Ray actors.

Each launcher starts the workers pointed at the scheduler's address, says when they are
all gone, and stops them (a warm cluster replaces local workers that die between runs; a
Slurm task or Ray actor that dies is not replaced: the run goes on without it). Off
loopback (slurm, env, ray) a run is secure by default: a per-run CURVE key pair, written where only this
user can read it (for Ray: handed to each actor with its task, and written by it to a
private folder), is given to the launcher's own workers (``--insecure`` opts out).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from smpframe.config import RunConfig
from smpframe.errors import InputError

LOCAL, SLURM, ENV, RAY = "local", "slurm", "env", "ray"
#: where rank launchers put a task's rank and the number of tasks, most specific first
RANK_VARS = ("SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "JOB_COMPLETION_INDEX", "RANK")
SIZE_VARS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "WORLD_SIZE")
#: how long the other ranks of an env launch wait for rank 0's keys to appear
KEY_WAIT = 120.0


def _int_var(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, int] | None:
    for name in names:
        if env.get(name, "").strip().isdigit():
            return name, int(env[name])
    return None


def rank_and_size(env: Mapping[str, str] = os.environ) -> tuple[int, int | None]:
    """This task's rank and the number of tasks (None where the launcher does not say)."""
    rank = _int_var(env, RANK_VARS)
    if rank is None:
        raise InputError("--launcher env: no rank in the environment (expected one of "
                         f"{', '.join(RANK_VARS)}); start this command under srun, mpirun, "
                         "torchrun or a Kubernetes Indexed Job")
    size = _int_var(env, SIZE_VARS)
    return rank[1], None if size is None else size[1]


def default_workers(launcher: str, env: Mapping[str, str] = os.environ) -> int:
    """Workers when ``--workers`` is not given: 2 locally, every task of a Slurm
    allocation, every rank but the scheduler's under a rank launcher."""
    if launcher == SLURM:
        tasks = _int_var(env, ("SLURM_NTASKS", "SLURM_NPROCS"))
        if tasks is None:
            raise InputError("--launcher slurm: not inside a Slurm allocation (no SLURM_NTASKS); "
                             "run it under salloc or sbatch")
        return tasks[1]
    if launcher == ENV:
        _, size = rank_and_size(env)
        if size is None:
            raise InputError("--launcher env: the launcher does not give the number of tasks "
                             f"({', '.join(SIZE_VARS)}); pass --workers (the ranks less one)")
        if size < 2:
            raise InputError(f"--launcher env: {size} task; a run needs a scheduler and a worker")
        return size - 1
    return 2


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``n[3-5,7],m1`` -> ``n3``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match or not match.group(1):
        raise InputError(f"SLURM_JOB_NODELIST {nodelist!r}: not a node list")
    prefix, ranges = match.groups()
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def env_scheduler_host(config: RunConfig, env: Mapping[str, str] = os.environ) -> str:
    """Where rank 0 runs: ``--scheduler-host``, the first Slurm node, or MASTER_ADDR."""
    if config.scheduler_host:
        return config.scheduler_host
    if env.get("SLURM_JOB_NODELIST"):
        return first_host(env["SLURM_JOB_NODELIST"])
    if env.get("MASTER_ADDR"):
        return env["MASTER_ADDR"]
    raise InputError("--launcher env: no scheduler host (pass --scheduler-host, or run where "
                     "SLURM_JOB_NODELIST or MASTER_ADDR is set)")


def env_port(config: RunConfig, env: Mapping[str, str] = os.environ) -> int:
    """The scheduler's port under a rank launcher: ``--port``, else one derived from the
    job id so that every rank computes the same one."""
    if config.port is not None:
        return config.port
    job = _int_var(env, ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID"))
    if job is None:
        raise InputError("--launcher env: no --port and no job id to derive one from")
    return 20000 + job[1] % 20000


def key_folder(config: RunConfig, env: Mapping[str, str] = os.environ) -> Path:
    """Where an env launch's per-run keys live: ``--key-dir`` or a job-named folder in $HOME
    (a shared file system is where the ranks can all read it)."""
    if config.key_dir:
        return Path(config.key_dir)
    job = _int_var(env, ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID"))
    tag = f"job-{job[1]}" if job else f"port-{env_port(config, env)}"
    return Path.home() / ".smpframe" / "keys" / tag


class RunKeys:
    """A per-run CURVE key pair for the scheduler and one shared by its workers."""

    def __init__(self, folder: Path | None = None) -> None:
        from smpframe.security import generate_keys

        self.folder = Path(tempfile.mkdtemp(prefix=".smpframe-keys-")) if folder is None else folder
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        generate_keys(str(self.folder), ["scheduler", "worker"])

    def scheduler(self, config: RunConfig) -> RunConfig:
        return config.replace(curve_secret=str(self.folder / "scheduler.key_secret"),
                              curve_allow=str(self.folder / "allowed"))

    @staticmethod
    def worker_args(folder: Path) -> list[str]:
        return ["--curve-secret", str(folder / "worker.key_secret"),
                "--curve-server", str(folder / "scheduler.key")]

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def wait_for_keys(folder: Path, timeout: float = KEY_WAIT) -> None:
    """The other ranks wait for rank 0 to write the run's keys."""
    deadline = time.monotonic() + timeout
    while not ((folder / "scheduler.key").is_file() and (folder / "worker.key_secret").is_file()):
        if time.monotonic() > deadline:
            raise InputError(f"no keys from rank 0 in {timeout:.0f} s (is it a shared file system?)",
                             path=str(folder))
        time.sleep(0.2)


class SlurmWorkers:
    """The workers as one ``srun`` step across the allocation, one per task."""

    def __init__(self, address: str, config: RunConfig, extra_args: list[str]) -> None:
        device = (config.devices or ["cpu"])[0]
        cmd = ["srun", f"--ntasks={config.n_workers}", "--job-name=smpframe-workers",
               "--kill-on-bad-exit=0", "--wait=0", sys.executable, "-m", "smpframe.worker", "--connect",
               address, "--device", device, "--log-level", config.log_level, "--persist",
               *extra_args, *config.worker_args]
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env.setdefault(var, "1")
        try:
            self.step = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        except FileNotFoundError:
            raise InputError("--launcher slurm: srun is not installed here") from None

    def gone(self) -> str | None:
        code = self.step.poll()
        return None if code is None else f"the workers' srun step ended (exit code {code})"

    def stop(self, grace: float = 10.0) -> None:
        try:
            self.step.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.step.pid, signal.SIGTERM)  # srun cancels the step
            try:
                self.step.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.step.pid, signal.SIGKILL)
                self.step.wait(timeout=grace)


class RayWorkers:
    """The workers as Ray actors on an existing Ray cluster, one per worker, spread over
    its nodes (a GPU worker asks Ray for a GPU). Each actor runs the ordinary worker loop; the data plane stays
    ZeroMQ. ``ray.init`` joins ``--ray-address`` (default: the cluster this machine is
    part of, as ``ray start`` left it)."""

    def __init__(self, config: RunConfig) -> None:
        try:
            import ray
        except ImportError:
            raise InputError("--launcher ray needs Ray: pip install 'smpframe[ray]'") from None
        self.ray, self.config = ray, config
        self.actors: list[Any] = []
        self.tasks: list[Any] = []
        if config.ray_address and "://" not in config.ray_address:
            _probe(config.ray_address)  # ray.init retries an absent cluster for minutes
        try:
            ray.init(address=config.ray_address or "auto", ignore_reinit_error=True,
                     log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InputError(f"--launcher ray: cannot reach a Ray cluster at "
                             f"{config.ray_address or 'auto'}: {exc}") from None

    def node_address(self) -> str:
        """This node's address as the Ray cluster knows it (what its actors can reach)."""
        return self.ray.util.get_node_ip_address()

    def start(self, address: str, keys: "RunKeys | None") -> None:
        """One actor per worker, each serving the scheduler at ``address``."""
        ray, config = self.ray, self.config
        secrets = {} if keys is None else {
            name: (keys.folder / name).read_text()
            for name in ("worker.key_secret", "scheduler.key")}
        actor = ray.remote(max_restarts=0, max_concurrency=1)(RayWorker)
        for device in config.devices or ["cpu"] * config.n_workers:
            gpus = 0 if device == "cpu" else 1
            handle = actor.options(num_cpus=1, num_gpus=gpus, scheduling_strategy="SPREAD").remote()
            args = ["--connect", address, "--device", "gpu" if gpus else "cpu",
                    "--log-level", config.log_level, "--persist", *config.worker_args]
            self.actors.append(handle)
            self.tasks.append(handle.serve.remote(args, secrets))

    def gone(self) -> str | None:
        if not self.tasks:
            return None
        done, _ = self.ray.wait(self.tasks, num_returns=len(self.tasks), timeout=0)
        if len(done) < len(self.tasks):
            return None
        return "every Ray worker actor ended"

    def stop(self, grace: float = 10.0) -> None:
        if self.tasks:
            self.ray.wait(self.tasks, num_returns=len(self.tasks), timeout=grace)
        for handle in self.actors:
            self.ray.kill(handle)
        self.ray.shutdown()


def _probe(address: str, timeout: float = 5.0) -> None:
    """Raise a one-line InputError unless something listens at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return
    except ValueError:
        raise InputError(f"--ray-address {address}: expected host:port") from None
    except OSError as exc:
        raise InputError(f"--launcher ray: cannot reach a Ray cluster at {address}: "
                         f"{exc.strerror or exc}") from None


class RayWorker:
    """A Ray actor that serves as one worker (the ``smpframe worker`` loop, in the actor)."""

    def serve(self, args: list[str], secrets: dict[str, str]) -> int:
        from smpframe.cli import main

        if secrets:
            folder = Path(tempfile.mkdtemp(prefix=".smpframe-keys-"))
            try:
                for name, text in secrets.items():
                    path = folder / name
                    path.write_text(text)
                    os.chmod(path, 0o600)
                return main(["worker", *args, *RunKeys.worker_args(folder)])
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        return main(["worker", *args])


def serve_env_worker(config: RunConfig) -> int:
    """A rank other than 0 of ``--launcher env``: serve rank 0's runs as a worker."""
    from smpframe.worker.loop import Worker

    host, port = env_scheduler_host(config), env_port(config)
    keys: dict[str, str] = {}
    if not config.insecure:
        folder = key_folder(config)
        wait_for_keys(folder)
        keys = {"curve_secret": str(folder / "worker.key_secret"),
                "curve_server": str(folder / "scheduler.key")}
    worker = RunConfig(connect=f"tcp://{host}:{port}", persist=True, log_level=config.log_level,
                       devices=None, device=(config.devices or ["cpu"])[0], **keys)
    return Worker(worker).run()


def advertised_host() -> str:
    """A name the allocation's nodes can reach this one by."""
    return socket.gethostname()
