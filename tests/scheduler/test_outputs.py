"""Checkpoints: a damaged one is refused with one line naming it, never half-restored."""
from __future__ import annotations

import json

import numpy as np
import pytest

from smpframe.api import Dataset, SchedulerContext
from smpframe.errors import InputError
from smpframe.scheduler.outputs import read_checkpoint, restore, write_checkpoint


def context():
    ds = Dataset(rows={"v": np.arange(4.0)})
    ctx = SchedulerContext(dataset=ds, bounds=ds.bounds(2), rng=np.random.default_rng(0))
    ctx.model.update(w=np.zeros(3), counts=np.zeros(2, np.int64))
    ctx.state.update(step=0)
    return ctx


def damaged(tmp_path, change_state=None, change_model=None):
    ctx = context()
    ctx.round = 4
    folder = write_checkpoint(tmp_path, ctx, "prog", {"k": 1})
    if change_state:
        state = json.loads((folder / "state.json").read_text())
        change_state(state)
        (folder / "state.json").write_text(json.dumps(state))
    if change_model:
        model = dict(np.load(folder / "model.npz"))
        change_model(model)
        np.savez(folder / "model.npz", **model)
    return read_checkpoint(tmp_path)


def test_a_good_checkpoint_restores(tmp_path):
    state, model = damaged(tmp_path)
    ctx = context()
    restore(ctx, state, model, tmp_path)
    assert ctx.round == 4 and ctx.state["step"] == 0


@pytest.mark.parametrize("change_state, change_model, why", [
    (lambda s: s.update(round=-5), None, "round -5"),
    (lambda s: s.update(round="7"), None, "round '7'"),
    (lambda s: s.update(state=[1]), None, "lacks its state"),
    (lambda s: s.update(rng={"bit_generator": "nope"}), None, "random generator"),
    (lambda s: s.update(elapsed=-1.0), None, "elapsed"),
    (None, lambda m: m.update(w=np.full(3, np.nan)), "'w' holds NaN"),
    (None, lambda m: m.update(w=np.zeros((3, 3))), "'w' is float64 (3, 3)"),
    (None, lambda m: m.update(counts=np.zeros(2)), "'counts' is float64"),
])
def test_a_damaged_checkpoint_is_refused(tmp_path, change_state, change_model, why):
    state, model = damaged(tmp_path, change_state, change_model)
    ctx = context()
    before = (ctx.round, dict(ctx.state), ctx.model["w"].copy())
    with pytest.raises(InputError, match="checkpoint is unusable") as err:
        restore(ctx, state, model, tmp_path)
    assert why in str(err.value) and str(tmp_path) in str(err.value)
    assert (ctx.round, ctx.state) == before[:2] and np.array_equal(ctx.model["w"], before[2])
