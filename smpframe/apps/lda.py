"""LDA by model-parallel collapsed Gibbs sampling with vocabulary rotation.

Latent Dirichlet allocation with symmetric priors ``alpha`` (document-topic) and
``beta`` (topic-word), sampled with the exact SparseLDA kernel of
:mod:`smpframe.apps.lda_kernels`.

Layout
------
* **Documents** are the dataset rows (a ``D x V`` count matrix, CSR); the runtime
  cuts them into fragments of about equal token counts, one or more per worker.
  A fragment keeps its tokens, their topics ``z`` and its doc-topic counts ``ndk``.
* **Words** are split into ``B >= F`` blocks holding about the same number of
  tokens each (greedy longest-processing-time assignment). Sub-iteration ``s``
  gives fragment ``f`` block ``(f + s) mod B``
  (:func:`smpframe.scheduling.blocks.rotation`), so a word-topic row is owned by
  exactly one fragment at a time and every fragment samples with exact, current
  word-topic counts. ``B`` sub-iterations (rounds) make one iteration, in which
  every token is sampled once. Only the topic totals ``n_k`` are shared by all
  fragments in a round: each starts from the committed totals and the scheduler
  adds up the fragments' changes between rounds.
* **The scheduler** holds the model: ``nwk`` (``V x K`` word-topic counts),
  ``nk`` and ``z`` for every token (document order), so checkpoints are exact and
  a fragment that moves to another worker is rebuilt exactly from ``z``.

A round
-------
``schedule``: per fragment, its block number, the block's current ``nwk`` rows
(sparse: nonzeros per row, their topics and counts), ``nk`` and a seed. ``push``
samples the fragment's tokens of that block in place with
:func:`lda_kernels.sample_block_sparse` (cost: tokens + nonzeros, never rows x K),
remembering their previous topics (undone if the same round is pushed again
before its commit, e.g. after a redispatch), and returns the block's new rows,
its ``n_k`` change and the new topics (1 byte a token for ``K <= 256``). ``pull``
writes rows, totals and topics into the model, keeps each block's returned rows
to hand on unchanged to the fragment that gets the block next (so the scheduler
never rebuilds them), and returns the new topics of every fragment; ``sync``
brings each held fragment's ``z``/``ndk`` to the committed topics (a no-op
compare when the fragment's own push was the one committed, which is the case
except after a failure or a move).

An iteration takes at least one round per fragment, so the CLI defaults LDA to
one fragment per worker (``--fragments`` overrides it).

The data-parallel baseline
--------------------------
``policy="data-parallel"`` (``--schedule data-parallel``) is AD-LDA (Newman et al.
2009), the scheme of Yahoo!LDA and other parameter servers, for comparison with the
rotation: one block holds the whole vocabulary, and each round is one iteration in
which every fragment samples *all* its tokens against the word-topic counts
committed at the end of the previous iteration (sent in the block, sparse, the same
bytes to every worker). A fragment sees its own changes as it goes but not the other
fragments' of the same iteration, so its counts are stale. ``pull`` merges the
fragments' changes: each token that moved takes its count from its old topic to its
new one (the sum of the fragments' word-topic deltas), so the merged counts are again
exactly the counts of the committed topics, and the log-likelihood is computed the
same way as for the rotation.

``ll_per_token`` is the joint ``log p(w, z)`` over the token count, the quantity
the ``lda`` package's ``loglikelihood()`` returns (divided by the token count).
It is computed every ``ll_every`` iterations and at the end: ``log p(z)`` is
summed over fragments on the workers, ``log p(w | z)`` on the scheduler.

Outputs (``model.npz``): ``nwk`` int32 ``V x K`` (rows are words), ``ndk`` int32
``D x K``, ``nk`` int64 ``K``, ``topic_word`` float64 ``K x V`` (``(nwk + beta)^T``
normalised per topic). ``result.json`` holds ``ll_per_token``,
``tokens_per_second``, ``iterations``, ``topics``, ``tokens`` and ``top_words``
(the 10 most frequent words of each topic); ``topics.txt`` lists the same.
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
                              WorkerContext)
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


@njit(cache=True, nogil=True)
def scatter_topics(z, positions, values):
    """``z[positions] = values`` (numpy's fancy assignment, without its temporaries)."""
    for i in range(positions.shape[0]):
        z[positions[i]] = values[i]


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


def check_counts(nwk: np.ndarray, nk: np.ndarray, z: np.ndarray, words: np.ndarray,
                 n_tokens: int, where: str) -> None:
    """Raise AssertionError unless nwk, nk and z agree with each other and the token count."""
    n_words, n_topics = nwk.shape

    def fail(why: str) -> None:
        raise AssertionError(f"LDA count check failed {where}: {why}")

    if int(nwk.sum()) != n_tokens:
        fail(f"sum(nwk) = {int(nwk.sum())}, tokens = {n_tokens}")
    if (nwk < 0).any() or (nk < 0).any():
        fail("negative count")
    if not np.array_equal(nk, nwk.sum(axis=0)):
        fail("nk != column sums of nwk")
    if z.size and (z.min() < 0 or z.max() >= n_topics):
        fail("topic out of range")
    if not np.array_equal(nwk, lk.word_topic_counts(words, z, n_words, n_topics)):
        fail("nwk != counts of (word, z)")


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
    scatter_topics(one.copy(), np.zeros(1, np.int64), one)
    lk.doc_topic_counts(one, one, 1, 1)


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
        Vocabulary blocks (default: the number of fragments).
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

    @property
    def _data_parallel(self) -> bool:
        return self.policy == "data-parallel"

    def load_data(self, source: Any) -> Dataset:
        from smpframe.data.text import Corpus, load_corpus

        p = self.params
        if source is None:
            from smpframe.data.synthetic_corpus import make_corpus
            corpus = make_corpus(**{**DEFAULT_SYNTHETIC, **(p["synthetic"] or {})})[0]
        elif isinstance(source, Corpus):
            corpus = source
        elif isinstance(source, tuple) and source and isinstance(source[0], Corpus):
            corpus = source[0]  # what make_corpus returns
        elif isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
            path = Path(os.fsdecode(source))
            fmt = p["fmt"] or ("uci" if _looks_like_uci(path) else None)
            corpus = load_corpus(path, fmt, p["vocab"], not p["keep_stopwords"])
        else:
            raise InputError(f"LDA data must be a path or a Corpus, not {type(source).__name__}")
        doc_ptr = np.array(corpus.doc_ptr, dtype=np.int64)  # copies: the CSR below takes them
        words = np.array(corpus.words, dtype=np.int32)      # over and sorts them in place
        n_words = len(corpus.vocab)
        if words.size == 0:
            raise InputError("corpus has no tokens")
        if words.min() < 0 or words.max() >= n_words:
            raise InputError(f"word ids must be in 0..{n_words - 1} (the vocabulary's size)")
        n_docs = doc_ptr.size - 1
        X = sp.csr_matrix((np.ones(words.size, np.int32), words, doc_ptr), shape=(n_docs, n_words))
        X.sum_duplicates()  # counts per (doc, word), words sorted within each document
        X.data = X.data.astype(np.int32)
        self._vocab = list(corpus.vocab)
        lengths = np.diff(doc_ptr)
        return Dataset(rows={"X": X}, meta={"n_docs": n_docs, "n_words": n_words,
                                            "n_tokens": int(words.size)},
                       weights=lengths.astype(np.float64) + 1e-3)

    def init(self, ctx: SchedulerContext) -> None:
        p = self.params
        K = int(p["topics"])
        X = ctx.dataset.rows["X"]
        V = X.shape[1]
        F = ctx.n_fragments
        B = 1 if self._data_parallel else int(p["blocks"]) if p["blocks"] is not None else F
        if B < F and not self._data_parallel:
            raise InputError(f"--blocks ({B}) must be at least the number of fragments ({F})")
        doc_ptr, words, doc_of_token = expand_tokens(X)
        N = int(words.size)
        word_block = balance_word_blocks(np.bincount(words, minlength=V).astype(np.int64), B)
        # per fragment: global token positions grouped by block (build_block_index order,
        # which the worker computes the same way from the same tokens)
        gpos = np.empty(N, np.int64)
        tok_ptr = np.array([doc_ptr[a] for a, _ in ctx.bounds] + [N], np.int64)
        cell_tok = np.empty((F, B + 1), np.int64)  # cell (f, b): gpos[cell_tok[f, b]:cell_tok[f, b + 1]]
        for f, (a, b) in enumerate(ctx.bounds):
            order, block_ptr = lk.build_block_index(doc_ptr[a:b + 1], words, word_block, B)
            gpos[tok_ptr[f]:tok_ptr[f + 1]] = order
            cell_tok[f] = tok_ptr[f] + block_ptr
        block_words = [np.flatnonzero(word_block == b).astype(np.int32) for b in range(B)]
        ctx.cache.update(words=words, doc_of_token=doc_of_token, doc_lengths=np.diff(doc_ptr),
                         word_block=word_block, block_words=block_words, gpos=gpos,
                         tok_ptr=tok_ptr, cell_tok=cell_tok, block_rows={}, model_rows={},
                         n_tokens=N, n_blocks=B, vocab=self._vocab or [str(i) for i in range(V)])
        seed = int(ctx.rng.integers(0, 2**31 - 1))
        z = lk.random_topics(N, K, seed)
        nwk = lk.word_topic_counts(words, z, V, K)
        nk = lk.topic_totals(z, K)
        ctx.model.update(z=z, nwk=nwk, nk=nk)
        ll = self._log_likelihood(ctx)
        ctx.state.update(step=0, iteration=0, n_blocks=B, seed=seed, ll=ll, ll_history=[[0, ll / N]],
                         seconds=0.0)
        ctx.report(iteration=0, ll_per_token=ll / N)

    def warm_up(self, role: str, xp: Any) -> None:
        _warm_up()

    def _log_likelihood(self, ctx: SchedulerContext) -> float:
        """Exact ``log p(w, z)`` of the committed model (used at start and end)."""
        p, c, m = self.params, ctx.cache, ctx.model
        K = int(p["topics"])
        ndk = lk.doc_topic_counts(c["doc_of_token"], m["z"], c["doc_lengths"].size, K)
        return lk.ll_words_part(m["nwk"], m["nk"], float(p["beta"])) \
            + lk.ll_docs_part(ndk, c["doc_lengths"], float(p["alpha"]))

    def schedule(self, ctx: SchedulerContext) -> Payload | PerFragment | None:
        st, cache = ctx.state, ctx.cache
        B = cache["n_blocks"]
        if st["n_blocks"] != B:  # resumed with other fragments: restart the current iteration
            st["step"] = st["step"] // st["n_blocks"] * B
            st["n_blocks"] = B
        if ctx.inflight or st["step"] >= int(self.iterations) * B:
            return None  # a round needs the previous one committed, or we are done
        step = int(st["step"])
        last_of_iteration = step % B == B - 1
        iteration = step // B + 1
        want_ll = last_of_iteration and (iteration % int(self.ll_every) == 0
                                         or iteration == int(self.iterations))
        seeds = np.random.SeedSequence([int(st["seed"]), step]).generate_state(
            ctx.n_fragments, np.uint64) >> np.uint64(1)
        nwk, nk = ctx.model["nwk"], ctx.model["nk"]
        wire = _wire_topics_dtype(nk.size)
        if self._data_parallel:  # the whole vocabulary, as committed, to every fragment
            lengths, topics, counts = sparse_rows(nwk, cache["block_words"][0])
            return {"step": step, "b": 0, "seeds": seeds.astype(np.int64), "ll": bool(want_ll),
                    "rl": lengths, "rt": topics.astype(wire), "rc": counts, "nk": nk}
        plan = PerFragment()
        for f, b in enumerate(rotation(B, ctx.n_fragments, step)):
            b = int(b)
            rows = cache["block_rows"].get(b)
            if rows is None:  # not sampled since the start (or a resume): read the model
                lengths, topics, counts = sparse_rows(nwk, cache["block_words"][b])
                rows = (lengths, topics.astype(wire), counts)
            plan[f] = {"step": step, "b": b, "seed": int(seeds[f]), "ll": bool(want_ll),
                       "rl": rows[0], "rt": rows[1], "rc": rows[2], "nk": nk}
        return plan

    def check_partial(self, ctx: SchedulerContext, block: Payload, fragment: int,
                      partial: Payload) -> None:
        cache, K, b = ctx.cache, int(self.topics), int(block["b"])
        lo, hi = cache["cell_tok"][fragment, b], cache["cell_tok"][fragment, b + 1]
        new_z, dnk = partial.get("z"), partial.get("dnk")
        keys = ("z", "dnk") if self._data_parallel else ("z", "dnk", "rl", "rt", "rc")
        if not all(isinstance(partial.get(k), np.ndarray) and partial[k].dtype.kind in "iu"
                   for k in keys):
            raise ValueError(f"{', '.join(keys)} must be integer arrays")
        if new_z.shape != (hi - lo,) or dnk.shape != (K,):
            raise ValueError("z or dnk has the wrong shape")
        if new_z.size and int(new_z.max()) >= K:
            raise ValueError("a topic is out of range")
        if int(dnk.sum()) != 0:
            raise ValueError("dnk changes the number of tokens")
        if not self._data_parallel:
            rows = _int32(partial["rl"]), _int32(partial["rt"]), _int32(partial["rc"])
            check_sparse_rows(*rows, cache["block_words"][b].size, K, "rows")

    def pull(self, ctx: SchedulerContext, block: Payload | PerFragment,
             partials: dict[int, Payload]) -> Payload:
        p, st, cache, model = self.params, ctx.state, ctx.cache, ctx.model
        step = int(_block_of(block, next(iter(partials)))["step"])
        K, N = int(p["topics"]), cache["n_tokens"]
        nwk, nk, z = model["nwk"], model["nk"], model["z"]
        dnk = np.zeros(K, np.int64)
        frags, blocks, zs = [], [], []
        for f, part in partials.items():
            b = int(_block_of(block, f)["b"])
            lo, hi = cache["cell_tok"][f, b], cache["cell_tok"][f, b + 1]
            new_z = part["z"]
            if self._data_parallel:
                # one block: the fragment's tokens are z[lo:hi] in document order; moving
                # each changed token's count merges the fragment's word-topic delta
                reassign(cache["words"][lo:hi], z[lo:hi], _int32(new_z), nwk)
            else:
                self._commit_rows(cache, nwk, b, part)
                scatter_topics(z, cache["gpos"][lo:hi], _int32(new_z))
            dnk += part["dnk"]
            frags.append(int(f))
            blocks.append(b)
            zs.append(new_z)
        nk += dnk
        if (nk < 0).any():
            raise ValueError("LDA topic totals went negative: inconsistent partials")
        if p["check_counts"]:
            self._check(ctx, partials, step)
        st["step"] = step + 1
        st["seconds"] = ctx.elapsed  # at the last commit: what tokens_per_second divides by
        B = cache["n_blocks"]
        if st["step"] % B == 0:
            st["iteration"] = iteration = st["step"] // B
            metrics: dict[str, Any] = {"iteration": iteration,
                                       "tokens_per_s": round(N * iteration / max(ctx.elapsed, 1e-9))}
            if all("ll_docs" in part for part in partials.values()):
                ll = lk.ll_words_part(nwk, nk, float(p["beta"])) \
                    + sum(float(part["ll_docs"]) for part in partials.values())
                st["ll"] = ll
                st["ll_history"].append([iteration, ll / N])
                metrics["ll_per_token"] = ll / N
            ctx.report(**metrics)
            if iteration >= int(p["iterations"]):
                ctx.stop(converged=True)
        ptr = np.zeros(len(zs) + 1, np.int64)
        np.cumsum([a.size for a in zs], out=ptr[1:])
        return {"step": step, "frags": frags, "blocks": blocks, "zptr": ptr,
                "z": np.concatenate(zs) if zs else np.zeros(0, np.uint8)}

    @staticmethod
    def _commit_rows(cache: dict[str, Any], nwk: np.ndarray, b: int, part: Payload) -> None:
        """Rotation: write a block's returned rows into the model, and keep them as the
        next round's input for that block (so the scheduler never rebuilds them)."""
        rows = _int32(part["rl"]), _int32(part["rt"]), _int32(part["rc"])
        old = cache["model_rows"].get(b)  # what the model holds for the block, if known
        if old is None:
            scatter_rows(nwk, cache["block_words"][b], *rows)
        else:
            replace_rows(nwk, cache["block_words"][b], old[0], old[1], *rows)
        cache["model_rows"][b] = rows
        cache["block_rows"][b] = (part["rl"], part["rt"], part["rc"])

    def _check(self, ctx: SchedulerContext, partials: dict[int, Payload], step: int) -> None:
        """Debug (``check_counts``): every count agrees with z, and with the workers' ndk."""
        c, m, K = ctx.cache, ctx.model, int(self.topics)
        where = f"after sub-iteration {step}"
        check_counts(m["nwk"], m["nk"], m["z"], c["words"], c["n_tokens"], where)
        for f, part in partials.items():
            a, b = ctx.bounds[f]
            lo, hi = c["tok_ptr"][f], c["tok_ptr"][f + 1]
            ndk = lk.doc_topic_counts(c["doc_of_token"][lo:hi] - a, m["z"][lo:hi], b - a, K)
            if "ndk" not in part or not np.array_equal(part["ndk"], ndk):
                raise AssertionError(f"LDA count check failed {where}: fragment {f}'s ndk "
                                     "does not match the committed z")
            if int(ndk.sum()) != hi - lo or not np.array_equal(ndk.sum(axis=1), c["doc_lengths"][a:b]):
                raise AssertionError(f"LDA count check failed {where}: ndk row sums != lengths")

    def snapshot(self, ctx: SchedulerContext, fragment: int) -> Payload:
        lo, hi = ctx.cache["tok_ptr"][fragment], ctx.cache["tok_ptr"][fragment + 1]
        return {"z": ctx.model["z"][lo:hi], "word_block": ctx.cache["word_block"],
                "n_blocks": int(ctx.cache["n_blocks"])}

    def _top_words(self, ctx: SchedulerContext) -> list[list[str]]:
        nwk, vocab = ctx.model["nwk"], ctx.cache["vocab"]
        n = min(int(self.top_words), nwk.shape[0])
        out = []
        for k in range(nwk.shape[1]):
            col = nwk[:, k]
            top = np.argpartition(-col, n - 1)[:n] if 0 < n < col.size else np.arange(n)
            top = top[np.lexsort((top, -col[top]))]  # most frequent first, ties by word id
            out.append([vocab[w] for w in top])
        return out

    def expected_rounds(self, ctx: SchedulerContext) -> int:
        return int(self.iterations) * int(ctx.cache["n_blocks"])

    def result(self, ctx: SchedulerContext) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        p, st, c, m = self.params, ctx.state, ctx.cache, ctx.model
        K, beta, N = int(p["topics"]), float(p["beta"]), c["n_tokens"]
        ll = self._log_likelihood(ctx)
        sweeps = st["step"] / c["n_blocks"]
        seconds = float(st.get("seconds", 0.0))  # first dispatch to last commit
        summary = {"app": self.name, "schedule": self.policy, "ll_per_token": ll / N,
                   "log_likelihood": ll,
                   "tokens_per_second": N * sweeps / seconds if seconds > 0 else None,
                   "iterations": int(st["step"] // c["n_blocks"]), "seconds": round(seconds, 4),
                   "topics": K, "tokens": N, "documents": int(c["doc_lengths"].size),
                   "vocabulary": int(m["nwk"].shape[0]), "blocks": int(c["n_blocks"]),
                   "alpha": float(p["alpha"]), "beta": beta, "ll_history": st["ll_history"],
                   "top_words": self._top_words(ctx)}
        nwk, nk = m["nwk"], m["nk"]
        topic_word = (nwk.T + beta) / (nk[:, None] + beta * nwk.shape[0])
        ndk = lk.doc_topic_counts(c["doc_of_token"], m["z"], c["doc_lengths"].size, K)
        return summary, {"nwk": nwk, "ndk": ndk, "nk": nk, "topic_word": topic_word}

    def extra_outputs(self, ctx: SchedulerContext) -> dict[str, str | bytes]:
        """``topics.txt``: one line per topic, its share of tokens and its top words."""
        nk, N = ctx.model["nk"], ctx.cache["n_tokens"]
        lines = [f"topic {k} ({nk[k] / N:.2%}): {' '.join(words)}"
                 for k, words in enumerate(self._top_words(ctx))]
        return {"topics.txt": "\n".join(lines) + "\n"}

    # ---- worker ---------------------------------------------------------------------
    def load(self, wctx: WorkerContext, fragment: Fragment, data: Payload, model: Payload) -> dict:
        K = int(self.topics)
        doc_ptr, words, doc_of_token = expand_tokens(data["X"])
        n_docs = doc_ptr.size - 1
        z = np.array(model["z"], dtype=np.int32)
        if z.shape != words.shape:
            raise ValueError(f"snapshot of fragment {fragment.id} has {z.size} topics for {words.size} tokens")
        word_block = np.asarray(model["word_block"], dtype=np.int32)
        n_blocks = int(model["n_blocks"])
        if word_block.shape != (int(wctx.meta["n_words"]),) or word_block.size and (
                word_block.min() < 0 or word_block.max() >= n_blocks):
            raise ValueError("snapshot's word blocks do not match the vocabulary")
        # tokens grouped by block (the scheduler's order), each with its word's row in the block
        order, block_ptr = lk.build_block_index(doc_ptr, words, word_block, n_blocks)
        rank, sizes = word_ranks(word_block, n_blocks)
        return {
            "rows": rank[words[order]], "doc": doc_of_token[order], "z": z[order],
            "block_ptr": block_ptr, "block_sizes": sizes,
            "ndk": lk.doc_topic_counts(doc_of_token, z, n_docs, K), "doc_lengths": np.diff(doc_ptr),
            "positions": np.arange(int(np.diff(block_ptr).max(initial=0)), dtype=np.int64),
            "identity": np.arange(max(int(sizes.max(initial=0)), 1), dtype=np.int32),
            "pending": None,
        }

    def push(self, wctx: WorkerContext, fragment: Fragment, block: Payload) -> Payload:
        st = fragment.state
        self._undo_pending(st)  # the same round pushed again before its commit: start over
        p = self.params
        K = int(p["topics"])
        b = int(block["b"])
        lo, hi = int(st["block_ptr"][b]), int(st["block_ptr"][b + 1])
        rows = _int32(block["rl"]), _int32(block["rt"]), _int32(block["rc"])
        check_sparse_rows(*rows, int(st["block_sizes"][b]), K, "scheduler")
        nk = np.array(block["nk"], dtype=np.int64)
        nk_before = nk.copy()
        z = st["z"][lo:hi]
        st["pending"] = (int(block["step"]), b, z.copy())
        seed = block["seeds"][fragment.id] if self._data_parallel else block["seed"]
        _, lengths, topics, counts = lk.sample_block_sparse(
            st["positions"][:hi - lo], st["rows"][lo:hi], st["doc"][lo:hi], z, st["ndk"], *rows,
            st["identity"], nk, float(p["alpha"]), float(p["beta"]),
            float(p["beta"]) * int(wctx.meta["n_words"]), int(seed))
        wire = _wire_topics_dtype(K)
        out = {"dnk": nk - nk_before, "z": z.astype(wire)}
        if not self._data_parallel:  # the block's rows move on with it; data-parallel: z says all
            out.update(rl=lengths, rt=topics.astype(wire), rc=counts)
        if block["ll"]:
            out["ll_docs"] = lk.ll_docs_part(st["ndk"], st["doc_lengths"], float(p["alpha"]))
        if p["check_counts"]:
            out["ndk"] = st["ndk"].copy()
        return out

    @staticmethod
    def _undo_pending(st: dict[str, Any]) -> None:
        pending = st["pending"]
        if pending is not None:
            _, b, z_old = pending
            lo, hi = int(st["block_ptr"][b]), int(st["block_ptr"][b + 1])
            reassign(st["doc"][lo:hi], st["z"][lo:hi], z_old, st["ndk"])
            st["pending"] = None

    def sync_worker(self, wctx: WorkerContext, update: Payload) -> None:
        """Where each fragment's new topics are in the update (used by every sync)."""
        wctx.shared["committed"] = {int(f): i for i, f in enumerate(update["frags"])}

    def sync(self, wctx: WorkerContext, fragment: Fragment, update: Payload) -> None:
        i = wctx.shared["committed"].get(fragment.id)
        st = fragment.state
        if i is None:
            return
        b = int(update["blocks"][i])
        if st["pending"] is not None and st["pending"][1] != b:
            self._undo_pending(st)
        st["pending"] = None
        lo, hi = int(st["block_ptr"][b]), int(st["block_ptr"][b + 1])
        ptr = update["zptr"]
        z_new = _int32(update["z"][int(ptr[i]):int(ptr[i + 1])])
        if z_new.shape != (hi - lo,):
            raise ValueError(f"committed topics for fragment {fragment.id} have the wrong length")
        reassign(st["doc"][lo:hi], st["z"][lo:hi], z_new, st["ndk"])
