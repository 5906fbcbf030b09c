"""``KMeans``: scikit-learn's clusterer interface on the built-in K-Means program."""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.metrics import euclidean_distances, pairwise_distances_argmin_min
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from smpframe._estimator import SMPEstimator, check_positive_float, check_positive_int
from smpframe.apps.kmeans import KMeans as KMeansProgram
from smpframe.launch.cluster import Cluster


class KMeans(ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, SMPEstimator):
    """K-Means by Lloyd's algorithm, on worker processes.

    Runs :class:`smpframe.apps.kmeans.KMeans`, which follows
    ``sklearn.cluster.KMeans(algorithm="lloyd")``: the same stopping rule (squared
    centre shift <= ``tol`` x mean feature variance), the same empty-cluster rule, and
    from the same initial centres the same centres and inertia. k-means++ runs at the
    scheduler on a sample of at most 100,000 rows, with its own random numbers, so its
    centres differ from scikit-learn's for one seed.

    Parameters
    ----------
    n_clusters : int
        Number of clusters.
    init : "k-means++" or array of shape (n_clusters, n_features)
        Initial centres: greedy k-means++, or these.
    n_init : int
        Runs with different seeds; the lowest inertia wins (one run with given centres).
    max_iter : int
        Lloyd iterations, at most.
    tol : float
        Relative tolerance on the squared centre shift.
    random_state : int, RandomState or None
        Seeds of the runs (the run option ``seed``).
    {cluster_parameters}

    Scipy sparse input is accepted and densified (the program holds dense rows).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,)
        The nearest centre of each training row.
    inertia_ : float
        Sum of squared distances to the nearest centre (of the returned centres).
    n_iter_ : int
        Lloyd iterations of the best run.
    n_features_in_ : int
    """

    def __init__(self, n_clusters: int = 8, init: Any = "k-means++", n_init: int = 1,
                 max_iter: int = 300, tol: float = 1e-4, random_state: Any = None,
                 n_workers: int = 2, cluster: Cluster | None = None) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.n_workers = n_workers
        self.cluster = cluster

    def fit(self, X: Any, y: Any = None) -> "KMeans":
        """Cluster the rows of ``X`` (n x d, dense or scipy sparse)."""
        k = check_positive_int(self.n_clusters, "n_clusters")
        n_init = check_positive_int(self.n_init, "n_init")
        iterations = check_positive_int(self.max_iter, "max_iter")
        tol = check_positive_float(self.tol, "tol", allow_zero=True)
        X = self._validate(X, dtype=(np.float64, np.float32))
        if X.shape[0] < k:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={k}.")
        dense = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
        init = self._init_centers(k, dense.shape[1])
        seeds = check_random_state(self.random_state).randint(np.iinfo(np.int32).max,
                                                             size=1 if init is not None else n_init)
        best = None
        for seed in seeds:
            program = KMeansProgram(k=k, iterations=iterations, tol=tol, init_centers=init)
            result = self._run(program, dense, seed=int(seed))
            if best is None or result.summary["inertia"] < best.summary["inertia"]:
                best = result
        self.cluster_centers_ = np.asarray(best.model["centers"], dtype=np.float64)
        self.inertia_ = float(best.summary["inertia"])
        self.n_iter_ = int(best.summary["iterations"])
        self.labels_ = self._nearest(dense)[0]
        return self

    def _init_centers(self, k: int, d: int) -> list[list[float]] | None:
        """Given centres as plain lists (the program's parameter), or None for k-means++."""
        if isinstance(self.init, str):
            if self.init != "k-means++":
                raise ValueError(f"init must be 'k-means++' or an array, got {self.init!r}")
            return None
        centers = check_array(self.init, dtype=np.float64)
        if centers.shape != (k, d):
            raise ValueError(f"init has shape {centers.shape}, expected (n_clusters, n_features) "
                             f"= ({k}, {d})")
        return centers.tolist()

    def _nearest(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each row's nearest centre and its (not squared) distance."""
        labels, dist = pairwise_distances_argmin_min(X, self.cluster_centers_)
        return labels.astype(np.int64), dist

    def _checked(self, X: Any) -> Any:
        check_is_fitted(self)
        return self._validate(X, reset=False, dtype=(np.float64, np.float32))

    def predict(self, X: Any) -> np.ndarray:
        """The nearest centre of each row."""
        return self._nearest(self._checked(X))[0]

    def transform(self, X: Any) -> np.ndarray:
        """Distances from each row to every centre, (n, n_clusters)."""
        return euclidean_distances(self._checked(X), self.cluster_centers_)

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the inertia of ``X`` against the centres (higher is better)."""
        return -float(np.sum(self._nearest(self._checked(X))[1] ** 2))

    @property
    def _n_features_out(self) -> int:
        """Output columns of :meth:`transform` (names for ``get_feature_names_out``)."""
        return self.cluster_centers_.shape[0]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
