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
