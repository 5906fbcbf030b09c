"""The scheduler state machine, driven by hand: no sockets, no clock.

A tiny program makes every mistake visible: each round's partials depend on the
model the worker has synced, so a lost sync, a lost partial or a partial counted
twice changes the final value.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from smpframe.api import Dataset, SchedulerContext, SMPProgram, Splits, WorkerContext, rows_context
from smpframe.config import RunConfig
from smpframe.protocol import Message, decode, encode
from smpframe.scheduler.state import SchedulerState
from smpframe.worker.executor import execute

VALUES = np.arange(1.0, 25.0)


class Drift(SMPProgram):
    """x <- x + (sum(v) * x + n) / 1000, computed from per-fragment partials."""

    name = "drift"

    def load_data(self, source):
        return Dataset(rows={"v": VALUES})

    def init(self, ctx):
        ctx.model["x"] = np.array([1.0])

    def schedule(self, ctx):
        return {"round": ctx.round}

    def pull(self, ctx, block, partials):
        total = sum(p["s"] for p in partials.values())
        ctx.model["x"] = ctx.model["x"] + total / 1000.0
        return {"x": ctx.model["x"]}

    def load(self, wctx, fragment, data, model):
        return {"v": data["v"], "x": float(model["x"][0])}

    def push(self, wctx, fragment, block):
        f = fragment.state
        return {"s": np.array([f["v"].sum() * f["x"] + f["v"].size])}

    def sync(self, wctx, fragment, update):
        fragment.state["x"] = float(update["x"][0])


def expected_x(rounds: int) -> float:
    x = 1.0
    for _ in range(rounds):
        x = x + (VALUES.sum() * x + VALUES.size) / 1000.0
    return x


def wire(msg: Message) -> Message:
    return decode([bytes(f) for f in encode(msg)])


class SimCluster:
    """Routes messages between a SchedulerState and in-process worker executors."""

    def __init__(self, n_fragments=6, program=None, source=None, **config):
        self.program = program or Drift()
        ds = self.program.load_data(source)
        if isinstance(ds, Splits):  # the workers read it: init once their facts are in
            self.ctx = SchedulerContext(ds, [(0, 0)] * len(ds.cut(n_fragments)), np.random.default_rng(0))
            prepare = lambda: self.program.init(self.ctx)  # noqa: E731
        else:
            self.ctx = rows_context(self.program, ds, n_fragments, np.random.default_rng(0))
            self.program.init(self.ctx)
            prepare = None
        self.now = 0.0
        self.state = SchedulerState(self.program, self.ctx, "run", RunConfig(**config),
                                    self.now, welcome={"program": "drift", "params": {}},
                                    prepare=prepare)
        self.inbox: dict[str, deque] = {}
        self.wctx: dict[str, WorkerContext] = {}
        self.sent: list[tuple[str, Message]] = []

    def deliver(self, outgoing):
        for worker, msg in outgoing:
            self.sent.append((worker, msg))
            self.inbox.setdefault(worker, deque()).append(wire(msg))

    def join(self, worker):
        pid = len(self.wctx) + len(self.inbox) + 1  # each worker its own process
        self.deliver(self.state.on_hello(worker, {"device": "cpu", "host": "h", "pid": pid}, self.now))

    def step(self, worker) -> Message | None:
        """The worker handles its next message; returns its reply (not yet delivered)."""
        msg = self.inbox[worker].popleft()
        if msg.type == "WELCOME":
            self.wctx[worker] = WorkerContext(meta={})
            return None
        if msg.type != "WORK":
            return None
        reply = execute(type(self.program)(), self.wctx[worker], msg)
        if reply is not None:
            reply.run = "run"
        return reply

    def reply(self, worker, msg):
        if msg.type == "RESULT":
            self.deliver(self.state.on_result(worker, wire(msg), self.now))
        elif msg.type == "FAILED":
            self.deliver(self.state.on_failed(worker, msg.body["reason"], msg.body.get("input") is True,
                                              self.now))

    def pump(self, worker):
        """Handle all of a worker's queued messages, replying to each."""
        while self.inbox.get(worker):
            out = self.step(worker)
            if out is not None:
                self.reply(worker, out)

    def run(self, workers, limit=500):
        for _ in range(limit):
            if self.state.finished or not any(self.inbox.get(w) for w in workers):
                return
            for w in workers:
                self.pump(w)

    def types_to(self, worker):
        return [m.type for w, m in self.sent if w == worker]


