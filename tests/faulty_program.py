"""A user program that fails where it is told to (``--fail-in METHOD``), for error tests."""
from __future__ import annotations

import time
from typing import Literal

import numpy as np

from smpframe import Dataset, SMPProgram, sum_partials

Method = Literal["none", "init", "schedule", "pull", "snapshot", "init_worker", "warm_up", "load",
                 "push", "sync", "unencodable", "not_a_dict", "bad_partial"]


class Faulty(SMPProgram):
    """Sums a column for a few rounds, unless told to fail.

    Parameters
    ----------
    fail_in : str
        The method that raises (or, for unencodable/not_a_dict/bad_partial, what push
        returns instead of a good partial).
    rounds : int
        Rounds to run.
    warm_seconds : float
        How long a worker's warm_up takes (a slow kernel load).
    """

    name = "faulty"

    def __init__(self, fail_in: Method = "none", rounds: int = 5, warm_seconds: float = 0.0) -> None:
        self.fail_in = fail_in
        self.rounds = rounds
        self.warm_seconds = warm_seconds

    def _maybe_fail(self, method: str) -> None:
        if self.fail_in == method:
            raise RuntimeError(f"planted failure in {method}")

    def load_data(self, source):
        return Dataset(rows={"v": np.arange(100.0)})

    def init(self, ctx):
        self._maybe_fail("init")
        ctx.model["total"] = np.zeros(1)

    def schedule(self, ctx):
        self._maybe_fail("schedule")
        return None if ctx.round >= self.rounds or ctx.inflight else {"scale": 1.0}

    def check_partial(self, ctx, block, fragment, partial):
        if partial["s"].shape != (1,):
            raise ValueError(f"s has shape {partial['s'].shape}, expected (1,)")

    def pull(self, ctx, block, partials):
        self._maybe_fail("pull")
        ctx.model["total"] = sum_partials(partials, "s")
        return {"total": ctx.model["total"]}

    def snapshot(self, ctx, fragment):
        self._maybe_fail("snapshot")
        return {}

    def init_worker(self, wctx):
        self._maybe_fail("init_worker")

    def warm_up(self, role, xp):
        if role == "worker":
            self._maybe_fail("warm_up")
            time.sleep(self.warm_seconds)

    def load(self, wctx, fragment, data, model):
        self._maybe_fail("load")
        return data["v"]

    def push(self, wctx, fragment, block):
        self._maybe_fail("push")
        if self.fail_in == "unencodable":
            return {"s": {1, 2}}
        if self.fail_in == "not_a_dict":
            return [1.0]
        if self.fail_in == "bad_partial":
            return {"s": np.zeros(3)}
        return {"s": np.array([fragment.state.sum() * block["scale"]])}

    def sync(self, wctx, fragment, update):
        self._maybe_fail("sync")
