"""scikit-learn-compatible factor models on smpframe clusters.

``from smpframe.decomposition import LatentDirichletAllocation, MatrixFactorization``:
each ``fit`` runs a built-in SMP program (:mod:`smpframe.apps.lda`,
:mod:`smpframe.apps.mf`) on worker processes, or on an open :class:`smpframe.Cluster`.
"""
from smpframe.decomposition._lda import LatentDirichletAllocation
from smpframe.decomposition._mf import MatrixFactorization

__all__ = ["LatentDirichletAllocation", "MatrixFactorization"]
