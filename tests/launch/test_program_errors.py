"""User code that raises, on either side, ends a real run quickly with one named line.

Each case runs ``smpframe run tests/faulty_program.py:Faulty --fail-in METHOD`` on a real
local cluster (2 worker processes) and checks: exit 1, one line on stderr naming the
method and the exception, no traceback, within seconds, no process left behind.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.clitools import run_cli

PROGRAM = str(Path(__file__).parents[1] / "faulty_program.py") + ":Faulty"


def failed_run(method: str) -> str:
    """Run the program failing in ``method``; return its one error line."""
    started = time.monotonic()
    proc = run_cli("run", PROGRAM, "--fail-in", method, "--quiet", "--heartbeat-timeout", "5",
                   timeout=60)
    took = time.monotonic() - started
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert took < 30, f"took {took:.1f} s"
    return lines[0]


@pytest.mark.parametrize("method", ["init", "schedule", "pull", "snapshot"])
def test_scheduler_side_failure_stops_the_run_at_once(method):
    line = failed_run(method)
    assert f"{method} raised RuntimeError: planted failure in {method}" in line


@pytest.mark.parametrize("method", ["init_worker", "warm_up", "load", "push", "sync"])
def test_the_same_failure_on_two_workers_is_the_programs_fault(method):
    line = failed_run(method)
    assert f"{method} raised RuntimeError: planted failure in {method}" in line
    assert "failed on 2 worker(s)" in line


def test_a_push_that_returns_what_cannot_be_sent_is_named():
    line = failed_run("unencodable")
    assert "push returned a value that cannot be sent" in line and "partials/" in line
    assert "set cannot be sent" in line


def test_a_push_that_returns_no_dict_is_named():
    assert "push returned list, not a dict" in failed_run("not_a_dict")


def test_check_partial_rejections_end_the_run_on_the_second_worker():
    line = failed_run("bad_partial")
    assert "rejected: ValueError: s has shape (3,), expected (1,)" in line


def test_the_program_runs_when_nothing_fails():
    proc = run_cli("run", PROGRAM, "--quiet", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert '"rounds": 5' in proc.stdout
