"""What the scikit-learn estimators share: running a built-in program on a cluster,
input checks, and parameters that keep a live cluster by reference.

Imported only by the estimator packages (``smpframe.linear_model``,
``smpframe.cluster``, ``smpframe.decomposition``), so ``import smpframe`` never
loads scikit-learn.
"""
from __future__ import annotations

import numbers
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import validate_data

from smpframe.api import SMPProgram
from smpframe.launch.cluster import Cluster
from smpframe.launch.local import run_local
from smpframe.scheduler.outputs import RunResult

#: scipy sparse layouts every estimator takes (the apps convert to their own)
SPARSE = ("csr", "csc", "coo")


def run_program(program: SMPProgram, data: Any, n_workers: int, cluster: Cluster | None,
                **options: Any) -> RunResult:
    """Run ``program`` on ``cluster``, else through :func:`run_local`: on the innermost
    open :class:`Cluster` when it has ``n_workers`` workers, else on a fresh one."""
    if cluster is not None:
        return cluster.run(program, data, quiet=True, **options)
    return run_local(program, data=data, quiet=True, workers=n_workers, **options)


@contextmanager
def shared_cluster(cluster: Cluster | None, n_workers: int) -> Iterator[Cluster]:
    """One warm cluster for many runs (a path, folds): ``cluster`` if given, the open one
    if it has ``n_workers`` workers, else one opened for the ``with`` block and closed
    after it (its workers start once)."""
    if cluster is not None:
        yield cluster
        return
    current = Cluster.current()
    if current is not None and current.accepts({"workers": n_workers}):
        yield current
        return
    with Cluster(workers=n_workers, quiet=True) as fresh:
        yield fresh


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1, else ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_positive_float(value: Any, name: str, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``), else ValueError."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and value < float("inf") and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                         f"got {value!r}")
    return float(value)


def warn_if_unconverged(result: RunResult, what: str) -> None:
    """A ConvergenceWarning (as scikit-learn gives) when the run stopped at ``max_iter``."""
    if not result.summary.get("converged", True):
        warnings.warn(f"{what} did not converge in {result.summary['rounds']} rounds; "
                      "raise max_iter or tol", ConvergenceWarning, stacklevel=3)


#: the docstring entries of the parameters every estimator has, put where a subclass's
#: docstring says ``{cluster_parameters}``
CLUSTER_PARAMETERS = """n_workers : int
        Worker processes of the cluster started for the fit (when none is open).
    cluster : smpframe.Cluster, optional
        Run on this open cluster."""


class SMPEstimator(BaseEstimator):
    """Base of the estimators: runs programs with ``n_workers`` / ``cluster``.

    ``cluster`` is a live :class:`~smpframe.Cluster`: a clone shares it (clones in a
    grid search or cross-validation run on the same workers), and a pickled estimator
    leaves it behind (processes and sockets cannot travel).
    """

    n_workers: int
    cluster: Cluster | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("{cluster_parameters}", CLUSTER_PARAMETERS)

    def _run(self, program: SMPProgram, data: Any, **options: Any) -> RunResult:
        n_workers = check_positive_int(self.n_workers, "n_workers")
        return run_program(program, data, n_workers, self.cluster, **options)

    def _validate(self, X: Any, y: Any = "no_validation", reset: bool = True, **check: Any) -> Any:
        """scikit-learn's checks (NaN/Inf, shapes, ``n_features_in_``), sparse allowed."""
        check.setdefault("accept_sparse", SPARSE)
        return validate_data(self, X, y, reset=reset, **check)

    def __sklearn_clone__(self) -> "SMPEstimator":
        """scikit-learn's clone, the cluster passed on as it is (a live one cannot be copied)."""
        cluster, self.cluster = self.cluster, None
        try:
            twin = super().__sklearn_clone__()
        finally:
            self.cluster = cluster
        twin.cluster = cluster
        return twin

    def __getstate__(self) -> dict[str, Any]:
        """The pickled state, without the cluster."""
        return {**super().__getstate__(), "cluster": None}  # (a copy: not this __dict__)
