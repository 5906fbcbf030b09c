"""Shared fixtures: every test that starts processes must leave none behind."""
from __future__ import annotations

import os
import time

from tests import procs
import pytest


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Fail a test that leaves child processes (workers) running."""
    before = set(procs.children(os.getpid()))
    yield
    deadline = time.monotonic() + 10
    left = set(procs.children(os.getpid())) - before
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = set(procs.children(os.getpid())) - before
    for pid in left:
        procs.kill(pid)
    assert not left, f"processes left behind: {sorted(left)}"
