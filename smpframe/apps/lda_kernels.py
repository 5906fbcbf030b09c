"""Compiled collapsed-Gibbs kernels for the LDA app.

Data-layout contract (one worker, one document fragment):

* The fragment's tokens are stored document-contiguously: tokens of local
  document ``d`` are positions ``doc_ptr[d]:doc_ptr[d + 1]`` of ``words``
  (global word id, int32), ``z`` (topic, int32) and ``doc_of_token`` (local
  document id, int32).
* The vocabulary is cut into blocks by ``word_block: int32[V]``.
  ``build_block_index`` gives ``(order, block_ptr)`` such that the token
  positions of block ``b`` are ``order[block_ptr[b]:block_ptr[b + 1]]``, in
  document order, so the sampler builds each document's sparse topic list once
  per block.
* ``ndk: int32[n_docs_local, K]`` doc-topic counts; ``nwk_block:
  int32[n_block_words, K]`` the exact word-topic rows of the block the worker
  owns, addressed through ``word_row: int32[V]`` (global word id -> row, -1 if
  the word is not in the block); ``nk: int64[K]`` the worker's running copy of
  the topic totals.

``sample_block`` is SparseLDA (Yao, Mimno & McCallum 2009): the conditional
``(ndk + a)(nwk + b) / (nk + Vb)`` is split into a smoothing bucket
``a b / (nk + Vb)`` (all topics, cached sum), a document bucket
``ndk b / (nk + Vb)`` (the document's nonzero topics, cached sum) and a word
bucket ``(ndk + a) nwk / (nk + Vb)`` (the word's nonzero topics), so a draw is
exact while costing O(nonzero topics of the word + of the document) instead
of O(K).

The log-likelihood is the joint ``log p(w, z)`` exactly as
``lda.LDA.loglikelihood()`` computes it, split into a part needing the full
word-topic matrix and a part summable over document fragments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from numba import njit

__all__ = [
    "block_word_rows",
    "build_block_index",
    "doc_topic_counts",
    "init_counts",
    "ll_docs_part",
    "ll_words_part",
    "log_likelihood",
    "random_topics",
    "sample_block",
    "topic_totals",
    "word_topic_counts",
]


# --------------------------------------------------------------------------
# layout helpers
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _build_block_index(doc_ptr, words, word_block, n_blocks):
    block_ptr = np.zeros(n_blocks + 1, np.int64)
    start = doc_ptr[0]
    stop = doc_ptr[doc_ptr.shape[0] - 1]
    for i in range(start, stop):
        block_ptr[word_block[words[i]] + 1] += 1
    for b in range(n_blocks):
        block_ptr[b + 1] += block_ptr[b]
    fill = block_ptr[:n_blocks].copy()
    order = np.empty(stop - start, np.int64)
    for i in range(start, stop):  # stable: keeps document order inside a block
        b = word_block[words[i]]
        order[fill[b]] = i
        fill[b] += 1
    return order, block_ptr


def build_block_index(
    doc_ptr: np.ndarray,
    words: np.ndarray,
    word_block: np.ndarray,
    n_blocks: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Group a fragment's token positions by vocabulary block.

    Returns ``(order, block_ptr)``: block ``b``'s token positions are
    ``order[block_ptr[b]:block_ptr[b + 1]]``, in document order (a stable
    counting sort), which is what ``sample_block`` expects. ``n_blocks``
    defaults to ``word_block.max() + 1``.
    """
    if n_blocks is None:
        n_blocks = int(word_block.max()) + 1 if word_block.size else 0
    return _build_block_index(
        np.asarray(doc_ptr, np.int64), words, word_block, n_blocks
    )


