"""The scheduler's decisions as a pure state machine: events in, messages out.

No sockets and no clocks here: every event method takes ``now`` and returns the
messages to send as ``(worker_id, Message)`` pairs; the socket loop only moves
bytes. That makes worker death mid-round, duplicates, stale rounds and stragglers
plain unit tests.

Invariants:
- each fragment has at most one owner; every live fragment is owned while any
  worker is alive;
- a round commits (``program.pull``) only when every fragment in it has exactly one
  accepted partial, from that fragment's owner at the time; rounds commit in order;
- a worker's fragment state reflects every commit up to its cursor: commits ride on
  the next WORK message, and a fragment loaded on a worker is built from a snapshot
  taken at the same commit the worker is brought to in that message;
- ``ctx.inflight`` lists the blocks of the dispatched, uncommitted rounds, oldest first.

The program's own code is contained here: a scheduler-side method that raises ends
the run at once with a one-line error naming it (:class:`ProgramError`); a worker
whose partial is rejected (NaN, ``check_partial``) or whose program raised is evicted
and its work redone elsewhere, and a second such failure ends the run.
"""
from __future__ import annotations

import functools
import logging
import math
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from smpframe.api import PerFragment, SchedulerContext, SMPProgram, Splits
from smpframe.data import splits
from smpframe.arrays import is_sparse
from smpframe.config import RunConfig
from smpframe.errors import InputError, ProgramError
from smpframe.protocol import DESCRIBE, LOAD, READ, Message
from smpframe.scheduling.hetero import ThroughputTracker, assign_fragments, should_rebalance

log = logging.getLogger("smpframe.scheduler")


Outgoing = list[tuple[str, Message]]


def _contained(event: Callable[..., Outgoing]) -> Callable[..., Outgoing]:
    """An event method whose program errors, and errors in the data the workers read,
    end the run (STOP to every worker)."""
    @functools.wraps(event)
    def handle(self: "SchedulerState", *args: Any) -> Outgoing:
        try:
            return event(self, *args)
        except (ProgramError, InputError) as exc:
            self.error, self.bad_input = str(exc), isinstance(exc, InputError)
            self.inflight.clear()
            return self._finish(args[-1])
    return handle


@dataclass
class WorkerRecord:
    """What the scheduler knows of one live worker."""

    id: str
    info: dict[str, Any]
    last_seen: float
    cursor: int = 0
    fragments: set[int] = field(default_factory=set)
    to_load: set[int] = field(default_factory=set)
    to_drop: set[int] = field(default_factory=set)
    loading: set[int] = field(default_factory=set)  # sent without tasks, not yet acked


@dataclass
class Round:
    """A dispatched, not yet committed round."""

    number: int
    block: Any
    fragments: set[int]
    pending: set[int]
    partials: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: the kind of each value of the first accepted partial (the others must match)
    kinds: dict[str, tuple] | None = None


