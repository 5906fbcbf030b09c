"""``MatrixFactorization``: an estimator for explicit ratings on the built-in MF program."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from smpframe._estimator import SMPEstimator, check_positive_float, check_positive_int
from smpframe.apps import mf as mf_app
from smpframe.launch.cluster import Cluster

def columns(table: Any, width: int, what: str) -> list[np.ndarray]:
    """The first ``width`` columns of an (n, >= width) array or a pandas DataFrame
    (each column keeps its own dtype, so ids may be strings)."""
    if hasattr(table, "iloc"):  # a DataFrame: by position, not by name
        if table.shape[1] < width:
            raise ValueError(f"{what} needs {width} columns, got {table.shape[1]}")
        cols = [table.iloc[:, j].to_numpy() for j in range(width)]
    else:
        array = np.asarray(table)
        if array.ndim != 2 or array.shape[1] < width:
            raise ValueError(f"{what} must be an (n, {width}) array or DataFrame, got shape "
                             f"{array.shape}")
        cols = [array[:, j] for j in range(width)]
    if not len(cols[0]):
        raise ValueError(f"{what} is empty")
    return [whole_ids(c) for c in cols[:2]] + cols[2:]


def whole_ids(ids: np.ndarray) -> np.ndarray:
    """Ids as int64 when they are whole numbers (1.0 and 1 name the same user)."""
    if ids.dtype.kind == "f" and np.isfinite(ids).all() and np.array_equal(ids, np.round(ids)):
        return ids.astype(np.int64)
    return ids.astype(str) if ids.dtype.kind == "O" else ids


class MatrixFactorization(SMPEstimator):
    """Biased low-rank factorisation of explicit ratings (:mod:`smpframe.apps.mf`).

    Minimises ``sum (r_ui - mu - b_u - b_i - w_u.h_i)^2 + reg (||W||^2 + ||H||^2 + ||b||^2)``
    over the observed ratings by exact coordinate descent (CCD++ style). ``reg`` is
    on that sum, not a mean: it does not scale with the number of ratings.

    ``fit(triplets)`` takes an (n, 3) array or DataFrame of (user, item, rating);
    ids may be any integers or strings. ``predict(pairs)`` takes (user, item) rows;
    an unseen user falls back to ``mu + b_i``, an unseen item to ``mu + b_u``,
    predictions are clipped to the training ratings' range.

    Parameters
    ----------
    n_factors : int
        Rank.
    reg : float
        L2 strength on factors and biases.
    n_epochs : int
        Passes over every coordinate.
    biases : bool
        Model the mean and per-id biases (off: plain ``w.h``).
    random_state : int, RandomState or None
        Seed of the random initial factors (the run option ``seed``).
    {cluster_parameters}

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray of shape (n_users | n_items, n_factors)
    user_bias_, item_bias_ : ndarray
    global_mean_ : float
    user_ids_, item_ids_ : ndarray
        Row ``c`` of the factors belongs to id ``user_ids_[c]`` (``item_ids_[c]``).
    objective_ : float
        The objective at the end.
    n_iter_ : int
        Epochs done.
    """

    def __init__(self, n_factors: int = 10, reg: float = 10.0, n_epochs: int = 20,
                 biases: bool = True, random_state: Any = None, n_workers: int = 2,
                 cluster: Cluster | None = None) -> None:
        self.n_factors = n_factors
        self.reg = reg
        self.n_epochs = n_epochs
        self.biases = biases
        self.random_state = random_state
        self.n_workers = n_workers
        self.cluster = cluster

    def fit(self, triplets: Any, y: Any = None) -> "MatrixFactorization":
        """Fit on (user, item, rating) rows."""
        rank = check_positive_int(self.n_factors, "n_factors")
        epochs = check_positive_int(self.n_epochs, "n_epochs")
        reg = check_positive_float(self.reg, "reg", allow_zero=True)
        users, items, ratings = columns(triplets, 3, "triplets")
        ratings = np.asarray(ratings, dtype=np.float64)
        if not np.isfinite(ratings).all():
            raise ValueError("ratings contain NaN or infinity")
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        program = mf_app.MatrixFactorization(rank=rank, lam=reg, epochs=epochs,
                                             biases=bool(self.biases))
        result = self._run(program, (users, items, ratings), seed=seed)
        model = result.model
        self.user_factors_, self.item_factors_ = model["user_factors"], model["item_factors"]
        self.user_bias_, self.item_bias_ = model["user_bias"], model["item_bias"]
        self.global_mean_ = float(model["global_mean"][0])
        self.rating_range_ = tuple(float(v) for v in model["rating_range"])
        self.user_ids_, self.item_ids_ = model["user_ids"], model["item_ids"]
        self.objective_ = float(result.summary["objective"])
        self.n_iter_ = int(result.summary["epochs"])
        return self

    def predict(self, pairs: Any) -> np.ndarray:
        """Predicted ratings of (user, item) rows (an (m, 2) array or DataFrame)."""
        check_is_fitted(self)
        users, items = columns(pairs, 2, "pairs")
        model = {"user_factors": self.user_factors_, "item_factors": self.item_factors_,
                 "user_bias": self.user_bias_, "item_bias": self.item_bias_,
                 "global_mean": np.array([self.global_mean_]),
                 "rating_range": np.array(self.rating_range_),
                 "user_ids": self.user_ids_, "item_ids": self.item_ids_}
        return mf_app.predict(model, users, items)
