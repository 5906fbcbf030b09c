"""scikit-learn-compatible clustering on smpframe clusters.

``from smpframe.cluster import KMeans`` runs :mod:`smpframe.apps.kmeans` on worker
processes. (This package is unrelated to :class:`smpframe.Cluster`, the warm cluster
of worker processes the estimators run on.)
"""
from smpframe.cluster._kmeans import KMeans

__all__ = ["KMeans"]
