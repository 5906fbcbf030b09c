"""What a running job shows on stderr: a live bar on a terminal, plain lines elsewhere.

On a terminal the bar (tqdm) shows the rounds committed, their rate and the app's
figures; with a known total (``--max-rounds``, or :meth:`SMPProgram.expected_rounds`)
also a percentage and an ETA. Anywhere else (a pipe, a log file) a line every
progress interval, as before. ``--quiet`` shows nothing. The socket loop calls
:meth:`Progress.show` at most every :data:`REFRESH` seconds, so the display never
slows the rounds.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

import numpy as np

BAR, LINES, OFF = "bar", "lines", "off"
#: seconds between refreshes of the bar (and looks at the live figures)
REFRESH = 0.2
#: a bar of fixed width, so the figures after it (cut at the terminal's edge) never squeeze it
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class Progress:
    """One run's progress display in one of three modes: ``bar``, ``lines`` or ``off``."""

    def __init__(self, name: str, mode: str, stream: TextIO) -> None:
        self.name, self.mode, self.stream = name, mode, stream
        self._bar: Any = None
        self._redirect: Any = None  # log records go around the bar while it is shown

    @classmethod
    def choose(cls, name: str, quiet: bool, stream: TextIO | None = None) -> "Progress":
        """The display for ``stream`` (stderr): a bar on a terminal, else lines; off when quiet."""
        stream = sys.stderr if stream is None else stream
        return cls(name, OFF if quiet else BAR if _isatty(stream) else LINES, stream)

    def start(self, total: int | None, initial: int, started_ago: float = 0.0) -> None:
        """Open the bar at round ``initial`` of ``total``; the run's clock started
        ``started_ago`` seconds ago (its elapsed time and rate count from then)."""
        if self.mode != BAR or self._bar is not None:
            return
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self._bar = tqdm(total=total, initial=initial, desc=f"[{self.name}]", unit=" rounds",
                         file=self.stream, dynamic_ncols=True, leave=False, mininterval=0,
                         miniters=1, bar_format=None if total is None else BAR_FORMAT)
        self._bar.start_t -= started_ago  # tqdm times from its creation: from the run's start instead
        self._bar.last_print_t -= started_ago
        self._redirect = logging_redirect_tqdm()
        self._redirect.__enter__()

    def show(self, rounds: int, figures: dict[str, Any]) -> None:
        """Refresh the bar: ``rounds`` committed, ``figures`` beside them (bar mode only)."""
        bar = self._bar
        if bar is None:
            return
        bar.set_postfix_str(", ".join(f"{k}={fmt(v)}" for k, v in figures.items()), refresh=False)
        if rounds > bar.n:
            bar.update(rounds - bar.n)
        else:
            bar.refresh()  # the clock goes on while a slow round runs

    def line(self, figures: dict[str, Any], final: bool = False) -> None:
        """A progress line (lines mode), or the final one (``done ...``, every mode but off)."""
        if final:
            self.close()
        if self.mode == OFF or (self.mode == BAR and not final):
            return
        shown = "  ".join(f"{k} {fmt(v)}" for k, v in figures.items())
        print(f"[{self.name}] {'done ' if final else ''}{shown}", file=self.stream, flush=True)

    def close(self) -> None:
        """Take the bar off the terminal (the run ended, or failed)."""
        if self._bar is not None:
            self._bar.close()
            self._redirect.__exit__(None, None, None)
            self._bar = self._redirect = None


def fmt(value: Any) -> str:
    """A figure as shown: floats to 6 significant digits."""
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False
