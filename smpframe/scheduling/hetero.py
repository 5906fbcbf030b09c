"""Heterogeneous workers: measure their speeds, size their shares, place fragments.

Workers run at different speeds (CPU vs GPU, a slowed straggler). The scheduler
measures each worker's throughput (:class:`ThroughputTracker`), sizes shares in
proportion to speed (:func:`proportional_counts`) and places the F row
fragments on workers by Lyapunov drift-plus-penalty (:func:`assign_fragments`).

Drift-plus-penalty placement
----------------------------
Fragment ``f`` holds ``s_f`` work units; worker ``w`` processes ``mu_w`` units
per second (its measured speed). The backlog queue of ``w``, in seconds of
queued work, is::

    Q_w = (sum of s_f over the fragments f placed on w) / mu_w

with the speed-weighted quadratic Lyapunov function::

    L(Q) = 1/2 * sum_w mu_w * Q_w**2      (= 1/2 * sum_w B_w**2 / mu_w, B_w = work on w)

For a fixed total work, ``L`` is smallest exactly when all ``Q_w`` are equal
(every worker finishes at the same time), so keeping its growth small balances
completion times. Placing ``f`` on ``w`` adds ``t_fw = s_f / mu_w`` seconds to
``Q_w`` and grows ``L`` by ``s_f * (Q_w + t_fw / 2)``, which is bounded by the
drift term ``s_f * (Q_w + t_fw)``: ``s_f`` times the expected completion time of
``w`` after taking ``f``. The penalty is the cost of moving data:
``c_fw = move_cost[f]`` seconds if ``f`` lives on another worker, 0 if it
already lives on ``w`` or has no owner yet. Fragments are placed one at a time
in decreasing size (ties: lower index first), each on::

    w* = argmin_w  (Q_w + s_f / mu_w)  +  V * c_fw

(the drift bound divided by ``s_f``, so both terms are seconds and ``V`` is
dimensionless; ties go to the current owner, then to the earlier worker in
``speeds``), after which ``Q_w* += s_f / mu_w*``. ``V = 0`` is pure balance
(greedy longest-processing-time on expected completion); ``V -> inf`` keeps
every owned fragment where it is; in between a fragment leaves its owner only
when another worker would finish earlier with it by more than ``V`` times its
transfer cost.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class ThroughputTracker:
    """Exponentially weighted moving average of each worker's work units per second.

    ``alpha`` is the weight of the newest observation: higher follows speed
    changes (a straggler appearing) faster, lower smooths out timing noise.
    """

    def __init__(self, alpha: float = 0.3):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        self._speed: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def observe(self, worker: str, work: float, seconds: float) -> None:
        """Fold in one measurement: ``work`` units done in ``seconds``.

        Measurements with no work or no elapsed time carry no rate and are ignored.
        """
        if work < 0 or seconds < 0:
            raise ValueError(f"negative work ({work}) or seconds ({seconds})")
        if work == 0 or seconds == 0:
            return
        rate = work / seconds
        old = self._speed.get(worker)
        self._speed[worker] = rate if old is None else (1.0 - self.alpha) * old + self.alpha * rate
        self._counts[worker] = self._counts.get(worker, 0) + 1

    def speed(self, worker: str) -> float | None:
        """Smoothed speed of ``worker``, or None before its first measurement."""
        return self._speed.get(worker)

    def speeds(self, workers: Sequence[str]) -> dict[str, float]:
        """Speeds of ``workers``; unmeasured ones get the mean of the measured (1.0 if none)."""
        default = float(np.mean(list(self._speed.values()))) if self._speed else 1.0
        return {w: self._speed.get(w, default) for w in workers}

    def count(self, worker: str) -> int:
        """How many measurements of ``worker`` the average holds."""
        return self._counts.get(worker, 0)

    def forget(self, worker: str) -> None:
        """Drop ``worker``'s history (it left, or its hardware changed)."""
        self._speed.pop(worker, None)
        self._counts.pop(worker, None)


def proportional_counts(total: int, speeds: Sequence[float]) -> np.ndarray:
    """Split ``total`` items among workers in proportion to ``speeds`` (largest remainder).

    Each worker first gets the floor of its quota ``total * speed / sum(speeds)``;
    the items left over go one each to the largest fractional parts (ties: the
    faster worker, then the lower index), so counts sum to ``total`` exactly, each
    is within one of its quota and a faster worker never gets fewer items.
    Workers with speed 0 get nothing.
    """
    s = np.asarray(speeds, dtype=np.float64)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if s.ndim != 1 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("speeds must be a 1-d sequence of finite non-negative numbers")
    if s.sum() <= 0:
        raise ValueError("at least one speed must be positive")
    quota = total * s / s.sum()
    counts = np.floor(quota).astype(np.int64)
    left = total - int(counts.sum())
    if left:
        frac = np.where(s > 0, quota - counts, -1.0)
        order = np.lexsort((np.arange(s.size), -s, -frac))
        counts[order[:left]] += 1
    return counts


