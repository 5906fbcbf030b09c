"""scikit-learn-compatible linear models on smpframe clusters.

``from smpframe.linear_model import Lasso, LassoCV, LogisticRegression``: each ``fit``
runs a built-in SMP program (:mod:`smpframe.apps.lasso`, :mod:`smpframe.apps.logreg`)
on worker processes, or on an open :class:`smpframe.Cluster`.
"""
from smpframe.linear_model._cv import LassoCV
from smpframe.linear_model._lasso import Lasso
from smpframe.linear_model._logistic import LogisticRegression

__all__ = ["Lasso", "LassoCV", "LogisticRegression"]
