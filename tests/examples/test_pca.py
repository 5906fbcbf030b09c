"""The example program (public API only) on a real local cluster, against numpy."""
from __future__ import annotations

import numpy as np

from smpframe import run_local
from smpframe.examples.pca import PCA


def test_pca_example_finds_the_top_components():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((500, 8)) @ np.diag([6.0, 4.0, 2.0, 1, 1, 1, 1, 1]) + 3.0
    result = run_local(PCA(k=2, iterations=300), data=A, workers=2, quiet=True)
    eigvals, eigvecs = np.linalg.eigh(np.cov(A.T))
    top = eigvecs[:, ::-1][:, :2]
    cosines = np.abs(np.sum(top * result.model["V"], axis=0))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-6)
