"""The memory a reader may commit to what a file claims, checked before allocating.

A 4 KB file can claim a billion rows; readers compare such claims against the file's
size where they can, and against this budget always, so that a bad file is one line
naming it, not a MemoryError. The budget is half of this machine's memory unless the
run says otherwise (``--max-memory``).
"""
from __future__ import annotations

import os
import re
import resource
import time
from pathlib import Path

from smpframe.errors import InputError

#: what one feature of a linear model costs the scheduler: a dozen or so d-long vectors
BYTES_PER_FEATURE = 128
#: what one token of a topic model costs: its word, topic, document and position
BYTES_PER_TOKEN = 32

_limit: int | None = None
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"8G"`` -> bytes (K, M, G, T suffixes, powers of 1024); ValueError if not a size."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"expected a size such as 512M or 8G, got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def machine_memory() -> int:
    """Physical memory in bytes (Linux/macOS), or 8 GiB where the system will not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def set_limit(nbytes: int | None) -> None:
    """The budget for this process's readers (None: half of the machine's memory)."""
    global _limit
    _limit = nbytes


def limit() -> int:
    return _limit if _limit is not None else machine_memory() // 2


def human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes} B"


def check(nbytes: float, claim: str, path: str | Path | None) -> None:
    """Raise InputError when ``claim`` (what the file says) needs more than the budget."""
    if nbytes > limit():
        raise InputError(f"{claim} would need {human(nbytes)}, more than the memory budget of "
                         f"{human(limit())} (raise it with --max-memory)", path)


_peak = {"mb": 0.0, "at": -1.0}


def peak_memory_mb() -> float:
    """This process's peak resident memory in MB, read at most every half second (a system
    call per round shows in an empty round's cost). Linux: VmHWM, this program's own peak
    (ru_maxrss would include the peak of the process that forked it)."""
    now = time.monotonic()
    if now - _peak["at"] >= 0.5:
        _peak.update(mb=round(_high_water_kib() / 1024.0, 1), at=now)
    return _peak["mb"]


def _high_water_kib() -> float:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
