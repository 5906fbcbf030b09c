"""The array-module seam: numpy on CPU workers, cupy on GPU workers.

Programs write ``xp = wctx.xp`` and use it for device arrays; everything that leaves
a worker goes through :func:`to_host` first.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from smpframe.errors import InputError


def parse_device(device: str) -> tuple[str, int]:
    """``"cpu"`` -> ("cpu", 0); ``"gpu"``/``"gpu:1"`` -> ("gpu", 1); ``"auto"`` -> gpu if present."""
    kind, _, index = device.partition(":")
    if kind == "auto":
        return ("gpu", 0) if gpu_available() else ("cpu", 0)
    if kind not in ("cpu", "gpu") or (index and not index.isdigit()):
        raise InputError(f"--device {device!r}: expected cpu, gpu, gpu:N or auto")
    return kind, int(index or 0)


def gpu_available() -> bool:
    """True when cupy imports and sees at least one CUDA device."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def check_device(device: str) -> tuple[str, int]:
    """Parse ``device`` and, for a GPU, check cupy and the device exist (one-line error).

    Creates no CUDA context, so the scheduler process can call it before starting workers.
    """
    kind, index = parse_device(device)
    if kind == "cpu":
        return kind, index
    try:
        import cupy
    except ImportError:
        raise InputError(f"--devices {device}: cupy is not installed, so this machine cannot run "
                         "a GPU worker (pip install 'smpframe[gpu]')") from None
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        raise InputError(f"--devices {device}: no usable CUDA device ({exc})") from None
    if index >= count:
        raise InputError(f"--devices {device}: only {count} GPU(s) present")
    return kind, index


def array_module(device: str) -> Any:
    """numpy for CPU; cupy bound to the chosen GPU."""
    kind, index = check_device(device)
    if kind == "cpu":
        return np
    import cupy
    cupy.cuda.Device(index).use()
    return cupy


def is_sparse(value: Any) -> bool:
    """A scipy sparse matrix or array, checked without importing scipy (a tenth of a
    second of every process's start) unless the value comes from it."""
    if not type(value).__module__.startswith("scipy.sparse"):
        return False
    import scipy.sparse
    return scipy.sparse.issparse(value)


def to_host(value: Any) -> Any:
    """``value`` with every device array in it (cupy arrays, cupyx sparse matrices, at any
    depth of dicts and lists) copied to the host: what leaves a GPU worker."""
    if isinstance(value, dict):
        return {key: to_host(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_host(item) for item in value]
    if type(value).__module__.startswith("cupy") and hasattr(value, "get"):
        return value.get()
    return value


def compiled_kernels(xp: Any, kernel: str) -> bool:
    """Whether a worker runs an app's compiled CPU kernels (numba): on a CPU worker unless
    the app's ``kernel`` parameter asks for the array code a GPU worker runs ("array")."""
    return xp is np and kernel == "auto"


def sparse_module(xp: Any) -> Any:
    """scipy.sparse beside numpy, cupyx.scipy.sparse beside cupy."""
    if xp is np:
        import scipy.sparse
        return scipy.sparse
    import cupyx.scipy.sparse
    return cupyx.scipy.sparse
