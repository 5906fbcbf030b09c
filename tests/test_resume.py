"""Checkpoint and resume, for every app, through the one runtime mechanism.

A run stopped after a few rounds (as if the scheduler died) leaves checkpoints; a
fresh cluster resumes from them and must end where an uninterrupted run ends.
"""
from __future__ import annotations

import pytest

from smpframe import run_local
from smpframe.apps.kmeans import KMeans
from smpframe.apps.lasso import Lasso
from smpframe.apps.lda import LDA
from smpframe.apps.logreg import LogReg
from smpframe.apps.mf import MatrixFactorization

APPS = {
    "lasso": lambda: Lasso(tol=1e-9, synthetic={"n": 400, "d": 800, "density": 0.02,
                                                 "n_informative": 20}),
    "logreg": lambda: LogReg(tol=1e-8, synthetic={"n": 600, "d": 300, "density": 0.03,
                                                   "n_informative": 20}),
    "mf": lambda: MatrixFactorization(rank=3, epochs=8, synthetic={"n_users": 60, "n_items": 90,
                                                                    "n_ratings": 1500}),
    "lda": lambda: LDA(topics=5, iterations=6, synthetic={"n_docs": 200, "n_words": 300,
                                                          "n_topics": 5, "doc_length": 40}),
    "kmeans": lambda: KMeans(k=4, iterations=30, tol=0.0, synthetic={"n": 3000, "d": 2,
                                                                     "centers": 4}),
}
# every app resumes to the uninterrupted result (LDA: the identical chain, its topics
# restored from the checkpoint, as the run keeps the same fragments and blocks)
TOLERANCE: dict[str, float] = {}
FIGURE = {"lda": "ll_per_token", "lasso": "objective", "logreg": "objective", "mf": "train_rmse", "kmeans": "inertia"}


@pytest.mark.parametrize("app", sorted(APPS))
def test_resume_reaches_the_uninterrupted_result(app, tmp_path):
    key = FIGURE[app]
    whole = run_local(APPS[app](), quiet=True).summary[key]
    first = tmp_path / "first"
    cut = run_local(APPS[app](), quiet=True, output=str(first), max_rounds=3,
                    checkpoint_every="1")
    assert cut.summary["rounds"] == 3 and (first / "checkpoints" / "LATEST").exists()
    resumed = run_local(APPS[app](), quiet=True, output=str(tmp_path / "second"),
                        resume=str(first))
    assert resumed.summary["rounds"] > 3
    assert resumed.summary[key] == pytest.approx(whole, rel=TOLERANCE.get(app, 1e-6))


def test_resume_refuses_other_parameters(tmp_path):
    from smpframe import InputError
    out = tmp_path / "run"
    run_local(APPS["lasso"](), quiet=True, output=str(out), max_rounds=2, checkpoint_every="1")
    other = Lasso(tol=1e-3, synthetic={"n": 400, "d": 800, "density": 0.02, "n_informative": 20})
    with pytest.raises(InputError, match="checkpoint"):
        run_local(other, quiet=True, resume=str(out))
