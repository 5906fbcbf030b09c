"""The SMP program API: what a user (and every built-in app) writes.

A program is one class. Its parameters are its ``__init__`` keyword arguments, stored
as attributes of the same names (scikit-learn's convention): :meth:`SMPProgram.get_params`
reads them back by signature, the CLI builds its options from them, and every worker
rebuilds the same program from them (they travel as msgpack, never pickle, so keep
them plain: numbers, strings, lists). The scheduler holds the model; workers hold data
:class:`Fragment` objects (contiguous row ranges) and the state derived from them.

A round::

    block    = schedule(ctx)                      # scheduler: what to update next
    partial  = push(wctx, fragment, block)        # each worker, per fragment it holds
    update   = pull(ctx, block, partials)         # scheduler: aggregate + commit
    sync_worker(wctx, update)                     # every worker, once, then
    sync(wctx, fragment, update)                  # per fragment, before its next push

``pull`` must keep everything it needs in ``ctx.model`` (arrays), ``ctx.state``
(JSON-able values) and ``ctx.rng``: that is what checkpoints hold, and what
``snapshot`` hands a worker that takes over a fragment after a failure.

Payloads (blocks, partials, updates, snapshots, data rows) are dicts with string keys
whose values are plain values, lists, dicts, numpy arrays or scipy sparse matrices,
at any depth: :mod:`smpframe.protocol` encodes each by its type.
"""
from __future__ import annotations

import functools
import inspect
import operator
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from smpframe.arrays import is_sparse

Payload = dict[str, Any]


class PerFragment(dict):
    """A schedule that gives each fragment its own block: ``{fragment: block}``.

    Fragments left out take no part in the round.
    """


@dataclass
class Fragment:
    """A contiguous range of dataset rows held by one worker.

    ``id`` numbers fragments in row order; ``start``/``stop`` are global row indices;
    ``state`` is what :meth:`SMPProgram.load` returned for it.
    """

    id: int
    start: int
    stop: int
    state: Any = None

    @property
    def n_rows(self) -> int:
        return self.stop - self.start