def _positive_speeds(speeds: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    workers = [w for w, v in speeds.items() if v > 0]
    if not workers:
        raise ValueError("no worker with a positive speed")
    return workers, np.array([speeds[w] for w in workers], dtype=np.float64)


def assign_fragments(
    sizes: Sequence[float],
    owners: Mapping[int, str],
    speeds: Mapping[str, float],
    V: float = 1.0,
    move_cost: Sequence[float] | None = None,
) -> dict[int, str]:
    """Place every fragment on a worker by drift-plus-penalty (see the module docstring).

    ``sizes[f]`` is fragment f's work; ``owners`` its current worker (missing, or
    a worker absent from ``speeds``, means it must be shipped anyway, so no
    worker is penalised); ``speeds`` the workers to use (speed <= 0: skipped).
    ``move_cost[f]`` is the seconds it takes to move f; None means moving costs
    what processing it once costs at the mean speed, ``sizes[f] / mean(speeds)``.
    Returns the full mapping fragment -> worker.
    """
    s = np.asarray(sizes, dtype=np.float64)
    if s.ndim != 1 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("sizes must be a 1-d sequence of finite non-negative numbers")
    if V < 0:
        raise ValueError(f"V must be >= 0, got {V}")
    workers, mu = _positive_speeds(speeds)
    if move_cost is None:
        cost = s / mu.mean()
    else:
        cost = np.asarray(move_cost, dtype=np.float64)
        if cost.shape != s.shape or np.any(cost < 0):
            raise ValueError("move_cost must hold one non-negative number per fragment")
    index = {w: i for i, w in enumerate(workers)}
    queue = np.zeros(len(workers))
    assignment: dict[int, str] = {}
    # Phase 1: owners keep their fragments, largest first, up to the ideal share, so a
    # placement that is already balanced moves nothing.
    target = s.sum() / mu.sum()
    for f in np.argsort(-s, kind="stable"):
        owner = index.get(owners.get(int(f)), -1)
        if owner >= 0 and queue[owner] + s[f] / mu[owner] <= target * (1 + 1e-9):
            queue[owner] += s[f] / mu[owner]
            assignment[int(f)] = workers[owner]
    # Phase 2: the rest by drift-plus-penalty, largest first.
    for f in np.argsort(-s, kind="stable"):
        if int(f) in assignment:
            continue
        seconds = s[f] / mu
        score = queue + seconds
        owner = index.get(owners.get(int(f)), -1)
        if owner >= 0:
            score += V * cost[f]
            score[owner] -= V * cost[f]
        best = int(np.argmin(score))
        if owner >= 0 and score[owner] == score[best]:
            best = owner
        queue[best] += seconds[best]
        assignment[int(f)] = workers[best]
    _give_every_worker_one(assignment, s, mu, workers, queue)
    return assignment


def _give_every_worker_one(assignment: dict[int, str], s: np.ndarray, mu: np.ndarray,
                           workers: list[str], queue: np.ndarray) -> None:
    """With at least as many fragments as workers, none is left idle: an idle worker's
    speed could never be measured again, so a slow first reading would starve it."""
    if len(assignment) < len(workers):
        return
    for idle in [i for i, w in enumerate(workers) if w not in set(assignment.values())]:
        held = {}
        for f, w in assignment.items():
            held.setdefault(w, []).append(f)
        donors = [i for i, w in enumerate(workers) if len(held.get(w, [])) > 1]
        if not donors:
            return
        donor = max(donors, key=lambda i: queue[i])
        frag = min(held[workers[donor]], key=lambda f: s[f])
        assignment[frag] = workers[idle]
        queue[donor] -= s[frag] / mu[donor]
        queue[idle] += s[frag] / mu[idle]


def makespan(assignment: Mapping[int, str], sizes: Sequence[float], speeds: Mapping[str, float]) -> float:
    """Predicted round time: the largest ``(work placed on w) / speed_w`` over workers."""
    s = np.asarray(sizes, dtype=np.float64)
    missing = set(range(s.size)) - set(assignment)
    if missing:
        raise ValueError(f"fragments without a worker: {sorted(missing)[:10]}")
    work: dict[str, float] = {}
    for f, w in assignment.items():
        if speeds.get(w, 0.0) <= 0:
            raise ValueError(f"fragment {f} is on worker {w!r}, which has no positive speed")
        work[w] = work.get(w, 0.0) + s[f]
    return max((v / speeds[w] for w, v in work.items()), default=0.0)


def ideal_makespan(sizes: Sequence[float], speeds: Mapping[str, float]) -> float:
    """Round time of a perfect, infinitely divisible split: ``sum(sizes) / sum(speeds)``."""
    _, mu = _positive_speeds(speeds)
    return float(np.sum(np.asarray(sizes, dtype=np.float64)) / mu.sum())


def should_rebalance(
    assignment: Mapping[int, str],
    sizes: Sequence[float],
    speeds: Mapping[str, float],
    threshold: float = 0.15,
) -> bool:
    """True when the current placement's predicted makespan exceeds the ideal by > threshold.

    Also True when a fragment has no worker or sits on one without a positive
    speed (it left). The ideal is what a fresh balanced placement (``V = 0``)
    achieves: :func:`ideal_makespan` when fragments are fine-grained, more when
    they are too coarse for any placement to balance, which must not trigger a
    rebalance every round.
    """
    s = np.asarray(sizes, dtype=np.float64)
    if any(speeds.get(assignment.get(f), 0.0) <= 0 for f in range(s.size)):
        return True
    ideal = makespan(assign_fragments(s, {}, speeds, V=0.0), s, speeds)
    return makespan(assignment, s, speeds) > (1.0 + threshold) * ideal
