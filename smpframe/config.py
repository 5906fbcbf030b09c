"""One run configuration: every runtime option, its default, its CLI flag and its check.

:class:`RunConfig` is what the scheduler, the local launcher and the worker read; the
CLI builds its options from the fields below (``--pipeline-depth`` is
``pipeline_depth``; every option may also come from ``SMPFRAME_PIPELINE_DEPTH``), so
each default is stated once, here. Values are checked when the config is built, so a
bad option fails before any process starts.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from smpframe.arrays import parse_device
from smpframe.data import budget
from smpframe.errors import InputError
from smpframe.protocol import DEFAULT_MAX_BYTES

#: the scheduler's TCP port unless ``--bind`` says otherwise
DEFAULT_PORT = 5555
#: environment variables ``SMPFRAME_<OPTION>`` give option defaults
ENV_PREFIX = "SMPFRAME_"

RUN, SCHEDULER, WORKER = "run", "scheduler", "worker"
#: a host name, an IPv4 address or an IPv6 one (``::1``)
_HOST = re.compile(r"[A-Za-z0-9_.:-]+")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in _csv(text)]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


def option(default: Any, help: str, commands: tuple[str, ...], parse: Callable[[str], Any] | None = None,
           flag: str | None = None) -> Any:
    """A config field that is also a CLI option of ``commands``."""
    meta = {"help": help, "commands": commands, "parse": parse, "flag": flag}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    """Everything about how a program runs (not what it computes: that is its parameters)."""

    # ---- the cluster -------------------------------------------------------------------
    workers: int | None = option(None, "workers to start (run) or to wait for (scheduler); "
                                 "default 2, under --launcher slurm the allocation's tasks, "
                                 "under --launcher env the ranks less one", (RUN, SCHEDULER))
    launcher: str = option("local", "where the workers run: local (child processes), slurm (one "
                           "srun step in this allocation), env (every rank of srun, mpirun or an "
                           "Indexed Job runs this command; rank 0 schedules), ray (actors on a "
                           "Ray cluster)", (RUN,))
    ray_address: str | None = option(None, "--launcher ray: the Ray cluster to join (default: "
                                     "the one this machine belongs to, as ray start left it)",
                                     (RUN,))
    devices: list[str] | None = option(None, "one device per local worker, e.g. cpu,gpu:0 "
                                       "(overrides --workers)", (RUN,), parse=_csv)
    slowdowns: list[float] | None = option(None, "per-worker slow-down factors, e.g. 1,3 "
                                           "(straggler switch for tests and demos)", (RUN,),
                                           parse=_floats)
    fragments: int | None = option(None, "data fragments (default: the program's "
                                   "fragments_per_worker x workers)", (RUN, SCHEDULER))
    seed: int = option(0, "random seed", (RUN, SCHEDULER))
    read_on: str = option("workers", "who reads a data file: workers (each reads its own "
                          "splits; the scheduler holds only the model) or scheduler (it reads "
                          "the file and ships each worker its rows)", (RUN, SCHEDULER))
    # ---- the round engine ------------------------------------------------------------
    max_rounds: int | None = option(None, "stop after this many rounds", (RUN, SCHEDULER))
    time_limit: float | None = option(None, "stop after this many seconds of solving", (RUN, SCHEDULER))
    pipeline_depth: int = option(0, "rounds dispatched ahead of the last commit (bounded "
                                 "staleness)", (RUN, SCHEDULER))
    balance: bool = option(True, "move fragments to follow measured worker speeds", (RUN, SCHEDULER))
    dispatch_v: float = option(1.0, "drift-plus-penalty V: balance (0) vs keeping data in place "
                               "(large)", (RUN, SCHEDULER))
    rebalance_threshold: float = 0.15  # predicted round time above the best placement that moves data
    rebalance_interval: float = 0.2  # seconds between placement checks
    # ---- failure detection -----------------------------------------------------------
    heartbeat_timeout: float = option(10.0, "seconds of silence before a worker is declared dead",
                                      (RUN, SCHEDULER))
    heartbeat_interval: float | None = option(None, "seconds between a worker's heartbeats "
                                              "(default: the scheduler's choice, "
                                              "min(0.5, heartbeat timeout / 5))", (WORKER,))
    scheduler_timeout: float | None = option(None, "a worker exits after this many seconds "
                                             "without the scheduler (default: the scheduler's "
                                             "choice, max(30, 3 x heartbeat timeout))", (WORKER,))
    start_timeout: float = option(300.0, "seconds to wait for --workers workers to join",
                                  (RUN, SCHEDULER))
    # ---- outputs ---------------------------------------------------------------------
    output: str | None = option(None, "folder for result.json, model.npz, metrics.jsonl, "
                                "events.jsonl", (RUN, SCHEDULER))
    checkpoint_every: str | None = option(None, "checkpoint into --output every N rounds, or "
                                          "every Ns seconds", (RUN, SCHEDULER))
    resume: str | None = option(None, "continue from the last checkpoint in this folder",
                                (RUN, SCHEDULER))
    path: int | None = option(None, "lasso: cross-validate a path of N lambdas (geometric, "
                              "lambda_max down to lambda_max / 1000) and refit at the best",
                              (RUN,))
    cv: int = option(5, "folds of --path", (RUN,))
    quiet: bool = option(False, "no progress on stderr (a live bar on a terminal, else a line "
                         "a second)", (RUN, SCHEDULER))
    progress_interval: float = 1.0
    metrics_port: int | None = option(None, "serve live metrics in Prometheus text format at "
                                      "http://127.0.0.1:PORT/metrics (or --metrics-host); needs "
                                      "pip install 'smpframe[metrics]'", (RUN, SCHEDULER))
    metrics_host: str = option("127.0.0.1", "address --metrics-port listens on", (RUN, SCHEDULER))
    log_level: str = option("WARNING", "log level (DEBUG, INFO, WARNING, ERROR)",
                            (RUN, SCHEDULER, WORKER))
    max_memory: str | None = option(None, "memory budget for what input files claim, e.g. 8G "
                                    "(default: half of this machine's memory)", (RUN, SCHEDULER))
    # ---- network and security ----------------------------------------------------------
    bind: str | None = option(None, "address the scheduler listens on (default: "
                              f"tcp://127.0.0.1:{DEFAULT_PORT}; local runs: a Unix socket in a "
                              "folder only you can open)", (SCHEDULER,))
    connect: str = option(f"tcp://127.0.0.1:{DEFAULT_PORT}", "the scheduler's address", (WORKER,))
    device: str = option("cpu", "this worker's device: cpu, gpu, gpu:N or auto", (WORKER,))
    name: str | None = option(None, "stable worker name (default host-pid)", (WORKER,))
    slowdown: float = option(1.0, "straggler switch: make this worker N times slower", (WORKER,))
    persist: bool = option(False, "serve run after run until the cluster closes (the workers of "
                           "a warm cluster); without it a worker exits when its run ends",
                           (WORKER,))
    port: int | None = option(None, "the scheduler's port with --launcher slurm|env|ray (default: "
                              "a free one; env: derived from the job id)", (RUN,))
    scheduler_host: str | None = option(None, "--launcher env: the scheduler's host (default: "
                                        "the first host of SLURM_JOB_NODELIST, or MASTER_ADDR)",
                                        (RUN,))
    key_dir: str | None = option(None, "--launcher env: where rank 0 writes the run's keys for the "
                                 "others (default: ~/.smpframe/keys/job-ID)", (RUN,))
    insecure: bool = option(False, "--launcher slurm|env|ray without CURVE: any process that reaches "
                            "the port can join the run", (RUN,))
    curve_secret: str | None = option(None, "this side's CURVE secret key file (*.key_secret)",
                                      (SCHEDULER, WORKER))
    curve_allow: str | None = option(None, "folder of allowed workers' public keys", (SCHEDULER,))
    curve_server: str | None = option(None, "the scheduler's public key file (*.key)", (WORKER,))
    max_message_bytes: int = DEFAULT_MAX_BYTES
    worker_args: list[str] = field(default_factory=list)  # extra arguments for local workers

    def __post_init__(self) -> None:
        self.check()

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    # ---- checks ----------------------------------------------------------------------
    def check(self) -> None:
        """Raise InputError naming the option of the first bad value."""
        def need(ok: bool, name: str, why: str) -> None:
            if not ok:
                value = getattr(self, name)
                raise InputError(f"--{name.replace('_', '-')} {value}: {why}")

        need(self.workers is None or self.workers >= 1, "workers", "must be >= 1")
        need(self.launcher in ("local", "slurm", "env", "ray"), "launcher",
             "expected local, slurm, env or ray")
        for name in ("port", "metrics_port"):
            value = getattr(self, name)
            need(value is None or 1 <= value <= 65535, name, "must be in 1..65535")
        need(bool(_HOST.fullmatch(str(self.metrics_host))), "metrics_host",
             "expected a host name or an IP address, such as 127.0.0.1")
        need(self.fragments is None or self.fragments >= 1, "fragments", "must be >= 1")
        need(self.seed >= 0, "seed", "must be >= 0")
        need(self.read_on in ("workers", "scheduler"), "read_on", "expected workers or scheduler")
        need(self.path is None or self.path >= 2, "path", "must be >= 2 (lambdas on the path)")
        need(self.cv >= 2, "cv", "must be >= 2 (folds)")
        need(self.max_rounds is None or self.max_rounds >= 1, "max_rounds", "must be >= 1")
        need(self.time_limit is None or 0 < self.time_limit < math.inf, "time_limit",
             "must be a finite number > 0")
        need(self.pipeline_depth >= 0, "pipeline_depth", "must be >= 0")
        need(self.dispatch_v >= 0 and math.isfinite(self.dispatch_v), "dispatch_v",
             "must be a finite number >= 0")
        for name in ("heartbeat_timeout", "start_timeout", "slowdown"):
            value = getattr(self, name)
            need(value > 0 and math.isfinite(value), name, "must be a finite number > 0")
        for name in ("heartbeat_interval", "scheduler_timeout"):
            value = getattr(self, name)
            need(value is None or (value > 0 and math.isfinite(value)), name, "must be > 0")
        need(self.slowdown >= 1.0, "slowdown", "must be >= 1")
        if self.slowdowns is not None:
            need(all(s >= 1.0 and math.isfinite(s) for s in self.slowdowns), "slowdowns",
                 "every factor must be >= 1")
            need(len(self.slowdowns) == self.n_workers, "slowdowns",
                 f"has {len(self.slowdowns)} values for {self.n_workers} workers")
        need(self.devices is None or len(self.devices) >= 1, "devices", "names no device")
        for device in [*(self.devices or []), self.device]:
            parse_device(device)  # the spelling only: whether the GPU is there is checked at start
        self.checkpoint_schedule()
        need(not self.checkpoint_every or self.output is not None, "checkpoint_every",
             "needs --output (the folder checkpoints go to)")
        need(self.curve_allow is None or self.curve_secret is not None, "curve_allow",
             "needs --curve-secret (without it the scheduler would run in plaintext)")
        need(self.curve_server is None or self.curve_secret is not None, "curve_server",
             "needs --curve-secret")
        need(str(self.log_level).upper() in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
             "log_level", "expected DEBUG, INFO, WARNING or ERROR")
        if self.max_memory is not None:
            try:
                budget.parse_size(self.max_memory)
            except ValueError as exc:
                need(False, "max_memory", str(exc))
        for name in ("bind", "connect"):
            value = getattr(self, name)
            need(value is None or (isinstance(value, str) and "://" in value), name,
                 "expected an address such as tcp://127.0.0.1:5555")

    def check_security(self, side: str) -> None:
        """CURVE needs both halves of a side's keys, or neither (no silent plaintext)."""
        other = {SCHEDULER: ("curve_allow", "--curve-allow", "the folder of allowed worker keys"),
                 WORKER: ("curve_server", "--curve-server", "the scheduler's public key")}[side]
        if self.curve_secret is not None and getattr(self, other[0]) is None:
            raise InputError(f"--curve-secret needs {other[1]} ({other[2]})")

    def memory_budget(self) -> int | None:
        """``--max-memory`` in bytes (None: the readers' default)."""
        return None if self.max_memory is None else budget.parse_size(self.max_memory)

    def checkpoint_schedule(self) -> tuple[str, float] | None:
        """``--checkpoint-every`` as ("rounds", N) or ("seconds", S); None when off."""
        every = self.checkpoint_every
        if not every:
            return None
        try:
            if every.endswith("s"):
                seconds = float(every[:-1])
                if seconds > 0 and math.isfinite(seconds):
                    return "seconds", seconds
            elif int(every) >= 1:
                return "rounds", int(every)
        except ValueError:
            pass
        raise InputError(f"--checkpoint-every {every}: expected N (rounds >= 1) or Ns (seconds)")

    # ---- derived values: the policy in one place ---------------------------------------
    @property
    def n_workers(self) -> int:
        """Workers in the run: one per listed device, else ``workers``."""
        if self.devices:
            return len(self.devices)
        if self.workers is not None:
            return self.workers
        from smpframe.launch.launchers import default_workers  # reads the launcher's environment
        return default_workers(self.launcher)

    def worker_heartbeat_interval(self) -> float:
        """How often workers beat: often enough for several beats per timeout."""
        if self.heartbeat_interval is not None:
            return self.heartbeat_interval
        return min(0.5, self.heartbeat_timeout / 5)

    def worker_scheduler_timeout(self) -> float:
        """How long a worker waits for a silent scheduler before it exits."""
        if self.scheduler_timeout is not None:
            return self.scheduler_timeout
        return max(30.0, 3 * self.heartbeat_timeout)

    def scheduler_bind(self, local: bool) -> str:
        """Where the scheduler listens on TCP: ``bind``, else loopback (a free port for local
        runs, which use a Unix socket where they can: see ``scheduler.server.Endpoint``)."""
        if self.bind is not None:
            return self.bind
        return "tcp://127.0.0.1:0" if local else f"tcp://127.0.0.1:{DEFAULT_PORT}"


def cli_fields(command: str) -> list[dataclasses.Field]:
    """The config fields that are options of ``command`` (run, scheduler or worker)."""
    return [f for f in dataclasses.fields(RunConfig) if command in f.metadata.get("commands", ())]