def test_run_to_max_rounds_gives_the_exact_result():
    sim = SimCluster(max_rounds=7, workers=2)
    sim.join("a")
    sim.join("b")
    sim.run(["a", "b"])
    assert sim.state.finished and sim.state.error is None
    assert sim.ctx.round == 7
    assert sim.ctx.model["x"][0] == pytest.approx(expected_x(7), rel=1e-12)
    assert sim.types_to("a")[-1] == "STOP" and sim.types_to("b")[-1] == "STOP"


def test_waits_for_min_workers_and_for_loads_before_the_first_round():
    sim = SimCluster(max_rounds=3, workers=2)
    sim.join("a")
    assert sim.types_to("a") == ["WELCOME"]
    sim.join("b")
    first_work = [m for w, m in sim.sent if m.type == "WORK"]
    assert first_work and all(m.body["tasks"] == [] and m.body["load"] for m in first_work)
    assert not sim.state.inflight


def test_each_fragment_has_exactly_one_owner():
    sim = SimCluster(max_rounds=2, workers=3, n_fragments=7)
    for w in "abc":
        sim.join(w)
    owners = sim.state.owner
    assert sorted(owners) == list(range(7))
    held = [f for r in sim.state.workers.values() for f in r.fragments]
    assert sorted(held) == list(range(7))


def test_worker_death_mid_round_redispatches_and_loses_nothing():
    sim = SimCluster(max_rounds=6, workers=2, heartbeat_timeout=5.0)
    sim.join("a")
    sim.join("b")
    sim.run(["a", "b"], limit=3)  # a few rounds go by
    # round in flight: a answers, b goes silent (kill -9)
    sim.pump("a")
    assert sim.state.inflight
    b_frags = set(sim.state.workers["b"].fragments)
    sim.now += 6.0
    sim.state.workers["a"].last_seen = sim.now
    sim.deliver(sim.state.on_tick(sim.now))
    assert "b" not in sim.state.workers
    assert b_frags <= set(sim.state.workers["a"].fragments)
    sim.run(["a"])
    assert sim.state.finished and sim.state.error is None
    assert sim.ctx.model["x"][0] == pytest.approx(expected_x(6), rel=1e-12)
    assert any(e["event"] == "redispatch" for e in sim.state.events)


def test_late_result_from_an_evicted_worker_is_dropped():
    sim = SimCluster(max_rounds=4, workers=2, heartbeat_timeout=5.0)
    sim.join("a")
    sim.join("b")
    sim.run(["a", "b"], limit=2)
    sim.pump("a")
    late = None
    while sim.inbox.get("b"):
        late = sim.step("b") or late
    sim.now += 6.0
    sim.state.workers["a"].last_seen = sim.now
    sim.deliver(sim.state.on_tick(sim.now))
    if late is not None:
        out = sim.state.on_result("b", wire(late), sim.now)
        assert [m.type for _, m in out] == ["EVICT"]
    sim.run(["a"])
    assert sim.ctx.model["x"][0] == pytest.approx(expected_x(4), rel=1e-12)


def test_duplicate_and_stale_results_are_ignored():
    sim = SimCluster(max_rounds=5, workers=1)
    sim.join("a")
    for _ in range(200):
        if sim.state.finished:
            break
        msg = sim.step("a")
        if msg is not None:
            sim.reply("a", msg)
            if msg.type == "RESULT" and msg.round >= 0:
                sim.reply("a", msg)  # duplicate
                if msg.round >= 3:
                    sim.reply("a", Message("RESULT", "run", msg.round - 3, msg.body))  # stale
    assert sim.state.finished
    assert sim.ctx.model["x"][0] == pytest.approx(expected_x(5), rel=1e-12)


