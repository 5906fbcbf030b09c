"""Running the ``smpframe`` command in tests, and checking its one-line errors."""
from __future__ import annotations

import subprocess
import sys

SMPFRAME = [sys.executable, "-m", "smpframe.cli"]
TIMEOUT = 120


def run_cli(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``smpframe ARGS...`` to completion (bounded by ``timeout``)."""
    return subprocess.run([*SMPFRAME, *args], capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """Assert the command failed as bad input should (exit 2, one line, no traceback)."""
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]