class SchedulerState:
    """Round engine, worker registry and fragment ownership for one run."""

    def __init__(self, program: SMPProgram, ctx: SchedulerContext, run_id: str,
                 config: RunConfig, now: float, welcome: dict[str, Any] | None = None,
                 prepare: Callable[[], None] | None = None) -> None:
        self.program = program
        self.ctx = ctx
        self.run_id = run_id
        self.config = config
        self.welcome = dict(welcome or {})
        self.started_at = now
        self.workers: dict[str, WorkerRecord] = {}
        self.evicted: set[str] = set()
        self.owner: dict[int, str] = {}
        self.commits: list[dict[str, Any] | None] = []  # commit seq -> update (None: gc'd)
        self._gc_done = 0  # commits below this are forgotten
        self.inflight: OrderedDict[int, Round] = OrderedDict()
        self.next_round = ctx.round
        self.running = False
        self.ready = False  # every initial fragment loaded: rounds may start, the clock runs
        self.finished = False
        self.error: str | None = None
        self.bad_input = False  # the error is the data's (or an option's): exit as for bad input
        self.events: list[dict[str, Any]] = []
        self.all_lost_at: float | None = None
        self.failed_workers: set[tuple[str, int]] = set()  # (host, pid) of failed processes
        self.imbalance_streak = 0
        self._balance_checked_at = -math.inf
        self._imbalanced = False
        self.peak_mb: dict[str, float] = {}  # peak resident memory each worker reported
        self.throughput = ThroughputTracker()
        #: a fragment id as a RESULT spells it -> the id (no parse per partial)
        self._frag_keys = {str(f): f for f in range(ctx.n_fragments)}
        self._program_checks = type(program).check_partial is not SMPProgram.check_partial
        # in-memory rows: load at once; splits: the workers read them first (READ), then
        # describe them under the file-wide layout (DESCRIBE), then ``prepare`` runs
        # ``init`` from the facts and the fragments load (LOAD)
        self.prepare = prepare
        if isinstance(ctx.dataset, Splits):
            self.phase, self.layout = READ, None
            self._sizes = [splits.split_bytes(part) for part in ctx.dataset.parts]
        else:
            self.phase, self.layout = LOAD, None
            self._sizes = [float(ctx.dataset.row_weights()[a:b].sum()) for a, b in ctx.bounds]
        self.facts: dict[int, dict[str, Any]] = {}  # this phase's, by fragment
        #: one line per commit: the round, solve seconds and the program's scalar figures
        self.history: list[dict[str, Any]] = []

    # ---- events ---------------------------------------------------------------------
    @_contained
    def on_hello(self, worker: str, info: dict[str, Any], now: float) -> Outgoing:
        """A worker asks to join; welcome it and give it work if the run is going."""
        if self.finished:
            return [(worker, self._msg("STOP", body={"reason": "run finished"}))]
        if worker in self.workers or worker in self.evicted:
            return [(worker, self._msg("EVICT", body={"reason": "identity already used"}))]
        if not valid_hello(info):
            log.warning("ignoring malformed HELLO from %r", worker[:40])
            return []
        self.workers[worker] = WorkerRecord(worker, dict(info), now, cursor=len(self.commits))
        self.all_lost_at = None
        self._event("joined", now, worker=worker, device=info.get("device", "cpu"))
        out: Outgoing = [(worker, self._msg("WELCOME", body={**self.welcome,
                                                             "meta": self.ctx.dataset.meta}))]
        if not self.running and len(self.workers) >= self.config.n_workers:
            self._start(now)
        if self.running:
            self._reassign(now)
            out += self._advance(now)
        return out

    def on_heartbeat(self, worker: str, now: float) -> Outgoing:
        """Liveness from a worker; an evicted one is told so, and can rejoin."""
        record = self.workers.get(worker)
        if record is None:
            return self._unknown(worker)
        record.last_seen = now
        return [(worker, self._msg("HEARTBEAT"))]

    def _unknown(self, worker: str) -> Outgoing:
        """Messages from a worker not registered: EVICT if we removed it, else ignore."""
        if worker in self.evicted:
            return [(worker, self._msg("EVICT", body={"reason": "evicted earlier"}))]
        return []

    @_contained
    def on_result(self, worker: str, msg: Message, now: float) -> Outgoing:
        """Partials for one round from one worker (or, for round -1, a load ack)."""
        record = self.workers.get(worker)
        if record is None:
            return self._unknown(worker)
        record.last_seen = now
        if msg.round == -1:
            loaded, facts = msg.body.get("loaded"), msg.body.get("facts", {})
            if not (isinstance(loaded, list) and all(type(f) is int for f in loaded)) \
                    or not isinstance(facts, dict):
                return self._fail_worker(worker, "malformed load acknowledgement", now)
            if self.phase != LOAD and msg.body.get("phase") == self.phase:
                problem = self._take_facts(worker, loaded, facts)
                if problem:
                    return self._fail_worker(worker, problem, now)
            record.loading.difference_update(loaded)
            return self._advance(now)
        rnd = self.inflight.get(msg.round)
        if rnd is None:
            log.debug("dropping result for round %d from %s (not in flight)", msg.round, worker)
            return []
        body = msg.body
        partials, seconds = body.get("partials"), body.get("seconds", 0.0)
        frags = self._fragment_ids(partials)
        if frags is None or not _is_duration(seconds):
            return self._fail_worker(worker, "malformed RESULT message", now)
        accepted: dict[int, tuple[dict[str, Any], dict[str, tuple]]] = {}
        for frag, payload in zip(frags, partials.values()):
            if frag in rnd.pending and self.owner.get(frag) == worker:
                problem, kinds = self._check_partial(rnd, frag, payload)
                if problem:
                    return self._program_fault(
                        worker, f"partial of fragment {frag} rejected: {problem}", now)
                accepted[frag] = payload, kinds
        work = 0.0
        for frag, (payload, kinds) in accepted.items():
            rnd.pending.discard(frag)
            rnd.partials[frag] = payload
            if rnd.kinds is None:
                rnd.kinds = kinds
            work += self._sizes[frag]
        peak = body.get("peak_mb")
        if _is_duration(peak) and peak > self.peak_mb.get(worker, 0.0):
            self.peak_mb[worker] = float(peak)
        if accepted and seconds > 0:
            self.throughput.observe(worker, work, float(seconds))
        if next(iter(self.inflight.values())).pending:
            return []  # the oldest round still waits: nothing can commit or be dispatched
        return self._advance(now)

    def _take_facts(self, worker: str, loaded: list[int], facts: dict[str, Any]) -> str | None:
        """Keep the facts a worker read for fragments it still owns; why not, if malformed."""
        for frag in loaded:
            fact = facts.get(str(frag))
            if self.owner.get(frag) != worker:
                continue
            if not isinstance(fact, dict):
                return f"no facts for fragment {frag}"
            bad = _nonfinite(fact)
            if bad:
                return f"non-finite value in {bad!r} of fragment {frag}'s facts"
            if self.phase == READ and not (type(fact.get("n_rows")) is int and fact["n_rows"] >= 0):
                return f"fragment {frag}: n_rows must be an integer >= 0"
            self.facts[frag] = fact
        return None

    def _next_phase(self, now: float) -> None:
        """Every fragment's facts of this phase are in: combine them, then load again."""
        dataset, n = self.ctx.dataset, self.ctx.n_fragments
        facts = [self.facts[f] for f in range(n)]
        if self.phase == READ:
            self.layout = splits.layout(dataset.reader, facts, dataset.path)
            edges = np.concatenate([[0], np.cumsum([f["n_rows"] for f in facts])]).astype(int)
            self.ctx.bounds = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
            dataset.meta.update(n_rows=int(edges[-1]), **self.layout)
            self.phase = DESCRIBE
        else:
            self.ctx.facts = {f: facts[f] for f in range(n)}
            if self.prepare is not None:
                self.prepare()
            self.next_round = self.ctx.round  # a resumed run goes on from its checkpoint
            self.phase = LOAD
        self.facts = {}
        self._event(self.phase, now)
        for record in self.workers.values():
            record.to_load |= record.fragments  # the next phase's item, for what each holds

    def _fragment_ids(self, partials: Any) -> list[int] | None:
        """The fragment ids of a RESULT's partials, in order; None if malformed (not a
        map of digit strings to maps)."""
        if not isinstance(partials, dict):
            return None
        frags = []
        for key, payload in partials.items():
            frag = self._frag_keys.get(key)
            if frag is None:  # another spelling ("07") or id: parsed, or malformed
                if not (isinstance(key, str) and key.isdigit()):
                    return None
                frag = int(key)
            if not isinstance(payload, dict):
                return None
            frags.append(frag)
        return frags

    def _check_partial(self, rnd: Round, frag: int,
                       payload: dict[str, Any]) -> tuple[str | None, dict[str, tuple]]:
        """Why a partial cannot be committed (or None), and the kind of each of its
        values. Rejected: NaN/Inf; keys or kinds of value other than the round's first
        accepted partial's; the program's own check. One pass over the values."""
        kinds = {}
        for key, value in payload.items():
            kind = kinds[key] = _kind(value)
            if kind is _NUMBER:
                if isinstance(value, float) and not math.isfinite(value):
                    return f"non-finite value in {key!r}", kinds
            else:
                bad = _nonfinite(value, key)
                if bad:
                    return f"non-finite value in {bad!r}", kinds
        first = rnd.kinds
        if first is not None and kinds != first:
            if kinds.keys() != first.keys():
                return (f"keys {sorted(kinds)} differ from the round's other partials' "
                        f"{sorted(first)}"), kinds
            key = next(k for k in kinds if kinds[k] != first[k])
            return f"{key!r} is {kinds[key]}, not {first[key]} as in the round's other partials", kinds
        if self._program_checks:
            block = rnd.block[frag] if isinstance(rnd.block, PerFragment) else rnd.block
            try:
                self.program.check_partial(self.ctx, block, frag, payload)
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}", kinds
        return None, kinds

    @_contained
    def on_failed(self, worker: str, reason: str, bad_input: bool, now: float) -> Outgoing:
        """The program raised on a worker (``reason`` names the method and exception), or
        (``bad_input``) its split of the data cannot be read. Before the rounds begin that
        ends the run, as a bad file does in the scheduler (another owner would read the
        same bytes); later (a re-read after a failure) it is that worker's fault."""
        if worker not in self.workers:
            return []
        if bad_input and not self.ready:
            self.error, self.bad_input = reason, True
            return self._finish(now)
        return self._program_fault(worker, reason, now)

    def _program_fault(self, worker: str, reason: str, now: float) -> Outgoing:
        """A worker's program failed: evict it and redo its work elsewhere.

        When a second worker process fails too (or no other is left in a running
        run), the fault is the program's, and the run ends with that error. A process
        that fails again after rejoining counts once: one bad machine does not end a run.
        """
        self._event("program_error", now, worker=worker, reason=reason)
        info = self.workers[worker].info
        self.failed_workers.add((info["host"], info["pid"]))  # a process, whatever its identity
        if len(self.failed_workers) >= 2 or (len(self.workers) == 1 and self.running):
            self.error = f"{reason} (failed on {len(self.failed_workers)} worker(s), last {worker})"
            return self._finish(now)
        return self._fail_worker(worker, reason, now)

    @_contained
    def abort(self, reason: str, now: float) -> Outgoing:
        """End the run now (operator interrupt): nothing in flight is committed."""
        self.error = reason
        return self._finish(now)

    @_contained
    def on_bye(self, worker: str, now: float) -> Outgoing:
        """A worker leaves on purpose (its process is going away)."""
        return self._remove_worker(worker, "left", now)

    @_contained
    def on_tick(self, now: float) -> Outgoing:
        """Timer: heartbeat timeouts, the start timeout and the time limit."""
        out: Outgoing = []
        for worker in [w for w, r in self.workers.items()
                       if now - r.last_seen > self.config.heartbeat_timeout]:
            out += self._remove_worker(worker, "heartbeat timeout", now)
        if self.finished:
            return out
        if not self.running and now - self.started_at > self.config.start_timeout:
            if not self.workers:
                self.error = f"no worker joined within {self.config.start_timeout:.0f}s"
                return out + self._finish(now)
            self._start(now)
            self._reassign(now)
            out += self._advance(now)
        if self.running and not self.workers and self.all_lost_at is not None \
                and now - self.all_lost_at > self.config.start_timeout:
            self.error = "no workers left"
            out += self._finish(now)
        limit = self.config.time_limit
        if limit is not None and self.ready and self.ctx.elapsed > limit:
            self._event("time_limit", now)
            self.ctx.stop(converged=False)
            out += self._advance(now)
        return out

    def _start(self, now: float) -> None:
        self.running = True
        self._event("started", now, workers=sorted(self.workers))

    # ---- membership -----------------------------------------------------------------
    def _remove_worker(self, worker: str, reason: str, now: float) -> Outgoing:
        record = self.workers.pop(worker, None)
        if record is None:
            return []
        self.evicted.add(worker)
        self.throughput.forget(worker)
        for frag in record.fragments:
            self.owner.pop(frag, None)
        self._event("worker_lost", now, worker=worker, reason=reason,
                    fragments=sorted(record.fragments))
        # a program's fault is reported when it ends the run; a lost machine is news now
        level = logging.INFO if reason.startswith("faulty") else logging.WARNING
        log.log(level, "worker %s lost (%s); %d fragments to reassign", worker, reason,
                len(record.fragments))
        out: Outgoing = [(worker, self._msg("EVICT", body={"reason": reason}))]
        if not self.workers:
            self.all_lost_at = now
        if self.finished or not self.running:
            return out
        self._reassign(now)
        return out + self._advance(now)

    def _fail_worker(self, worker: str, why: str, now: float) -> Outgoing:
        log.info("treating worker %s as faulty: %s", worker, why)
        return self._remove_worker(worker, f"faulty: {why}", now)

    def _reassign(self, now: float) -> None:
        """Give every orphaned fragment an owner; rebalance between rounds when speeds drift.

        Placement is drift-plus-penalty (smpframe.scheduling.hetero): balance the
        per-worker backlog against the cost of moving a fragment's data.
        """
        if not self.workers:
            return
        orphans = len(self.owner) < self.ctx.n_fragments
        idle = not self.inflight and self.ctx.n_fragments >= len(self.workers) and \
            any(not r.fragments for r in self.workers.values())  # e.g. a worker that just joined
        drifted = not self.inflight and self._drifted(now)
        if not orphans and not idle and not drifted:
            return
        speeds = self.throughput.speeds(list(self.workers))
        total_speed = max(sum(speeds.values()), 1e-12)
        move_cost = [size / total_speed for size in self._sizes]
        new_owner = assign_fragments(self._sizes, dict(self.owner), speeds,
                                     V=self.config.dispatch_v, move_cost=move_cost)
        busy = set().union(*(r.pending for r in self.inflight.values()))
        moved = 0
        for frag, worker in new_owner.items():
            old = self.owner.get(frag)
            if old == worker or (frag in busy and old is not None):
                continue  # never move a fragment a live worker is computing
            if old is not None:
                self.workers[old].fragments.discard(frag)
                self.workers[old].to_drop.add(frag)
            self.owner[frag] = worker
            self.workers[worker].fragments.add(frag)
            self.workers[worker].to_load.add(frag)
            moved += 1
        if moved:
            self._event("assigned", now, moved=moved,
                        owners={w: sorted(r.fragments) for w, r in self.workers.items()})

    def _check_balance(self, now: float) -> bool | None:
        """Is the placement off its best by more than the threshold? None: asked again
        within ``rebalance_interval`` (speeds are smoothed: a sooner check says nothing
        new, and it costs a placement per round). Needs every worker measured twice
        (the first round includes warm-up)."""
        if now - self._balance_checked_at < self.config.rebalance_interval:
            return None
        self._balance_checked_at = now
        measured = all(self.throughput.count(w) >= 2 for w in self.workers)
        self._imbalanced = self.config.balance and measured and should_rebalance(
            self.owner, self._sizes, self.throughput.speeds(list(self.workers)),
            self.config.rebalance_threshold)
        return self._imbalanced

    def _drifted(self, now: float) -> bool:
        """Speeds call for a new placement: imbalance seen on two checks in a row."""
        verdict = self._check_balance(now)
        if verdict is not None:
            self.imbalance_streak = self.imbalance_streak + 1 if verdict else 0
        return self.imbalance_streak >= 2

    def _wants_rebalance(self, now: float) -> bool:
        """With rounds in flight, a due rebalance pauses dispatch (one pipeline bubble)."""
        if not self.config.balance or not self.inflight:
            return False
        self._check_balance(now)
        return self._imbalanced

    # ---- the round engine -----------------------------------------------------------
    def _advance(self, now: float) -> Outgoing:
        """Commit finished rounds in order, then dispatch new ones up to the depth."""
        out: Outgoing = []
        if self.finished or not self.running:
            return out
        if not self.ready:
            out += self._flush_loads()
            if any(r.loading for r in self.workers.values()):
                return out
            if self.phase != LOAD:
                if len(self.facts) < self.ctx.n_fragments:
                    return out  # an orphaned fragment waits for an owner
                self._next_phase(now)
                return out + self._flush_loads()
            self.ready = True
            self.ctx.started = now
            self._event("ready", now)
        while self.inflight:
            number, rnd = next(iter(self.inflight.items()))
            if rnd.pending:
                break
            del self.inflight[number]
            self._commit(rnd, now)
            if self.finished:
                return out
        if self.ctx.stop_requested:
            return out + self._finish(now)
        if self.config.max_rounds is not None and self.ctx.round >= self.config.max_rounds:
            self.ctx.stop(converged=False)
            return out + self._finish(now)
        # redispatch pending fragments whose owner changed (after a failure)
        out += self._redispatch(now)
        if not self.inflight:
            self._reassign(now)
        depth = max(self.config.pipeline_depth, self.program.pipeline_depth)
        pause = depth > 0 and self._wants_rebalance(now)
        while not pause and len(self.inflight) <= depth \
                and not self.ctx.stop_requested:
            if self.config.max_rounds is not None and self.next_round >= self.config.max_rounds:
                break
            block = self._call("schedule", self.program.schedule, self.ctx)
            if block is None:
                if not self.inflight:
                    self.ctx.stop(converged=self.ctx.converged)
                    return out + self._finish(now)
                break
            out += self._dispatch(block, now)
        out += self._flush_loads()
        return out

    def _commit(self, rnd: Round, now: float) -> None:
        partials = {f: rnd.partials[f] for f in sorted(rnd.partials)}
        self.ctx.inflight.pop(0)
        update = self._call("pull", self.program.pull, self.ctx, rnd.block, partials)
        self.ctx.round += 1
        self.history.append({"round": self.ctx.round,
                             "t": round(self.ctx.prior_elapsed + now - self.ctx.started, 6),
                             **_scalars(self.ctx.metrics)})
        self.commits.append(update)
        self._gc_commits()

    def _gc_commits(self) -> None:
        """Forget updates every live worker has received (from where the last pass stopped)."""
        low = min((r.cursor for r in self.workers.values()), default=len(self.commits))
        for seq in range(self._gc_done, low):
            self.commits[seq] = None
        self._gc_done = max(self._gc_done, low)

    def _dispatch(self, block: Any, now: float) -> Outgoing:
        number = self.next_round
        self.next_round += 1
        if isinstance(block, PerFragment):
            frags = {int(f) for f in block}
        else:
            frags = set(range(self.ctx.n_fragments))
        rnd = Round(number, block, frags, set(frags))
        self.inflight[number] = rnd
        self.ctx.inflight.append(block)
        return self._send_tasks(rnd, frags)

    def _redispatch(self, now: float) -> Outgoing:
        out: Outgoing = []
        moved = set().union(*[r.to_load for r in self.workers.values() if r.to_load])
        if not moved:
            return out
        for rnd in self.inflight.values():
            redo = rnd.pending & moved
            if redo:
                self._event("redispatch", now, round=rnd.number, fragments=sorted(redo))
                out += self._send_tasks(rnd, redo)
        return out

    def _send_tasks(self, rnd: Round, frags: set[int]) -> Outgoing:
        broadcast = not isinstance(rnd.block, PerFragment) and frags == rnd.fragments
        if broadcast and len(frags) == self.ctx.n_fragments:
            # every fragment: each worker's are the ones it owns (no per-fragment pass)
            by_worker = [(w, r) for w, r in self.workers.items() if r.fragments]
        else:
            owned: dict[str, list[int]] = {}
            for frag in sorted(frags):
                worker = self.owner.get(frag)
                if worker is not None:
                    owned.setdefault(worker, []).append(frag)
            by_worker = [(w, self.workers[w]) for w in owned]
        out: Outgoing = []
        shared: dict[int, Message] = {}  # commit cursor -> the one message those workers get
        for worker, record in by_worker:
            if broadcast and not (record.to_load or record.to_drop):
                # the same bytes for every such worker: encoded once, sent to each
                # ("*": push every fragment you hold, which is what it owns here)
                cursor = record.cursor
                msg = shared.get(cursor)
                if msg is None:
                    msg = shared[cursor] = self._work_message(worker, rnd.number, "*", {"*": rnd.block})
                record.cursor = len(self.commits)
                out.append((worker, msg))
                continue
            wfrags = sorted(record.fragments & frags) if broadcast else owned[worker]
            if isinstance(rnd.block, PerFragment):
                blocks = {str(f): rnd.block[f] for f in wfrags}
            else:
                blocks = {"*": rnd.block}
            out.append((worker, self._work_message(worker, rnd.number, wfrags, blocks)))
        return out

    def _flush_loads(self) -> Outgoing:
        """Fragments assigned outside a round still get loaded right away."""
        out: Outgoing = []
        for worker, record in self.workers.items():
            if record.to_load or record.to_drop:
                out.append((worker, self._work_message(worker, -1, [], {})))
        return out

    def _work_message(self, worker: str, number: int, frags: list[int] | str,
                      blocks: dict[str, Any]) -> Message:
        """One WORK message: commits since the worker's cursor, drops, loads, tasks.

        Body: ``commits`` (updates in commit order; None for a commit without one),
        ``drop`` (fragment ids), ``load`` (``{id, start, stop, data, model}`` each),
        ``tasks`` (fragment ids to push, or ``"*"``: every fragment held) and ``blocks`` (``{"*": block}``, or a block
        per fragment id).
        """
        record = self.workers[worker]
        commits = self.commits[record.cursor:]
        record.cursor = len(self.commits)
        loads, drops = sorted(record.to_load), sorted(record.to_drop)
        record.to_load, record.to_drop = set(), set()
        if not frags:
            record.loading.update(loads)
        body = {"commits": commits, "drop": drops, "tasks": frags, "blocks": blocks,
                "load": [self._fragment_payload(frag) for frag in loads]}
        return self._msg("WORK", round=number, body=body)

    def _fragment_payload(self, frag: int) -> dict[str, Any]:
        """A LOAD item: the rows (in-memory data) or the split to read, and at LOAD the
        fragment's bounds and model snapshot (see the executor for the READ/DESCRIBE items)."""
        dataset = self.ctx.dataset
        if self.phase != LOAD:
            return {"id": frag, "phase": self.phase, "split": dataset.parts[frag],
                    "layout": self.layout}
        start, stop = self.ctx.bounds[frag]
        item = {"id": frag, "phase": LOAD, "start": start, "stop": stop,
                "model": self._call("snapshot", self.program.snapshot, self.ctx, frag)}
        if isinstance(dataset, Splits):
            item.update(split=dataset.parts[frag], layout=self.layout, meta=dataset.meta)
        else:
            item["data"] = dataset.fragment(start, stop)
        return item

    def _call(self, method: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a scheduler-side program method; its exception becomes a ProgramError."""
        try:
            return fn(*args)
        except Exception as exc:
            log.debug("%s raised:\n%s", method, traceback.format_exc())
            raise ProgramError(f"{method} raised {type(exc).__name__}: {exc}") from exc

    def _finish(self, now: float) -> Outgoing:
        if self.finished:
            return []
        self.finished = True
        self.inflight.clear()
        self.ctx.inflight.clear()
        self._event("finished", now, rounds=self.ctx.round, error=self.error)
        return [(w, self._msg("STOP", body={"reason": self.error or "done"}))
                for w in self.workers]

    # ---- helpers --------------------------------------------------------------------
    def _msg(self, mtype: str, round: int = -1, body: dict[str, Any] | None = None) -> Message:
        return Message(mtype, self.run_id, round, body or {})

    def _event(self, name: str, now: float, **fields: Any) -> None:
        self.events.append({"event": name, "t": round(now - self.started_at, 4), **fields})


def valid_hello(info: Any) -> bool:
    """A HELLO body names the worker's device, host and pid with the right types."""
    return (isinstance(info, dict) and isinstance(info.get("device"), str)
            and isinstance(info.get("host"), str) and type(info.get("pid")) is int)


def _scalars(metrics: dict[str, Any]) -> dict[str, float | int]:
    """The numbers among a program's reported figures, as plain JSON numbers."""
    out: dict[str, float | int] = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, np.bool_)):
            continue
        if isinstance(value, (int, np.integer)):
            out[key] = int(value)
        elif isinstance(value, (float, np.floating)) and math.isfinite(value):
            out[key] = float(value)
    return out


