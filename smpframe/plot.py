"""Pictures of a finished run: ``smpframe plot RUN_DIR``.

Reads a run's ``--output`` folder (metrics.jsonl, events.jsonl, result.json) and writes
two PNGs beside them:

- ``objective.png``: every figure the program reported (objective, gap, inertia,
  ll_per_token, rmse, ...) against solve time and against rounds, on a log scale
  where positive values span two decades or more (a duality gap);
- ``timeline.png``: a lane per worker (when it joined, when it was lost and why,
  fragments moved to and from it, rounds redispatched to it) over the fragments each
  worker held, so stragglers and rebalancing can be seen.

matplotlib (``pip install 'smpframe[plot]'``) is imported only here, drawing with Agg.
"""
from __future__ import annotations

import io
import json
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smpframe.errors import InputError
from smpframe.scheduler.outputs import atomic_write_bytes

METRICS, EVENTS, RESULT = "metrics.jsonl", "events.jsonl", "result.json"
PROGRESS_PNG, TIMELINE_PNG = "objective.png", "timeline.png"
#: the runtime's own keys of a progress line; the rest are the program's figures
RUNTIME_KEYS = ("round", "elapsed", "rounds_per_s", "workers")
#: run-wide events drawn as vertical lines across the timeline
PHASES = ("read", "describe", "load", "started", "ready", "time_limit", "finished")
#: at most this many of the program's figures are drawn (in the order first reported)
MAX_FIGURES = 8


@dataclass
class Run:
    """What a run folder holds, read and checked."""

    folder: Path
    result: dict[str, Any]
    metrics: list[dict[str, Any]]
    events: list[dict[str, Any]]


def plot_run(folder: str | Path) -> list[Path]:
    """Draw ``folder``'s pictures into it; return their paths. Bad input is an InputError."""
    run = read_run(folder)
    canvas = _canvas()
    return [_save(canvas, draw_progress(run), run.folder / PROGRESS_PNG),
            _save(canvas, draw_timeline(run), run.folder / TIMELINE_PNG)]


# ---- reading ---------------------------------------------------------------------------

def read_run(folder: str | Path) -> Run:
    """The run in ``folder``: an InputError names the missing file or the bad line."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("no such run folder", path=str(root))
    try:
        result = json.loads(_read(root / RESULT))
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg}", path=str(root / RESULT), line=exc.lineno) from None
    if not isinstance(result, dict):
        raise InputError("expected a JSON object", path=str(root / RESULT))
    metrics = _read_lines(root / METRICS, {"round": numbers.Real, "elapsed": numbers.Real})
    if not metrics:
        raise InputError("no progress lines: nothing to plot", path=str(root / METRICS))
    events = _read_lines(root / EVENTS, {"event": str, "t": numbers.Real})
    return Run(root, result, metrics, events)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError("missing (is this a run's --output folder?)", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=str(path)) from None


def _read_lines(path: Path, fields: dict[str, type]) -> list[dict[str, Any]]:
    """A JSON-lines file whose every line is an object with ``fields`` of those types."""
    records = []
    for number, text in enumerate(_read(path).splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON: {exc.msg}", path=str(path), line=number) from None
        if not isinstance(record, dict) or not all(
                isinstance(record.get(k), t) and not isinstance(record.get(k), bool)
                for k, t in fields.items()):
            raise InputError(f"expected an object with {', '.join(fields)}", path=str(path),
                             line=number)
        records.append(record)
    return records


# ---- drawing ---------------------------------------------------------------------------

def program_figures(metrics: list[dict[str, Any]]) -> list[str]:
    """The program's numeric figures in the order first reported; constants (a λ: the
    same value on every line, of two or more) are left out when anything else is there."""
    names: list[str] = []
    for line in metrics:
        names += [k for k, v in line.items() if k not in RUNTIME_KEYS and k not in names
                  and _is_number(v)]

    def constant(name: str) -> bool:
        values = [line[name] for line in metrics if name in line]
        return len(values) > 1 and len(set(values)) == 1

    varying = [k for k in names if not constant(k)]
    return (varying or names)[:MAX_FIGURES] or ["rounds_per_s"]


def draw_progress(run: Run) -> Any:
    """Each figure against solve seconds (left) and rounds (right)."""
    from matplotlib.figure import Figure

    names = program_figures(run.metrics)
    fig = Figure(figsize=(11, 1.2 + 2.4 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), 2, squeeze=False)
    for row, name in zip(axes, names):
        points = [(m["elapsed"], m["round"], m[name]) for m in run.metrics if _is_number(m.get(name))]
        for ax, x, label in ((row[0], 0, "solve seconds"), (row[1], 1, "rounds")):
            ax.plot([p[x] for p in points], [p[2] for p in points], marker="o", markersize=3)
            ax.set_xlabel(label)
            ax.set_ylabel(name)
            ax.grid(True, alpha=0.3)
            if _log_scale([p[2] for p in points]):
                ax.set_yscale("log")
    fig.suptitle(_title(run.result))
    return fig


def draw_timeline(run: Run) -> Any:
    """Worker lanes with their events (top) over the fragments each one held (bottom)."""
    from matplotlib.figure import Figure

    workers = _workers(run.events)
    end = max([e["t"] for e in run.events], default=0.0)
    fig = Figure(figsize=(11, 4.5 + 0.45 * len(workers)), layout="constrained")
    lanes, held = fig.subplots(2, 1, sharex=True,
                               gridspec_kw={"height_ratios": [max(len(workers), 1), 3]})
    timeline = _Lanes(lanes, workers)
    for event in run.events:
        timeline.mark(event)
        if event["event"] in PHASES:
            for ax in (lanes, held):
                ax.axvline(event["t"], color="gray", linestyle=":", linewidth=1)
            lanes.annotate(event["event"], (event["t"], 1.0), xycoords=("data", "axes fraction"),
                           xytext=(2, -2), textcoords="offset points", color="gray", fontsize=8,
                           rotation=90, va="top")
    timeline.close(end)
    _stack(held, timeline.counts, end)
    lanes.set_yticks(range(len(workers)), [_short(w) for w in workers])
    lanes.set_ylim(-0.7, max(len(workers), 1) - 0.3)
    lanes.invert_yaxis()
    lanes.set_title("workers: joined (>), lost (X), fragments gained/given up (^/v), "
                    "rounds redone (o)", fontsize=9)
    held.set_ylabel("fragments held (stacked)")
    held.set_xlabel("seconds since the scheduler started")
    held.grid(True, alpha=0.3)
    if workers:
        held.legend(fontsize=8, loc="best")
    fig.suptitle(_title(run.result))
    return fig


class _Lanes:
    """One lane per worker: its time in the run and the marks of its events, in order;
    ``counts`` collects each worker's fragments held over time."""

    def __init__(self, ax: Any, workers: list[str]) -> None:
        self.ax = ax
        self.lane = {w: i for i, w in enumerate(workers)}
        self.owners: dict[str, list[int]] = {}  # the placement after the last "assigned"
        self.counts: dict[str, list[tuple[float, int]]] = {w: [(0.0, 0)] for w in workers}
        self.joined_at: dict[str, float] = {}

    def mark(self, event: dict[str, Any]) -> None:
        t, kind, worker = event["t"], event["event"], event.get("worker")
        if kind == "joined" and worker in self.lane:
            self.joined_at[worker] = t
            self._point(t, worker, ">", "tab:green", 9)
        elif kind == "worker_lost" and worker in self.lane:
            self._span(worker, self.joined_at.pop(worker, 0.0), t)
            self._point(t, worker, "X", "tab:red", 10, f"lost: {str(event.get('reason', '?'))[:48]}")
            self.owners.pop(worker, None)
            self.counts[worker].append((t, 0))
        elif kind == "assigned" and isinstance(event.get("owners"), dict):
            new = {str(w): list(f) for w, f in event["owners"].items() if isinstance(f, list)}
            for w in self.lane:
                change = len(new.get(w, [])) - len(self.owners.get(w, []))
                if change:
                    self.counts[w].append((t, len(new.get(w, []))))
                    self._point(t, w, "^" if change > 0 else "v", "tab:purple", 7)
            self.owners = new
        elif kind == "redispatch":
            redone = set(event.get("fragments") or [])
            for w, frags in self.owners.items():
                if w in self.lane and redone & set(frags):
                    self._point(t, w, "o", "tab:orange", 7, f"redo r{event.get('round', '?')}")

    def close(self, end: float) -> None:
        """The lanes of the workers still in the run at its end."""
        for worker, start in self.joined_at.items():
            self._span(worker, start, end)

    def _span(self, worker: str, start: float, stop: float) -> None:
        y = self.lane[worker]
        self.ax.broken_barh([(start, stop - start)], (y - 0.2, 0.4), color="tab:blue", alpha=0.35)

    def _point(self, t: float, worker: str, marker: str, color: str, size: int,
               note: str | None = None) -> None:
        y = self.lane[worker]
        self.ax.plot([t], [y], marker=marker, color=color, markersize=size)
        if note:
            self.ax.annotate(note, (t, y), xytext=(6, 6), textcoords="offset points", color=color,
                             fontsize=8)


