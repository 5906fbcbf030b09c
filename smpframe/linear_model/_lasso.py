"""``Lasso``: scikit-learn's estimator interface on the built-in Lasso program."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_is_fitted

from smpframe._estimator import (SMPEstimator, check_positive_float, check_positive_int,
                                 warn_if_unconverged)
from smpframe.apps.lasso import Lasso as LassoProgram
from smpframe.launch.cluster import Cluster


def linear_predict(estimator: SMPEstimator, X: Any) -> np.ndarray:
    """``X @ coef_ + intercept_`` of a fitted linear regressor, ``X`` checked."""
    check_is_fitted(estimator)
    X = estimator._validate(X, reset=False, dtype=(np.float64, np.float32))
    return np.asarray(safe_sparse_dot(X, estimator.coef_), dtype=np.float64) + estimator.intercept_


class Lasso(RegressorMixin, SMPEstimator):
    """L1-regularised least squares, solved by scheduled block coordinate descent.

    Minimises scikit-learn's objective ``(1/2n)||y - Xw - b||^2 + alpha ||w||_1``
    (the intercept ``b`` is unpenalised), by running
    :class:`smpframe.apps.lasso.Lasso` on ``n_workers`` worker processes, or on
    ``cluster`` (an open :class:`smpframe.Cluster`) when given. Inside
    ``with Cluster(...)`` the open cluster is used as well when it has ``n_workers``
    workers, so many fits pay one start-up.

    Parameters
    ----------
    alpha : float
        L1 strength (> 0).
    fit_intercept : bool
        Fit an unpenalised intercept.
    tol : float
        Stop at this relative duality gap (gap / objective), which is not
        scikit-learn's ``tol`` (the absolute gap over ``||y||^2 / n``).
    max_iter : int
        At most this many rounds (the run option ``max_rounds``); a round updates one
        block of coefficients, or is a full pass that measures the duality gap.
    {cluster_parameters}

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
        Rounds the run took.
    dual_gap_ : float
        The relative duality gap at the end.
    n_features_in_ : int
    """

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = True, tol: float = 1e-6,
                 max_iter: int = 1000, n_workers: int = 2, cluster: Cluster | None = None) -> None:
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.n_workers = n_workers
        self.cluster = cluster

    def fit(self, X: Any, y: Any) -> "Lasso":
        """Fit on ``X`` (dense or scipy sparse, n x d) and targets ``y`` (n,)."""
        alpha = check_positive_float(self.alpha, "alpha")
        tol = check_positive_float(self.tol, "tol", allow_zero=True)
        max_iter = check_positive_int(self.max_iter, "max_iter")
        X, y = self._validate(X, y, dtype=(np.float64, np.float32), y_numeric=True)
        program = LassoProgram(lam=alpha, tol=tol, intercept=bool(self.fit_intercept))
        result = self._run(program, (X, y), max_rounds=max_iter)
        warn_if_unconverged(result, "Lasso")
        self.coef_ = np.asarray(result.model["coef"], dtype=np.float64)
        self.intercept_ = float(result.model["intercept"][0]) if self.fit_intercept else 0.0
        self.n_iter_ = int(result.summary["rounds"])
        self.dual_gap_ = result.summary["duality_gap"]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """``X @ coef_ + intercept_``."""
        return linear_predict(self, X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
