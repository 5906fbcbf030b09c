"""MF on a ratings file its workers read themselves (the default for a file): each worker
gathers the ratings of the ids its fragment owns from every split, and the run is the one
the scheduler-read and in-memory runs make; a lost worker's ids are gathered again by
their new owner; bad lines are named by file and line."""
from __future__ import annotations

import numpy as np
import pytest

from smpframe import LocalCluster, run_local
from smpframe.api import Splits
from smpframe.apps.mf import MatrixFactorization
from smpframe.data.synthetic import make_ratings, split_ratings
from tests.clitools import one_line_error, run_cli


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    """A MovieLens-like CSV (header, string user ids, shuffled lines) and its held-out set."""
    users, items, values = make_ratings(n_users=80, n_items=400, n_ratings=6000, seed=3)
    (tu, ti, tv), (su, si, sv) = split_ratings(users, items, values, seed=4)
    order = np.random.default_rng(5).permutation(len(tv))  # an id's ratings all over the file
    tu, ti, tv = tu[order], ti[order], tv[order]
    folder = tmp_path_factory.mktemp("ratings")
    train, test = folder / "train.csv", folder / "test.csv"
    for path, (u, i, v) in ((train, (tu, ti, tv)), (test, (su, si, sv))):
        path.write_text("user,item,rating\n" + "".join(
            f"u{a},{b},{r:g}\n" for a, b, r in zip(u, i, v)))
    memory = {"train": ([f"u{a}" for a in tu], ti, tv), "test": ([f"u{a}" for a in su], si, sv)}
    return str(train), str(test), memory


@pytest.mark.parametrize("mode", ["sides", "epoch", "factor"])
def test_read_by_the_workers_is_the_scheduler_read_and_in_memory_run(ratings, mode):
    train, test, memory = ratings
    params = {"rank": 4, "epochs": 5, "mode": mode, "test": test}
    ours = run_local(MatrixFactorization(**params), data=train, quiet=True, workers=3)
    theirs = run_local(MatrixFactorization(**params), data=train, quiet=True, workers=3,
                       read_on="scheduler")
    del params["test"]
    held = run_local(MatrixFactorization(**params), data=memory, quiet=True, workers=3)
    assert ours.summary["read_on"] == "workers" and theirs.summary["read_on"] == "scheduler"
    assert ours.summary["mode"] == mode and ours.summary["n_ratings"] == len(memory["train"][2])
    for other in (theirs, held):
        assert ours.summary["objective"] == pytest.approx(other.summary["objective"], rel=1e-9)
        assert ours.summary["test_rmse"] == pytest.approx(other.summary["test_rmse"], rel=1e-9)
        for key in ("user_factors", "item_factors", "user_bias", "item_bias"):
            np.testing.assert_allclose(ours.model[key], other.model[key], rtol=1e-7, atol=1e-9)
        assert list(ours.model["user_ids"]) == list(other.model["user_ids"])


def test_a_file_is_left_to_the_workers_but_the_data_parallel_baseline_reads_it_here(ratings):
    train = ratings[0]
    assert isinstance(MatrixFactorization().load_data(train), Splits)
    sgd = run_local(MatrixFactorization(rank=3, epochs=2, policy="data-parallel"), data=train,
                    quiet=True)
    assert sgd.summary["read_on"] == "scheduler"  # it computes the loss from the ratings


def test_a_killed_worker_has_its_ids_gathered_again(ratings):
    train = ratings[0]
    program = {"rank": 4, "epochs": 12, "mode": "sides"}
    reference = run_local(MatrixFactorization(**program), data=train, quiet=True, workers=3)
    options = {"heartbeat_timeout": 1.5, "heartbeat_interval": 0.25, "scheduler_timeout": 10.0,
               "slowdowns": [200.0] * 3}
    with LocalCluster(MatrixFactorization(**program), train, timeout=90.0, workers=3,
                      **options) as cluster:
        assert cluster.wait_for_round(2), "run ended early"
        cluster.procs[0].kill()
        result = cluster.wait()
    lost = [e for e in result.events if e["event"] == "worker_lost"]
    assert len(lost) == 1 and lost[0]["fragments"]
    assert result.summary["read_on"] == "workers" and result.summary["epochs"] == 12
    assert result.summary["objective"] == pytest.approx(reference.summary["objective"], rel=1e-9)


def test_a_bad_line_a_worker_reads_is_named_with_exit_2(tmp_path):
    good = "".join(f"{u},{u % 17},4\n" for u in range(2000))
    bad = tmp_path / "bad.csv"
    bad.write_text(good + "5,6,lots\n" + good)  # several splits, the error mid-file
    line = one_line_error(run_cli("run", "mf", "--data", str(bad), "--quiet"))
    assert line.endswith("bad.csv:2001: rating 'lots' is not a number")


def test_a_url_read_by_the_workers(ratings):
    pytest.importorskip("fsspec")
    train = ratings[0]
    params = {"rank": 3, "epochs": 3}
    ours = run_local(MatrixFactorization(**params), data="file://" + train, quiet=True)
    local = run_local(MatrixFactorization(**params), data=train, quiet=True)
    assert ours.summary["read_on"] == "workers"
    assert ours.summary["objective"] == pytest.approx(local.summary["objective"], rel=1e-12)