def test_nan_partial_evicts_the_worker_and_the_round_is_redone():
    sim = SimCluster(max_rounds=3, workers=2)
    sim.join("a")
    sim.join("b")
    corrupted = False
    while sim.inbox.get("b") and not corrupted:
        msg = sim.step("b")
        if msg is not None and msg.type == "RESULT" and msg.round >= 0:
            key = next(iter(msg.body["partials"]))
            msg.body["partials"][key]["s"] = np.array([np.nan])
            corrupted = True
        if msg is not None:
            sim.reply("b", msg)
        sim.pump("a")
    assert corrupted and "b" not in sim.state.workers
    assert any("faulty" in e.get("reason", "") for e in sim.state.events)
    sim.run(["a"])
    assert sim.state.finished
    assert sim.ctx.model["x"][0] == pytest.approx(expected_x(3), rel=1e-12)


def test_pipeline_depth_keeps_rounds_in_flight():
    sim = SimCluster(max_rounds=10, workers=1, pipeline_depth=2)
    sim.join("a")
    assert sim.step("a") is None  # WELCOME
    sim.reply("a", sim.step("a"))  # the load ack starts the rounds
    assert len(sim.state.inflight) == 3
    sim.run(["a"])
    assert sim.state.finished and sim.ctx.round == 10


def test_program_failure_on_two_workers_ends_the_run():
    sim = SimCluster(max_rounds=5, workers=3)
    for w in "abc":
        sim.join(w)
    sim.deliver(sim.state.on_failed("a", "ValueError: boom", False, sim.now))
    assert not sim.state.finished and "a" not in sim.state.workers  # first: faulty worker
    sim.deliver(sim.state.on_failed("b", "ValueError: boom", False, sim.now))
    assert sim.state.finished and "boom" in sim.state.error
    assert sim.types_to("c")[-1] == "STOP"


def test_malformed_hello_is_ignored():
    sim = SimCluster(max_rounds=5, workers=1)
    assert sim.state.on_hello("x", {"device": 1}, sim.now) == []
    assert sim.state.on_hello("y", ["not", "a", "map"], sim.now) == []
    assert not sim.state.workers


def test_losing_every_worker_fails_after_the_start_timeout():
    sim = SimCluster(max_rounds=5, workers=1, heartbeat_timeout=1.0, start_timeout=3.0)
    sim.join("a")
    sim.now = 2.0
    sim.deliver(sim.state.on_tick(sim.now))
    assert not sim.state.workers and not sim.state.finished
    sim.now = 6.0
    sim.deliver(sim.state.on_tick(sim.now))
    assert sim.state.finished and sim.state.error == "no workers left"


def test_evicted_worker_can_rejoin_under_a_new_identity():
    sim = SimCluster(max_rounds=8, workers=1, heartbeat_timeout=1.0, start_timeout=30.0)
    sim.join("a")
    sim.now = 2.0
    sim.deliver(sim.state.on_tick(sim.now))
    assert [m.type for _, m in sim.state.on_heartbeat("a", sim.now)] == ["EVICT"]
    assert sim.state.on_heartbeat("never-seen", sim.now) == []
    sim.join("a2")
    sim.run(["a2"])
    assert sim.state.finished and sim.state.error is None
    assert sim.ctx.model["x"][0] == pytest.approx(expected_x(8), rel=1e-12)


def test_commits_ride_on_the_next_work_message():
    sim = SimCluster(max_rounds=3, workers=1)
    sim.join("a")
    sim.run(["a"])
    work = [m for w, m in sim.sent if m.type == "WORK" and m.body["tasks"]]
    assert [len(m.body["commits"]) for m in work] == [0, 1, 1]
    assert work[1].body["commits"][0]["x"][0] == pytest.approx(expected_x(1))


def test_a_worker_joining_mid_run_gets_fragments():
    sim = SimCluster(max_rounds=12, workers=1, n_fragments=6)
    sim.join("a")
    while sim.ctx.round < 2:
        reply = sim.step("a")
        if reply is not None:
            sim.reply("a", reply)
    sim.join("b")
    sim.run(["a", "b"])
    assert sim.state.finished and sim.state.error is None
    assert any(e["event"] == "assigned" and e["owners"].get("b") for e in sim.state.events)
    assert sim.ctx.model["x"][0] == pytest.approx(expected_x(12), rel=1e-12)