@dataclass
class Dataset:
    """Row-partitionable data: every value in ``rows`` has the same first dimension.

    Values are numpy arrays or scipy sparse matrices. ``meta`` is small global
    information (sizes, vocabularies' lengths) every worker receives. ``weights``
    sizes fragments (default: one per row plus its nonzeros).
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
            if is_sparse(value):
                w += np.diff(value.tocsr().indptr)
        return w

    def bounds(self, n_fragments: int) -> list[tuple[int, int]]:
        """Contiguous row ranges with about equal weight, none empty."""
        return balanced_bounds(self.row_weights(), n_fragments)

    def fragment(self, start: int, stop: int) -> Payload:
        """The rows ``start:stop`` of every value (sparse matrices stay sparse)."""
        return {name: value[start:stop] for name, value in self.rows.items()}


def balanced_bounds(weights: np.ndarray, n_fragments: int) -> list[tuple[int, int]]:
    """Contiguous ranges of ``len(weights)`` rows with about equal total weight, none empty."""
    n = len(weights)
    n_fragments = max(1, min(n_fragments, n))
    cum = np.cumsum(weights)
    targets = cum[-1] * np.arange(1, n_fragments) / n_fragments
    cuts = np.searchsorted(cum, targets, side="left") + 1
    cuts = np.clip(cuts, np.arange(1, n_fragments), n - n_fragments + np.arange(1, n_fragments))
    cuts = np.maximum.accumulate(cuts)
    edges = [0, *[int(c) for c in cuts], n]
    return [(edges[i], edges[i + 1]) for i in range(n_fragments)]


@dataclass
class Splits:
    """Input the workers read themselves: the scheduler holds the model, not the data.

    ``load_data`` returns this for a file the workers can open (any file on a local
    cluster; a shared file system on a real one). The runtime cuts ``path`` into one
    split per fragment (:mod:`smpframe.data.splits`: byte ranges aligned to lines for
    ``reader`` "libsvm" and "csv", row ranges for "npy", row groups for "parquet", each
    given the reader's ``options``); each worker reads its own,
    and what ``init`` needs of the whole file arrives as ``ctx.facts``, one
    :meth:`SMPProgram.describe` per fragment. ``meta`` is extended with ``n_rows``
    and the reader's layout (``width``) before any fragment is loaded. ``assemble``, if
    given, turns the whole file's rows (:meth:`read`, ``--read-on scheduler``) into the
    program's in-memory :class:`Dataset` when that is not the reader's rows as they are.
    """

    reader: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    parts: list[dict[str, Any]] = field(default_factory=list)
    assemble: Callable[[Dataset], Dataset] | None = None

    def __post_init__(self) -> None:
        if "://" not in self.path:  # a URL (fsspec) is the same everywhere; a path is made so
            self.path = os.path.abspath(self.path)  # (workers elsewhere have another folder)

    def cut(self, n_fragments: int) -> list[dict[str, Any]]:
        """Cut the file into at most ``n_fragments`` splits (kept in ``parts``)."""
        from smpframe.data import splits

        self.parts = splits.cut(self.reader, self.path, n_fragments, self.options)
        return self.parts

    def read(self) -> Dataset:
        """The whole file, read in this process (``--read-on scheduler``)."""
        from smpframe.data import splits

        plan: dict[str, Any] = {}
        rows = splits.read_whole(self.reader, self.path, self.options, plan)
        dataset = Dataset(rows=rows, meta={**self.meta, **plan})
        return dataset if self.assemble is None else self.assemble(dataset)


@dataclass
class SchedulerContext:
    """What ``schedule``/``check_partial``/``pull`` see: the model, run state, cluster facts.

    ``model``, ``state``, ``rng``, ``round`` and ``metrics`` are checkpointed; ``cache``
    holds data derived in ``init`` (rebuilt on resume, never saved). ``inflight`` is
    kept by the runtime: the blocks dispatched and not yet committed, oldest first
    (empty when ``schedule`` may assume every earlier round is committed). ``facts``
    holds each fragment's :meth:`SMPProgram.describe`, for ``init``. ``dataset`` is a
    :class:`Dataset` (rows held here) or :class:`Splits` (rows held by the workers
    only: ``has_rows`` is False).
    """

    dataset: Dataset | Splits
    bounds: list[tuple[int, int]]
    rng: np.random.Generator
    facts: dict[int, Payload] = field(default_factory=dict)
    model: dict[str, np.ndarray] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    inflight: list[Any] = field(default_factory=list)
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
    def has_rows(self) -> bool:
        """Whether the data's rows are in this process (``ctx.dataset.rows``)."""
        return isinstance(self.dataset, Dataset)

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
    """What the worker-side methods see.

    ``xp`` is the array module (numpy, or cupy on a GPU worker); ``fragments`` maps
    each held fragment's id to its :class:`Fragment`; ``shared`` is for state shared
    by every fragment on this worker (built in ``init_worker``: a model replica, a cache).
    ``staged`` is the runtime's: splits read and not yet loaded.
    """

    meta: dict[str, Any]
    xp: Any = np
    device: str = "cpu"
    fragments: dict[int, Fragment] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    staged: dict[int, Any] = field(default_factory=dict, repr=False)


@functools.lru_cache(maxsize=None)
def param_names(cls: type) -> tuple[str, ...]:
    """The keyword parameters of ``cls.__init__`` (scikit-learn's ``_get_param_names``)."""
    names = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self":
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{cls.__name__}.__init__ must list its parameters by name "
                            f"(no *{name}): they are read back by signature")
        names.append(name)
    return tuple(names)


