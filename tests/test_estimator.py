"""What the estimators share (smpframe/_estimator.py): every parameter documented."""
from __future__ import annotations

import inspect
import re

import pytest

from smpframe.cluster import KMeans
from smpframe.decomposition import LatentDirichletAllocation, MatrixFactorization
from smpframe.linear_model import Lasso, LassoCV, LogisticRegression

ESTIMATORS = [Lasso, LassoCV, LogisticRegression, KMeans, LatentDirichletAllocation,
              MatrixFactorization]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_every_parameter_is_in_the_docstring(estimator):
    doc = inspect.getdoc(estimator)
    assert "{" + "cluster_parameters}" not in doc
    documented = set(re.findall(r"^(\w+) :", doc, re.M))
    assert set(estimator._get_param_names()) <= documented
