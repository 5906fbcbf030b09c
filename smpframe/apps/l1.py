"""What the L1-regularised regression apps (Lasso, sparse logistic regression) share:
parameters, their checks and data loading."""
from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from smpframe.errors import InputError
from smpframe.api import Dataset, SMPProgram, Splits
from smpframe.data.splits import is_path


class L1Regression(SMPProgram):
    """Base of the L1 apps: same parameters and inputs (X rows, target y).

    Parameters
    ----------
    lam : float, optional
        L1 strength (default: lambda_ratio x lambda_max of the data).
    lambda_ratio : float
        lambda as a fraction of lambda_max when lam is not given.
    tol : float
        Stop at this relative duality gap (logreg: or relative objective change).
    intercept : bool
        Fit an unpenalised intercept.
    block_size : int, optional
        Columns per round (default: the app's default_block_size).
    rho : float
        Dependency filter: max abs(corr) with columns of rounds in flight.
    eta : float
        Priority floor, as a fraction of the largest priority of the epoch.
    fmt : {"libsvm", "mm", "parquet"}, optional
        Input format (default: by suffix; Parquet: numeric columns, the target named y,
        label or target).
    labels : str, optional
        Targets for Matrix Market input (one per line).
    synthetic : dict, optional
        Arguments of the built-in synthetic problem (when no data is given).
    policy : {"priority", "uniform", "cyclic"}
        The schedule (``--schedule``): which columns a round updates. By priority (the size
        of their last step, with the dependency filter), a uniformly random block, or the
        next block in column order; the last two are the non-scheduled baselines, with a
        full round after every sweep of the columns.
    kernel : {"auto", "array"}
        CPU workers: numba kernels (auto) or the array code GPU workers run (numpy and
        scipy.sparse here, cupy and cupyx.scipy.sparse on a GPU).
    lambdas : list of float, optional
        A decreasing lambda path solved in one run, each lambda warm-started from the
        last one's solution (Python only; apps with ``follows_paths``). The model gets
        every lambda's coefficients; ``lam`` must then be left out.
    """

    #: columns per round unless ``block_size`` is given
    default_block_size = 256
    #: which synthetic problem runs when no data is given
    synthetic_kind = "regression"
    #: the scheduler side works from ``ctx.facts`` alone, so the workers may read a
    #: LIBSVM file themselves (:class:`~smpframe.api.Splits`)
    reads_splits = False
    #: whether ``lambdas`` (a warm-started path in one run) is supported
    follows_paths = False
    cli_flags = {"lam": "--lambda", "fmt": "--format", "policy": "--schedule"}

    def __init__(self, lam: float | None = None, lambda_ratio: float = 0.1, tol: float = 1e-6,
                 intercept: bool = True, block_size: int | None = None, rho: float = 0.1,
                 eta: float = 1e-6, fmt: Literal["libsvm", "mm", "parquet"] | None = None,
                 labels: str | None = None, synthetic: dict[str, Any] | None = None,
                 policy: Literal["priority", "uniform", "cyclic"] = "priority",
                 kernel: Literal["auto", "array"] = "auto",
                 lambdas: list[float] | None = None) -> None:
        self.lam = lam
        self.lambda_ratio = lambda_ratio
        self.tol = tol
        self.intercept = intercept
        self.block_size = block_size
        self.rho = rho
        self.eta = eta
        self.fmt = fmt
        self.labels = labels
        self.synthetic = synthetic
        self.policy = policy
        self.kernel = kernel
        self.lambdas = lambdas

    @property
    def columns_per_round(self) -> int:
        """``block_size``, or the app's default."""
        return int(self.block_size or self.default_block_size)

    def check_params(self) -> None:
        check(self.lam is None or (self.lam > 0 and math.isfinite(self.lam)), "--lambda",
              self.lam, "must be a finite number > 0")
        check(0 < self.lambda_ratio < math.inf, "--lambda-ratio", self.lambda_ratio,
              "must be a finite number > 0")
        check(self.tol >= 0 and math.isfinite(self.tol), "--tol", self.tol, "must be >= 0")
        check(self.block_size is None or self.block_size >= 1, "--block-size", self.block_size,
              "must be >= 1")
        check(0 < self.rho <= 1, "--rho", self.rho, "must be in (0, 1]")
        check(0 <= self.eta < math.inf, "--eta", self.eta, "must be a finite number >= 0")
        check(self.policy in ("priority", "uniform", "cyclic"), "--schedule", self.policy,
              "expected priority, uniform or cyclic")
        check(self.kernel in ("auto", "array"), "--kernel", self.kernel, "expected auto or array")
        if self.lambdas is not None:
            path = np.asarray(self.lambdas, dtype=np.float64)
            check(self.follows_paths, "lambdas", "(a path)", f"{self.name} does not follow paths")
            check(self.lam is None, "lambdas", "(a path)", "leave out --lambda")
            check(path.ndim == 1 and path.size > 0 and bool(np.isfinite(path).all())
                  and bool((path > 0).all()) and bool((np.diff(path) <= 0).all()),
                  "lambdas", list(path)[:4], "must be a non-empty decreasing list of finite numbers > 0")

    def baseline_block(self, ctx: Any, size: int) -> np.ndarray | None:
        """The next block of a non-scheduled policy (uniform, cyclic), or None once a sweep
        of the columns is done and a full round is due."""
        st, d = ctx.state, ctx.model["coef"].size
        blocks = st.get("blocks_since_full", 0)
        if blocks >= -(-d // size):
            return None
        st["blocks_since_full"] = blocks + 1
        if self.policy == "uniform":
            return np.sort(ctx.rng.choice(d, size=min(size, d), replace=False)).astype(np.int64)
        start = blocks * size
        return np.arange(start, min(start + size, d), dtype=np.int64)

    def load_data(self, source: Any) -> Dataset | Splits:
        if self.reads_splits and self.labels is None and is_path(source):
            from smpframe.data.matrix import PARQUET_XY, xy_format
            fmt = xy_format(str(source), self.fmt)
            if fmt == "libsvm":
                return Splits("libsvm", str(source))
            if fmt == "parquet":
                return Splits("parquet", str(source), options=PARQUET_XY)
        X, y = load_regression_source(source, self.fmt, self.labels, self.synthetic,
                                      kind=self.synthetic_kind)
        return Dataset(rows={"X": X, "y": y}, meta={"n_features": X.shape[1], "n_rows": X.shape[0]})


def check(ok: bool, option: str, value: Any, why: str) -> None:
    """Raise InputError ``option value: why`` unless ``ok`` (parameter checks)."""
    if not ok:
        raise InputError(f"{option} {value}: {why}")


def load_regression_source(source: Any, fmt: str | None, labels: str | None,
                           synthetic_args: dict[str, Any] | None, kind: str):
    """(X as CSR float64, y) from a path, an (X, y) pair, or None (built-in synthetic data)."""
    from smpframe.data import synthetic

    if source is None:
        make = synthetic.make_regression if kind == "regression" else synthetic.make_classification
        X, y, _ = make(**(synthetic_args or {}))
    elif is_path(source):
        from smpframe.data.matrix import load_xy
        X, y = load_xy(str(source), fmt, labels)
    else:
        X, y = source
    X = sp.csr_matrix(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if X.shape[0] != y.shape[0]:
        raise InputError(f"X has {X.shape[0]} rows but y has {y.shape[0]} values")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"empty problem: X is {X.shape[0]} x {X.shape[1]}")
    if not (np.isfinite(X.data).all() and np.isfinite(y).all()):
        raise InputError("X or y contains NaN or Inf")
    return X, y