def _is_duration(value: Any) -> bool:
    """A finite, non-negative number of seconds (or megabytes)."""
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


_NUMBER = ("number",)
_NUMBER_TYPES = frozenset({float, int, bool})


def _kind(value: Any) -> tuple:
    """What must agree between one round's partials: arrays by dtype and rank, else type."""
    if type(value) in _NUMBER_TYPES:
        return _NUMBER
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.ndim)
    if is_sparse(value):
        return ("sparse", value.dtype.str)
    if isinstance(value, (bool, int, float)):
        return _NUMBER
    return (type(value).__name__,)


def _nonfinite(value: Any, where: str = "") -> str | None:
    """Where the first NaN/Inf in a payload is (a key path), if anywhere."""
    if isinstance(value, dict):
        for key, item in value.items():
            bad = _nonfinite(item, f"{where}/{key}" if where else key)
            if bad:
                return bad
    elif isinstance(value, list):
        for i, item in enumerate(value):
            bad = _nonfinite(item, f"{where}[{i}]")
            if bad:
                return bad
    elif isinstance(value, float):
        return None if math.isfinite(value) else where
    elif isinstance(value, np.ndarray) or is_sparse(value):
        data = value if isinstance(value, np.ndarray) else value.data
        # one sum is cheaper than a mask; only a non-finite sum needs the exact look
        if data.dtype.kind in "fc" and not math.isfinite(abs(data.sum())) \
                and not np.isfinite(data).all():
            return where
    return None
