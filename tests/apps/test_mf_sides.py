"""MF's ``sides`` schedule (ratings held twice, two rounds per epoch), the array path GPU
workers run, and the automatic choice of schedule.

Checks: ``sides`` makes the same iterates as ``epoch`` (the Gram-sum schedule it
replaces at larger ranks); the ratings' second copy puts every other-side id's ratings in
one slot and keeps both sides' shares level along the slots; the array code (numpy
here, cupy on a GPU worker) gives the compiled loops' results in every schedule; ``auto``
takes two rounds per epoch at rank 50 and one at rank 2.
"""
from __future__ import annotations

import numpy as np
import pytest

from smpframe import RunConfig, run_local
from smpframe.apps import mf_kernels as K
from smpframe.apps.mf import MatrixFactorization, _other_side_rows
from smpframe.arrays import gpu_available
from smpframe.data.synthetic import make_ratings, split_ratings

TWO = RunConfig(workers=2, quiet=True)
SMALL = {"n_users": 70, "n_items": 260, "n_ratings": 3500, "rank": 4, "seed": 8}
needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no cupy / CUDA device")


@pytest.fixture(scope="module")
def data():
    users, items, values = make_ratings(**SMALL)
    train, test = split_ratings(users, items, values, seed=9)
    return {"train": train, "test": test}


def run(data, config=TWO, **params):
    params = {"lam": 4.0, "epochs": 5, **params}
    return run_local(MatrixFactorization(**params), data=data, config=config)


def test_sides_makes_the_epoch_schedules_iterates(data):
    sides, epoch = run(data, rank=6, inner=2, mode="sides"), run(data, rank=6, inner=2, mode="epoch")
    assert sides.summary["rounds"] == 2 * epoch.summary["rounds"] == 10
    for a, b in zip(sides.summary["history"], epoch.summary["history"], strict=True):
        assert a["objective"] == pytest.approx(b["objective"], rel=1e-10)
        assert a["test_rmse"] == pytest.approx(b["test_rmse"], rel=1e-9)
    for key in ("user_factors", "item_factors", "user_bias", "item_bias"):
        np.testing.assert_allclose(sides.model[key], epoch.model[key], rtol=1e-7, atol=1e-10)


def test_second_copy_puts_each_other_id_in_one_slot_with_level_shares():
    rng = np.random.default_rng(3)
    n_a, n_b, n = 500, 120, 6000
    a = rng.integers(0, n_a, n)
    b = np.minimum(rng.zipf(1.6, n) - 1, n_b - 1)  # skewed: some ids hold many ratings
    b = np.concatenate([b, np.arange(n_b)])  # every id rated at least once
    a = np.concatenate([a, rng.integers(0, n_a, n_b)])
    values = rng.integers(1, 11, a.size) / 2.0
    rows = _other_side_rows(a, b, values, n_a, n_b)
    T, owner = rows["T"], rows["j"]
    slots = np.flatnonzero(owner >= 0)
    assert np.array_equal(owner[slots], np.arange(n_b))  # each id once, rising with the slot
    assert np.all(np.diff(T.indptr)[owner < 0] == 0)
    got = sorted((int(owner[s]), int(i), float(v)) for s in slots
                 for i, v in zip(T.indices[T.indptr[s]:T.indptr[s + 1]], T.data[T.indptr[s]:T.indptr[s + 1]]))
    assert got == sorted(zip(b.tolist(), a.tolist(), values.tolist()))
    # any prefix of slots holds the same share of both sides' ratings, up to one id's share
    share_a = np.cumsum(np.bincount(a, minlength=n_a)) / a.size
    share_b = np.cumsum(np.diff(T.indptr)) / a.size
    assert np.max(np.abs(share_a - share_b)) <= np.bincount(b).max() / a.size + 1e-12


@pytest.mark.parametrize("mode", ["sides", "epoch", "factor"])
@pytest.mark.parametrize("biases", [True, False])
def test_array_path_matches_the_compiled_loops(data, mode, biases):
    """The code a GPU worker runs (bincounts, sparse products), on numpy workers."""
    compiled = run(data, rank=5, inner=2, mode=mode, biases=biases)
    array = run(data, rank=5, inner=2, mode=mode, biases=biases, kernel="array")
    assert array.summary["mode"] == mode
    for a, b in zip(array.summary["history"], compiled.summary["history"], strict=True):
        assert a["objective"] == pytest.approx(b["objective"], rel=1e-9)
    for key in ("user_factors", "item_factors", "user_bias", "item_bias"):
        np.testing.assert_allclose(array.model[key], compiled.model[key], rtol=1e-6, atol=1e-9)


def test_side_update_kernels_agree_on_random_rows():
    rng = np.random.default_rng(4)
    counts = rng.integers(1, 40, 30)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    lb = rng.integers(0, 17, indptr[-1]).astype(np.int64)
    r = rng.normal(3, 1, indptr[-1])
    own, other = rng.normal(0, 0.3, (30, 9)), rng.normal(0, 0.3, (17, 9))
    row = np.repeat(np.arange(30), counts)
    for biases in (True, False):
        new, ee = K.side_update(indptr, lb, r, 3.0, own, other, 2.0, 3, biases)
        new_x, ee_x = K.side_update_array(np, row, lb, r, 3.0, own, other, 2.0, 3, biases)
        np.testing.assert_allclose(new_x, new, rtol=1e-10, atol=1e-12)
        assert ee_x == pytest.approx(ee, rel=1e-10)
        # the residuals' squares are those of the returned rows
        x = other[lb].copy()
        y = r - 3.0
        if biases:
            y -= x[:, 0]
            x[:, 0] = 1.0
        assert ee == pytest.approx(float(np.sum((y - np.einsum("ij,ij->i", new[row], x)) ** 2)), rel=1e-10)


def test_auto_takes_two_rounds_per_epoch_at_rank_50_and_one_at_rank_2(data):
    big = run(data, rank=50, epochs=2)
    small = run(data, rank=2, epochs=2)
    assert (big.summary["mode"], big.summary["rounds"]) == ("sides", 4)
    assert (small.summary["mode"], small.summary["rounds"]) == ("epoch", 2)


def test_resume_mid_epoch_reaches_the_uninterrupted_result(data, tmp_path):
    """Three rounds stop between an epoch's two sides; the resumed run rebuilds the
    workers' shared rows from the checkpointed model and ends where one run ends."""
    whole = run(data, rank=6, mode="sides")
    first = tmp_path / "first"
    cut = run(data, config=RunConfig(workers=2, quiet=True, output=str(first), max_rounds=3,
                                     checkpoint_every="1"), rank=6, mode="sides")
    assert cut.summary["rounds"] == 3
    resumed = run(data, config=RunConfig(workers=2, quiet=True, resume=str(first)), rank=6,
                  mode="sides")
    assert resumed.summary["rounds"] == whole.summary["rounds"] == 10  # counted from the start
    assert resumed.summary["objective"] == pytest.approx(whole.summary["objective"], rel=1e-10)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("devices", [["gpu:0"], ["gpu:0", "cpu"]])
@pytest.mark.parametrize("mode", ["sides", "epoch", "factor"])
def test_gpu_workers_match_the_cpu_run(data, devices, mode):
    cpu = run(data, rank=8, mode=mode)
    gpu = run(data, config=RunConfig(devices=devices, quiet=True, time_limit=120.0), rank=8, mode=mode)
    assert sorted(e["device"] for e in gpu.events if e["event"] == "joined") == sorted(devices)
    for a, b in zip(gpu.summary["history"], cpu.summary["history"], strict=True):
        assert a["objective"] == pytest.approx(b["objective"], rel=1e-9)