def block_word_rows(word_block: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Words of ``block`` and the ``word_row`` map into its ``nwk_block`` rows.

    Returns ``(block_words, word_row)``: ``nwk_block = nwk[block_words]`` and
    ``word_row[w]`` is ``w``'s row there, -1 for words outside the block.
    """
    block_words = np.flatnonzero(word_block == block).astype(np.int32)
    word_row = np.full(word_block.shape[0], -1, np.int32)
    word_row[block_words] = np.arange(block_words.shape[0], dtype=np.int32)
    return block_words, word_row


# --------------------------------------------------------------------------
# count construction
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def random_topics(n_tokens: int, n_topics: int, seed: int) -> np.ndarray:
    """Uniform random initial topic per token (int32), reproducible from ``seed``."""
    np.random.seed(seed)
    z = np.empty(n_tokens, np.int32)
    for i in range(n_tokens):
        z[i] = np.random.randint(0, n_topics)
    return z


@njit(cache=True, nogil=True)
def doc_topic_counts(doc_of_token, z, n_docs: int, n_topics: int) -> np.ndarray:
    """``ndk: int32[n_docs, K]`` from the topic assignments of a fragment."""
    ndk = np.zeros((n_docs, n_topics), np.int32)
    for i in range(z.shape[0]):
        ndk[doc_of_token[i], z[i]] += 1
    return ndk


@njit(cache=True, nogil=True)
def word_topic_counts(words, z, n_words: int, n_topics: int) -> np.ndarray:
    """``nwk: int32[V, K]`` from the (words, topics) of one or all fragments.

    Per-fragment results add up to the global matrix.
    """
    nwk = np.zeros((n_words, n_topics), np.int32)
    for i in range(z.shape[0]):
        nwk[words[i], z[i]] += 1
    return nwk


@njit(cache=True, nogil=True)
def topic_totals(z, n_topics: int) -> np.ndarray:
    """``nk: int64[K]`` topic totals of a set of assignments (summable)."""
    nk = np.zeros(n_topics, np.int64)
    for i in range(z.shape[0]):
        nk[z[i]] += 1
    return nk


def init_counts(
    words: np.ndarray,
    doc_of_token: np.ndarray,
    z: np.ndarray,
    n_docs: int,
    n_words: int,
    n_topics: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ndk, nwk, nk)`` of a fragment from its assignments ``z``.

    Used after random initialisation and to rebuild a worker's state when a
    document fragment moves; ``nwk`` and ``nk`` of all fragments sum to the
    global counts.
    """
    return (
        doc_topic_counts(doc_of_token, z, n_docs, n_topics),
        word_topic_counts(words, z, n_words, n_topics),
        topic_totals(z, n_topics),
    )


# --------------------------------------------------------------------------
# sampler
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _list_add(top, pos, n, k):
    top[n] = k
    pos[k] = n
    return n + 1


@njit(cache=True, nogil=True, inline="always")
def _list_remove(top, pos, n, k):
    n -= 1
    last = top[n]
    p = pos[k]
    top[p] = last
    pos[last] = p
    return n


@njit(cache=True, nogil=True, inline="always")
def _uniform(state):
    """SplitMix64 step: returns (new state, uniform double in [0, 1))."""
    state += np.uint64(0x9E3779B97F4A7C15)
    x = state
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return state, (x >> np.uint64(11)) * (1.0 / 9007199254740992.0)


# Word lists: row ``r`` of ``wl`` holds (topic, count) pairs of the word's
# nonzero topics, interleaved and sorted by count descending, so the word
# bucket streams one short contiguous row and its search usually stops after a
# few entries; ``wpos[r, k]`` is topic k's pair index (valid while present).


@njit(cache=True, nogil=True, inline="always")
def _wl_swap(wl, wpos, p, q):
    a = wl[2 * p]
    ca = wl[2 * p + 1]
    b = wl[2 * q]
    wl[2 * p] = b
    wl[2 * p + 1] = wl[2 * q + 1]
    wl[2 * q] = a
    wl[2 * q + 1] = ca
    wpos[a] = q
    wpos[b] = p


@njit(cache=True, nogil=True, inline="always")
def _wl_dec(wl, wpos, n, k):
    """Decrement topic k's count, keeping the order; returns the new length."""
    p = wpos[k]
    c = wl[2 * p + 1]
    q = p
    while q + 1 < n and wl[2 * q + 3] == c:
        q += 1
    _wl_swap(wl, wpos, p, q)
    wl[2 * q + 1] = c - 1
    return n - 1 if c == 1 else n


@njit(cache=True, nogil=True, inline="always")
def _wl_inc(wl, wpos, n, k):
    """Increment topic k's count (appending it if absent); returns the new length."""
    p = wpos[k]
    if p < 0 or p >= n or wl[2 * p] != k:
        wl[2 * n] = k
        wl[2 * n + 1] = 1
        wpos[k] = n
        return n + 1
    c = wl[2 * p + 1]
    q = p
    while q > 0 and wl[2 * q - 1] == c:
        q -= 1
    _wl_swap(wl, wpos, p, q)
    wl[2 * q + 1] = c + 1
    return n


@njit(cache=True, nogil=True)
def _wl_build(nwk_row, wl, wpos):
    """Word list of one ``nwk`` row; returns its length."""
    nz = np.flatnonzero(nwk_row)
    idx = np.argsort(-nwk_row[nz], kind="mergesort")
    for m in range(nz.shape[0]):
        k = nz[idx[m]]
        wl[2 * m] = k
        wl[2 * m + 1] = nwk_row[k]
        wpos[k] = m
    return nz.shape[0]


@njit(cache=True, nogil=True)
def _wl_store(wl, n, nwk_row):
    """Write a word list back into its dense ``nwk`` row."""
    nwk_row[:] = 0
    for m in range(n):
        nwk_row[wl[2 * m]] = wl[2 * m + 1]


@njit(cache=True, nogil=True)
def sample_block(
    token_positions,
    words,
    doc_of_token,
    z,
    ndk,
    nwk_block,
    word_row,
    nk,
    alpha: float,
    beta: float,
    beta_sum: float,
    seed: int,
) -> int:
    """Resample ``z`` at ``token_positions`` (all words in the owned block).

    Exact collapsed Gibbs with SparseLDA buckets. Mutates ``z``, ``ndk``,
    ``nwk_block`` and ``nk`` in place; returns how many tokens changed topic.
    ``beta_sum`` is ``V * beta`` for the full vocabulary. Positions should be
    grouped by document (``build_block_index`` order) so each document's
    sparse state is built once. Deterministic given ``seed`` (SplitMix64).
    """
    state = np.uint64(seed) * np.uint64(0xD1B54A32D192ED03)
    n_topics = nk.shape[0]
    n_rows = nwk_block.shape[0]
    ab = alpha * beta

    # per-topic caches: inv = 1/(nk + Vb); coef = (ndk[d] + a) * inv
    inv = np.empty(n_topics)
    coef = np.empty(n_topics)
    s_sum = 0.0
    for k in range(n_topics):
        inv[k] = 1.0 / (nk[k] + beta_sum)
        coef[k] = alpha * inv[k]
        s_sum += inv[k]
    s_sum *= ab

    # word lists of the rows touched by this call (w_len -1: not built yet);
    # nwk_block is only read to build them and written back at the end
    w_len = np.full(n_rows, -1, np.int32)
    w_list = np.empty((n_rows, 2 * n_topics), np.int32)
    w_pos = np.empty((n_rows, n_topics), np.int32)
    # nonzero-topic list of the current document
    d_top = np.empty(n_topics, np.int32)
    d_pos = np.empty(n_topics, np.int32)
    d_len = 0
    cur_doc = -1
    r_sum = 0.0
    q_val = np.empty(n_topics)

    changed = 0
    for j in range(token_positions.shape[0]):
        i = token_positions[j]
        d = doc_of_token[i]
        if d != cur_doc:
            for m in range(d_len):
                t = d_top[m]
                coef[t] = alpha * inv[t]
            d_len = 0
            r_sum = 0.0
            for k in range(n_topics):
                c = ndk[d, k]
                if c > 0:
                    d_len = _list_add(d_top, d_pos, d_len, k)
                    coef[k] = (alpha + c) * inv[k]
                    r_sum += c * inv[k]
            r_sum *= beta
            cur_doc = d
        row = word_row[words[i]]
        wl = w_list[row]
        wpos = w_pos[row]
        n = w_len[row]
        if n < 0:
            n = _wl_build(nwk_block[row], wl, wpos)

        # remove the token from all counts and bucket sums
        old = z[i]
        s_sum -= ab * inv[old]
        r_sum -= beta * ndk[d, old] * inv[old]
        nk[old] -= 1
        ndk[d, old] -= 1
        inv[old] = 1.0 / (nk[old] + beta_sum)
        c = ndk[d, old]
        s_sum += ab * inv[old]
        r_sum += beta * c * inv[old]
        coef[old] = (alpha + c) * inv[old]
        if c == 0:
            d_len = _list_remove(d_top, d_pos, d_len, old)
            if d_len == 0:
                r_sum = 0.0
        n = _wl_dec(wl, wpos, n, old)

        # word bucket: (ndk + a) nwk inv over the word's nonzero topics
        # (four partial sums break the floating-point add dependency chain)
        q0 = 0.0
        q1 = 0.0
        q2 = 0.0
        q3 = 0.0
        m = 0
        while m + 4 <= n:
            v0 = coef[wl[2 * m]] * wl[2 * m + 1]
            v1 = coef[wl[2 * m + 2]] * wl[2 * m + 3]
            v2 = coef[wl[2 * m + 4]] * wl[2 * m + 5]
            v3 = coef[wl[2 * m + 6]] * wl[2 * m + 7]
            q_val[m] = v0
            q_val[m + 1] = v1
            q_val[m + 2] = v2
            q_val[m + 3] = v3
            q0 += v0
            q1 += v1
            q2 += v2
            q3 += v3
            m += 4
        while m < n:
            v0 = coef[wl[2 * m]] * wl[2 * m + 1]
            q_val[m] = v0
            q0 += v0
            m += 1
        q_sum = (q0 + q1) + (q2 + q3)

        state, u = _uniform(state)
        u *= s_sum + r_sum + q_sum
        if u < q_sum:
            m = 0
            while m < n - 1:
                u -= q_val[m]
                if u < 0.0:
                    break
                m += 1
            new = wl[2 * m]
        elif d_len > 0 and u < q_sum + r_sum:
            u = (u - q_sum) / beta
            new = d_top[d_len - 1]
            for m in range(d_len):
                t = d_top[m]
                u -= ndk[d, t] * inv[t]
                if u < 0.0:
                    new = t
                    break
        else:
            u = (u - q_sum - r_sum) / ab
            new = n_topics - 1
            for k in range(n_topics):
                u -= inv[k]
                if u < 0.0:
                    new = k
                    break

        # add the token back under its new topic
        s_sum -= ab * inv[new]
        r_sum -= beta * ndk[d, new] * inv[new]
        nk[new] += 1
        ndk[d, new] += 1
        inv[new] = 1.0 / (nk[new] + beta_sum)
        c = ndk[d, new]
        s_sum += ab * inv[new]
        r_sum += beta * c * inv[new]
        coef[new] = (alpha + c) * inv[new]
        if c == 1:
            d_len = _list_add(d_top, d_pos, d_len, new)
        w_len[row] = _wl_inc(wl, wpos, n, new)
        z[i] = new
        changed += new != old

    for row in range(n_rows):
        if w_len[row] >= 0:
            _wl_store(w_list[row], w_len[row], nwk_block[row])
    return changed


# --------------------------------------------------------------------------
# log-likelihood (lda.LDA.loglikelihood, split by who holds what)
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _ll_words_part(nwk, nk, beta):
    n_words, n_topics = nwk.shape
    beta_sum = beta * n_words
    lg_beta = math.lgamma(beta)
    ll = n_topics * math.lgamma(beta_sum)
    for k in range(n_topics):
        ll -= math.lgamma(beta_sum + nk[k])
    for w in range(n_words):
        for k in range(n_topics):
            c = nwk[w, k]
            if c > 0:
                ll += math.lgamma(beta + c) - lg_beta
    return ll


@njit(cache=True, nogil=True)
def _ll_docs_part(ndk, doc_lengths, alpha):
    n_docs, n_topics = ndk.shape
    alpha_sum = alpha * n_topics
    lg_alpha = math.lgamma(alpha)
    lg_alpha_sum = math.lgamma(alpha_sum)
    ll = 0.0
    for d in range(n_docs):
        ll += lg_alpha_sum - math.lgamma(alpha_sum + doc_lengths[d])
        for k in range(n_topics):
            c = ndk[d, k]
            if c > 0:
                ll += math.lgamma(alpha + c) - lg_alpha
    return ll


def ll_words_part(nwk: np.ndarray, nk: np.ndarray, beta: float) -> float:
    """``log p(w | z)``: needs the full ``nwk[V, K]`` (V = vocabulary size)."""
    return float(_ll_words_part(nwk, nk, float(beta)))


def ll_docs_part(ndk: np.ndarray, doc_lengths: np.ndarray, alpha: float) -> float:
    """``log p(z)`` of one document fragment; fragments' parts add up."""
    return float(_ll_docs_part(ndk, doc_lengths, float(alpha)))


def log_likelihood(
    nwk: np.ndarray,
    nk: np.ndarray,
    ndk: np.ndarray | Iterable[np.ndarray],
    doc_lengths: np.ndarray | Iterable[np.ndarray],
    alpha: float,
    beta: float,
) -> float:
    """Joint ``log p(w, z)`` as ``lda.LDA.loglikelihood()`` computes it.

    ``ndk``/``doc_lengths`` are one array each or matching iterables of
    per-fragment arrays. Divide by the token count for a per-token value.
    """
    if isinstance(ndk, np.ndarray):
        ndk, doc_lengths = [ndk], [doc_lengths]
    docs = sum(ll_docs_part(n, l, alpha) for n, l in zip(ndk, doc_lengths, strict=True))
    return ll_words_part(nwk, nk, beta) + docs
