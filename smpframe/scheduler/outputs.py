"""What a run leaves behind: result.json, model.npz, metrics.jsonl and checkpoints.

Every file is written to a temporary name and renamed into place, so a crash never
leaves a half-written result or checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smpframe.errors import InputError
from smpframe.api import SchedulerContext


@dataclass
class RunResult:
    """The outcome of a run: summary figures, model arrays, progress and cluster events."""

    summary: dict[str, Any]
    model: dict[str, np.ndarray]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str | bytes] = field(default_factory=dict)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _npz_bytes(arrays: dict[str, Any]) -> bytes:
    import io
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def write_result(folder: str | Path, result: RunResult) -> None:
    """result.json, model.npz and metrics.jsonl into ``folder``."""
    out = Path(folder)
    for name, content in result.files.items():
        if Path(name).name != name:
            raise ValueError(f"output file name {name!r} must be a plain file name")
        atomic_write_bytes(out / name, content.encode() if isinstance(content, str) else content)
    atomic_write_bytes(out / "model.npz", _npz_bytes(result.model))
    lines = "".join(json.dumps(m) + "\n" for m in result.metrics)
    atomic_write_bytes(out / "metrics.jsonl", lines.encode())
    atomic_write_bytes(out / "result.json", (json.dumps(result.summary, indent=2) + "\n").encode())


def check_output_folder(folder: str | Path) -> None:
    """Fail early (before any work) when the output folder cannot be written.

    Creates nothing: a failed run leaves no empty folder behind.
    """
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InputError("--output exists and is not a folder", path=str(out))
    probe = out.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"--output is not writable ({probe} does not admit new files)", path=str(out))


# ---- checkpoints --------------------------------------------------------------------

def write_checkpoint(folder: str | Path, ctx: SchedulerContext, spec: str,
                     params: dict[str, Any]) -> Path:
    """Snapshot the scheduler (model, state, rng, round) into ``folder/checkpoints``."""
    root = Path(folder) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"round-{ctx.round:09d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        np.savez(tmp / "model.npz", **ctx.model)
        state = {"program": spec, "params": params, "round": ctx.round, "state": ctx.state,
                 "rng": ctx.rng.bit_generator.state, "metrics": ctx.metrics,
                 "elapsed": ctx.elapsed}
        (tmp / "state.json").write_text(json.dumps(state, default=_json_default))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_bytes(root / "LATEST", final.name.encode())
    for old in root.glob("round-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(folder: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The latest checkpoint under ``folder`` (a run's --output folder)."""
    root = Path(folder) / "checkpoints"
    try:
        name = (root / "LATEST").read_text().strip()
        state = json.loads((root / name / "state.json").read_text())
        with np.load(root / name / "model.npz") as npz:
            model = {k: npz[k].copy() for k in npz.files}
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"no usable checkpoint: {exc}", path=str(root)) from None
    return state, model


def restore(ctx: SchedulerContext, state: dict[str, Any], model: dict[str, np.ndarray],
            path: str | Path) -> None:
    """Put a checkpoint back into a freshly initialised context, once it is checked:
    the fields' types, a round >= 0, model arrays of the rank and kind the program
    made (their lengths may change as a run goes), nothing non-finite. A bad checkpoint
    is an InputError naming it."""
    def bad(why: str) -> InputError:
        return InputError(f"checkpoint is unusable: {why}", path=str(path))

    if not (isinstance(state, dict) and isinstance(state.get("state"), dict)
            and isinstance(state.get("rng"), dict) and isinstance(state.get("metrics", {}), dict)):
        raise bad("state.json lacks its state, rng or metrics maps")
    rnd, elapsed = state.get("round"), state.get("elapsed", 0.0)
    if type(rnd) is not int or rnd < 0:
        raise bad(f"round {rnd!r} is not a count of rounds")
    if type(elapsed) not in (int, float) or not np.isfinite(elapsed) or elapsed < 0:
        raise bad(f"elapsed {elapsed!r} is not a duration")
    for key, value in model.items():
        made = ctx.model.get(key)
        if made is not None and (np.ndim(value) != np.ndim(made)
                                 or np.asarray(value).dtype.kind != np.asarray(made).dtype.kind):
            raise bad(f"model array {key!r} is {np.asarray(value).dtype} {np.shape(value)}, "
                      f"the program makes {np.asarray(made).dtype} {np.shape(made)}")
        if np.asarray(value).dtype.kind in "fc" and not np.isfinite(value).all():
            raise bad(f"model array {key!r} holds NaN or Inf")
    try:
        ctx.rng.bit_generator.state = state["rng"]
    except (TypeError, ValueError, KeyError) as exc:
        raise bad(f"random generator state: {exc}") from None
    ctx.model.update(model)
    ctx.state.update(state["state"])
    ctx.round = rnd
    ctx.metrics.update(state.get("metrics", {}))
    ctx.prior_elapsed = float(elapsed)


def as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (arrays as lists): what checkpoints compare."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