def _stack(ax: Any, counts: dict[str, list[tuple[float, int]]], end: float) -> None:
    """Each worker's fragments over time, stacked: the shares and how they move."""
    times = sorted({t for steps in counts.values() for t, _ in steps} | {end})
    base = [0] * len(times)
    for worker, steps in counts.items():
        held, i = [], 0
        for t in times:
            while i + 1 < len(steps) and steps[i + 1][0] <= t:
                i += 1
            held.append(steps[i][1])
        top = [b + h for b, h in zip(base, held)]
        ax.fill_between(times, base, top, step="post", alpha=0.6, label=_short(worker))
        base = top


def _workers(events: list[dict[str, Any]]) -> list[str]:
    """Every worker named by an event, in the order they first appear."""
    seen: dict[str, None] = {}
    for e in events:
        if isinstance(e.get("worker"), str):
            seen.setdefault(e["worker"])
        for w in (e.get("owners") or {}) if isinstance(e.get("owners"), dict) else ():
            seen.setdefault(str(w))
    return list(seen)


def _title(result: dict[str, Any]) -> str:
    parts = [str(result.get("app", "run"))]
    if _is_number(result.get("rounds")):
        parts.append(f"{result['rounds']} rounds")
    if _is_number(result.get("seconds")):
        parts.append(f"{result['seconds']:.3g} s solve")
    if "converged" in result:
        parts.append("converged" if result["converged"] else "not converged")
    return ", ".join(parts)


def _short(worker: str, width: int = 24) -> str:
    return worker if len(worker) <= width else worker[:width - 1] + "…"


def _log_scale(values: list[float]) -> bool:
    """Positive values spanning two decades or more (a gap that falls to 1e-6)."""
    return bool(values) and min(values) > 0 and max(values) >= 100 * min(values)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _canvas() -> type:
    """matplotlib's Agg canvas class; a one-line InputError when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        raise InputError("smpframe plot needs matplotlib: pip install 'smpframe[plot]'") from None
    return FigureCanvasAgg


def _save(canvas: type, fig: Any, path: Path) -> Path:
    canvas(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
    return path
