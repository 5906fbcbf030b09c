"""Shared by the estimator tests: one warm cluster per module, a deadline per test."""
from __future__ import annotations

import signal
from typing import Iterator

import pytest

from smpframe import Cluster

#: seconds any one test may take (a hang raises TimeoutError in the test)
DEADLINE = 180


@pytest.fixture(scope="module")
def warm_cluster() -> Iterator[Cluster]:
    """A 2-worker cluster open for the module: estimators with ``n_workers=2`` run on it."""
    with Cluster(workers=2, quiet=True) as cluster:
        yield cluster
    assert all(proc.poll() is not None for proc in cluster.procs), "a worker outlived its cluster"


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail a test that blocks for more than DEADLINE seconds."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"the test took more than {DEADLINE} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(DEADLINE)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
