"""GPU (cupy) workers: K-Means and Lasso on a GPU worker and on a mixed GPU + CPU
cluster, against scikit-learn and the CPU kernels. Marked ``gpu``; skipped cleanly where ``gpu_available()`` is False.
The no-GPU tests check that asking for a GPU without one fails fast and clearly."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans

from smpframe import run_local
from smpframe.apps.kmeans import KMeans, lloyd_partials_array
from smpframe.arrays import gpu_available
from smpframe.cli import main
from smpframe.data.dense import make_blobs

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no cupy / CUDA device")


@pytest.fixture(scope="module")
def problem():
    X, _ = make_blobs(n=20_000, d=3, centers=16, seed=7)
    rng = np.random.default_rng(0)
    init = X[np.sort(rng.choice(len(X), 16, replace=False))]
    init[5] = [300.0, 300.0, 300.0]  # empty at first: exercises the relocation round on device
    sk = SkKMeans(n_clusters=16, init=init, n_init=1, algorithm="lloyd", max_iter=20,
                  tol=0.0).fit(X)
    return X, init, sk


@pytest.mark.gpu
@needs_gpu
def test_device_kernel_matches_numpy():
    import cupy as cp

    rng = np.random.default_rng(1)
    X = rng.normal(size=(50_001, 5))
    C = rng.normal(size=(11, 5))
    x_sq = (X * X).sum(axis=1)
    sums, counts, inertia = lloyd_partials_array(np, X, x_sq, C, chunk_cells=1 << 16)
    g_sums, g_counts, g_inertia = lloyd_partials_array(cp, cp.asarray(X), cp.asarray(x_sq),
                                                       cp.asarray(C), chunk_cells=1 << 16)
    np.testing.assert_array_equal(cp.asnumpy(g_counts), counts)
    np.testing.assert_allclose(cp.asnumpy(g_sums), sums, rtol=1e-10, atol=1e-9)
    assert float(g_inertia) == pytest.approx(float(inertia), rel=1e-10)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("devices", [["gpu:0"], ["gpu:0", "cpu"]])
def test_kmeans_on_gpu_workers_matches_sklearn(problem, devices):
    X, init, sk = problem
    result = run_local(KMeans(k=16, iterations=20, tol=0.0, init_centers=init.tolist()), data=X,
                       devices=devices, quiet=True, time_limit=60.0)
    assert result.summary["iterations"] == sk.n_iter_
    assert result.summary["empty_relocations"] >= 1
    assert result.summary["inertia"] == pytest.approx(sk.inertia_, rel=1e-9)
    np.testing.assert_allclose(result.model["centers"], sk.cluster_centers_, atol=1e-8)
    joined = [e["device"] for e in result.events if e["event"] == "joined"]
    assert sorted(joined) == sorted(devices)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("devices", [["gpu:0"], ["gpu:0", "cpu"]])
def test_lasso_on_gpu_workers_matches_the_cpu_run(devices):
    from smpframe.apps.lasso import Lasso
    from smpframe.data.synthetic import make_regression

    X, y, _ = make_regression(n=4000, d=3000, density=0.01, n_informative=40, seed=2)
    cpu = run_local(Lasso(lam=0.01, tol=1e-9), data=(X, y), workers=2, quiet=True)
    gpu = run_local(Lasso(lam=0.01, tol=1e-9), data=(X, y), devices=devices, quiet=True,
                    time_limit=60.0)
    assert gpu.summary["converged"]
    assert gpu.summary["objective"] == pytest.approx(cpu.summary["objective"], rel=1e-9)
    np.testing.assert_allclose(gpu.model["coef"], cpu.model["coef"], rtol=1e-6, atol=1e-9)


@pytest.mark.gpu
@needs_gpu
def test_logreg_on_a_gpu_worker_matches_the_cpu_run():
    from smpframe.apps.logreg import LogReg
    from smpframe.data.synthetic import make_classification

    X, y, _ = make_classification(n=3000, d=2000, density=0.01, n_informative=40, seed=3)
    cpu = run_local(LogReg(lam=1e-3, tol=1e-10), data=(X, y), workers=2, quiet=True)
    gpu = run_local(LogReg(lam=1e-3, tol=1e-10), data=(X, y), devices=["gpu:0", "cpu"],
                    quiet=True, time_limit=60.0)
    assert gpu.summary["converged"]
    assert gpu.summary["objective"] == pytest.approx(cpu.summary["objective"], rel=1e-8)


def test_array_path_on_cpu_workers_matches_sklearn(problem):
    """The code GPU workers run (GEMM + argmin + bincount), here on numpy workers."""
    X, init, sk = problem
    result = run_local(KMeans(k=16, iterations=20, tol=0.0, init_centers=init.tolist(),
                              kernel="array"), data=X, workers=2, quiet=True,
                       time_limit=25.0)
    assert result.summary["iterations"] == sk.n_iter_
    assert result.summary["empty_relocations"] >= 1
    assert result.summary["inertia"] == pytest.approx(sk.inertia_, rel=1e-9)
    np.testing.assert_allclose(result.model["centers"], sk.cluster_centers_, atol=1e-9)


@pytest.mark.skipif(gpu_available(), reason="a GPU is present")
@pytest.mark.parametrize("devices", ["gpu", "cpu,gpu:0"])
def test_cli_gpu_without_cupy_is_a_one_line_error(capsys, devices):
    assert main(["run", "kmeans", "--devices", devices, "--k", "3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("smpframe: error: --devices gpu")
    assert "cupy" in err or "CUDA" in err
