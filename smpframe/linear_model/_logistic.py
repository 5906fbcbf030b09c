"""``LogisticRegression`` (L1): scikit-learn's interface on the built-in logreg program."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import ClassifierMixin
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from smpframe._estimator import (SMPEstimator, check_positive_float, check_positive_int,
                                 warn_if_unconverged)
from smpframe.apps.logreg import LogReg
from smpframe.launch.cluster import Cluster


class LogisticRegression(ClassifierMixin, SMPEstimator):
    """L1-regularised logistic regression by scheduled coordinate descent.

    scikit-learn minimises ``||w||_1 + C * sum_i log(1 + exp(-y_i (x_i.w + b)))``;
    :class:`smpframe.apps.logreg.LogReg` minimises
    ``(1/n) sum_i log(1 + exp(-y_i (x_i.w + b))) + lam ||w||_1``. Dividing the first
    by ``C * n`` gives the second with ``lam = 1 / (C * n)``: the same minimiser,
    exactly. The intercept is unpenalised (as scikit-learn's saga solver; liblinear
    penalises it).

    Two classes (any labels: ``classes_[1]`` is the positive one) make one run;
    more make one run per class, one-vs-rest, with probabilities normalised over the
    classes (scikit-learn's ``OneVsRestClassifier`` rule).

    Parameters
    ----------
    C : float
        Inverse regularisation strength (> 0).
    penalty : {"l1"}
        Only the L1 penalty is implemented.
    fit_intercept : bool
        Fit an unpenalised intercept.
    tol : float
        Stop at this relative duality gap, or relative objective change between full
        passes (the app's ``tol``).
    max_iter : int
        At most this many rounds per run (``max_rounds``).
    {cluster_parameters}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) for two classes, else (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : ndarray of shape (1,) or (n_classes,)
        Rounds of each run.
    n_features_in_ : int
    """

    def __init__(self, C: float = 1.0, penalty: str = "l1", fit_intercept: bool = True,
                 tol: float = 1e-6, max_iter: int = 1000, n_workers: int = 2,
                 cluster: Cluster | None = None) -> None:
        self.C = C
        self.penalty = penalty
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.n_workers = n_workers
        self.cluster = cluster

    def fit(self, X: Any, y: Any) -> "LogisticRegression":
        """Fit on ``X`` (dense or scipy sparse, n x d) and class labels ``y`` (n,)."""
        if self.penalty != "l1":
            raise ValueError(f"penalty={self.penalty!r} is not supported: only 'l1' is")
        C = check_positive_float(self.C, "C")
        tol = check_positive_float(self.tol, "tol", allow_zero=True)
        max_iter = check_positive_int(self.max_iter, "max_iter")
        X, y = self._validate(X, y, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        self.classes_ = classes = np.unique(y)
        if classes.size < 2:
            raise ValueError("this solver needs samples of at least 2 classes in the data, but "
                             f"the data contains only one class: {classes[0]!r}")
        positives = [y == classes[1]] if classes.size == 2 else [y == c for c in classes]
        program = LogReg(lam=1.0 / (C * X.shape[0]), tol=tol, intercept=bool(self.fit_intercept))
        coef, intercept, rounds = [], [], []
        for positive in positives:
            result = self._run(program, (X, np.where(positive, 1.0, -1.0)), max_rounds=max_iter)
            warn_if_unconverged(result, "LogisticRegression")
            coef.append(result.model["coef"])
            intercept.append(float(result.model["intercept"][0]) if self.fit_intercept else 0.0)
            rounds.append(int(result.summary["rounds"]))
        self.coef_ = np.asarray(coef, dtype=np.float64)
        self.intercept_ = np.asarray(intercept, dtype=np.float64)
        self.n_iter_ = np.asarray(rounds, dtype=np.int64)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Margins ``X @ coef_.T + intercept_``: (n,) for two classes, else (n, n_classes)."""
        check_is_fitted(self)
        X = self._validate(X, reset=False, dtype=(np.float64, np.float32))
        scores = np.asarray(safe_sparse_dot(X, self.coef_.T), dtype=np.float64) + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X: Any) -> np.ndarray:
        """The class with the largest margin (two classes: ``classes_[1]`` where it is > 0)."""
        scores = self.decision_function(X)
        picks = (scores > 0).astype(np.int64) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[picks]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, (n, n_classes): sigmoids of the margins, rows normalised."""
        p = expit(self.decision_function(X))
        if p.ndim == 1:
            return np.column_stack([1.0 - p, p])
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``."""
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
