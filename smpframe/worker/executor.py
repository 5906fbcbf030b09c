"""Applying one WORK message to a worker's fragments: pure, no sockets.

Order matters and is part of the protocol: committed updates (to the worker, then to
each fragment already held), drops, loads (built from a snapshot taken at the same
commit), then tasks. A program method that raises is reported, never fatal: the
reply is a FAILED message naming the method, the exception and the fragment.
"""
from __future__ import annotations

import resource
import time
import traceback
from typing import Any, Callable

from smpframe.api import Fragment, SMPProgram, WorkerContext
from smpframe.errors import ProtocolError
from smpframe.protocol import Message


class UserCodeFailed(Exception):
    """A program method raised; ``reason`` is the one line the scheduler reports."""

    def __init__(self, reason: str, details: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


def call(method: str, fn: Callable[..., Any], *args: Any, fragment: int | None = None) -> Any:
    """Run one program method; its exception becomes :class:`UserCodeFailed`."""
    try:
        return fn(*args)
    except Exception as exc:
        where = "" if fragment is None else f" (fragment {fragment})"
        raise UserCodeFailed(f"{method} raised {type(exc).__name__}: {exc}{where}",
                             traceback.format_exc()) from exc


def failed(round_: int, error: UserCodeFailed) -> Message:
    """The FAILED reply for a program error."""
    return Message("FAILED", round=round_, body={"reason": error.reason,
                                                 "traceback": error.details})


def _check_work(body: dict[str, Any]) -> None:
    """Raise ProtocolError unless ``body`` has the shape the scheduler sends."""
    lists = ("commits", "drop", "load")
    if not all(isinstance(body.get(k), list) for k in lists) or not isinstance(body.get("blocks"), dict) \
            or not (isinstance(body.get("tasks"), list) or body.get("tasks") == "*"):
        raise ProtocolError("malformed WORK message")
    for item in body["load"]:
        if not (isinstance(item, dict) and {"id", "start", "stop", "data", "model"} <= set(item)):
            raise ProtocolError("malformed fragment in WORK message")


def execute(program: SMPProgram, wctx: WorkerContext, msg: Message,
            slowdown: float = 1.0) -> Message | None:
    """Apply ``msg`` and return the reply: RESULT, a load ack, FAILED, or None."""
    body = msg.body
    _check_work(body)
    try:
        for update in body["commits"]:
            if update:
                call("sync_worker", program.sync_worker, wctx, update)
                for frag in list(wctx.fragments.values()):
                    call("sync", program.sync, wctx, frag, update, fragment=frag.id)
        for frag_id in body["drop"]:
            wctx.fragments.pop(frag_id, None)
        for item in body["load"]:
            frag = Fragment(int(item["id"]), int(item["start"]), int(item["stop"]))
            frag.state = call("load", program.load, wctx, frag, item["data"], item["model"],
                              fragment=frag.id)
            wctx.fragments[frag.id] = frag
        tasks = sorted(wctx.fragments) if body["tasks"] == "*" else body["tasks"]
        if not tasks:
            loaded = [int(item["id"]) for item in body["load"]]
            return Message("RESULT", round=-1, body={"loaded": loaded}) if loaded else None
        blocks = body["blocks"]
        started = time.perf_counter()
        partials: dict[str, Any] = {}
        for frag_id in tasks:
            block = blocks["*"] if "*" in blocks else blocks[str(frag_id)]
            frag = wctx.fragments[frag_id]
            result = call("push", program.push, wctx, frag, block, fragment=frag_id)
            if not isinstance(result, dict):
                raise UserCodeFailed(f"push returned {type(result).__name__}, not a dict "
                                     f"(fragment {frag_id})", "")
            partials[str(frag_id)] = result
        seconds = time.perf_counter() - started
        if slowdown > 1.0:  # the straggler switch: stretch compute time by the factor
            time.sleep(seconds * (slowdown - 1.0))
            seconds *= slowdown
    except UserCodeFailed as exc:
        return failed(msg.round, exc)
    return Message("RESULT", round=msg.round, body={"partials": partials, "seconds": seconds,
                                                    "peak_mb": peak_memory_mb()})


_peak = {"mb": 0.0, "at": -1.0}


def peak_memory_mb() -> float:
    """This process's peak resident memory (Linux ru_maxrss is in KiB), read at most
    every half second: a system call per round shows in an empty round's cost."""
    now = time.monotonic()
    if now - _peak["at"] >= 0.5:
        _peak.update(mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1), at=now)
    return _peak["mb"]
