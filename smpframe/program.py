"""The SMP program API: what a user (and every built-in app) writes.

One class, instantiated with the same keyword parameters in the scheduler and in
every worker (parameters travel as msgpack, never pickle, so keep them plain:
numbers, strings, lists). The scheduler holds the model; workers hold data
fragments (contiguous row ranges) and the per-fragment state derived from them.

A round::

    block    = schedule(ctx)                      # scheduler: what to update next
    partial  = push(wctx, fragment, block)        # each worker, per fragment it holds
    update   = pull(ctx, block, partials)         # scheduler: aggregate + commit
    sync(wctx, fragment, update)                  # every worker, before its next push

``pull`` must keep everything it needs in ``ctx.model`` (arrays), ``ctx.state``
(JSON-able values) and ``ctx.rng``: that is what checkpoints hold, and what
``snapshot`` hands a worker that takes over a fragment after a failure.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

Payload = dict[str, Any]


class PerFragment(dict):
    """A schedule that gives each fragment its own block: ``{fragment: block}``.

    Fragments left out take no part in the round.
    """


@dataclass
class Dataset:
    """Row-partitionable data: every value in ``rows`` has the same first dimension.

    Values are numpy arrays or scipy sparse matrices (sent to workers as CSR/CSC
    components). ``meta`` is small global information (sizes, vocabularies' lengths)
    every worker receives. ``weights`` sizes fragments (default: nonzeros per row).
    """

    rows: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        lengths = {name: value.shape[0] for name, value in self.rows.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"dataset rows disagree in length: {lengths}")
        if not lengths:
            raise ValueError("dataset has no row arrays")

    @property
    def n_rows(self) -> int:
        return next(iter(self.rows.values())).shape[0]

    def row_weights(self) -> np.ndarray:
        """Work per row used to balance fragments: explicit weights, else nonzeros."""
        if self.weights is not None:
            return np.asarray(self.weights, dtype=np.float64)
        w = np.ones(self.n_rows)
        for value in self.rows.values():
            if sp.issparse(value):
                w += np.diff(value.tocsr().indptr)
        return w

    def bounds(self, n_fragments: int) -> list[tuple[int, int]]:
        """Contiguous row ranges with about equal weight, none empty."""
        n = self.n_rows
        n_fragments = max(1, min(n_fragments, n))
        cum = np.cumsum(self.row_weights())
        targets = cum[-1] * np.arange(1, n_fragments) / n_fragments
        cuts = np.searchsorted(cum, targets, side="left") + 1
        cuts = np.clip(cuts, np.arange(1, n_fragments), n - n_fragments + np.arange(1, n_fragments))
        cuts = np.maximum.accumulate(cuts)
        edges = [0, *[int(c) for c in cuts], n]
        return [(edges[i], edges[i + 1]) for i in range(n_fragments)]

    def fragment(self, start: int, stop: int) -> Payload:
        """The rows ``start:stop`` of every array, as a wire payload."""
        out: Payload = {}
        for name, value in self.rows.items():
            out.update(pack_array(name, value[start:stop]))
        return out


def pack_array(name: str, value: Any) -> Payload:
    """Payload entries for one array; sparse matrices travel as their components."""
    if sp.issparse(value):
        fmt = "csc" if value.format == "csc" else "csr"
        m = value.tocsc() if fmt == "csc" else value.tocsr()
        return {
            f"{name}.data": np.ascontiguousarray(m.data),
            f"{name}.indices": np.ascontiguousarray(m.indices),
            f"{name}.indptr": np.ascontiguousarray(m.indptr),
            f"{name}.sparse": [fmt, int(m.shape[0]), int(m.shape[1])],
        }
    return {name: np.ascontiguousarray(value)}


def unpack_arrays(payload: Mapping[str, Any]) -> Payload:
    """Inverse of :func:`pack_array` over a whole payload."""
    out: Payload = {}
    for key, value in payload.items():
        if key.endswith(".sparse"):
            name = key[: -len(".sparse")]
            fmt, n, m = value
            cls = sp.csc_matrix if fmt == "csc" else sp.csr_matrix
            out[name] = cls((payload[f"{name}.data"], payload[f"{name}.indices"],
                             payload[f"{name}.indptr"]), shape=(n, m))
        elif not any(key.endswith(s) for s in (".data", ".indices", ".indptr")):
            out[key] = value
    return out


@dataclass
class SchedulerContext:
    """What ``schedule``/``pull`` see: the model, run state and cluster facts.

    ``model``, ``state``, ``rng``, ``round`` and ``metrics`` are checkpointed; ``cache``
    holds data derived in ``init`` (rebuilt on resume, never saved).
    """

    dataset: Dataset
    bounds: list[tuple[int, int]]
    params: dict[str, Any]
    rng: np.random.Generator
    model: dict[str, np.ndarray] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    round: int = 0
    workers: list[str] = field(default_factory=list)
    started: float | None = None
    prior_elapsed: float = 0.0
    stop_requested: bool = False
    converged: bool = False

    @property
    def n_fragments(self) -> int:
        return len(self.bounds)

    @property
    def elapsed(self) -> float:
        """Solve seconds: from the start of the run (plus a resumed run's earlier time)."""
        running = 0.0 if self.started is None else time.monotonic() - self.started
        return self.prior_elapsed + running

    def report(self, **metrics: Any) -> None:
        """Record progress figures (objective, ...) shown on stderr and in metrics.jsonl."""
        self.metrics.update(metrics)

    def stop(self, converged: bool = True) -> None:
        """Ask the runtime to end the run after this commit."""
        self.stop_requested = True
        self.converged = converged


@dataclass
class WorkerContext:
    """What ``load``/``push``/``sync`` see on a worker.

    ``xp`` is the array module (numpy, or cupy on a GPU worker); ``fragments``
    maps each held fragment to the state the program keeps for it.
    """

    params: dict[str, Any]
    meta: dict[str, Any]
    xp: Any = np
    device: str = "cpu"
    fragments: dict[int, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)


class SMPProgram:
    """Base class of every SMP program. Override the methods marked *required*."""

    #: short name used on the CLI and in results
    name: str = "program"
    #: default data fragments per worker (``--fragments`` overrides); more fragments
    #: balance finer, fewer make fatter rounds
    fragments_per_worker: int = 4
    #: True when the worker methods run on ``wctx.xp`` (numpy or cupy), so GPU workers
    #: actually compute on the GPU; the CLI refuses GPU devices for programs without it
    gpu: bool = False

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    def get_params(self) -> dict[str, Any]:
        """Parameters as given (sent to workers to build the same program)."""
        return dict(self.params)

    # ---- scheduler side -------------------------------------------------------------
    def load_data(self, source: Any) -> Dataset:
        """*Required.* Read ``source`` (a path, arrays, or None for built-in data)."""
        raise NotImplementedError

    def init(self, ctx: SchedulerContext) -> None:
        """*Required.* Put the initial model into ``ctx.model``/``ctx.state``."""
        raise NotImplementedError

    def schedule(self, ctx: SchedulerContext) -> Payload | PerFragment | None:
        """*Required.* The next block (same for every fragment) or a :class:`PerFragment`.

        Return None when there is nothing to do now (the run stops if nothing is in flight).
        """
        raise NotImplementedError

    def pull(self, ctx: SchedulerContext, block: Payload | PerFragment,
             partials: dict[int, Payload]) -> Payload | None:
        """*Required.* Aggregate ``partials`` (one per fragment), commit to ``ctx.model``
        and return the update every worker applies with ``sync`` (None: nothing)."""
        raise NotImplementedError

    def snapshot(self, ctx: SchedulerContext, fragment: int) -> Payload:
        """Model pieces a worker needs to build a fragment's state (default: all)."""
        return dict(ctx.model)

    def result(self, ctx: SchedulerContext) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Final summary (JSON-able) and model arrays written to ``model.npz``."""
        return dict(ctx.metrics), dict(ctx.model)

    def extra_outputs(self, ctx: SchedulerContext) -> dict[str, str | bytes]:
        """Additional files for ``--output`` (name -> content), e.g. a topics listing."""
        return {}

    # ---- worker side ----------------------------------------------------------------
    def load(self, wctx: WorkerContext, fragment: int, data: Payload, model: Payload) -> None:
        """*Required.* Build ``wctx.fragments[fragment]`` from its rows and the model.

        Arrays that arrive from the wire (data, model, blocks, updates) are read-only
        views of the received frames: copy what you will modify.
        """
        raise NotImplementedError

    def push(self, wctx: WorkerContext, fragment: int, block: Payload) -> Payload:
        """*Required.* The partial result of ``block`` over one fragment.

        Must be repeatable: a partial may be discarded and recomputed (by the fragment's
        next owner), so changes that depend on the commit belong in ``sync``.
        """
        raise NotImplementedError

    def sync(self, wctx: WorkerContext, fragment: int, update: Payload) -> None:
        """Apply a committed update to one fragment's state (default: nothing to do)."""


def sum_partials(partials: Mapping[int, Payload], keys: list[str] | None = None) -> Payload:
    """Sum each named entry over fragments (the common aggregate)."""
    items = list(partials.values())
    names = keys if keys is not None else list(items[0])
    return {k: sum(p[k] for p in items) for k in names}
