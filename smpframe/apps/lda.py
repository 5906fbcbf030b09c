"""LDA by model-parallel collapsed Gibbs sampling with vocabulary rotation.

Latent Dirichlet allocation with symmetric priors ``alpha`` (document-topic) and
``beta`` (topic-word), sampled with the exact SparseLDA kernel of
:mod:`smpframe.apps.lda_kernels`.

Layout
------
* **Documents** are the dataset rows (a ``D x V`` count matrix, CSR); the runtime
  cuts them into fragments of about equal token counts, one per worker by default.
  A fragment keeps its tokens, their topics ``z`` and its doc-topic counts ``ndk``.
* **Words** are split into ``B >= F`` blocks (default ``2F``) holding about the same
  number of tokens each (greedy longest-processing-time assignment). Sub-iteration ``s``
  gives fragment ``f`` block ``(c f + s) mod B`` with stride ``c = B // F``, so a
  word-topic row is owned by exactly one fragment at a time and every fragment
  samples with exact, current word-topic counts. ``B`` sub-iterations (rounds) make
  one iteration, in which every token is sampled once. Only the topic totals
  ``n_k`` are shared by all fragments in a round: each starts from the committed
  totals and the scheduler adds up the fragments' changes between rounds.
* **The scheduler** holds the model: each block's rows as the last fragment returned
  them (sparse, in the sampler's topic order: what the next fragment gets), ``nwk``
  (``V x K`` word-topic counts, brought up to date with those rows when read), ``nk``
  and ``z``, every token's topic (1 byte a token for ``K <= 256``) in the workers'
  layout (per fragment, grouped by block), so a round's new topics are one contiguous
  copy and a fragment rebuilt elsewhere gets its topics back exactly. What ``init``
  needs of the corpus (word frequencies and token counts, per fragment) comes from
  :meth:`LDA.describe` as partial sums, so the scheduler never holds the corpus: with
  a file, each worker reads its own split (:mod:`smpframe.data.text`: UCI docword by
  documents, LDA-C and plain text by byte ranges aligned to lines).

A round
-------
``schedule``: per fragment, its block number, the block's current ``nwk`` rows
(sparse: nonzeros per row, their topics and counts), the totals ``nk`` and a seed. ``push``
samples the fragment's tokens of that block in place with
:func:`lda_kernels.sample_block_sparse` (cost: tokens + nonzeros, never rows x K),
remembering their previous topics (undone if the same round is pushed again before
its commit, e.g. after a redispatch), and returns the block's new rows, its ``n_k``
change and the block's new topics. ``pull`` writes them into the model and keeps each
block's rows to hand on unchanged to the fragment that gets the block next (so the
scheduler never rebuilds them). The update only names the committed round: nothing
per token goes back to the workers.

With ``c >= 2`` (the default ``B = 2F``), consecutive rounds use disjoint blocks, so
round ``s + 1`` is dispatched while round ``s`` samples (``pipeline_depth = 1``: its
rows come from round ``s - 1``, committed): the workers do not wait for a commit. The
price is one more round of staleness in ``n_k`` only (round ``s + 1`` starts from the
totals committed by round ``s - 1``); the word-topic rows stay exact. ``B = F`` gives
the unpipelined rotation.

Start and recovery
------------------
Every fragment draws its initial topics on its worker (uniformly, from a seed of the
run and the fragment), then a *count round* sums the fragments' word-topic counts
(and copies their topics) into the model. A fragment rebuilt on another worker after a
failure or a move gets its committed topics from the model, so a redone round draws
the same numbers and the chain is the one an undisturbed run draws. Two cases lose
that: a partial accepted from the old owner and committed after the move (the new
owner's topics are then one round behind), and a resume with other fragments or
blocks (the saved topics are laid out for those). The fragment then says so in its
next push (without sampling): in the first case it keeps its topics, in the second its
new owner draws them from the model's word-topic counts
(:func:`lda_kernels.draw_from_word_rows`); either way a count round makes the model the
exact counts of every fragment's topics again before sampling goes on. A checkpoint
holds the topics, the rows and the totals the next round starts from (``nk_prev``),
so a resume with the same fragments continues the identical chain.

On a GPU worker the sampler is :func:`lda_kernels.sample_block_cuda` (numba.cuda): the
same exclusivity one level down, over cells of document groups and word sub-blocks.

The data-parallel baseline
--------------------------
``policy="data-parallel"`` (``--schedule data-parallel``) is AD-LDA (Newman et al.
2009), the scheme of Yahoo!LDA and other parameter servers, for comparison with the
rotation: one block holds the whole vocabulary, and each round is one iteration in
which every fragment samples *all* its tokens against the word-topic counts
committed at the end of the previous iteration (sent in the block, sparse, the same
bytes to every worker). A fragment sees its own changes as it goes but not the other
fragments' of the same iteration, so its counts are stale. Each fragment returns
what it changed in the rows (word, topic, delta) and ``pull`` adds the deltas up, so
the merged counts are again exactly the counts of the fragments' topics.

``ll_per_token`` is the joint ``log p(w, z)`` over the token count, the quantity
the ``lda`` package's ``loglikelihood()`` returns (divided by the token count).
It is computed every ``ll_every`` iterations and at the end: ``log p(z)`` is
summed over fragments on the workers, ``log p(w | z)`` on the scheduler.

Outputs (``model.npz``): ``nwk`` int32 ``V x K`` (rows are words), ``ndk`` int32
``D x K`` (gathered from the workers in the last round), ``nk`` int64 ``K``,
``topic_word`` float64 ``K x V`` (``(nwk + beta)^T`` normalised per topic).
``result.json`` holds ``ll_per_token``, ``tokens_per_second``, ``iterations``,
``topics``, ``tokens`` and ``top_words`` (the 10 most frequent words of each topic);
``topics.txt`` lists the same.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numba import njit

from smpframe.apps import lda_kernels as lk
from smpframe.errors import InputError
from smpframe.api import (Dataset, Fragment, Payload, PerFragment, SchedulerContext, SMPProgram,
                          Splits, WorkerContext)
from smpframe.scheduling.blocks import rotation

#: built-in corpus of ``smpframe run lda`` (make_corpus arguments)
DEFAULT_SYNTHETIC = {"n_docs": 2000, "n_words": 2000, "n_topics": 20, "doc_length": 100.0,
                     "alpha": 0.1, "beta": 0.01, "seed": 0}


# ---- compiled helpers -------------------------------------------------------------------

@njit(cache=True, nogil=True)
def balance_word_blocks(freq, n_blocks):
    """Assign words to ``n_blocks`` blocks of about equal token count.

    Longest processing time first: words by decreasing frequency, each to the
    currently lightest block (ties: lowest block). Returns ``int32[V]``.
    """
    order = np.argsort(-freq, kind="mergesort")
    load = np.zeros(n_blocks, np.int64)
    out = np.empty(freq.shape[0], np.int32)
    for i in range(order.shape[0]):
        w = order[i]
        best = 0
        for b in range(1, n_blocks):
            if load[b] < load[best]:
                best = b
        out[w] = best
        load[best] += freq[w]
    return out


@njit(cache=True, nogil=True)
def reassign(doc_of_token, z, z_new, ndk):
    """Set ``z = z_new`` and move the doc-topic counts along; returns how many changed."""
    changed = 0
    for i in range(z.shape[0]):
        old = z[i]
        new = z_new[i]
        if old != new:
            d = doc_of_token[i]
            ndk[d, old] -= 1
            ndk[d, new] += 1
            z[i] = new
            changed += 1
    return changed


@njit(cache=True, nogil=True)
def sparse_rows(nwk, row_ids):
    """Rows ``nwk[row_ids]`` as (nonzeros per row, their topics, their counts).

    Branch-free passes: count the nonzeros, then write every entry and advance
    past the nonzero ones only (the +1 slot takes the last row's final zero).
    """
    n_topics = nwk.shape[1]
    n = row_ids.shape[0]
    nnz = 0
    for i in range(n):
        for k in range(n_topics):
            nnz += nwk[row_ids[i], k] != 0
    lengths = np.empty(n, np.int32)
    topics = np.empty(nnz + 1, np.int32)
    counts = np.empty(nnz + 1, np.int32)
    j = 0
    for i in range(n):
        r = row_ids[i]
        start = j
        for k in range(n_topics):
            c = nwk[r, k]
            topics[j] = k
            counts[j] = c
            j += c != 0
        lengths[i] = j - start
    return lengths, topics[:j], counts[:j]


@njit(cache=True, nogil=True)
def scatter_rows(nwk, row_ids, lengths, topics, counts):
    """``nwk[row_ids] =`` the sparse rows (lengths, topics, counts); the inverse of sparse_rows.

    Callers check the sparse rows first (see :func:`check_sparse_rows`): no bounds checks here.
    """
    j = 0
    for i in range(row_ids.shape[0]):
        r = row_ids[i]
        nwk[r, :] = 0
        for _ in range(lengths[i]):
            nwk[r, topics[j]] = counts[j]
            j += 1


@njit(cache=True, nogil=True)
def replace_rows(nwk, row_ids, old_lengths, old_topics, lengths, topics, counts):
    """:func:`scatter_rows` when the rows now hold exactly (old_lengths, old_topics):
    clears only their nonzeros, not whole rows."""
    j_old = 0
    j = 0
    for i in range(row_ids.shape[0]):  # one visit per row: it stays in cache
        r = row_ids[i]
        for _ in range(old_lengths[i]):
            nwk[r, old_topics[j_old]] = 0
            j_old += 1
        for _ in range(lengths[i]):
            nwk[r, topics[j]] = counts[j]
            j += 1


def check_sparse_rows(lengths: np.ndarray, topics: np.ndarray, counts: np.ndarray, n_rows: int,
                      n_topics: int, who: str) -> None:
    """Raise ValueError unless (lengths, topics, counts) are ``n_rows`` well-formed sparse rows."""
    if lengths.shape != (n_rows,) or topics.ndim != 1 or topics.shape != counts.shape \
            or int(lengths.sum(dtype=np.int64)) != topics.size:
        raise ValueError(f"{who}: sparse word-topic rows have inconsistent shapes")
    if n_rows and (lengths.min() < 0 or lengths.max() > n_topics):
        raise ValueError(f"{who}: sparse word-topic rows have bad lengths")
    if topics.size and (int(topics.min()) < 0 or int(topics.max()) >= n_topics or counts.min() < 0):
        raise ValueError(f"{who}: sparse word-topic rows have a bad topic or count")


def word_ranks(word_block: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Each word's row in its block (words of a block in increasing id order) and block sizes.

    Block ``b``'s rows are the words ``np.flatnonzero(word_block == b)``; returns
    ``(rank: int32[V], sizes: int64[n_blocks])``.
    """
    order = np.argsort(word_block, kind="stable")
    sizes = np.bincount(word_block, minlength=n_blocks).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(word_block.size, np.int32)
    rank[order] = np.arange(word_block.size) - np.repeat(starts, sizes)
    return rank, sizes


def expand_tokens(X: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token stream of a document-word count matrix: ``(doc_ptr, words, doc_of_token)``.

    Tokens of a document are in word order (each word repeated ``count`` times).
    """
    counts = np.asarray(X.data, dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(counts)])
    doc_ptr = cum[X.indptr].astype(np.int64)
    words = np.repeat(X.indices.astype(np.int32), counts)
    doc_of_token = np.repeat(np.arange(X.shape[0], dtype=np.int32), np.diff(doc_ptr))
    return doc_ptr, words, doc_of_token


def _looks_like_uci(path: Path) -> bool:
    """A UCI bag-of-words file starts with three lines holding one integer each (D, W, NNZ)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).split(b"\n")[:3]
    except OSError:
        return False  # the loader reports it
    return len(head) == 3 and all(line.strip().isdigit() for line in head)


def _int32(values: np.ndarray) -> np.ndarray:
    """A writable int32 copy (wire arrays are read-only; compiled helpers take one type)."""
    return np.array(values, dtype=np.int32)


def _block_of(block: Payload | PerFragment, fragment: int) -> Payload:
    """A fragment's block of a round: its own (rotation) or the one every fragment got."""
    return block[fragment] if isinstance(block, PerFragment) else block


def _wire_topics_dtype(n_topics: int) -> type:
    return np.uint8 if n_topics <= 256 else np.uint16 if n_topics <= 65536 else np.int32


def _warm_up() -> None:
    """Call every compiled kernel with the argument types the app uses, so each one's
    (cached) machine code is loaded before the clock starts."""
    one = np.zeros(1, np.int32)
    ndk = np.ones((1, 1), np.int32)
    lk.sample_block_sparse(np.zeros(1, np.int64), one.copy(), one.copy(), one.copy(), ndk.copy(),
                           np.ones(1, np.int32), one.copy(), np.ones(1, np.int32), one.copy(),
                           np.ones(1, np.int64), 0.1, 0.1, 0.1, 1)
    reassign(one, one.copy(), one.copy(), ndk.copy())
    lk.ll_docs_part(ndk, np.ones(1, np.int64), 0.1)
    lk.ll_words_part(ndk, np.ones(1, np.int64), 0.1)
    lengths, topics, counts = sparse_rows(ndk, one)
    scatter_rows(ndk.copy(), one, lengths, topics, counts)
    replace_rows(ndk.copy(), one, lengths, topics, lengths, topics, counts)
    lk.row_deltas(lengths, topics, counts, lengths, topics, counts, 1)
    lk.add_pairs(ndk.copy(), one, one, one)
    lk.doc_topic_counts(one, one, 1, 1)


def _seed(*keys: int) -> int:
    """A 63-bit seed from integers (the run's seed, a round, a fragment)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> 1)


# ---- the program ------------------------------------------------------------------------

class LDA(SMPProgram):
    """LDA topic model: model-parallel collapsed Gibbs sampling with vocabulary rotation.

    Parameters
    ----------
    topics : int
        Number of topics K.
    alpha : float
        Symmetric document-topic prior.
    beta : float
        Symmetric topic-word prior.
    iterations : int
        Gibbs sweeps over all tokens.
    blocks : int, optional
        Vocabulary blocks (default: twice the number of fragments, so that the next
        round is dispatched while one samples; the number of fragments: no overlap).
    ll_every : int
        Compute the log-likelihood every N iterations (and at the end).
    top_words : int
        Words listed per topic in result.json and topics.txt.
    fmt : {"uci", "ldac", "text"}, optional
        Corpus format (default: guessed; docword* is uci).
    vocab : str, optional
        Vocabulary file for uci/ldac (one word per line).
    keep_stopwords : bool
        Plain text: keep English stop words.
    check_counts : bool
        Debug: check every count against the topics after each round.
    synthetic : dict, optional
        Arguments of the built-in corpus (when no data is given).
    policy : {"rotation", "data-parallel"}
        The schedule (``--schedule``): the model-parallel vocabulary rotation (every
        fragment samples with exact counts, one round per block), or the data-parallel
        baseline (AD-LDA: every fragment samples all its tokens in one round against the
        counts of the previous iteration, and the scheduler merges their changes).
    """

    name = "lda"
    # One iteration takes at least one round per fragment (each fragment must meet
    # every vocabulary block): one fragment per worker gives fewer, larger rounds.
    fragments_per_worker = 1
    # GPU workers sample with lda_kernels.sample_block_cuda (numba.cuda); the rest of a
    # worker's work stays on the host
    gpu = True
    # With the default blocks (twice the fragments) consecutive rounds use disjoint
    # blocks: schedule dispatches the next one while one samples (None when unsafe).
    pipeline_depth = 1
    reads_splits = True
    cli_flags = {"fmt": "--format", "policy": "--schedule"}

    def __init__(self, topics: int = 20, alpha: float = 0.1, beta: float = 0.01,
                 iterations: int = 100, blocks: int | None = None, ll_every: int = 10,
                 top_words: int = 10, fmt: Literal["uci", "ldac", "text"] | None = None,
                 vocab: str | None = None, keep_stopwords: bool = False,
                 check_counts: bool = False, synthetic: dict[str, Any] | None = None,
                 policy: Literal["rotation", "data-parallel"] = "rotation") -> None:
        self.topics = topics
        self.alpha = alpha
        self.beta = beta
        self.iterations = iterations
        self.blocks = blocks
        self.ll_every = ll_every
        self.top_words = top_words
        self.fmt = fmt
        self.vocab = vocab
        self.keep_stopwords = keep_stopwords
        self.check_counts = check_counts
        self.synthetic = synthetic
        self.policy = policy
        self._vocab: list[str] | None = None

    def check_params(self) -> None:
        if not int(self.topics) >= 1:
            raise InputError(f"--topics must be >= 1, got {self.topics}")
        if not (0 < float(self.alpha) < float("inf") and 0 < float(self.beta) < float("inf")):
            raise InputError(f"--alpha and --beta must be finite numbers > 0, got {self.alpha} "
                             f"and {self.beta}")
        if int(self.iterations) < 0:
            raise InputError(f"--iterations must be >= 0, got {self.iterations}")
        if int(self.ll_every) < 1:
            raise InputError(f"--ll-every must be >= 1, got {self.ll_every}")
        if int(self.top_words) < 0:
            raise InputError(f"--top-words must be >= 0, got {self.top_words}")
        if self.blocks is not None and int(self.blocks) < 1:
            raise InputError(f"--blocks must be >= 1, got {self.blocks}")
        if self.policy not in ("rotation", "data-parallel"):
            raise InputError(f"--schedule {self.policy}: expected rotation or data-parallel")
        if self.policy == "data-parallel" and self.blocks is not None:
            raise InputError("--blocks is for --schedule rotation (data-parallel samples the "
                             "whole vocabulary in every round)")
        if self.fmt is not None and self.fmt not in ("uci", "ldac", "text"):
            raise InputError(f"--format {self.fmt}: expected uci, ldac or text")

    @property
    def _data_parallel(self) -> bool:
        return self.policy == "data-parallel"

    # ---- data -------------------------------------------------------------------------
    def load_data(self, source: Any) -> Dataset | Splits:
        from smpframe.data import text

        p = self.params
        if source is None:
            from smpframe.data.synthetic_corpus import make_corpus
            corpus = make_corpus(**{**DEFAULT_SYNTHETIC, **(p["synthetic"] or {})})[0]
        elif isinstance(source, text.Corpus):
            corpus = source
        elif isinstance(source, tuple) and source and isinstance(source[0], text.Corpus):
            corpus = source[0]  # what make_corpus returns
        elif isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
            path = Path(os.fsdecode(source))
            fmt = p["fmt"] or ("uci" if _looks_like_uci(path) else None)
            splits, self._vocab = text.corpus_splits(path, fmt, p["vocab"], not p["keep_stopwords"])
            return splits  # the workers read it (or, --read-on scheduler, this process)
        else:
            raise InputError(f"LDA data must be a path or a Corpus, not {type(source).__name__}")
        self._vocab = list(corpus.vocab)
        return text.corpus_dataset(corpus)

    def describe(self, wctx: WorkerContext, fragment: Fragment, data: Payload) -> Payload:
        """Word frequencies and token count of the fragment's documents (summed in init)."""
        X = data["X"]
        freq = np.bincount(X.indices, weights=X.data, minlength=X.shape[1]).astype(np.int64)
        return {"freq": freq, "tokens": int(freq.sum())}

    def init(self, ctx: SchedulerContext) -> None:
        p = self.params
        K = int(p["topics"])
        F = ctx.n_fragments
        B = 1 if self._data_parallel else int(p["blocks"]) if p["blocks"] is not None else 2 * F
        if B < F and not self._data_parallel:
            raise InputError(f"--blocks ({B}) must be at least the number of fragments ({F})")
        facts = [ctx.facts[f] for f in range(F)]
        freq = np.sum([np.asarray(fact["freq"], np.int64) for fact in facts], axis=0)
        V, N = int(freq.size), int(freq.sum())
        if N == 0:
            raise InputError("corpus has no tokens")
        word_block = balance_word_blocks(freq, B)
        # each fragment's tokens grouped by block, as its worker keeps them: cell (f, b) is
        # z[zpos[f, b]:zpos[f, b + 1]] (the fragment's frequencies say how many per block)
        zpos = np.zeros((F, B + 1), np.int64)
        for f, fact in enumerate(facts):
            zpos[f, 1:] = np.cumsum(np.bincount(word_block, weights=np.asarray(fact["freq"]),
                                                minlength=B).astype(np.int64))
        zpos += np.concatenate([[0], np.cumsum(zpos[:, -1])[:-1]])[:, None]
        vocab = ctx.dataset.meta.get("vocab") or self._vocab or [
            str(i + int(ctx.dataset.meta.get("first_id", 0))) for i in range(V)]
        ctx.cache.update(word_block=word_block, freq=freq,
                         block_words=[np.flatnonzero(word_block == b).astype(np.int32)
                                      for b in range(B)],
                         model_rows={},
                         dispatched={}, ndk=None, n_tokens=N, n_blocks=B, vocab=list(vocab),
                         zpos=zpos)
        seed = int(ctx.rng.integers(0, 2**31 - 1))
        # z: every token's topic as of the last commit, in the workers' layout (z_layout:
        # blocks and fragments it was laid out for; empty until the first count round)
        # nk_prev: the totals a commit before (what a round dispatched one ahead starts from);
        # rows{b}: block b's rows as the last fragment returned them (empty: rebuild from nwk)
        ctx.model.update(nwk=np.zeros((V, K), np.int32), nk=np.zeros(K, np.int64),
                         nk_prev=np.zeros(K, np.int64), z=np.zeros(N, _wire_topics_dtype(K)))
        for b in range(B):
            self._keep_rows(ctx.model, b, (np.zeros(0, np.int32), np.zeros(0, _wire_topics_dtype(K)),
                                           np.zeros(0, np.int32)))
        ctx.state.update(step=0, iteration=0, n_blocks=B, seed=seed, counted=False, ll=None,
                         ll_history=[], seconds=0.0, z_layout=[], stale=[])

    def warm_up(self, role: str, xp: Any) -> None:
        _warm_up()
        if xp is not np:  # a GPU worker: compile the CUDA kernels before the clock starts
            one = np.zeros(1, np.int32)
            lk.sample_block_cuda(np.zeros(1, np.int64), one, one, one.copy(), np.ones((1, 1), np.int32),
                                 np.ones(1, np.int32), one, np.ones(1, np.int32), one,
                                 np.ones(1, np.int64), 0.1, 0.1, 0.1, 1)

    # ---- scheduler: rounds ------------------------------------------------------------
    def _stride(self, ctx: SchedulerContext) -> int:
        return max(1, int(ctx.cache["n_blocks"]) // ctx.n_fragments)

    def _blocks_at(self, ctx: SchedulerContext, step: int) -> np.ndarray:
        """Sub-iteration ``step``'s block of each fragment: ``(c f + step) mod B``."""
        c, B = self._stride(ctx), int(ctx.cache["n_blocks"])
        return rotation(B, B, step)[::c][:ctx.n_fragments]  # fragment f: slot c f

    def schedule(self, ctx: SchedulerContext) -> Payload | PerFragment | None:
        st, cache = ctx.state, ctx.cache
        B = cache["n_blocks"]
        if st["n_blocks"] != B:  # resumed with other fragments: restart the current iteration
            self._nwk(ctx)  # the rows under the blocks they were kept for, then rebuilt
            self._forget_rows(ctx)
            st["step"] = st["step"] // st["n_blocks"] * B
            st["n_blocks"] = B
        total = int(self.iterations) * B
        if not st["counted"]:  # at the start, and after a fragment lost its topics
            if ctx.inflight:
                return None
            return {"count": True, "step": int(st["step"]), "ll": True}
        # rounds dispatched ahead: each must find its blocks' rows committed
        if ctx.inflight and (self._data_parallel or self.check_counts
                             or any("count" in _block_of(r, 0) for r in ctx.inflight)):
            return None
        step = int(st["step"]) + len(ctx.inflight)
        if step >= total:
            return None
        blocks = self._blocks_at(ctx, step)
        if any(cache["dispatched"].get(int(b), -1) >= int(st["step"]) for b in blocks):
            return None  # a block still in an uncommitted round
        last_of_iteration = step % B == B - 1
        iteration = step // B + 1
        want_ll = last_of_iteration and (iteration % int(self.ll_every) == 0
                                         or iteration == int(self.iterations))
        final = step == total - 1
        seeds = np.random.SeedSequence([int(st["seed"]), step]).generate_state(
            ctx.n_fragments, np.uint64) >> np.uint64(1)
        nwk, nk = ctx.model["nwk"], ctx.model["nk"]
        if self._pipelined(ctx) and step == st["step"]:
            nk = ctx.model["nk_prev"]  # as if dispatched one ahead: the chain ignores timing
        wire = _wire_topics_dtype(nk.size)
        if self._data_parallel:  # the whole vocabulary, as committed, to every fragment
            lengths, topics, counts = sparse_rows(nwk, cache["block_words"][0])
            return {"step": step, "b": 0, "seeds": seeds.astype(np.int64), "ll": bool(want_ll),
                    "ndk": final, "rl": lengths, "rt": topics.astype(wire), "rc": counts,
                    "nk": nk}
        plan = PerFragment()
        for f, b in enumerate(blocks):
            b = int(b)
            rows = self._rows(ctx, b)
            if rows is None:  # not sampled since the last count: read the counts
                lengths, topics, counts = sparse_rows(nwk, cache["block_words"][b])
                rows = (lengths, topics.astype(wire), counts)
                self._keep_rows(ctx.model, b, rows)
            cache["dispatched"][b] = step
            plan[f] = {"step": step, "b": b, "seed": int(seeds[f]), "ll": bool(want_ll),
                       "ndk": final, "rl": rows[0], "rt": rows[1], "rc": rows[2], "nk": nk}
        return plan

    def check_partial(self, ctx: SchedulerContext, block: Payload, fragment: int,
                      partial: Payload) -> None:
        cache, K = ctx.cache, int(self.topics)
        V = ctx.model["nwk"].shape[0]

        def ints(*keys: str) -> list[np.ndarray]:
            if not all(isinstance(partial.get(k), np.ndarray) and partial[k].dtype.kind in "iu"
                       and partial[k].ndim == 1 for k in keys):
                raise ValueError(f"{', '.join(keys)} must be integer vectors")
            return [partial[k] for k in keys]

        if "ndk" in partial:
            first, stop = ctx.bounds[fragment]
            ndk = partial["ndk"]
            if not (isinstance(ndk, np.ndarray) and ndk.dtype.kind in "iu"
                    and ndk.shape == (stop - first, K)):
                raise ValueError(f"ndk must be an integer array of shape {(stop - first, K)}")
        zpos, b = cache["zpos"], int(block.get("b", 0))
        lo, hi = (zpos[fragment, 0], zpos[fragment, -1]) if block.get("count") else \
            (zpos[fragment, b], zpos[fragment, b + 1])
        z, = ints("z")
        if z.shape != (hi - lo,) or z.size and int(z.max()) >= K:
            raise ValueError(f"z must hold {hi - lo} topics below {K}")
        if block.get("count") or "cw" in partial:  # a fragment's word-topic counts
            cw, ct, cc = ints("cw", "ct", "cc")
            if not cw.shape == ct.shape == cc.shape:
                raise ValueError("cw, ct and cc differ in length")
            if cw.size and (int(cw.max()) >= V or int(ct.max()) >= K or int(cc.min()) < 1):
                raise ValueError("a word, topic or count is out of range")
            if block.get("count"):
                return
        dnk, = ints("dnk")
        if dnk.shape != (K,) or int(dnk.sum()) != 0:
            raise ValueError("dnk must have K entries summing to zero")
        if partial.get("fresh") not in (0, 1):
            raise ValueError("fresh must be 0 or 1")
        if partial["fresh"] and dnk.any():
            raise ValueError("a fragment that did not sample changed the topic totals")
        if self._data_parallel:  # the fragment's changes to the rows it got
            dr, dt, dc = ints("dr", "dt", "dc")
            if not dr.shape == dt.shape == dc.shape:
                raise ValueError("dr, dt and dc differ in length")
            if dr.size and (int(dr.max()) >= V or int(dt.max()) >= K):
                raise ValueError("a row or topic is out of range")
            if not np.array_equal(np.bincount(dt, weights=dc, minlength=K), dnk):
                raise ValueError("the row changes do not add up to dnk")
            return
        rows = ints("rl", "rt", "rc")
        check_sparse_rows(*rows, cache["block_words"][b].size, K, "rows")
        moved = np.bincount(rows[1], weights=rows[2], minlength=K) \
            - np.bincount(block["rt"], weights=block["rc"], minlength=K)
        if not np.array_equal(moved, dnk):
            raise ValueError("the block's new rows do not match dnk")

    def pull(self, ctx: SchedulerContext, block: Payload | PerFragment,
             partials: dict[int, Payload]) -> Payload:
        if _block_of(block, next(iter(partials))).get("count"):
            return self._pull_counts(ctx, partials)
        p, st, cache, model = self.params, ctx.state, ctx.cache, ctx.model
        step = int(_block_of(block, next(iter(partials)))["step"])
        K, N = int(p["topics"]), cache["n_tokens"]
        nwk, nk = model["nwk"], model["nk"]
        dnk = np.zeros(K, np.int64)
        committed, fresh = [], False
        for f, part in partials.items():
            if part["fresh"]:  # its topics were drawn afresh: recount before going on
                fresh = True
                continue
            b = int(_block_of(block, f)["b"])
            if self._data_parallel:
                lk.add_pairs(nwk, cache["block_words"][0][_int32(part["dr"])], _int32(part["dt"]),
                             _int32(part["dc"]))
            else:
                self._commit_rows(ctx, b, part)
            model["z"][cache["zpos"][f, b]:cache["zpos"][f, b + 1]] = part["z"]
            dnk += part["dnk"]
            committed.append(int(f))
        model["nk_prev"][:] = nk
        nk += dnk
        if (nk < 0).any() or self._data_parallel and (nwk < 0).any():
            raise ValueError("LDA counts went negative: inconsistent partials")
        if fresh:
            st["counted"] = False
            self._nwk(ctx)
            self._forget_rows(ctx)
        elif p["check_counts"]:
            self._check(ctx, partials, step)
        st["step"] = step + 1
        st["seconds"] = ctx.elapsed  # at the last commit: what tokens_per_second divides by
        B = cache["n_blocks"]
        if st["step"] % B == 0:
            st["iteration"] = iteration = st["step"] // B
            metrics: dict[str, Any] = {"iteration": iteration,
                                       "tokens_per_s": round(N * iteration / max(ctx.elapsed, 1e-9))}
            if not fresh and all("ll_docs" in part for part in partials.values()):
                metrics["ll_per_token"] = self._record_ll(ctx, partials, iteration)
            ctx.report(**metrics)
        if not fresh and all("ndk" in part for part in partials.values()):
            cache["ndk"] = np.concatenate([partials[f]["ndk"] for f in sorted(partials)])
        if st["step"] >= int(p["iterations"]) * B and not fresh:
            ctx.stop(converged=True)
        return {"step": step, "frags": committed}

    def _record_ll(self, ctx: SchedulerContext, partials: dict[int, Payload],
                   iteration: int | None) -> float:
        """``log p(w, z)`` from the model's counts and the fragments' ``log p(z)`` parts."""
        st, N = ctx.state, ctx.cache["n_tokens"]
        ll = lk.ll_words_part(self._nwk(ctx), ctx.model["nk"], float(self.beta)) \
            + sum(float(part["ll_docs"]) for part in partials.values())
        st["ll"] = ll
        if iteration is not None:
            st["ll_history"].append([iteration, ll / N])
        return ll / N

    def _pull_counts(self, ctx: SchedulerContext, partials: dict[int, Payload]) -> Payload:
        """A count round: the model becomes the sum of the fragments' word-topic counts."""
        st, cache, model = ctx.state, ctx.cache, ctx.model
        nwk = model["nwk"]
        nwk[:] = 0
        for part in partials.values():
            lk.add_pairs(nwk, _int32(part["cw"]), _int32(part["ct"]), _int32(part["cc"]))
        model["nk"][:] = nwk.sum(axis=0, dtype=np.int64)
        if int(model["nk"].sum()) != cache["n_tokens"]:
            raise ValueError(f"the fragments hold {int(model['nk'].sum())} tokens, not "
                             f"{cache['n_tokens']}")
        model["nk_prev"][:] = model["nk"]
        self._forget_rows(ctx)
        cache["ndk"] = np.concatenate([partials[f]["ndk"] for f in sorted(partials)])
        zpos = cache["zpos"]
        for f, part in partials.items():
            model["z"][zpos[f, 0]:zpos[f, -1]] = part["z"]
        st["counted"] = True
        st["z_layout"] = list(zpos.shape)
        first = st["step"] == 0 and not st["ll_history"]
        ll = self._record_ll(ctx, partials, 0 if first else None)
        if first:
            ctx.report(iteration=0, ll_per_token=ll)
        if st["step"] >= int(self.iterations) * cache["n_blocks"]:
            ctx.stop(converged=True)
        return {"step": -1, "frags": sorted(int(f) for f in partials)}

    def _pipelined(self, ctx: SchedulerContext) -> bool:
        """Whether rounds go out one ahead (then every round starts from the totals of the
        commit before the last: the same chain however the rounds are timed)."""
        return not (self._data_parallel or self.check_counts) and self._stride(ctx) >= 2

    @staticmethod
    def _keep_rows(model: dict[str, np.ndarray], b: int, rows: tuple) -> None:
        model[f"rows{b}_len"], model[f"rows{b}_topic"], model[f"rows{b}_count"] = rows

    def _rows(self, ctx: SchedulerContext, b: int) -> tuple | None:
        """Block b's rows as last returned (in the sampler's topic order, which a resume
        keeps), or None when they are to be rebuilt from nwk."""
        m = ctx.model
        if m[f"rows{b}_len"].size != ctx.cache["block_words"][b].size or not m[f"rows{b}_len"].size:
            return None
        return m[f"rows{b}_len"], m[f"rows{b}_topic"], m[f"rows{b}_count"]

    def _forget_rows(self, ctx: SchedulerContext) -> None:
        """After a count: every block's rows are rebuilt from the new counts."""
        ctx.cache["model_rows"].clear()
        ctx.state["stale"] = []
        for b in range(int(ctx.cache["n_blocks"])):
            self._keep_rows(ctx.model, b, (ctx.model[f"rows{b}_len"][:0], ctx.model[f"rows{b}_topic"][:0],
                                           ctx.model[f"rows{b}_count"][:0]))

    def _commit_rows(self, ctx: SchedulerContext, b: int, part: Payload) -> None:
        """Rotation: keep a block's returned rows in the model, as the next round's input
        for that block (so the scheduler never rebuilds them); the dense ``nwk`` catches
        up only when it is read (:meth:`_nwk`), not every round."""
        self._keep_rows(ctx.model, b, (part["rl"], part["rt"], part["rc"]))
        if b not in ctx.state["stale"]:
            ctx.state["stale"].append(b)

    def _nwk(self, ctx: SchedulerContext) -> np.ndarray:
        """The dense word-topic counts, with the rows of blocks committed since written in
        (kept for ``state["n_blocks"]`` blocks: a resume with other blocks first reads
        them under the layout they were kept for)."""
        cache, st, m, nwk = ctx.cache, ctx.state, ctx.model, ctx.model["nwk"]
        same = int(st["n_blocks"]) == int(cache["n_blocks"])
        block_words = cache["block_words"] if same else [
            np.flatnonzero(layout == b).astype(np.int32) for layout in
            [balance_word_blocks(cache["freq"], int(st["n_blocks"]))] for b in range(int(st["n_blocks"]))]
        for b in st["stale"]:
            rows = _int32(m[f"rows{b}_len"]), _int32(m[f"rows{b}_topic"]), _int32(m[f"rows{b}_count"])
            old = cache["model_rows"].get(b) if same else None  # what nwk holds for it, if known
            if old is None:
                scatter_rows(nwk, block_words[b], *rows)
            else:
                replace_rows(nwk, block_words[b], old[0], old[1], *rows)
            if same:
                cache["model_rows"][b] = rows
        st["stale"] = []
        return nwk

    def _check(self, ctx: SchedulerContext, partials: dict[int, Payload], step: int) -> None:
        """Debug (``check_counts``): the model's counts are the sum of the fragments'."""
        m, K = ctx.model, int(self.topics)
        self._nwk(ctx)
        total = np.zeros_like(m["nwk"])
        for part in partials.values():
            lk.add_pairs(total, _int32(part["cw"]), _int32(part["ct"]), _int32(part["cc"]))
        where = f"LDA count check failed after sub-iteration {step}"
        if not np.array_equal(total, m["nwk"]):
            raise AssertionError(f"{where}: nwk != the sum of the fragments' counts")
        if not np.array_equal(m["nk"], m["nwk"].sum(axis=0)) or (m["nwk"] < 0).any():
            raise AssertionError(f"{where}: nk != column sums of nwk, or a negative count")
        if int(m["nk"].sum()) != ctx.cache["n_tokens"] or m["nk"].size != K:
            raise AssertionError(f"{where}: the counts do not add up to the tokens")

    def snapshot(self, ctx: SchedulerContext, fragment: int) -> Payload:
        st, cache = ctx.state, ctx.cache
        out = {"word_block": cache["word_block"], "n_blocks": int(cache["n_blocks"]),
               "seed": _seed(st["seed"], fragment, st["step"], ctx.round)}
        zpos = cache["zpos"]
        if st["z_layout"] == list(zpos.shape):  # the fragment's topics, as last committed
            out.update(z=ctx.model["z"][zpos[fragment, 0]:zpos[fragment, -1]], at=int(st["step"]))
        elif st["counted"]:  # laid out for other fragments (a resume): draw from the counts
            nwk = self._nwk(ctx)
            lengths, topics, counts = sparse_rows(nwk, np.arange(nwk.shape[0], dtype=np.int32))
            out.update(rl=lengths, rt=topics, rc=counts, nk=ctx.model["nk"])
        return out

    # ---- scheduler: results -------------------------------------------------------------
    def _top_words(self, ctx: SchedulerContext) -> list[list[str]]:
        nwk, vocab = self._nwk(ctx), ctx.cache["vocab"]
        n = min(int(self.top_words), nwk.shape[0])
        out = []
        for k in range(nwk.shape[1]):
            col = nwk[:, k]
            top = np.argpartition(-col, n - 1)[:n] if 0 < n < col.size else np.arange(n)
            top = top[np.lexsort((top, -col[top]))]  # most frequent first, ties by word id
            out.append([vocab[w] for w in top])
        return out

    def expected_rounds(self, ctx: SchedulerContext) -> int:
        return int(self.iterations) * int(ctx.cache["n_blocks"]) + 1

    def result(self, ctx: SchedulerContext) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        p, st, c, m = self.params, ctx.state, ctx.cache, ctx.model
        K, beta, N = int(p["topics"]), float(p["beta"]), c["n_tokens"]
        ll = st["ll"]
        sweeps = st["step"] / c["n_blocks"]
        seconds = float(st.get("seconds", 0.0))  # first dispatch to last commit
        n_docs = ctx.bounds[-1][1] if ctx.bounds else 0
        summary = {"app": self.name, "schedule": self.policy,
                   "ll_per_token": None if ll is None else ll / N, "log_likelihood": ll,
                   "tokens_per_second": N * sweeps / seconds if seconds > 0 else None,
                   "iterations": int(st["step"] // c["n_blocks"]), "seconds": round(seconds, 4),
                   "topics": K, "tokens": N, "documents": int(n_docs),
                   "vocabulary": int(m["nwk"].shape[0]), "blocks": int(c["n_blocks"]),
                   "alpha": float(p["alpha"]), "beta": beta, "ll_history": st["ll_history"],
                   "top_words": self._top_words(ctx)}
        nwk, nk = self._nwk(ctx), m["nk"]
        topic_word = (nwk.T + beta) / (nk[:, None] + beta * nwk.shape[0])
        ndk = c["ndk"] if c["ndk"] is not None else np.zeros((n_docs, K), np.int32)
        return summary, {"nwk": nwk, "ndk": ndk, "nk": nk, "topic_word": topic_word}

    def extra_outputs(self, ctx: SchedulerContext) -> dict[str, str | bytes]:
        """``topics.txt``: one line per topic, its share of tokens and its top words."""
        nk, N = ctx.model["nk"], ctx.cache["n_tokens"]
        lines = [f"topic {k} ({nk[k] / N:.2%}): {' '.join(words)}"
                 for k, words in enumerate(self._top_words(ctx))]
        return {"topics.txt": "\n".join(lines) + "\n"}

    # ---- worker ---------------------------------------------------------------------
    def load(self, wctx: WorkerContext, fragment: Fragment, data: Payload, model: Payload) -> dict:
        p = self.params
        K = int(p["topics"])
        X = data["X"]
        doc_ptr, words, doc_of_token = expand_tokens(X)
        n_docs = doc_ptr.size - 1
        word_block = np.asarray(model["word_block"], dtype=np.int32)
        n_blocks = int(model["n_blocks"])
        V = X.shape[1]
        if word_block.shape != (V,) or word_block.size and (
                word_block.min() < 0 or word_block.max() >= n_blocks):
            raise ValueError("snapshot's word blocks do not match the vocabulary")
        # tokens grouped by block (each block's in document order), with their word's row there
        order, block_ptr = lk.build_block_index(doc_ptr, words, word_block, n_blocks)
        rank, sizes = word_ranks(word_block, n_blocks)
        words, doc = words[order], doc_of_token[order]
        seed = int(model["seed"])
        if "z" in model:  # the committed topics: the model's counts hold them
            z = _int32(model["z"])
            if z.shape != words.shape or z.size and int(z.max()) >= K:
                raise ValueError(f"snapshot of fragment {fragment.id} has {z.size} topics "
                                 f"for {words.size} tokens")
            ndk = lk.doc_topic_counts(doc, z, n_docs, K)
        elif "rl" in model:  # no topics in this layout: draw them from the model's counts
            rows = _int32(model["rl"]), _int32(model["rt"]), _int32(model["rc"])
            check_sparse_rows(*rows, V, K, "snapshot")
            z, ndk = lk.draw_from_word_rows(words, doc, n_docs, *rows,
                                            np.asarray(model["nk"], np.int64), float(p["alpha"]),
                                            float(p["beta"]), float(p["beta"]) * V, seed)
        else:
            z = lk.random_topics(words.size, K, seed)
            ndk = lk.doc_topic_counts(doc, z, n_docs, K)
        return {
            "words": words, "rows": rank[words], "doc": doc, "z": z, "ndk": ndk,
            "block_ptr": block_ptr, "block_sizes": sizes, "doc_lengths": np.diff(doc_ptr),
            "positions": np.arange(int(np.diff(block_ptr).max(initial=0)), dtype=np.int64),
            "identity": np.arange(max(int(sizes.max(initial=0)), 1), dtype=np.int32),
            "n_words": V,
            "pending": {},  # step -> (block, topics before): pushes not yet committed
            # fresh: topics not in the model's counts (wait for a count round); loaded_at:
            # the commits the snapshot holds (a later one of our push from elsewhere: stale)
            "fresh": "z" not in model, "loaded_at": int(model.get("at", 0)),
        }

    def push(self, wctx: WorkerContext, fragment: Fragment, block: Payload) -> Payload:
        st = fragment.state
        p = self.params
        K = int(p["topics"])
        step = int(block["step"])
        if step in st["pending"]:  # the same round pushed again before its commit: start over
            self._undo(st, step)
        if block.get("count"):
            return self._counts(st, block, K, with_ndk=True)
        b = int(block["b"])
        lo, hi = int(st["block_ptr"][b]), int(st["block_ptr"][b + 1])
        rows = _int32(block["rl"]), _int32(block["rt"]), _int32(block["rc"])
        check_sparse_rows(*rows, int(st["block_sizes"][b]), K, "scheduler")
        nk = np.array(block["nk"], dtype=np.int64)
        nk_before = nk.copy()
        if st["fresh"]:  # topics drawn afresh, not in the rows: sample after the next count
            lengths, topics, counts = rows
        else:
            z = st["z"][lo:hi]
            st["pending"][step] = (b, z.copy())
            seed = block["seeds"][fragment.id] if self._data_parallel else block["seed"]
            sampler = lk.sample_block_sparse if wctx.device == "cpu" else lk.sample_block_cuda
            _, lengths, topics, counts = sampler(
                st["positions"][:hi - lo], st["rows"][lo:hi], st["doc"][lo:hi], z, st["ndk"],
                *rows, st["identity"], nk, float(p["alpha"]), float(p["beta"]),
                float(p["beta"]) * st["n_words"], int(seed))
        wire = _wire_topics_dtype(K)
        out: Payload = {"dnk": nk - nk_before, "fresh": int(st["fresh"])}
        out["z"] = st["z"][lo:hi].astype(wire)
        if self._data_parallel:  # only what this fragment changed: the scheduler adds them up
            dr, dt, dc = lk.row_deltas(*rows, lengths, topics, counts, K)
            out.update(dr=dr, dt=dt.astype(wire), dc=dc)
        else:  # the block's rows move on with it
            out.update(rl=lengths, rt=topics.astype(wire), rc=counts)
        if block["ll"]:
            out["ll_docs"] = lk.ll_docs_part(st["ndk"], st["doc_lengths"], float(p["alpha"]))
        if block.get("ndk"):
            out["ndk"] = st["ndk"].copy()
        if p["check_counts"]:
            out.update(self._counts(st, block, K, with_ndk=False))
        return out

    def _counts(self, st: dict[str, Any], block: Payload, K: int, with_ndk: bool) -> Payload:
        """The fragment's word-topic counts (and, for a count round, its ndk and log p(z))."""
        if not np.array_equal(st["ndk"].sum(axis=1), st["doc_lengths"]):
            raise AssertionError("LDA count check failed: ndk row sums != document lengths")
        cw, ct, cc = lk.word_topic_pairs(st["words"], st["z"], K)
        out: Payload = {"cw": cw, "ct": ct.astype(_wire_topics_dtype(K)), "cc": cc}
        if with_ndk:
            st["fresh"] = False
            st["pending"].clear()
            out["ndk"] = st["ndk"].copy()
            out["ll_docs"] = lk.ll_docs_part(st["ndk"], st["doc_lengths"], float(self.alpha))
            out["z"] = st["z"].astype(_wire_topics_dtype(K))
        return out

    @staticmethod
    def _undo(st: dict[str, Any], step: int) -> None:
        """Put back the topics a push of ``step`` changed (and their doc-topic counts)."""
        b, z_old = st["pending"].pop(step)
        lo, hi = int(st["block_ptr"][b]), int(st["block_ptr"][b + 1])
        reassign(st["doc"][lo:hi], st["z"][lo:hi], z_old, st["ndk"])

    def sync(self, wctx: WorkerContext, fragment: Fragment, update: Payload) -> None:
        """A commit: the fragment's push of that round stays; an older one never
        committed (its round was redone elsewhere) is undone."""
        st = fragment.state
        step = int(update["step"])
        if step < 0:
            return  # a count round: nothing pending is left
        mine = fragment.id in set(int(f) for f in update["frags"])
        if mine and step >= st["loaded_at"] and step not in st["pending"] and not st["fresh"]:
            st["fresh"] = True  # committed from our previous owner's push: our topics are stale
        for s in sorted(st["pending"], reverse=True):
            if s < step or (s == step and not mine):
                self._undo(st, s)
            elif s == step:
                del st["pending"][s]
