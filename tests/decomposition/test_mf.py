"""smpframe.decomposition.MatrixFactorization: the objective, against alternating least squares."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from smpframe.data.synthetic import make_ratings, split_ratings
from smpframe.decomposition import MatrixFactorization
from tests.estimators import deadline, warm_cluster  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("deadline", "warm_cluster")

RANK, REG = 4, 5.0


@pytest.fixture(scope="module")
def ratings():
    users, items, values = make_ratings(n_users=80, n_items=200, n_ratings=4000, rank=RANK, seed=2)
    return split_ratings(users, items, values, 0.2, seed=3)


def objective(u, i, r, mu, bu, bi, P, Q, reg):
    """``sum (r - mu - b_u - b_i - p_u.q_i)^2 + reg (||P||^2 + ||Q||^2 + ||b||^2)``."""
    e = r - mu - bu[u] - bi[i] - np.sum(P[u] * Q[i], axis=1)
    return e @ e + reg * (np.sum(P ** 2) + np.sum(Q ** 2) + bu @ bu + bi @ bi)


def als(u, i, r, n_users, n_items, reg, sweeps=40, seed=0):
    """Biased ALS on the same objective: each row's (bias, factors) solved exactly in turn."""
    rng = np.random.default_rng(seed)
    mu = r.mean()
    A = np.column_stack([np.zeros(n_users), 0.1 * rng.standard_normal((n_users, RANK))])
    B = np.column_stack([np.zeros(n_items), 0.1 * rng.standard_normal((n_items, RANK))])

    def solve(rows, cols, own, other):
        for a in range(len(own)):
            at = rows == a
            other_bias, F = other[cols[at], 0], other[cols[at], 1:]
            design = np.column_stack([np.ones(at.sum()), F])
            target = r[at] - mu - other_bias
            own[a] = np.linalg.solve(design.T @ design + reg * np.eye(RANK + 1), design.T @ target)

    for _ in range(sweeps):
        solve(u, i, A, B)
        solve(i, u, B, A)
    return mu, A[:, 0], B[:, 0], A[:, 1:], B[:, 1:]


def test_reaches_the_objective_of_alternating_least_squares(ratings):
    (u, i, r), (tu, ti, tr) = ratings
    est = MatrixFactorization(n_factors=RANK, reg=REG, n_epochs=40, random_state=0)
    est.fit(np.column_stack([u, i, r]))
    # the model's own objective, recomputed from its attributes
    codes_u = np.searchsorted(est.user_ids_, u)
    codes_i = np.searchsorted(est.item_ids_, i)
    mine = objective(codes_u, codes_i, r, est.global_mean_, est.user_bias_, est.item_bias_,
                     est.user_factors_, est.item_factors_, REG)
    assert mine == pytest.approx(est.objective_, rel=1e-8)
    fit = als(codes_u, codes_i, r, len(est.user_ids_), len(est.item_ids_), REG)
    theirs = objective(codes_u, codes_i, r, *fit, REG)
    assert mine == pytest.approx(theirs, rel=1e-3)  # two local optima of one objective
    rmse = np.sqrt(np.mean((est.predict(np.column_stack([tu, ti])) - tr) ** 2))
    bias_only = np.sqrt(np.mean((r.mean() - tr) ** 2))
    assert rmse < 0.9 * bias_only
    assert est.n_iter_ == 40


def test_data_frames_and_string_ids(ratings):
    pd = pytest.importorskip("pandas")
    (u, i, r), (tu, ti, _) = ratings
    plain = MatrixFactorization(n_factors=RANK, n_epochs=5, random_state=1)
    plain.fit(np.column_stack([u, i, r]))
    frame = pd.DataFrame({"user": [f"u{a:03d}" for a in u], "item": [f"i{b:03d}" for b in i],
                          "rating": r})
    named = MatrixFactorization(n_factors=RANK, n_epochs=5, random_state=1).fit(frame)
    pairs = pd.DataFrame({"user": [f"u{a:03d}" for a in tu], "item": [f"i{b:03d}" for b in ti]})
    np.testing.assert_allclose(named.predict(pairs), plain.predict(np.column_stack([tu, ti])),
                               rtol=1e-12)


def test_unseen_ids_fall_back_to_the_biases(ratings):
    (u, i, r), _ = ratings
    est = MatrixFactorization(n_factors=RANK, n_epochs=5, random_state=0).fit(np.column_stack([u, i, r]))
    item = est.item_ids_[0]
    unseen_user, both = est.predict(np.array([[10_000, item], [10_000, 10_000]]))
    lo, hi = est.rating_range_
    assert unseen_user == pytest.approx(np.clip(est.global_mean_ + est.item_bias_[0], lo, hi))
    assert both == pytest.approx(est.global_mean_)


def test_bad_input(ratings):
    (u, i, r), _ = ratings
    with pytest.raises(NotFittedError):
        MatrixFactorization().predict(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        MatrixFactorization().fit(np.column_stack([u, i]))
    with pytest.raises(ValueError, match="NaN"):
        MatrixFactorization().fit(np.column_stack([u, i, np.where(r > 4, np.nan, r)]))
    with pytest.raises(ValueError, match="n_factors"):
        MatrixFactorization(n_factors=0).fit(np.column_stack([u, i, r]))
