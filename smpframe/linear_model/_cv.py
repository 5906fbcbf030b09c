"""``LassoCV``: the Lasso path over a grid of alphas, cross-validated on one warm cluster."""
from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, check_cv
from sklearn.utils.extmath import safe_sparse_dot

from smpframe._estimator import (SMPEstimator, check_positive_float, check_positive_int,
                                 run_program, shared_cluster)
from smpframe.apps.lasso import Lasso as LassoProgram
from smpframe.launch.cluster import Cluster
from smpframe.linear_model._lasso import linear_predict


#: columns per round of a path: its later alphas have large active sets, which fatter
#: blocks settle in fewer rounds (bench_lasso_cv's grid: 100 rounds a fold, 259 at 256)
PATH_BLOCK_SIZE = 1024


def alpha_grid(X: Any, y: np.ndarray, n_alphas: int, eps: float, fit_intercept: bool) -> np.ndarray:
    """scikit-learn's grid: ``n_alphas`` geometric steps from ``alpha_max`` down to
    ``eps * alpha_max``, where ``alpha_max = max|X^T (y - ybar)| / n`` (the smallest
    alpha with an all-zero solution; ``ybar = 0`` without an intercept)."""
    centred = y - y.mean() if fit_intercept else y
    alpha_max = float(np.max(np.abs(safe_sparse_dot(X.T, centred)))) / X.shape[0]
    if alpha_max <= np.finfo(np.float64).resolution:  # constant y: as scikit-learn does
        return np.full(n_alphas, np.finfo(np.float64).resolution)
    return np.geomspace(alpha_max, alpha_max * eps, num=n_alphas)


