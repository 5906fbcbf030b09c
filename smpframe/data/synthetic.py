"""Built-in synthetic problems, so every app runs with no input file.

Each generator is deterministic in its seed and returns plain numpy/scipy data.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def sparse_design(n: int, d: int, density: float, rng: np.random.Generator) -> sp.csr_matrix:
    """A random sparse matrix with standard normal nonzeros at uniform positions."""
    nnz = max(1, int(round(n * d * density)))
    rows = rng.integers(0, n, nnz)
    cols = rng.integers(0, d, nnz)
    X = sp.csr_matrix((rng.standard_normal(nnz), (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    return X


def make_regression(n: int = 5000, d: int = 20000, density: float = 0.002,
                    n_informative: int = 100, noise: float = 0.1, seed: int = 0
                    ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Sparse regression ``y = X beta + 1.5 + noise`` with an ``n_informative``-sparse truth."""
    rng = np.random.default_rng(seed)
    X = sparse_design(n, d, density, rng)
    beta = np.zeros(d)
    support = rng.choice(d, size=min(n_informative, d), replace=False)
    beta[support] = rng.choice([-1.0, 1.0], support.size) * rng.uniform(1.0, 3.0, support.size)
    y = X @ beta + 1.5 + noise * rng.standard_normal(n)
    return X, y, beta


def make_classification(n: int = 8000, d: int = 5000, density: float = 0.005,
                        n_informative: int = 100, seed: int = 0
                        ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Binary bag-of-words-like features with labels in {-1,+1} from a sparse logistic model."""
    rng = np.random.default_rng(seed)
    nnz = max(1, int(round(n * d * density)))
    X = sp.csr_matrix((np.ones(nnz), (rng.integers(0, n, nnz), rng.integers(0, d, nnz))),
                      shape=(n, d))
    X.sum_duplicates()
    X.data[:] = 1.0
    beta = np.zeros(d)
    support = rng.choice(d, size=min(n_informative, d), replace=False)
    beta[support] = rng.normal(0.0, 2.0, support.size)
    margin = X @ beta - 0.2
    y = np.where(rng.random(n) < 1.0 / (1.0 + np.exp(-margin)), 1.0, -1.0)
    return X, y, beta


def make_text_classification(n: int = 60000, d: int = 15000, words: float = 60.0,
                             zipf: float = 1.05, n_informative: int = 300, scale: float = 1.0,
                             seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Binary bag-of-words documents with Zipf-distributed word frequencies.

    Each of ``n`` documents draws about ``words`` tokens (Poisson) from a ``d``-word
    vocabulary with ``p(rank r) ∝ (r + 10)^-zipf`` (a few very common words, a long
    tail of rare ones); features are word presence (0/1). Labels in {-1,+1} come from
    a sparse logistic model on ``n_informative`` words plus an offset.
    """
    rng = np.random.default_rng(seed)
    p = 1.0 / (np.arange(1, d + 1) + 10.0) ** zipf
    p /= p.sum()
    vocab = rng.permutation(d)
    lengths = rng.poisson(words, n) + 5
    cols = vocab[rng.choice(d, size=int(lengths.sum()), p=p)]
    rows = np.repeat(np.arange(n), lengths)
    X = sp.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    X.data[:] = 1.0
    beta = np.zeros(d)
    support = rng.choice(d, size=min(n_informative, d), replace=False)
    beta[support] = rng.normal(0.0, scale, support.size)
    margin = X @ beta - 0.3
    y = np.where(rng.random(n) < 1.0 / (1.0 + np.exp(-margin)), 1.0, -1.0)
    return X, y, beta


def make_ratings(n_users: int = 600, n_items: int = 9000, n_ratings: int = 100_000,
                 rank: int = 10, noise: float = 0.8, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MovieLens-shaped explicit ratings: ``(users, items, values)``, one rating per pair.

    Users' activity is skewed (log-normal, at least 20 ratings each, like MovieLens)
    and so is items' popularity (log-normal weights: a few blockbusters, a long tail
    of items rated once or twice). Values come from ``3.4 + b_u + b_i + w_u.h_i + noise``
    with a rank-``rank`` interaction, then rounded to half stars and clipped to 0.5-5.
    Ids are ``0..n_users-1`` and ``0..n_items-1`` (not every item need be rated).
    """
    rng = np.random.default_rng(seed)
    n_ratings = int(min(n_ratings, n_users * n_items))
    floor = min(20, n_items, max(1, n_ratings // max(n_users, 1)))
    activity = rng.lognormal(0.0, 1.0, n_users)
    spare = max(n_ratings - floor * n_users, 0)
    counts = floor + np.floor(spare * activity / activity.sum()).astype(np.int64)
    short = n_ratings - int(counts.sum())
    if short > 0:
        np.add.at(counts, rng.choice(n_users, size=short, p=activity / activity.sum()), 1)
    counts = np.minimum(counts, n_items)
    popularity = rng.lognormal(0.0, 1.5, n_items)
    log_pop = np.log(popularity)
    users, items = [], []
    for u in range(n_users):
        # weighted sample without replacement (exponential keys)
        keys = rng.standard_exponential(n_items) / popularity
        pick = np.argpartition(keys, counts[u] - 1)[:counts[u]]
        users.append(np.full(pick.size, u, dtype=np.int64))
        items.append(pick.astype(np.int64))
    users = np.concatenate(users)
    items = np.concatenate(items)
    b_user = rng.normal(0.0, 0.35, n_users)
    b_item = rng.normal(0.0, 0.45, n_items) + 0.15 * (log_pop - log_pop.mean())
    W = rng.normal(0.0, 1.0, (n_users, rank)) * np.sqrt(0.45 / rank)
    H = rng.normal(0.0, 1.0, (n_items, rank))
    raw = 3.4 + b_user[users] + b_item[items] + np.einsum("ij,ij->i", W[users], H[items]) \
        + noise * rng.standard_normal(users.size)
    values = np.clip(np.round(raw * 2.0) / 2.0, 0.5, 5.0)
    order = rng.permutation(users.size)
    return users[order], items[order], values[order]


def split_ratings(users: np.ndarray, items: np.ndarray, values: np.ndarray,
                  test_fraction: float = 0.2, seed: int = 0
                  ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray],
                             tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A random ``1 - test_fraction`` / ``test_fraction`` split of rating triplets.

    Returns ``((users, items, values) train, (users, items, values) test)``; test
    ratings may mention users or items that never appear in training (as in practice).
    """
    n = len(values)
    test = np.zeros(n, dtype=bool)
    test[np.random.default_rng(seed).permutation(n)[:int(round(test_fraction * n))]] = True
    pick = (~test, test)
    return tuple(tuple(np.asarray(a)[m] for a in (users, items, values)) for m in pick)
