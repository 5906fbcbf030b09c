"""The state machine against arbitrary messages: it never raises, never commits a
malformed partial, and a run it finishes has the exact result."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from smpframe.protocol import MESSAGE_TYPES, Message
from tests.scheduler.test_state import Picky, SimCluster, expected_x

# arrays of every dtype the wire allows, but never the (1,)-float shape a good partial has
bad_arrays = arrays(st.sampled_from([np.float64, np.float32, np.int8, np.int64, np.bool_]),
                    st.sampled_from([(0,), (2,), (1, 1), ()]))
leaves = (st.none() | st.booleans() | st.integers(-3, 10) | st.floats() | st.text(max_size=4)
          | bad_arrays)
keys = st.sampled_from(["0", "1", "2", "-1", "x", "s", "partials", "loaded", "seconds", "reason",
                        "device", "host", "pid", "peak_mb"]) | st.text(max_size=3)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(keys, inner, max_size=4), max_leaves=12)
bodies = st.dictionaries(keys, values, max_size=5)
messages = st.builds(Message, type=st.sampled_from(sorted(MESSAGE_TYPES)), run=st.just("run"),
                     round=st.integers(-2, 6), body=bodies)


def deliver_garbage(sim, sender, msg):
    state, now = sim.state, sim.now
    if msg.type == "HELLO":
        out = state.on_hello(sender, msg.body, now)
    elif msg.type == "RESULT":
        out = state.on_result(sender, msg, now)
    elif msg.type == "FAILED":
        out = state.on_failed(sender, str(msg.body.get("reason", "?")), False, now)
    elif msg.type == "HEARTBEAT":
        out = state.on_heartbeat(sender, now)
    elif msg.type == "BYE":
        out = state.on_bye(sender, now)
    else:
        out = state.on_tick(now)
    sim.deliver([(w, m) for w, m in out if w in sim.inbox or w in ("a", "b")])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "x"]), messages), max_size=12),
       st.integers(0, 3))
def test_arbitrary_messages_never_break_the_run(garbage, delay):
    sim = SimCluster(max_rounds=5, workers=2, program=Picky())
    sim.join("a")
    sim.join("b")
    for _ in range(delay):  # let the run get going before the garbage
        for worker in "ab":
            if sim.inbox.get(worker):
                reply = sim.step(worker)
                if reply is not None:
                    sim.reply(worker, reply)
    for sender, msg in garbage:
        deliver_garbage(sim, sender, msg)
    spare = iter(["c", "d", "e", "f"])
    for _ in range(20):  # finish: the real workers go on; fresh ones replace the evicted
        if sim.state.finished:
            break
        live = [w for w in sim.state.workers if w in sim.inbox]
        if len(live) < 2:
            joiner = next(spare, None)
            if joiner is not None:
                sim.join(joiner)
        sim.run(list(sim.inbox))
    if sim.state.finished and sim.state.error is None:
        assert sim.ctx.round == 5
        assert sim.ctx.model["x"][0] == expected_x(5)
    assert sim.state.error is None or "\n" not in sim.state.error
