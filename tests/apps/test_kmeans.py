"""K-Means: the SMP program in-process, through a real 2-worker cluster, the CLI, and
a slowed worker (speed-proportional fragments must not change the result)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans

from smpframe import Fragment, RunConfig, SchedulerContext, WorkerContext, run_local
from smpframe.api import rows_context
from smpframe.apps.kmeans import KMeans, lloyd_partials_array, lloyd_partials_numba
from smpframe.apps.kmeans_kernels import assign_and_accumulate
from smpframe.cli import main
from smpframe.data.dense import make_blobs
from smpframe.errors import InputError

SAFE = dict(time_limit=25.0)  # no test waits forever, whatever happens to the workers


def config(**kw) -> RunConfig:
    return RunConfig(**{"quiet": True, **SAFE, **kw})


def scheduler_context(program: KMeans, X, n_fragments: int, seed: int = 0) -> SchedulerContext:
    """What the scheduler builds before the first round: checked parameters, data, init."""
    program.check_params()
    ds = program.load_data(X)
    ctx = rows_context(program, ds, n_fragments, np.random.default_rng(seed))
    program.init(ctx)
    program.warm_up("scheduler", np)
    return ctx


def run_inprocess(program: KMeans, X, n_fragments: int = 3, seed: int = 0):
    """The SMP round loop without processes or sockets (same calls, same order)."""
    ctx = scheduler_context(program, X, n_fragments, seed)
    ds = ctx.dataset
    wctx = WorkerContext(meta=ds.meta)
    program.init_worker(wctx)
    program.warm_up("worker", wctx.xp)
    for f, (a, b) in enumerate(ctx.bounds):
        fragment = Fragment(f, a, b)
        fragment.state = program.load(wctx, fragment, ds.fragment(a, b), program.snapshot(ctx, f))
        wctx.fragments[f] = fragment
    for _ in range(10_000):
        if ctx.stop_requested:
            break
        block = program.schedule(ctx)
        if block is None:
            break
        ctx.inflight.append(block)  # dispatched
        partials = {f: program.push(wctx, fragment, block) for f, fragment in wctx.fragments.items()}
        ctx.inflight.pop(0)  # committed
        update = program.pull(ctx, block, partials)
        ctx.round += 1
        if update:
            program.sync_worker(wctx, update)
            for fragment in wctx.fragments.values():
                program.sync(wctx, fragment, update)
    summary, model = program.result(ctx)
    return summary, model, ctx


def sklearn_fit(X, init, iterations, tol):
    return SkKMeans(n_clusters=len(init), init=init, n_init=1, algorithm="lloyd",
                    max_iter=iterations, tol=tol).fit(X)


def first_rows(X, k, seed):
    rng = np.random.default_rng(seed)
    return X[np.sort(rng.choice(len(X), k, replace=False))]


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n=12_000, d=3, centers=16, seed=2)
    return X


# ---- the program, in-process -----------------------------------------------------------

@pytest.mark.parametrize("kernel", ["auto", "array"])
@pytest.mark.parametrize("iterations, tol", [(12, 0.0), (300, 1e-4)])
def test_matches_sklearn_lloyd(blobs, kernel, iterations, tol):
    init = first_rows(blobs, 16, 1)
    summary, model, _ = run_inprocess(
        KMeans(k=16, iterations=iterations, tol=tol, init_centers=init.tolist(), kernel=kernel),
        blobs)
    sk = sklearn_fit(blobs, init, iterations, tol)
    assert summary["iterations"] == sk.n_iter_
    assert summary["inertia"] == pytest.approx(sk.inertia_, rel=1e-9)
    np.testing.assert_allclose(model["centers"], sk.cluster_centers_, rtol=0, atol=1e-9)
    assert model["counts"].sum() == len(blobs)
    np.testing.assert_array_equal(np.sort(model["counts"]), np.sort(np.bincount(sk.labels_, minlength=16)))
    history = summary["inertia_history"]
    assert history[-1] == summary["inertia"]
    assert all(a >= b - 1e-9 * a for a, b in zip(history, history[1:]))  # Lloyd never goes up


def test_empty_clusters_relocated_like_sklearn(blobs):
    init = first_rows(blobs, 8, 4)
    init[3] = [500.0, 500.0, 500.0]   # far from every point: empty in the first round
    init[6] = [-400.0, 0.0, 900.0]
    summary, model, _ = run_inprocess(KMeans(k=8, iterations=10, tol=0.0,
                                             init_centers=init.tolist()), blobs)
    sk = sklearn_fit(blobs, init, 10, 0.0)
    assert summary["empty_relocations"] == 2
    assert summary["inertia"] == pytest.approx(sk.inertia_, rel=1e-9)
    np.testing.assert_allclose(model["centers"], sk.cluster_centers_, atol=1e-9)
    # "keep": the far centres stay put and stay empty
    summary, model, _ = run_inprocess(KMeans(k=8, iterations=10, tol=0.0, empty="keep",
                                             init_centers=init.tolist()), blobs)
    np.testing.assert_array_equal(model["centers"][3], init[3])
    assert model["counts"][3] == 0 and model["counts"][6] == 0
    assert summary["empty_relocations"] == 0


def test_array_path_matches_numba_kernel():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5003, 4))
    C = rng.normal(size=(9, 4))
    x_sq = (X * X).sum(axis=1)
    sums, counts, inertia = assign_and_accumulate(X, C, x_sq)
    a_sums, a_counts, a_inertia = lloyd_partials_array(np, X, x_sq, C, chunk_cells=999)
    np.testing.assert_array_equal(a_counts, counts)
    np.testing.assert_allclose(a_sums, sums, rtol=1e-12, atol=1e-12)
    assert float(a_inertia) == pytest.approx(inertia, rel=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5])
def test_fast_cpu_kernel_is_bitwise_the_reference(d):
    rng = np.random.default_rng(d)
    X = rng.normal(size=(1001, d))
    C = rng.normal(size=(7, d))
    C = np.vstack([C, C[2]])  # a duplicate centre: ties go to the lower index
    x_sq = (X * X).sum(axis=1)
    sums, counts, inertia = lloyd_partials_numba(X, C, x_sq)
    ref_sums, ref_counts, ref_inertia = assign_and_accumulate(X, C, x_sq)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_array_equal(sums, ref_sums)
    assert inertia == ref_inertia and counts[-1] == 0


def test_converges_when_centres_stop_moving():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    summary, model, ctx = run_inprocess(KMeans(k=2, iterations=50, tol=0.0,
                                               init_centers=[[0.0, 0.0], [10.0, 0.0]]), X)
    assert ctx.converged and summary["iterations"] == 2 and summary["center_shift"] == 0.0
    np.testing.assert_array_equal(model["centers"], [[0.0, 0.5], [10.0, 0.5]])
    assert summary["inertia"] == pytest.approx(1.0)
    assert SkKMeans(2, init=np.array([[0.0, 0.0], [10.0, 0.0]]), n_init=1,
                    tol=0.0).fit(X).n_iter_ == 2


def test_one_round_in_flight_at_a_time(blobs):
    """Lloyd rounds depend on each other: with pipelining the program waits (None)."""
    program = KMeans(k=4, iterations=5)
    ctx = scheduler_context(program, blobs, 2)
    block = program.schedule(ctx)
    assert block["kind"] == "lloyd"
    ctx.inflight.append(block)  # the runtime dispatched it: in flight
    assert program.schedule(ctx) is None
    ctx.inflight.pop(0)  # the first round committed
    ctx.round += 1
    assert program.schedule(ctx) is not None


def test_kmeans_plusplus_init_is_seeded_and_sampled(blobs):
    def centres(seed, **kw):
        return scheduler_context(KMeans(k=16, **kw), blobs, 2, seed).model["centers"]

    a, b, c = centres(7), centres(7), centres(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    sampled = centres(7, init_sample=500)
    rows = {tuple(r) for r in blobs}
    assert all(tuple(r) in rows for r in sampled)   # seeds are data points
    assert len({tuple(r) for r in sampled}) == 16
    with pytest.raises(InputError, match="init-sample"):
        centres(7, init_sample=10)


def test_bad_parameters_and_init(tmp_path, blobs):
    for kw, message in [(dict(k=0), "--k"), (dict(iterations=0), "--iterations"),
                        (dict(tol=-1.0), "--tol"), (dict(empty="drop"), "empty")]:
        with pytest.raises(InputError, match=message):
            KMeans(**kw).check_params()
    with pytest.raises(InputError, match="init_centers"):
        KMeans(k=2, init_centers=[[1.0, 2.0], [3.0]]).check_params()
    with pytest.raises(InputError, match="more than the 4 rows"):
        run_inprocess(KMeans(k=5), np.zeros((4, 2)))
    with pytest.raises(InputError, match=r"shape \(2, 3\), expected \(16, 3\)"):
        run_inprocess(KMeans(k=16, init_centers=[[0, 0, 0], [1, 1, 1]]), blobs)
    np.save(tmp_path / "init.npy", np.zeros((16, 2)))
    with pytest.raises(InputError, match="init.npy"):
        run_inprocess(KMeans(k=16, init_path=str(tmp_path / "init.npy")), blobs)


# ---- a real cluster ----------------------------------------------------------------------

def test_cluster_matches_sklearn_from_npy_file(tmp_path, blobs):
    init = first_rows(blobs, 16, 9)
    np.save(tmp_path / "x.npy", blobs)
    np.save(tmp_path / "init.npy", init)
    result = run_local(KMeans(k=16, iterations=300, tol=1e-4, init_path=str(tmp_path / "init.npy")),
                       data=str(tmp_path / "x.npy"), workers=2,
                       config=config(pipeline_depth=1))  # stays exact
    sk = sklearn_fit(blobs, init, 300, 1e-4)
    assert result.summary["converged"]
    assert result.summary["iterations"] == sk.n_iter_
    assert result.summary["inertia"] == pytest.approx(sk.inertia_, rel=1e-9)
    np.testing.assert_allclose(result.model["centers"], sk.cluster_centers_, atol=1e-9)
    assert result.summary["rounds"] == sk.n_iter_ + 1  # + the final inertia pass


def test_cli_run_writes_result_and_model(tmp_path, capsys):
    X, _ = make_blobs(n=3000, d=2, centers=9, seed=1)
    data = tmp_path / "pts.csv"
    data.write_text("a,b\n" + "\n".join(f"{x:.17g},{y:.17g}" for x, y in X) + "\n")
    out = tmp_path / "out"
    rc = main(["run", "kmeans", "--data", str(data), "--k", "5", "--iterations", "7",
               "--tol", "0", "--seed", "3", "--output", str(out), "--time-limit", "25"])
    assert rc == 0
    summary = json.loads((out / "result.json").read_text())
    assert summary["k"] == 5 and 1 <= summary["iterations"] <= 7
    assert summary["inertia"] > 0 and len(summary["inertia_history"]) == summary["rounds"]
    with np.load(out / "model.npz") as npz:
        assert npz["centers"].shape == (5, 2)
        centers = npz["centers"]
    d2 = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2).min(axis=1).sum()
    assert summary["inertia"] == pytest.approx(d2, rel=1e-9)
    assert "inertia" in capsys.readouterr().err  # progress lines
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("round" in m for m in lines)


def test_cli_bad_input_exits_2_with_file_and_line(tmp_path, capsys):
    data = tmp_path / "bad.csv"
    data.write_text("1,2\n3,4\n5,nan\n")
    assert main(["run", "kmeans", "--data", str(data), "--k", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{data}:3:" in err


# ---- heterogeneous: one worker slowed 3x -----------------------------------------------------

def _owners(events):
    devices = {e["worker"]: e["device"] for e in events if e["event"] == "joined"}
    assigned = [e for e in events if e["event"] == "assigned"]
    return devices, assigned


def test_slowed_worker_gets_a_quarter_and_the_result_is_unchanged():
    X, _ = make_blobs(n=400_000, d=6, centers=48, seed=4)
    init = first_rows(X, 48, 2)
    program = dict(k=48, iterations=25, tol=0.0, init_centers=init.tolist())
    # the device name "cpu:1" (still the CPU) tells the slowed worker apart in the events
    slowed = run_local(KMeans(**program), data=X, config=config(), fragments=16,
                       devices=["cpu:0", "cpu:1"], slowdowns=[1.0, 3.0])
    devices, assigned = _owners(slowed.events)
    assert len(assigned) >= 2, "no rebalance after the speeds were measured"
    owners = assigned[-1]["owners"]
    fast = next(w for w, d in devices.items() if d == "cpu:0")
    slow = next(w for w, d in devices.items() if d == "cpu:1")
    bounds = KMeans(k=48).load_data(X).bounds(16)
    share = lambda w: sum(b - a for a, b in (bounds[f] for f in owners[w])) / len(X)  # noqa: E731
    assert share(fast) + share(slow) == pytest.approx(1.0)
    history = [round(sum(b - a for a, b in (bounds[f] for f in e["owners"][fast])) / len(X), 3)
               for e in assigned]
    assert 0.6 <= share(fast) <= 0.9, history   # ideal: 3/4 (speeds 1 : 1/3)

    plain = run_local(KMeans(**program), data=X, config=config(), fragments=16, workers=2)
    assert slowed.summary["iterations"] == plain.summary["iterations"] == 25
    assert slowed.summary["inertia"] == pytest.approx(plain.summary["inertia"], rel=1e-9)
    np.testing.assert_allclose(slowed.model["centers"], plain.model["centers"], rtol=0, atol=1e-9)
