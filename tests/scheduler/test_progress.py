"""Progress on stderr: a live bar on a terminal (a real pseudo-terminal here), plain lines
elsewhere, nothing with --quiet; never a line of zeros before the first commit."""
from __future__ import annotations

import fcntl
import io
import json
import os
import re
import select
import struct
import subprocess
import termios
import time

import pytest

from smpframe.scheduler.progress import BAR, LINES, OFF, Progress
from tests.clitools import SMPFRAME, TIMEOUT, run_cli

#: a progress line that says nothing: before the first commit (the old glitch)
ZEROS = re.compile(r"\b(elapsed|rounds_per_s) 0(\.0+)?(?![\d.])")


def run_on_a_terminal(*args: str, timeout: float = TIMEOUT) -> tuple[int, str, str]:
    """``smpframe ARGS`` with stderr on a pseudo-terminal (120 columns); its exit code,
    what the terminal showed and stdout."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([*SMPFRAME, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        stdout, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode, shown.decode("utf-8", "replace"), stdout.decode()


@pytest.mark.parametrize("args, total", [
    (["mf", "--epochs", "150", "--mode", "epoch"], 150),  # the program's expected_rounds (epochs)
    (["lasso", "--tol", "0", "--max-rounds", "300"], 300),  # --max-rounds
])
def test_a_terminal_gets_a_live_bar_with_rate_and_eta(args, total):
    code, shown, stdout = run_on_a_terminal("run", *args)
    assert code == 0, shown
    bars = [b for b in shown.split("\r") if "%|" in b]
    assert any(re.search(rf"\b\d+/{total} \[\d\d:\d\d<\d\d:\d\d,\s+[\d.]+ rounds/s", b) for b in bars), shown
    counts = [int(re.search(rf"(\d+)/{total}", b).group(1)) for b in bars]
    assert counts == sorted(counts) and counts[-1] > 0, counts  # it moves, forwards
    assert re.search(rf"\[{args[0]}\] done round {total}\b", shown)
    assert not ZEROS.search(shown), shown
    assert json.loads(stdout)["rounds"] == total  # stdout has the summary only


def test_a_terminal_without_a_known_total_gets_a_counter():
    code, shown, _ = run_on_a_terminal("run", "lasso", "--tol", "0", "--time-limit", "1.5")
    assert code == 0, shown
    assert re.search(r"\[lasso\]: \d+ rounds \[\d\d:\d\d,\s+[\d.]+ rounds/s", shown), shown
    assert "%|" not in shown  # no percentage, no ETA: nothing to measure them against
    assert "[lasso] done round" in shown


def test_elsewhere_plain_lines_and_never_a_line_of_zeros():
    proc = run_cli("run", "mf", "--epochs", "150", "--mode", "epoch")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "\r" not in proc.stderr and "%|" not in proc.stderr
    assert lines[-1].startswith("[mf] done round 150 ")
    for line in lines:
        assert re.match(r"\[mf\] (done )?round [1-9]\d* ", line), line
        assert not ZEROS.search(line), line


def test_quiet_shows_nothing_and_metrics_still_record(tmp_path):
    proc = run_cli("run", "mf", "--epochs", "20", "--mode", "epoch", "--quiet", "--output", str(tmp_path))
    assert proc.returncode == 0 and proc.stderr == ""
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines and all(m["round"] >= 1 and m["elapsed"] > 0 for m in lines)
    assert lines[-1]["round"] == 20  # the last line is the run's end


# ---- the display alone ------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_mode_follows_the_stream():
    assert Progress.choose("app", False, Terminal()).mode == BAR
    assert Progress.choose("app", False, io.StringIO()).mode == LINES
    assert Progress.choose("app", True, Terminal()).mode == OFF


def test_the_bar_counts_from_the_runs_start_and_gives_way_to_the_final_line():
    screen = Terminal()
    progress = Progress("app", BAR, screen)
    progress.start(10, 0, started_ago=2.0)
    progress.show(5, {"objective": 0.123456789, "workers": 2})
    progress.line({"round": 5}, final=False)  # lines are for other streams
    progress.line({"round": 10, "objective": 0.5}, final=True)
    text = screen.getvalue()
    assert re.search(r"\[app\]  50%\|#*\s*\| 5/10 \[00:02<00:02,\s+2\.\d+ rounds/s, objective=0\.123457, workers=2\]",
                     text), text
    assert text.endswith("[app] done round 10  objective 0.5\n")
    assert "[app] round 5" not in text


def test_lines_and_off():
    stream = io.StringIO()
    Progress("app", LINES, stream).line({"round": 3, "gap": 1e-7})
    assert stream.getvalue() == "[app] round 3  gap 1e-07\n"
    quiet = io.StringIO()
    progress = Progress("app", OFF, quiet)
    progress.start(10, 0)
    progress.show(3, {})
    progress.line({"round": 3}, final=True)
    assert quiet.getvalue() == ""
