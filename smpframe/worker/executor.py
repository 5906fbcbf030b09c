"""Applying one WORK message to a worker's fragments: pure, no sockets.

Order matters and is part of the protocol: committed updates (to the worker, then to
each fragment already held), drops, loads (built from a snapshot taken at the same
commit), then tasks. A program method that raises is reported, never fatal: the
reply is a FAILED message naming the method, the exception and the fragment.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from smpframe.api import Fragment, SMPProgram, WorkerContext
from smpframe.arrays import to_host
from smpframe.data import budget, splits
from smpframe.errors import InputError, ProtocolError
from smpframe.protocol import DESCRIBE, LOAD, READ, Message


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
    get = body.get
    tasks = get("tasks")
    if not (isinstance(get("commits"), list) and isinstance(get("drop"), list)
            and isinstance(get("load"), list) and isinstance(get("blocks"), dict)
            and (tasks == "*" or isinstance(tasks, list))):
        raise ProtocolError("malformed WORK message")
    for item in body["load"]:
        if not isinstance(item, dict) or type(item.get("id")) is not int:
            raise ProtocolError("malformed fragment in WORK message")
        if "split" in item:
            if not (splits.valid(item["split"]) and item.get("phase", LOAD) in (READ, DESCRIBE, LOAD)):
                raise ProtocolError("malformed split in WORK message")
        elif not {"start", "stop", "data", "model"} <= set(item):
            raise ProtocolError("malformed fragment in WORK message")
        if item.get("phase", LOAD) == LOAD and not {"start", "stop", "model"} <= set(item):
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
        facts: dict[str, Any] = {}
        phase = LOAD
        for item in body["load"]:
            phase = item.get("phase", LOAD)
            if phase != LOAD:
                facts[str(item["id"])] = _read_facts(program, wctx, item)
                continue
            frag = Fragment(int(item["id"]), int(item["start"]), int(item["stop"]))
            if "split" in item:
                wctx.meta.update(item.get("meta") or {})
                data = _split_rows(wctx, item)
                wctx.staged.pop(frag.id, None)  # the fragment's state holds what it needs
            else:
                data = item["data"]
            frag.state = call("load", program.load, wctx, frag, data, item["model"],
                              fragment=frag.id)
            wctx.fragments[frag.id] = frag
        tasks = sorted(wctx.fragments) if body["tasks"] == "*" else body["tasks"]
        if not tasks:
            loaded = [int(item["id"]) for item in body["load"]]
            if not loaded:
                return None
            reply = {"loaded": loaded, "phase": phase}
            if facts:
                reply["facts"] = facts
            return Message("RESULT", round=-1, body=reply)
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
            partials[str(frag_id)] = result if wctx.xp is np else to_host(result)
        seconds = time.perf_counter() - started
        if slowdown > 1.0:  # the straggler switch: stretch compute time by the factor
            time.sleep(seconds * (slowdown - 1.0))
            seconds *= slowdown
    except UserCodeFailed as exc:
        return failed(msg.round, exc)
    except InputError as exc:  # a split that cannot be read: the data's fault, not this worker's
        return Message("FAILED", round=msg.round, body={"reason": str(exc), "input": True})
    return Message("RESULT", "", msg.round, {"partials": partials, "seconds": seconds,
                                             "peak_mb": budget.peak_memory_mb()})


@dataclass
class Staged:
    """A split read and not yet loaded: its rows (under the file's layout once ``finished``)."""

    split: dict[str, Any]
    rows: dict[str, Any]
    facts: dict[str, Any]
    finished: bool = False


def _split_rows(wctx: WorkerContext, item: dict[str, Any]) -> dict[str, Any]:
    """A split's rows under the file's layout: read once, kept until the fragment loads."""
    staged = wctx.staged.get(item["id"])
    try:
        if staged is None or staged.split != item["split"]:
            staged = wctx.staged[item["id"]] = Staged(item["split"], *splits.read(item["split"]))
        if not staged.finished and item.get("layout") is not None:
            staged.rows, staged.finished = splits.finish(staged.split, staged.rows, item["layout"]), True
    except InputError:
        raise
    except Exception as exc:  # a layout or split the scheduler should not have sent
        raise UserCodeFailed(f"reading split {item['split']} failed: {type(exc).__name__}: {exc}",
                             traceback.format_exc()) from exc
    return staged.rows


def _read_facts(program: SMPProgram, wctx: WorkerContext, item: dict[str, Any]) -> dict[str, Any]:
    """A READ item's reader facts, or a DESCRIBE item's program facts."""
    rows = _split_rows(wctx, item)
    if item["phase"] == READ:
        return wctx.staged[item["id"]].facts
    frag = Fragment(int(item["id"]), 0, 0)
    return call("describe", program.describe, wctx, frag, rows, fragment=frag.id)