class LassoCV(RegressorMixin, SMPEstimator):
    """Lasso with alpha chosen by K-fold cross-validation, then refit on all the data.

    Every fit of the path (``n_alphas x folds + 1`` runs) goes to one warm
    :class:`smpframe.Cluster`: ``cluster`` if given, else the open one when it has
    ``n_workers`` workers, else one opened for the duration of :meth:`fit`, so the
    worker processes start once.

    Each fold is one run of the Lasso program down the whole grid (its ``lambdas``
    parameter): every alpha starts from the previous alpha's solution, and a full
    pass that proves one alpha solved also scores the next, so a fold costs one
    start-up and a few rounds per alpha.

    Parameters
    ----------
    n_alphas : int
        Points on the grid (when ``alphas`` is None).
    eps : float
        ``alpha_min / alpha_max`` of the grid.
    alphas : array-like, optional
        The grid itself (sorted into decreasing order).
    cv : int, cross-validation splitter or iterable
        Folds: an int is :class:`sklearn.model_selection.KFold` with that many folds.
    fit_intercept : bool
        Fit an unpenalised intercept.
    tol : float
        Relative duality gap each fit stops at.
    max_iter : int
        Rounds per alpha, at most (on average over a fold's path).
    n_workers : int
        Worker processes of the cluster opened for the fit (when none is given or open).
    cluster : smpframe.Cluster, optional
        Run every fit on this open cluster.
    random_state : int, RandomState or None
        With an int ``cv``: shuffle the rows before cutting the folds (None keeps their
        order, as scikit-learn's KFold does). scikit-learn's ``random_state`` picks
        coordinates instead, which has no counterpart here.

    Attributes
    ----------
    alpha_ : float
        The alpha of the lowest mean held-out squared error.
    alphas_ : ndarray of shape (n_alphas,)
        The grid, decreasing.
    mse_path_ : ndarray of shape (n_alphas, n_folds)
        Held-out mean squared error of every alpha on every fold.
    coef_, intercept_, n_iter_, dual_gap_ : as :class:`Lasso`, for the refit at ``alpha_``.
    n_features_in_ : int
    """

    def __init__(self, n_alphas: int = 20, eps: float = 1e-3, alphas: Any = None, cv: Any = 5,
                 fit_intercept: bool = True, tol: float = 1e-6, max_iter: int = 1000,
                 n_workers: int = 2, cluster: Cluster | None = None,
                 random_state: Any = None) -> None:
        self.n_alphas = n_alphas
        self.eps = eps
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.n_workers = n_workers
        self.cluster = cluster
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> "LassoCV":
        """Cross-validate the grid on ``X`` (dense or sparse) and ``y``, then refit."""
        n_workers = check_positive_int(self.n_workers, "n_workers")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        X, y = self._validate(X, y, dtype=(np.float64, np.float32), y_numeric=True,
                              accept_sparse="csr")
        alphas = self._grid(X, y)
        folds = list(self._splitter().split(X, y))
        mse = np.empty((alphas.size, len(folds)))
        with shared_cluster(self.cluster, n_workers) as cluster:
            for j, (train, test) in enumerate(folds):
                coef, intercept, _ = self._path(alphas, X[train], y[train], cluster, max_iter)
                pred = np.asarray(safe_sparse_dot(X[test], coef.T)) + intercept
                mse[:, j] = np.mean((y[test][:, None] - pred) ** 2, axis=0)
            best = int(np.argmin(mse.mean(axis=1)))
            self.alpha_ = float(alphas[best])
            # the refit follows the path down to alpha_ too: each step is warm-started
            coef, intercept, summary = self._path(alphas[:best + 1], X, y, cluster, max_iter)
        self.alphas_, self.mse_path_ = alphas, mse
        self.coef_, self.intercept_ = coef[-1], float(intercept[-1])
        self.n_iter_, self.dual_gap_ = int(summary["rounds"]), summary["duality_gap"]
        return self

    def _path(self, alphas: np.ndarray, X: Any, y: np.ndarray, cluster: Cluster,
              max_iter: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """One run down ``alphas``, warm-started: every alpha's coefficients and
        intercept, and the run's summary. Alphas left unsolved at ``max_iter`` rounds
        each warn (as scikit-learn does) and keep the last solution."""
        program = LassoProgram(lambdas=alphas.tolist(), tol=self.tol,
                               intercept=bool(self.fit_intercept), block_size=PATH_BLOCK_SIZE)
        result = run_program(program, (X, y), cluster.config.n_workers, cluster,
                             max_rounds=max_iter * alphas.size)
        solved = int(result.summary["path_solved"])
        coef, intercept = result.model["coef_path"], result.model["intercept_path"]
        if solved < alphas.size:
            warnings.warn(f"LassoCV: {alphas.size - solved} of {alphas.size} alphas unsolved "
                          f"in {result.summary['rounds']} rounds; raise max_iter or tol",
                          ConvergenceWarning, stacklevel=3)
            coef[solved:] = result.model["coef"]
            intercept[solved:] = result.model["intercept"][0]
        if not self.fit_intercept:
            intercept = np.zeros_like(intercept)
        return coef, intercept, result.summary

    def _grid(self, X: Any, y: np.ndarray) -> np.ndarray:
        if self.alphas is None:
            return alpha_grid(X, y, check_positive_int(self.n_alphas, "n_alphas"),
                              check_positive_float(self.eps, "eps"), bool(self.fit_intercept))
        alphas = np.sort(np.asarray(self.alphas, dtype=np.float64).ravel())[::-1]
        if alphas.size == 0 or not (np.isfinite(alphas).all() and alphas.min() > 0):
            raise ValueError("alphas must be finite numbers > 0")
        return alphas

    def _splitter(self) -> Any:
        if isinstance(self.cv, numbers.Integral) and not isinstance(self.cv, bool):
            shuffle = self.random_state is not None
            return KFold(self.cv, shuffle=shuffle, random_state=self.random_state if shuffle else None)
        return check_cv(self.cv)

    def predict(self, X: Any) -> np.ndarray:
        """``X @ coef_ + intercept_``."""
        return linear_predict(self, X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
