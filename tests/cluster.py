"""A local cluster whose worker processes a test can kill, stop and inspect.

Same pieces as ``run_local`` (SchedulerServer + start_workers), with the scheduler
loop on a thread so the test keeps control while the run goes on.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from smpframe.launcher import ClusterOptions, start_workers, stop_workers
from smpframe.programs import program_spec
from smpframe.servers.server import SchedulerServer, ServerOptions
from smpframe.servers.state import SchedulerConfig


class ThreadedCluster:
    """``with ThreadedCluster(program, data, n_workers=3) as c: ...; c.result``."""

    def __init__(self, program, data: Any = None, n_workers: int = 2, timeout: float = 50.0,
                 config: SchedulerConfig | None = None, cluster: ClusterOptions | None = None,
                 **server_options: Any) -> None:
        self.config = config or SchedulerConfig(heartbeat_timeout=1.5)
        self.config.min_workers = n_workers
        self.cluster = cluster or ClusterOptions(n_workers=n_workers, heartbeat_interval=0.25,
                                                 scheduler_timeout=10.0)
        options = ServerOptions(progress=None, **server_options)
        self.server = SchedulerServer(program, program_spec(type(program)), data, self.config, options)
        self.timeout = timeout
        self.result = None
        self.error: BaseException | None = None
        self.procs = []

    def __enter__(self) -> "ThreadedCluster":
        self.procs = start_workers(self.server.address, self.cluster)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self) -> None:
        try:
            self.result = self.server.run()
        except BaseException as exc:  # surfaced by wait()
            self.error = exc

    def wait_for_round(self, n: int, timeout: float = 30.0) -> None:
        """Block until the scheduler has committed ``n`` rounds."""
        deadline = time.monotonic() + timeout
        while self.server.ctx.round < n:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError(f"round {n} not reached (at {self.server.ctx.round})")
            time.sleep(0.005)

    def wait(self):
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
