import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpframe.scheduling.hetero import (
    ThroughputTracker,
    assign_fragments,
    ideal_makespan,
    makespan,
    proportional_counts,
    should_rebalance,
)


# --- ThroughputTracker -------------------------------------------------------

def test_tracker_first_observation_then_ewma():
    t = ThroughputTracker(alpha=0.5)
    assert t.speed("a") is None
    t.observe("a", work=10.0, seconds=2.0)
    assert t.speed("a") == pytest.approx(5.0)
    t.observe("a", work=30.0, seconds=2.0)
    assert t.speed("a") == pytest.approx(0.5 * 5.0 + 0.5 * 15.0)


def test_tracker_ignores_empty_measurements_and_rejects_negative():
    t = ThroughputTracker()
    t.observe("a", 0.0, 1.0)
    t.observe("a", 1.0, 0.0)
    assert t.speed("a") is None
    with pytest.raises(ValueError):
        t.observe("a", -1.0, 1.0)
    with pytest.raises(ValueError):
        ThroughputTracker(alpha=0.0)


def test_tracker_speeds_defaults_and_forget():
    t = ThroughputTracker()
    assert t.speeds(["a", "b"]) == {"a": 1.0, "b": 1.0}
    t.observe("a", 4.0, 1.0)
    t.observe("b", 8.0, 1.0)
    assert t.speeds(["a", "b", "c"]) == pytest.approx({"a": 4.0, "b": 8.0, "c": 6.0})
    t.forget("b")
    t.forget("missing")
    assert t.speeds(["b"]) == pytest.approx({"b": 4.0})


# --- proportional_counts -----------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 2000),
    speeds=st.lists(st.floats(0.0, 1e3, allow_nan=False), min_size=1, max_size=12).filter(
        lambda s: sum(s) > 0
    ),
)
def test_proportional_counts_properties(total, speeds):
    counts = proportional_counts(total, speeds)
    s = np.asarray(speeds)
    quota = total * s / s.sum()
    assert counts.dtype == np.int64
    assert counts.sum() == total
    assert np.all(counts >= 0)
    assert np.all(np.abs(counts - quota) < 1.0 + 1e-9)  # quota property
    assert np.all(counts[s == 0] == 0)
    faster = s[:, None] > s[None, :]
    assert np.all(counts[:, None] >= counts[None, :], where=faster)  # faster never gets fewer
    assert np.array_equal(counts, proportional_counts(total, speeds))


def test_proportional_counts_exact_and_tie_break():
    assert proportional_counts(12, [1, 2, 3]).tolist() == [2, 4, 6]
    assert proportional_counts(2, [1, 1, 1]).tolist() == [1, 1, 0]
    assert proportional_counts(1, [1, 3, 3]).tolist() == [0, 1, 0]
    assert proportional_counts(0, [1, 2]).tolist() == [0, 0]
    with pytest.raises(ValueError):
        proportional_counts(3, [0, 0])
    with pytest.raises(ValueError):
        proportional_counts(3, [1, -1])


# --- drift-plus-penalty assignment --------------------------------------------

SPEEDS = {"w0": 3.0, "w1": 3.0, "w2": 3.0, "slow": 1.0}


def test_balances_a_three_times_slower_worker():
    sizes = np.ones(120)
    assignment = assign_fragments(sizes, {}, SPEEDS, V=0.0)
    assert sorted(assignment) == list(range(120))
    assert makespan(assignment, sizes, SPEEDS) <= 1.15 * ideal_makespan(sizes, SPEEDS)
    per_worker = {w: sum(1 for v in assignment.values() if v == w) for w in SPEEDS}
    assert per_worker["slow"] == pytest.approx(12, abs=1)


def test_rebalances_after_a_slowdown_with_few_moves():
    sizes = np.ones(120)
    owners = {f: ["w0", "w1", "w2", "slow"][f % 4] for f in range(120)}  # set when all were equal
    assert should_rebalance(owners, sizes, SPEEDS)
    assignment = assign_fragments(sizes, owners, SPEEDS, V=1.0)
    assert makespan(assignment, sizes, SPEEDS) <= 1.15 * ideal_makespan(sizes, SPEEDS)
    assert not should_rebalance(assignment, sizes, SPEEDS)
    moved = sum(assignment[f] != owners[f] for f in owners)
    # only the slow worker's surplus moves: it had 30, keeps about 12
    assert moved <= 20
    assert all(owners[f] == "slow" for f in owners if assignment[f] != owners[f])


def test_large_v_keeps_owners():
    rng = np.random.default_rng(1)
    sizes = rng.uniform(1, 10, 50)
    workers = list(SPEEDS)
    owners = {f: workers[rng.integers(4)] for f in range(50)}
    cost = rng.uniform(0.1, 1.0, 50)
    assert assign_fragments(sizes, owners, SPEEDS, V=1e9, move_cost=cost) == owners
    assert assign_fragments(sizes, owners, SPEEDS, V=1e9) == owners


def test_equal_speeds_balanced_owners_stay_put_even_at_v0():
    speeds = {"a": 1.0, "b": 1.0}
    owners = {f: "ab"[f % 2] for f in range(10)}
    assert assign_fragments(np.ones(10), owners, speeds, V=0.0) == owners


def test_unowned_and_departed_owners_are_placed_and_zero_speed_skipped():
    speeds = {"a": 1.0, "b": 2.0, "dead": 0.0}
    owners = {0: "gone", 1: "dead", 2: "a"}
    assignment = assign_fragments([5.0, 1.0, 1.0, 2.0], owners, speeds)
    assert sorted(assignment) == [0, 1, 2, 3]
    assert set(assignment.values()) <= {"a", "b"}
    with pytest.raises(ValueError):
        assign_fragments([1.0], {}, {"a": 0.0})
    with pytest.raises(ValueError):
        assign_fragments([1.0, 2.0], {}, speeds, move_cost=[1.0])


def test_makespan_and_ideal():
    speeds = {"a": 1.0, "b": 3.0}
    sizes = [2.0, 3.0, 3.0]
    assert makespan({0: "a", 1: "b", 2: "b"}, sizes, speeds) == pytest.approx(2.0)
    assert ideal_makespan(sizes, speeds) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        makespan({0: "a"}, sizes, speeds)


def test_should_rebalance_edge_cases():
    speeds = {"a": 1.0, "b": 1.0, "c": 1.0}
    sizes = np.ones(4)  # too coarse for 3 workers: best makespan is 2, ideal 4/3
    balanced = {0: "a", 1: "b", 2: "c", 3: "a"}
    assert not should_rebalance(balanced, sizes, speeds)
    assert should_rebalance({0: "a", 1: "a", 2: "a", 3: "b"}, sizes, speeds)
    assert should_rebalance({0: "a", 1: "b", 2: "c"}, sizes, speeds)  # fragment 3 unplaced
    assert should_rebalance({**balanced, 3: "gone"}, sizes, speeds)
