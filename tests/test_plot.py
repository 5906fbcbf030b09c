"""``smpframe plot RUN_DIR``: pictures of real runs of every built-in app, and one-line
errors (exit 2) for folders that are not runs."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from smpframe import Cluster, run_local
from smpframe.apps.kmeans import KMeans
from smpframe.apps.lasso import Lasso
from smpframe.apps.lda import LDA
from smpframe.apps.logreg import LogReg
from smpframe.apps.mf import MatrixFactorization
from smpframe.cli import main
from smpframe.plot import PROGRESS_PNG, TIMELINE_PNG, program_figures
from tests.clitools import SMPFRAME, TIMEOUT, one_line_error, run_cli

pytest.importorskip("matplotlib")

TINY = {
    "lasso": Lasso(synthetic={"n": 300, "d": 200}),
    "logreg": LogReg(synthetic={"n": 300, "d": 200, "density": 0.05}),
    "mf": MatrixFactorization(rank=3, epochs=5, synthetic={"n_users": 40, "n_items": 60,
                                                           "n_ratings": 800}),
    "lda": LDA(topics=4, iterations=5, synthetic={"n_docs": 60, "n_words": 120, "n_topics": 4,
                                                  "doc_length": 20.0}),
    "kmeans": KMeans(k=4, iterations=10, synthetic={"n": 2000, "centers": 4}),
}


def png_size(path) -> tuple[int, int]:
    """(width, height) of a PNG file, after checking its signature and header chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def check_pictures(folder) -> None:
    for name in (PROGRESS_PNG, TIMELINE_PNG):
        path = folder / name
        width, height = png_size(path)
        assert width >= 600 and height >= 300 and path.stat().st_size > 10_000, (path, width, height)
        from PIL import Image
        with Image.open(path) as image:
            image.verify()  # the whole stream decodes


def test_every_app_run_is_plotted(tmp_path, capsys):
    with Cluster(workers=2):  # one set of workers for the five runs
        for app, program in TINY.items():
            run_local(program, output=str(tmp_path / app), quiet=True)
    for app in TINY:
        folder = tmp_path / app
        assert main(["plot", str(folder)]) == 0
        printed = capsys.readouterr().out.split()
        assert printed == [str(folder / PROGRESS_PNG), str(folder / TIMELINE_PNG)]
        check_pictures(folder)


def test_a_run_with_a_lost_worker_and_rebalancing_is_plotted(tmp_path):
    """The timeline's every mark (joins, a loss, moves, a redispatch), from a run's files."""
    run_local(Lasso(synthetic={"n": 300, "d": 200}), output=str(tmp_path), quiet=True)
    events = [
        {"event": "joined", "t": 0.1, "worker": "a", "device": "cpu"},
        {"event": "joined", "t": 0.2, "worker": "b", "device": "cpu"},
        {"event": "started", "t": 0.2, "workers": ["a", "b"]},
        {"event": "assigned", "t": 0.2, "moved": 4, "owners": {"a": [0, 1], "b": [2, 3]}},
        {"event": "ready", "t": 0.5},
        {"event": "assigned", "t": 1.0, "moved": 1, "owners": {"a": [0, 1, 2], "b": [3]}},
        {"event": "worker_lost", "t": 2.0, "worker": "b", "reason": "heartbeat timeout",
         "fragments": [3]},
        {"event": "assigned", "t": 2.0, "moved": 1, "owners": {"a": [0, 1, 2, 3]}},
        {"event": "redispatch", "t": 2.0, "round": 7, "fragments": [3]},
        {"event": "joined", "t": 2.5, "worker": "c", "device": "cpu"},
        {"event": "finished", "t": 3.0, "rounds": 9, "error": None},
    ]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    assert main(["plot", str(tmp_path)]) == 0
    check_pictures(tmp_path)


def test_figures_are_the_programs_and_constants_are_left_out():
    lines = [{"round": 1, "elapsed": 0.1, "rounds_per_s": 9, "workers": 2, "objective": 3.0,
              "lam": 0.1, "phase": "x"},
             {"round": 2, "elapsed": 0.2, "rounds_per_s": 9, "workers": 2, "objective": 2.0,
              "lam": 0.1, "gap": 1e-3}]
    assert program_figures(lines) == ["objective", "gap"]
    assert program_figures(lines[:1]) == ["objective", "lam"]  # one line: nothing is constant
    assert program_figures([{**lines[0], "objective": 1.0}, {**lines[0], "objective": 1.0}]) \
        == ["objective", "lam"]  # only constants: draw them all the same
    assert program_figures([{"round": 1, "elapsed": 0.1}]) == ["rounds_per_s"]


@pytest.fixture
def run_folder(tmp_path):
    """A folder that looks like a finished run's (what --output writes)."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps({"app": "lasso", "rounds": 2}))
    (folder / "metrics.jsonl").write_text(
        '{"round": 1, "elapsed": 0.1, "objective": 2.0}\n{"round": 2, "elapsed": 0.2, "objective": 1.0}\n')
    (folder / "events.jsonl").write_text('{"event": "joined", "t": 0.0, "worker": "w"}\n')
    return folder


def one_line_from_main(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize("damage, named", [
    (lambda f: (f / "metrics.jsonl").unlink(), "metrics.jsonl: missing"),
    (lambda f: (f / "events.jsonl").unlink(), "events.jsonl: missing"),
    (lambda f: (f / "result.json").unlink(), "result.json: missing"),
    (lambda f: (f / "metrics.jsonl").write_text(""), "metrics.jsonl: no progress lines"),
    (lambda f: (f / "metrics.jsonl").write_text('{"round": 1, "elapsed": 0.1}\n{"round": 2, "ela\n'),
     "metrics.jsonl:2: not JSON"),
    (lambda f: (f / "metrics.jsonl").write_text('{"round": 1, "elapsed": 0.1}\n\n[1, 2]\n'),
     "metrics.jsonl:3: expected an object"),
    (lambda f: (f / "metrics.jsonl").write_text('{"round": "one", "elapsed": 0.1}\n'),
     "metrics.jsonl:1: expected an object with round, elapsed"),
    (lambda f: (f / "events.jsonl").write_text('{"event": "joined", "t": 0}\n{"t": 1}\n'),
     "events.jsonl:2: expected an object with event, t"),
    (lambda f: (f / "result.json").write_text("{\n  oops\n"), "result.json:2: not JSON"),
    (lambda f: (f / "result.json").write_text("[]"), "result.json: expected a JSON object"),
])
def test_a_bad_run_folder_is_one_line_naming_the_file_and_line(run_folder, capsys, damage, named):
    assert main(["plot", str(run_folder)]) == 0  # the undamaged folder plots
    capsys.readouterr()
    damage(run_folder)
    line = one_line_from_main(["plot", str(run_folder)], capsys)
    assert f"{run_folder / named}" in line


def test_the_command_refuses_a_missing_folder(tmp_path):
    line = one_line_error(run_cli("plot", str(tmp_path / "nope")))
    assert f"{tmp_path / 'nope'}: no such run folder" in line


def test_without_matplotlib_the_error_says_how_to_install_it(run_folder):
    code = ("import sys; sys.modules['matplotlib'] = None; from smpframe.cli import main; "
            f"sys.exit(main(['plot', {str(run_folder)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT)
    line = one_line_error(proc)
    assert "needs matplotlib" in line and "smpframe[plot]" in line
    assert not (run_folder / PROGRESS_PNG).exists()


def test_plot_is_a_command():
    proc = subprocess.run([*SMPFRAME, "plot", "--help"], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0 and "RUN_DIR" in proc.stdout
