"""The state machine on data the workers read: READ, DESCRIBE, LOAD, then rounds; no rows
leave the scheduler; a lost reader's splits are read again; bad data ends the run."""
from __future__ import annotations

import numpy as np
import pytest

from smpframe.api import Splits
from smpframe.data import splits
from tests.scheduler.test_state import VALUES, Drift, SimCluster, expected_x


class SplitDrift(Drift):
    """Drift on a one-column CSV file the workers read; init checks the facts."""

    def load_data(self, source):
        return Splits("csv", source)

    def init(self, ctx):
        assert sum(f["n"] for f in ctx.facts.values()) == VALUES.size
        assert ctx.bounds[-1][1] == VALUES.size and ctx.dataset.meta["n_rows"] == VALUES.size
        super().init(ctx)

    def describe(self, wctx, fragment, data):
        return {"n": int(data["X"].shape[0])}

    def load(self, wctx, fragment, data, model):
        assert data["X"].shape[0] == fragment.n_rows
        return super().load(wctx, fragment, {"v": data["X"][:, 0]}, model)


@pytest.fixture
def values_csv(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "MIN_SPLIT_BYTES", 1)
    path = tmp_path / "v.csv"
    path.write_text("v\n" + "".join(f"{v:g}\n" for v in VALUES))
    return str(path)


def test_a_run_on_splits_gives_the_in_memory_result_and_ships_no_rows(values_csv):
    sim = SimCluster(program=SplitDrift(), source=values_csv, max_rounds=5, workers=2)
    sim.join("a")
    sim.join("b")
    sim.run(["a", "b"])
    assert sim.state.finished and sim.state.error is None
    assert sim.ctx.model["x"][0] == pytest.approx(expected_x(5), rel=1e-12)
    loads = [item for _, m in sim.sent if m.type == "WORK" for item in m.body["load"]]
    assert loads and not any("data" in item for item in loads)
    assert [item["phase"] for item in loads].count("read") == 6
    assert [e["event"] for e in sim.state.events].count("load") == 1


def test_a_reader_lost_before_the_rounds_has_its_splits_read_again(values_csv):
    sim = SimCluster(program=SplitDrift(), source=values_csv, max_rounds=4, workers=2)
    sim.join("a")
    sim.join("b")
    sim.pump("a")  # a reads and describes; b never answers
    sim.now = 11.0  # past the heartbeat timeout
    sim.state.workers["a"].last_seen = sim.now
    sim.deliver(sim.state.on_tick(sim.now))
    assert "b" not in sim.state.workers
    sim.run(["a"])
    assert sim.state.finished and sim.state.error is None
    assert sim.ctx.model["x"][0] == pytest.approx(expected_x(4), rel=1e-12)


def test_bad_data_in_a_split_ends_the_run_as_bad_input(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "MIN_SPLIT_BYTES", 1)
    path = tmp_path / "v.csv"
    path.write_text("".join(f"{v:g}\n" for v in VALUES[:20]) + "oops\n" + "1\n" * 3)
    sim = SimCluster(program=SplitDrift(), source=str(path), max_rounds=4, workers=2)
    sim.join("a")
    sim.join("b")
    sim.run(["a", "b"])
    assert sim.state.finished and sim.state.bad_input
    assert sim.state.error.endswith("v.csv:21: value 'oops' is not a number")
    assert sim.ctx.round == 0


def test_malformed_facts_make_the_worker_faulty(values_csv):
    sim = SimCluster(program=SplitDrift(), source=values_csv, max_rounds=2, workers=1)
    sim.join("a")
    work = sim.inbox["a"][-1]
    ids = [item["id"] for item in work.body["load"]]
    from smpframe.protocol import Message
    forged = Message("RESULT", "run", -1, {"loaded": ids, "phase": "read",
                                          "facts": {str(i): {"n_rows": -1} for i in ids}})
    sim.deliver(sim.state.on_result("a", forged, sim.now))
    assert "a" not in sim.state.workers
    assert any("n_rows must be an integer" in e.get("reason", "") for e in sim.state.events)