class SMPProgram:
    """Base class of every SMP program. Override the methods marked *required*."""

    #: short name used on the CLI and in results
    name: str = "program"
    #: default data fragments per worker (``--fragments`` overrides); more fragments
    #: balance finer, fewer make fatter rounds
    fragments_per_worker: int = 4
    #: rounds ``schedule`` may dispatch ahead of the last commit even without
    #: ``--pipeline-depth`` (the larger of the two applies): for a program whose
    #: ``schedule`` returns None whenever a round ahead would not be safe
    pipeline_depth: int = 0
    #: True when the worker methods run on ``wctx.xp`` (numpy or cupy), so GPU workers
    #: actually compute on the GPU; runs refuse GPU devices for programs without it
    gpu: bool = False
    #: CLI flags for parameters whose name is not the flag (``{"lam": "--lambda"}``)
    cli_flags: dict[str, str] = {}

    # ---- parameters ------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Parameters by ``__init__`` signature, read from the attributes of those names."""
        missing = [n for n in param_names(type(self)) if not hasattr(self, n)]
        if missing:
            raise TypeError(f"{type(self).__name__}.__init__ takes {', '.join(missing)} but does "
                            "not store it as an attribute of the same name")
        return {name: getattr(self, name) for name in param_names(type(self))}

    @property
    def params(self) -> dict[str, Any]:
        """Shorthand for :meth:`get_params`."""
        return self.get_params()

    def check_params(self) -> None:
        """Raise :class:`~smpframe.errors.InputError` for bad parameter values.

        Runs before ``load_data`` on the scheduler (and in the CLI right after parsing).
        """

    # ---- scheduler side -------------------------------------------------------------
    def load_data(self, source: Any) -> Dataset:
        """*Required.* Read ``source`` (a path, arrays, or None for built-in data)."""
        raise NotImplementedError

    def init(self, ctx: SchedulerContext) -> None:
        """*Required.* Put the initial model into ``ctx.model``/``ctx.state``.

        File-wide facts are in ``ctx.facts`` (one :meth:`describe` per fragment, in
        fragment order): the only view of the data when the workers read it.
        """
        raise NotImplementedError

    def warm_up(self, role: str, xp: Any) -> None:
        """Load compiled kernels before the clock starts (default: nothing to load).

        Runs once in the scheduler (``role="scheduler"``, after ``init``) and once in
        each worker (``role="worker"``, ``xp`` its array module, before any ``load``).
        """

    def schedule(self, ctx: SchedulerContext) -> Payload | PerFragment | None:
        """*Required.* The next block (same for every fragment) or a :class:`PerFragment`.

        Return None when there is nothing to do now: the run stops if nothing is in
        flight (``ctx.inflight``), else ``schedule`` is asked again after the next commit.
        """
        raise NotImplementedError

    def check_partial(self, ctx: SchedulerContext, block: Payload, fragment: int,
                      partial: Payload) -> None:
        """Raise (any exception, with a message) to reject a malformed partial.

        ``block`` is the fragment's block. A rejected partial is never committed: its
        worker is treated as faulty and the round is redone elsewhere (a second
        rejection ends the run). Partials holding NaN/Inf are rejected before this.
        """

    def pull(self, ctx: SchedulerContext, block: Payload | PerFragment,
             partials: dict[int, Payload]) -> Payload | None:
        """*Required.* Aggregate ``partials`` (one per fragment, in fragment order),
        commit to ``ctx.model`` and return the update every worker applies (None: nothing)."""
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

    def expected_rounds(self, ctx: SchedulerContext) -> int | None:
        """Rounds the whole run takes when the parameters fix them (iterations, epochs),
        for the progress bar's total and ETA; None (the default) when convergence decides.
        Asked once, after ``init``; a run may still stop earlier or go on longer."""
        return None

    # ---- worker side ----------------------------------------------------------------
    def init_worker(self, wctx: WorkerContext) -> None:
        """Build ``wctx.shared``: state every fragment on this worker uses (default: none).

        Runs once per worker (not per fragment), before any ``load``.
        """

    def describe(self, wctx: WorkerContext, fragment: Fragment, data: Payload) -> Payload:
        """What ``init`` needs to know of one fragment's rows (default: nothing).

        Runs where the rows are (a worker that read its split, or the scheduler for
        in-memory data) before ``init``; return partial sums (``n``, ``X^T y``, column
        norms, a row sample) that ``init`` combines from ``ctx.facts``.
        """
        return {}

    def load(self, wctx: WorkerContext, fragment: Fragment, data: Payload, model: Payload) -> Any:
        """*Required.* The fragment's state (kept as ``fragment.state``), from its rows
        (``data``) and ``model`` (what ``snapshot`` returned).

        Arrays that arrive from the wire (data, model, blocks, updates) are read-only
        views of the received frames: copy what you will modify.
        """
        raise NotImplementedError

    def push(self, wctx: WorkerContext, fragment: Fragment, block: Payload) -> Payload:
        """*Required.* The partial result of ``block`` over one fragment.

        Must be repeatable: a partial may be discarded and recomputed (by the fragment's
        next owner), so changes that depend on the commit belong in ``sync``.
        """
        raise NotImplementedError

    def sync_worker(self, wctx: WorkerContext, update: Payload) -> None:
        """Apply a committed update to ``wctx.shared``, once per worker (default: nothing)."""

    def sync(self, wctx: WorkerContext, fragment: Fragment, update: Payload) -> None:
        """Apply a committed update to one fragment's state (default: nothing to do)."""


