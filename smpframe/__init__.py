"""smpframe: a scheduled model-parallel parameter server.

Write an :class:`SMPProgram` (schedule/push/pull/sync) and run it with
:func:`run_local`, or use a built-in app (``smpframe run lasso|logreg|mf|lda|kmeans``).
"""
from smpframe.errors import ClusterError, InputError, ProtocolError, SmpframeError
from smpframe.launcher import ClusterOptions, run_local
from smpframe.program import (Dataset, PerFragment, SchedulerContext, SMPProgram, WorkerContext,
                              sum_partials)
from smpframe.servers.outputs import RunResult
from smpframe.servers.state import SchedulerConfig

__version__ = "0.1.0"

__all__ = [
    "ClusterError", "ClusterOptions", "Dataset", "InputError", "PerFragment", "ProtocolError",
    "RunResult", "SMPProgram", "SchedulerConfig", "SchedulerContext", "SmpframeError",
    "WorkerContext", "run_local", "sum_partials",
]
