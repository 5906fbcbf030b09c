"""Shared helpers for the hand-run benchmarks: timing, machine facts, JSON and markdown output.

Every benchmark takes ``--out FILE.json`` and prints its figures as markdown table rows;
with ``--out`` it also draws them (:func:`bar_chart`) into ``FILE.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares (``--out``, ``--repeats``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", help="write the figures to this JSON file")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed repetitions per method; the best (minimum) time is reported")
    return p


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[Any, float, list[float]]:
    """Run ``fn`` ``repeats`` times: (last result, best seconds, all seconds)."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, min(times), times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpus": os.cpu_count()}
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (floats with 4 significant digits)."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | None, record: dict[str, Any]) -> None:
    """Write ``record`` (plus the machine facts) to ``path`` when given."""
    if not path:
        return
    record = {"machine": machine(), **record}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=2, default=_default) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def bar_chart(out: str | Path | None, title: str, bars: dict[str, dict[str, float | None]],
              unit: str = "seconds") -> Path | None:
    """Grouped horizontal bars ``{method: {figure: value}}`` (e.g. solve and whole-run
    seconds per method), written beside ``out`` as a PNG; None without ``out``."""
    if not out:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(bars)
    figures = list(dict.fromkeys(f for values in bars.values() for f in values))
    height = 0.8 / max(1, len(figures))
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.45 * len(methods) * max(1, len(figures))))
    for j, figure in enumerate(figures):
        values = [bars[m].get(figure) for m in methods]
        ys = [i + j * height for i in range(len(methods))]
        drawn = [(y, v) for y, v in zip(ys, values) if v is not None]
        ax.barh([y for y, _ in drawn], [v for _, v in drawn], height=height, label=figure)
        for y, v in drawn:
            ax.annotate(f" {v:.3g}", (v, y), va="center", fontsize=8)
    ax.set_yticks([i + height * (len(figures) - 1) / 2 for i in range(len(methods))], methods)
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.set_title(title, fontsize=10)
    if len(figures) > 1:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(out).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", file=sys.stderr)
    return path


def _default(value: Any) -> Any:
    import numpy as np
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