def rows_context(program: SMPProgram, dataset: Dataset, n_fragments: int,
                 rng: np.random.Generator) -> SchedulerContext:
    """The context of a run on in-memory rows, before ``init``: fragment bounds, and
    ``facts`` described here (as workers describe the splits they read)."""
    bounds = dataset.bounds(n_fragments)
    ctx = SchedulerContext(dataset=dataset, bounds=bounds, rng=rng)
    if type(program).describe is SMPProgram.describe:
        ctx.facts = {i: {} for i in range(len(bounds))}  # nothing to describe: no slicing
        return ctx
    wctx = WorkerContext(meta=dict(dataset.meta))
    ctx.facts = {i: program.describe(wctx, Fragment(i, a, b), dataset.fragment(a, b))
                 for i, (a, b) in enumerate(bounds)}
    return ctx


# ---- helpers for check_partial and pull --------------------------------------------------

def expect_array(partial: Mapping[str, Any], key: str, shape: tuple[int | None, ...],
                 kinds: str = "f") -> np.ndarray:
    """``partial[key]``, checked to be an array of ``shape`` (None: any length there)
    whose dtype kind is one of ``kinds`` ("f" float, "i"/"u" integers); else ValueError."""
    value = partial.get(key)
    if not (isinstance(value, np.ndarray) and value.dtype.kind in kinds and value.ndim == len(shape)
            and all(want is None or got == want for got, want in zip(value.shape, shape))):
        got = f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) \
            else type(value).__name__
        raise ValueError(f"{key!r} must be an array of shape {shape} (dtype kind {kinds}), got {got}")
    return value


# ---- aggregation helpers for pull --------------------------------------------------------

def sum_partials(partials: Mapping[int, Payload], key: str) -> Any:
    """The sum over fragments of entry ``key``: numbers, arrays or sparse matrices."""
    return functools.reduce(operator.add, (p[key] for p in partials.values()))


def concat_partials(partials: Mapping[int, Payload], key: str) -> np.ndarray:
    """Entry ``key`` of every partial joined along its first axis, in fragment order.

    Fragments are contiguous row ranges in id order, so per-row partials come out in
    global row order (a partial per fragment of every fragment in the round).
    """
    return np.concatenate([np.asarray(partials[f][key]) for f in sorted(partials)])
