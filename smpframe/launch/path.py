"""``smpframe run lasso --path N --cv K``: a cross-validated lambda path from the command line.

The path is scikit-learn's grid (N geometric steps from lambda_max down to lambda_max /
100), the folds ``KFold(K)``; every fit runs on one warm cluster
(:class:`smpframe.linear_model.LassoCV`), and the lambda with the lowest mean held-out
error is refit on all the data. The result is a :class:`RunResult` like a run's: the
chosen lambda and the path in the summary, the refit's coefficients as the model.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from smpframe.api import Splits
from smpframe.apps.lasso import Lasso
from smpframe.config import RunConfig
from smpframe.errors import InputError
from smpframe.scheduler.outputs import RunResult

#: lambda_min / lambda_max of the path (scikit-learn's ``eps``; its default 1e-3 reaches
#: lambdas where a fit needs thousands of rounds and the model is rarely wanted)
PATH_EPS = 1e-2


def run_path(program: Any, data: Any, config: RunConfig) -> RunResult:
    """Cross-validate ``program``'s lambda over ``config.path`` values in ``config.cv`` folds."""
    if not isinstance(program, Lasso):
        raise InputError(f"--path: cross-validated paths are for lasso, not {program.name}")
    if program.lam is not None:
        raise InputError("--path chooses lambda: leave out --lambda")
    from smpframe.linear_model import LassoCV

    program.check_params()
    dataset = program.load_data(data)
    rows = (dataset.read() if isinstance(dataset, Splits) else dataset).rows
    if config.cv > rows["y"].shape[0]:
        raise InputError(f"--cv {config.cv}: more folds than the {rows['y'].shape[0]} rows")
    with warnings.catch_warnings(record=True) as caught:  # counted in the summary instead
        warnings.simplefilter("always", ConvergenceWarning)
        fit = LassoCV(n_alphas=config.path, eps=PATH_EPS, cv=config.cv, tol=program.tol,
                      fit_intercept=bool(program.intercept), n_workers=config.n_workers,
                      max_iter=config.max_rounds or 1000).fit(rows["X"], rows["y"])
    mse = fit.mse_path_.mean(axis=1)
    summary = {"app": program.name, "lambda": fit.alpha_, "path": int(fit.alphas_.size),
               "cv": config.cv, "cv_mse": float(mse.min()), "nnz": int(np.count_nonzero(fit.coef_)),
               "rounds": int(fit.n_iter_), "unconverged_fits": sum(
                   issubclass(w.category, ConvergenceWarning) for w in caught),
               "lambdas": fit.alphas_.tolist(),
               "cv_mse_path": mse.tolist(), "cv_mse_std": fit.mse_path_.std(axis=1).tolist()}
    model = {"coef": np.asarray(fit.coef_), "intercept": np.array([fit.intercept_])}
    return RunResult(summary, model)

