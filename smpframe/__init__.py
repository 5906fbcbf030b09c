"""smpframe: a scheduled model-parallel parameter server.

Write an :class:`SMPProgram` (schedule/push/pull/sync) and run it with
:func:`run_local`, or use a built-in app (``smpframe run lasso|logreg|mf|lda|kmeans``).
"""
from smpframe.api import (Dataset, Fragment, PerFragment, SchedulerContext, SMPProgram,
                          WorkerContext, concat_partials, sum_partials)
from smpframe.config import RunConfig
from smpframe.errors import ClusterError, InputError, ProgramError, ProtocolError, SmpframeError
from smpframe.launch.cluster import Cluster
from smpframe.launch.local import LocalCluster, run_local
from smpframe.scheduler.outputs import RunResult

__version__ = "0.1.0"

#: scikit-learn-compatible estimators, imported on first use (they import scikit-learn)
_ESTIMATOR_PACKAGES = ("cluster", "decomposition", "linear_model")

__all__ = [
    "Cluster", "ClusterError", "Dataset", "Fragment", "InputError", "LocalCluster", "PerFragment",
    "ProgramError", "ProtocolError", "RunConfig", "RunResult", "SMPProgram", "SchedulerContext",
    "SmpframeError", "WorkerContext", "concat_partials", "run_local", "sum_partials",
]


def __getattr__(name: str):
    """``smpframe.linear_model`` etc. without an explicit import, loaded only when used."""
    if name in _ESTIMATOR_PACKAGES:
        import importlib
        return importlib.import_module(f"smpframe.{name}")
    raise AttributeError(f"module 'smpframe' has no attribute {name!r}")