def test_the_context_lists_the_blocks_in_flight_oldest_first():
    seen = []

    class Watching(Drift):
        def schedule(self, ctx):
            seen.append([b["round"] for b in ctx.inflight])
            return {"round": ctx.round + len(ctx.inflight)}

    sim = SimCluster(max_rounds=6, workers=1, pipeline_depth=2, program=Watching())
    sim.join("a")
    sim.run(["a"])
    assert sim.state.finished and sim.state.error is None
    assert seen[:3] == [[], [0], [0, 1]]  # three dispatched before the first commit
    assert seen[3] == [1, 2]  # round 0 committed: it left the list
    assert sim.ctx.inflight == []


@pytest.mark.parametrize("method", ["schedule", "pull", "snapshot"])
def test_a_raising_scheduler_method_stops_the_run_at_once(method):
    class Broken(Drift):
        pass

    def boom(self, *args):
        raise ValueError("bad value")

    setattr(Broken, method, boom)
    sim = SimCluster(max_rounds=5, workers=2, program=Broken())
    sim.join("a")
    sim.join("b")
    sim.run(["a", "b"])
    assert sim.state.finished
    assert sim.state.error == f"{method} raised ValueError: bad value"
    assert sim.types_to("a")[-1] == "STOP" and sim.types_to("b")[-1] == "STOP"


class Picky(Drift):
    """Rejects partials whose ``s`` is negative; pushes a negative one on worker ``bad``."""

    def check_partial(self, ctx, block, fragment, partial):
        if partial["s"][0] < 0:
            raise ValueError("negative sum")


def corrupt(sim, worker, value):
    """Let ``worker`` answer its next round with ``s = value`` for one fragment
    (the other workers go on as usual meanwhile)."""
    for _ in range(100):
        if not sim.inbox.get(worker):
            for other in sim.state.workers:
                if other != worker:
                    sim.pump(other)
            continue
        msg = sim.step(worker)
        if msg is not None and msg.type == "RESULT" and msg.round >= 0:
            key = next(iter(msg.body["partials"]))
            msg.body["partials"][key]["s"] = np.array([value])
            sim.reply(worker, msg)
            return
        if msg is not None:
            sim.reply(worker, msg)
    raise AssertionError(f"{worker} got no round to answer")


def test_check_partial_rejects_evicts_and_the_round_is_redone():
    sim = SimCluster(max_rounds=4, workers=2, program=Picky())
    sim.join("a")
    sim.join("b")
    corrupt(sim, "b", -1.0)
    assert "b" not in sim.state.workers
    assert any("negative sum" in e.get("reason", "") for e in sim.state.events)
    sim.run(["a"])
    assert sim.state.finished and sim.state.error is None
    assert sim.ctx.model["x"][0] == pytest.approx(expected_x(4), rel=1e-12)


@pytest.mark.parametrize("value", [-1.0, np.nan])
def test_a_second_rejected_partial_ends_the_run(value):
    sim = SimCluster(max_rounds=50, workers=3, program=Picky())
    for w in "abc":
        sim.join(w)
    corrupt(sim, "a", value)
    assert not sim.state.finished
    corrupt(sim, "b", value)
    assert sim.state.finished and "rejected" in sim.state.error
    assert "failed on 2 worker(s)" in sim.state.error
    assert sim.types_to("c")[-1] == "STOP"


@pytest.mark.parametrize("body", [
    {"partials": [1, 2], "seconds": 0.1},
    {"partials": {"x": {}}, "seconds": 0.1},
    {"partials": {"0": 5}, "seconds": 0.1},
    {"partials": {}, "seconds": "slow"},
    {"partials": {}, "seconds": float("nan")},
])
def test_a_malformed_result_evicts_its_sender(body):
    sim = SimCluster(max_rounds=5, workers=2)
    sim.join("a")
    sim.join("b")
    for _ in range(2):  # WELCOME, then the loads: acked, the first round is dispatched
        for w in "ab":
            reply = sim.step(w)
            if reply is not None:
                sim.reply(w, reply)
    rnd = next(iter(sim.state.inflight))
    sim.deliver(sim.state.on_result("a", Message("RESULT", "run", rnd, body), sim.now))
    assert "a" not in sim.state.workers and not sim.state.finished


def test_a_malformed_load_ack_evicts_its_sender():
    sim = SimCluster(max_rounds=5, workers=1)
    sim.join("a")
    sim.deliver(sim.state.on_result("a", Message("RESULT", "run", -1, {"loaded": ["x"]}), sim.now))
    assert "a" not in sim.state.workers
