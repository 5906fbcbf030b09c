"""What the L1-regularised regression apps (Lasso, sparse logistic regression) share:
parameters, CLI options and data loading."""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import scipy.sparse as sp

from smpframe.errors import InputError
from smpframe.program import Dataset, SMPProgram


class L1Regression(SMPProgram):
    """Base of the L1 apps: same parameters, CLI options and inputs (X rows, target y)."""

    #: columns per round unless ``block_size`` is given
    default_block_size = 256
    #: which synthetic problem runs when no data is given
    synthetic_kind = "regression"

    def __init__(self, lam: float | None = None, lambda_ratio: float = 0.1, tol: float = 1e-6,
                 intercept: bool = True, block_size: int | None = None, rho: float = 0.1,
                 eta: float = 1e-6, fmt: str | None = None, labels: str | None = None,
                 synthetic: dict[str, Any] | None = None) -> None:
        super().__init__(lam=lam, lambda_ratio=lambda_ratio, tol=tol, intercept=intercept,
                         block_size=block_size or self.default_block_size, rho=rho, eta=eta,
                         fmt=fmt, labels=labels, synthetic=synthetic or {})

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_regression_arguments(parser, cls.default_block_size)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "L1Regression":
        return cls(lam=args.lam, tol=args.tol, intercept=not args.no_intercept,
                   block_size=args.block_size, rho=args.rho, fmt=args.format,
                   labels=args.labels)

    def load_data(self, source: Any) -> Dataset:
        X, y = load_regression_source(source, self.params, kind=self.synthetic_kind)
        return Dataset(rows={"X": X, "y": y}, meta={"n_features": X.shape[1], "n_rows": X.shape[0]})


def add_regression_arguments(parser: argparse.ArgumentParser, block_size: int = 256) -> None:
    """CLI options shared by Lasso and sparse logistic regression."""
    parser.add_argument("--format", choices=["libsvm", "mm"], help="input format (default: by suffix)")
    parser.add_argument("--labels", help="targets for Matrix Market input (one per line)")
    parser.add_argument("--lambda", dest="lam", type=float,
                        help="L1 strength (default 0.1 x lambda_max of the data)")
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="stop at this relative duality gap (default 1e-6)")
    parser.add_argument("--no-intercept", action="store_true", help="fit without an intercept")
    parser.add_argument("--block-size", type=int, default=block_size,
                        help=f"columns per round (default {block_size})")
    parser.add_argument("--rho", type=float, default=0.1,
                        help="dependency filter: max |corr| with columns of rounds in flight")


def load_regression_source(source: Any, params: dict[str, Any], kind: str):
    """(X as CSR float64, y) from a path, an (X, y) pair, or None (built-in synthetic data)."""
    from smpframe.data import synthetic

    if source is None:
        make = synthetic.make_regression if kind == "regression" else synthetic.make_classification
        X, y, _ = make(**params.get("synthetic", {}))
    elif isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        from smpframe.data.matrix import load_xy
        X, y = load_xy(str(source), params.get("fmt"), params.get("labels"))
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
