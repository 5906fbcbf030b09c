"""``LassoCV``: the Lasso path over a grid of alphas, cross-validated on one warm cluster."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.model_selection import KFold, check_cv
from sklearn.utils.extmath import safe_sparse_dot

from smpframe._estimator import (SMPEstimator, check_positive_float, check_positive_int,
                                 shared_cluster)
from smpframe.launch.cluster import Cluster
from smpframe.linear_model._lasso import Lasso, linear_predict


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

    No warm starts: the Lasso program always starts from zero coefficients (it has
    no initial-coefficient parameter), so each alpha is fitted from scratch.

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
        Rounds per fit, at most.
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
        X, y = self._validate(X, y, dtype=(np.float64, np.float32), y_numeric=True,
                              accept_sparse="csr")
        alphas = self._grid(X, y)
        folds = list(self._splitter().split(X, y))
        mse = np.empty((alphas.size, len(folds)))
        with shared_cluster(self.cluster, n_workers) as cluster:
            for j, (train, test) in enumerate(folds):
                for i, alpha in enumerate(alphas):
                    fitted = self._lasso(alpha, cluster).fit(X[train], y[train])
                    mse[i, j] = float(np.mean((y[test] - fitted.predict(X[test])) ** 2))
            self.alpha_ = float(alphas[np.argmin(mse.mean(axis=1))])
            final = self._lasso(self.alpha_, cluster).fit(X, y)
        self.alphas_, self.mse_path_ = alphas, mse
        self.coef_, self.intercept_ = final.coef_, final.intercept_
        self.n_iter_, self.dual_gap_ = final.n_iter_, final.dual_gap_
        return self

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

    def _lasso(self, alpha: float, cluster: Cluster) -> Lasso:
        return Lasso(alpha=alpha, fit_intercept=self.fit_intercept, tol=self.tol,
                     max_iter=self.max_iter, cluster=cluster)

    def predict(self, X: Any) -> np.ndarray:
        """``X @ coef_ + intercept_``."""
        return linear_predict(self, X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
