"""Applying one WORK message to a worker's fragments: pure, no sockets.

Order matters and is part of the protocol: committed updates (to fragments already
held), drops, loads (built from a snapshot taken at the same commit), then tasks.
"""
from __future__ import annotations

import resource
import time
import traceback
from typing import Any

from smpframe.arrays import to_host
from smpframe.program import SMPProgram, WorkerContext, unpack_arrays
from smpframe.protocol import Message, pack_payloads, unpack_payloads


def execute(program: SMPProgram, wctx: WorkerContext, msg: Message,
            slowdown: float = 1.0) -> Message | None:
    """Apply ``msg`` and return the reply: RESULT, a load ack, FAILED, or None."""
    try:
        payloads = unpack_payloads(msg.body["payloads"], msg.arrays)
        for seq in msg.body["commits"]:
            update = payloads[f"c{seq}"]
            if update:
                for frag in list(wctx.fragments):
                    program.sync(wctx, frag, update)
        for frag in msg.body["drop"]:
            wctx.fragments.pop(frag, None)
        for frag in msg.body["load"]:
            program.load(wctx, frag, unpack_arrays(payloads[f"d{frag}"]), payloads[f"s{frag}"])
        tasks = msg.body["tasks"]
        if not tasks:
            return Message("RESULT", round=-1, body={"loaded": msg.body["load"]}) \
                if msg.body["load"] else None
        started = time.perf_counter()
        partials: dict[str, dict[str, Any]] = {}
        for frag in tasks:
            block = payloads.get("b*", payloads.get(f"b{frag}"))
            result = program.push(wctx, frag, block)
            partials[str(frag)] = {k: to_host(v) for k, v in result.items()}
        seconds = time.perf_counter() - started
        if slowdown > 1.0:  # the straggler switch: stretch compute time by the factor
            time.sleep(seconds * (slowdown - 1.0))
            seconds *= slowdown
    except Exception as exc:
        return Message("FAILED", round=msg.round, body={
            "reason": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    head, arrays = pack_payloads(partials)
    return Message("RESULT", round=msg.round, body={"partials": head, "seconds": seconds,
                                                    "peak_mb": peak_memory_mb()}, arrays=arrays)


def peak_memory_mb() -> float:
    """This process's peak resident memory (Linux ru_maxrss is in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
