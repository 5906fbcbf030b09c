"""Compiled collapsed-Gibbs kernels for the LDA app.

Data-layout contract (one worker, one document fragment):

* The fragment's tokens are stored document-contiguously: tokens of local
  document ``d`` are positions ``doc_ptr[d]:doc_ptr[d + 1]`` of ``words``
  (global word id, int32), ``z`` (topic, int32) and ``doc_of_token`` (local
  document id, int32).
* The vocabulary is cut into blocks by ``word_block: int32[V]``.
  ``build_block_index`` gives ``(order, block_ptr)`` such that the token
  positions of block ``b`` are ``order[block_ptr[b]:block_ptr[b + 1]]``, in
  document order (a stable counting sort of positions by block), so the
  sampler builds each document's sparse topic list once per block.
* ``ndk: int32[n_docs_local, K]`` doc-topic counts; ``nwk_block:
  int32[n_block_words, K]`` the exact word-topic rows of the block the worker
  owns, addressed through ``word_row: int32[V]`` (global word id -> row, -1 if
  the word is not in the block; ``block_word_rows`` builds both);
  ``nk: int64[K]`` the worker's running copy of the topic totals.

``sample_block`` is SparseLDA (Yao, Mimno & McCallum 2009): the conditional
``(ndk + a)(nwk + b) / (nk + Vb)`` is split into a smoothing bucket
``a b / (nk + Vb)`` (all topics, cached sum), a document bucket
``ndk b / (nk + Vb)`` (the document's nonzero topics, cached sum) and a word
bucket ``(ndk + a) nwk / (nk + Vb)`` (the word's nonzero topics), so every
draw is from the exact conditional while costing O(nonzero topics of the
word), not O(K), in the common case (the word bucket holds most of the mass).

``sample_block_sparse`` is the same sampler (same chain for rows listed in topic
order) taking and returning the block's word-topic rows in sparse form
(nonzeros per row, topics, counts), so its cost is tokens + nonzeros, never
rows x K: what the LDA app sends between the scheduler and the workers.

The log-likelihood is the joint ``log p(w, z)`` exactly as
``lda.LDA.loglikelihood()`` computes it, split into a part needing the full
word-topic matrix and a part summable over document fragments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "add_pairs",
    "block_word_rows",
    "build_block_index",
    "doc_topic_counts",
    "draw_from_word_rows",
    "init_counts",
    "ll_docs_part",
    "ll_words_part",
    "log_likelihood",
    "random_topics",
    "row_deltas",
    "sample_block",
    "sample_block_sparse",
    "topic_totals",
    "word_topic_counts",
    "word_topic_pairs",
]


# --------------------------------------------------------------------------
# layout helpers
# --------------------------------------------------------------------------


def build_block_index(
    doc_ptr: np.ndarray,
    words: np.ndarray,
    word_block: np.ndarray,
    n_blocks: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Group a fragment's token positions by vocabulary block.

    Returns ``(order, block_ptr)`` (both int64): block ``b``'s token positions
    are ``order[block_ptr[b]:block_ptr[b + 1]]``, in document order (a stable
    sort by block), which is what ``sample_block`` expects. ``n_blocks``
    defaults to ``word_block.max() + 1``.
    """
    if n_blocks is None:
        n_blocks = int(word_block.max()) + 1
    start, stop = int(doc_ptr[0]), int(doc_ptr[-1])
    block_of_token = word_block[words[start:stop]]
    order = np.argsort(block_of_token, kind="stable").astype(np.int64) + start
    block_ptr = np.zeros(n_blocks + 1, np.int64)
    np.cumsum(np.bincount(block_of_token, minlength=n_blocks), out=block_ptr[1:])
    return order, block_ptr


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


def random_topics(n_tokens: int, n_topics: int, seed: int) -> np.ndarray:
    """Uniform random initial topic per token (int32), reproducible from ``seed``."""
    return np.random.default_rng(seed).integers(0, n_topics, n_tokens, dtype=np.int32)


@njit(cache=True, nogil=True)
def _pair_counts(rows, cols, n_rows, n_cols):
    """int32 table of (rows[i], cols[i]) occurrences (add.at is ~10x slower)."""
    out = np.zeros((n_rows, n_cols), np.int32)
    for i in range(rows.shape[0]):
        out[rows[i], cols[i]] += 1
    return out


def doc_topic_counts(
    doc_of_token: np.ndarray, z: np.ndarray, n_docs: int, n_topics: int
) -> np.ndarray:
    """``ndk: int32[n_docs, K]`` from the topic assignments of a fragment."""
    return _pair_counts(doc_of_token, z, n_docs, n_topics)


def word_topic_counts(words: np.ndarray, z: np.ndarray, n_words: int, n_topics: int) -> np.ndarray:
    """``nwk: int32[V, K]`` from the (words, topics) of one or all fragments.

    Per-fragment results add up to the global matrix.
    """
    return _pair_counts(words, z, n_words, n_topics)


def topic_totals(z: np.ndarray, n_topics: int) -> np.ndarray:
    """``nk: int64[K]`` topic totals of a set of assignments (summable)."""
    return np.bincount(z, minlength=n_topics).astype(np.int64)


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


def word_topic_pairs(words: np.ndarray, z: np.ndarray, n_topics: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fragment's word-topic counts as nonzero triplets ``(word, topic, count)`` (int32).

    At most one triplet per token, so the size follows the tokens, not V x K.
    """
    keys, counts = np.unique(words.astype(np.int64) * n_topics + z, return_counts=True)
    return ((keys // n_topics).astype(np.int32), (keys % n_topics).astype(np.int32),
            counts.astype(np.int32))


@njit(cache=True, nogil=True)
def add_pairs(nwk, rows, topics, counts):
    """``nwk[rows[i], topics[i]] += counts[i]`` (callers check the indices)."""
    for i in range(rows.shape[0]):
        nwk[rows[i], topics[i]] += counts[i]


@njit(cache=True, nogil=True)
def row_deltas(old_len, old_topic, old_count, new_len, new_topic, new_count, n_topics):
    """``new - old`` of two sparse row sets with the same rows, as nonzero triplets
    ``(row, topic, delta)``: what one fragment's sampling changed in the rows it got."""
    n_rows = old_len.shape[0]
    dense = np.zeros(n_topics, np.int64)
    cap = old_topic.shape[0] + new_topic.shape[0]
    out_row = np.empty(cap, np.int32)
    out_topic = np.empty(cap, np.int32)
    out_delta = np.empty(cap, np.int32)
    i_old = 0
    i_new = 0
    j = 0
    for r in range(n_rows):
        a, b = i_old, i_new
        for _ in range(old_len[r]):
            dense[old_topic[i_old]] -= old_count[i_old]
            i_old += 1
        for _ in range(new_len[r]):
            dense[new_topic[i_new]] += new_count[i_new]
            i_new += 1
        # every topic either list names, once
        j = _emit_deltas(old_topic, a, i_old, dense, r, out_row, out_topic, out_delta, j)
        j = _emit_deltas(new_topic, b, i_new, dense, r, out_row, out_topic, out_delta, j)
    return out_row[:j], out_topic[:j], out_delta[:j]


@njit(cache=True, nogil=True, inline="always")
def _smoothing_topic(u, inv, n_topics):
    """The topic where ``u`` falls in the cumulative sums of ``inv`` (the smoothing
    bucket's weights, all topics); the last one if rounding leaves ``u`` >= 0."""
    for k in range(n_topics):
        u -= inv[k]
        if u < 0.0:
            return k
    return n_topics - 1


@njit(cache=True, nogil=True, inline="always")
def _emit_deltas(topics, lo, hi, dense, r, out_row, out_topic, out_delta, j):
    """Append row ``r``'s nonzero ``dense`` entries at ``topics[lo:hi]`` from ``j`` on,
    clearing them; the next free slot."""
    for e in range(lo, hi):
        k = topics[e]
        if dense[k] != 0:
            out_row[j] = r
            out_topic[j] = k
            out_delta[j] = dense[k]
            j += 1
            dense[k] = 0
    return j


@njit(cache=True, nogil=True)
def draw_from_word_rows(words, doc, n_docs, row_len, row_topic, row_count, nk, alpha, beta,
                        beta_sum, seed):
    """Topics for a fragment whose topics were lost, drawn from the model's counts.

    Every token first draws from ``p(k | w) ~ (n_wk + b) / (n_k + Vb)`` (rows ``w`` of
    the sparse word-topic counts, all V words in order), then once more from
    ``(n_dk + a)(n_wk + b) / (n_k + Vb)`` with the document's counts of the first draw
    (the token itself left out). Not a Gibbs step of the chain (the model's counts
    still hold the lost topics): a start that keeps what the model learned, after which
    the run recounts and samples on. Returns ``(z, ndk)``.
    """
    n_topics = nk.shape[0]
    n_words = row_len.shape[0]
    row_ptr = np.zeros(n_words + 1, np.int64)
    for w in range(n_words):
        row_ptr[w + 1] = row_ptr[w] + row_len[w]
    inv = np.empty(n_topics)
    s_sum = 0.0
    for k in range(n_topics):
        inv[k] = 1.0 / (nk[k] + beta_sum)
        s_sum += inv[k]
    state = np.uint64(seed) * np.uint64(0xD1B54A32D192ED03)
    n = words.shape[0]
    z = np.empty(n, np.int32)
    ndk = np.zeros((n_docs, n_topics), np.int32)
    for i in range(n):
        w = words[i]
        total = beta * s_sum
        for e in range(row_ptr[w], row_ptr[w + 1]):
            total += row_count[e] * inv[row_topic[e]]
        state, u = _uniform(state)
        u *= total
        new = -1
        for e in range(row_ptr[w], row_ptr[w + 1]):
            u -= row_count[e] * inv[row_topic[e]]
            if u < 0.0:
                new = row_topic[e]
                break
        if new < 0:  # the smoothing part: b / (n_k + Vb) over every topic
            new = _smoothing_topic(u / beta, inv, n_topics)
        z[i] = new
        ndk[doc[i], new] += 1
    dense = np.zeros(n_topics)
    p = np.empty(n_topics)
    for i in range(n):
        w = words[i]
        d = doc[i]
        ndk[d, z[i]] -= 1
        for e in range(row_ptr[w], row_ptr[w + 1]):
            dense[row_topic[e]] = row_count[e]
        total = 0.0
        for k in range(n_topics):
            total += (ndk[d, k] + alpha) * (dense[k] + beta) * inv[k]
            p[k] = total
        for e in range(row_ptr[w], row_ptr[w + 1]):
            dense[row_topic[e]] = 0.0
        state, u = _uniform(state)
        u *= total
        new = n_topics - 1
        for k in range(n_topics):
            if u < p[k]:
                new = k
                break
        z[i] = new
        ndk[d, new] += 1
    return z, ndk


# --------------------------------------------------------------------------
# sampler
# --------------------------------------------------------------------------


@intrinsic
def _prefetch(typingctx, arr, row, col):
    """Hint the CPU to fetch ``arr[row, col]`` into cache (no-op semantically)."""

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [
            context.cast(builder, args[1], signature.args[1], types.intp),
            context.cast(builder, args[2], signature.args[2], types.intp),
        ]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read access, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, row, col), codegen


@njit(cache=True, nogil=True, inline="always")
def _uniform(state):
    """SplitMix64 step: returns (new state, uniform double in [0, 1))."""
    state += np.uint64(0x9E3779B97F4A7C15)
    x = state
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return state, (x >> np.uint64(11)) * (1.0 / 9007199254740992.0)


_PREFETCH_AHEAD = 4  # tokens; covers an L3/DRAM miss at ~100 ns per token


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

    Exact collapsed Gibbs with SparseLDA buckets (s: smoothing, r: document,
    q: word). Mutates ``z``, ``ndk``, ``nwk_block`` and ``nk`` in place and
    returns how many tokens changed topic. ``beta_sum`` is ``V * beta`` for the
    full vocabulary. Positions should be grouped by document
    (``build_block_index`` order) so each document's sparse state is built
    once. Deterministic given ``seed`` (SplitMix64 stream, no global state).

    Helpers are written out inline on purpose: passing arrays to inlined
    numba functions costs atomic reference-count updates per token.
    """
    n_topics = nk.shape[0]
    slot_of_row, tok_slot, n_slots = _token_slots(token_positions, words, word_row,
                                                  nwk_block.shape[0])
    # Word lists, one slot per word row this call touches (in order of first
    # touch): w_list[s] holds (topic, count) pairs of the word's nonzero
    # topics, interleaved so the word bucket reads one short contiguous run;
    # w_pos[s, k] is topic k's pair index, trusted only if it points at k.
    # nwk_block is read to build the lists and written back at the end.
    row_of_slot = np.empty(n_slots, np.int32)
    w_len = np.zeros(n_slots, np.int32)
    w_list = np.empty((n_slots, 2 * n_topics), np.int32)
    w_pos = np.empty((n_slots, n_topics), np.int32)
    for row in range(nwk_block.shape[0]):
        sl = slot_of_row[row]
        if sl >= 0:
            row_of_slot[sl] = row
            n = 0
            for k in range(n_topics):
                c = nwk_block[row, k]
                if c > 0:
                    w_list[sl, 2 * n] = k
                    w_list[sl, 2 * n + 1] = c
                    w_pos[sl, k] = n
                    n += 1
            w_len[sl] = n
    changed = _gibbs_sweep(token_positions, doc_of_token, z, ndk, nk, alpha, beta, beta_sum,
                           seed, tok_slot, w_list, w_len, w_pos)
    for sl in range(n_slots):
        row = row_of_slot[sl]
        nwk_block[row, :] = 0
        for m in range(w_len[sl]):
            nwk_block[row, w_list[sl, 2 * m]] = w_list[sl, 2 * m + 1]
    return changed


@njit(cache=True, nogil=True)
def sample_block_sparse(
    token_positions,
    words,
    doc_of_token,
    z,
    ndk,
    row_len,
    row_topic,
    row_count,
    word_row,
    nk,
    alpha: float,
    beta: float,
    beta_sum: float,
    seed: int,
):
    """:func:`sample_block` with the block's word-topic rows in sparse form.

    Row ``r`` of the block is ``row_len[r]`` (topic, count) pairs, stored one row
    after another in ``row_topic``/``row_count`` (any topic order; zero counts
    are skipped). Nothing is read or written per (row, topic) cell, so the cost
    is the tokens plus the nonzeros, not rows x K. The input rows are not
    changed; returns ``(changed, new_len, new_topic, new_count)``: the block's
    rows after sampling, in the same form (rows no token touched are copied).
    Same chain as :func:`sample_block` when each input row lists its topics in
    increasing order.
    """
    n_topics = nk.shape[0]
    n_rows = row_len.shape[0]
    n_tok = token_positions.shape[0]
    row_ptr = np.zeros(n_rows + 1, np.int64)
    for r in range(n_rows):
        row_ptr[r + 1] = row_ptr[r] + row_len[r]
    slot_of_row, tok_slot, n_slots = _token_slots(token_positions, words, word_row, n_rows)
    row_of_slot = np.empty(n_slots, np.int32)
    w_len = np.zeros(n_slots, np.int32)
    w_list = np.empty((n_slots, 2 * n_topics), np.int32)
    w_pos = np.empty((n_slots, n_topics), np.int32)
    for row in range(n_rows):
        sl = slot_of_row[row]
        if sl >= 0:
            row_of_slot[sl] = row
            n = 0
            for e in range(row_ptr[row], row_ptr[row + 1]):
                c = row_count[e]
                if c > 0:
                    k = row_topic[e]
                    w_list[sl, 2 * n] = k
                    w_list[sl, 2 * n + 1] = c
                    w_pos[sl, k] = n
                    n += 1
            w_len[sl] = n
    changed = _gibbs_sweep(token_positions, doc_of_token, z, ndk, nk, alpha, beta, beta_sum,
                           seed, tok_slot, w_list, w_len, w_pos)
    new_len = np.empty(n_rows, np.int32)
    new_topic = np.empty(row_ptr[n_rows] + n_tok, np.int32)  # a token adds <= 1 nonzero
    new_count = np.empty(row_ptr[n_rows] + n_tok, np.int32)
    j = 0
    for row in range(n_rows):
        first = j
        sl = slot_of_row[row]
        if sl >= 0:
            for m in range(w_len[sl]):
                new_topic[j] = w_list[sl, 2 * m]
                new_count[j] = w_list[sl, 2 * m + 1]
                j += 1
        else:
            for e in range(row_ptr[row], row_ptr[row + 1]):
                if row_count[e] > 0:
                    new_topic[j] = row_topic[e]
                    new_count[j] = row_count[e]
                    j += 1
        new_len[row] = j - first
    return changed, new_len, new_topic[:j], new_count[:j]


@njit(cache=True, nogil=True)
def _token_slots(token_positions, words, word_row, n_rows):
    """Slot of each touched row (in order of first touch) and of each token."""
    n_tok = token_positions.shape[0]
    slot_of_row = np.full(n_rows, -1, np.int32)
    tok_slot = np.empty(n_tok, np.int32)
    n_slots = 0
    for j in range(n_tok):
        row = word_row[words[token_positions[j]]]
        if row < 0 or row >= n_rows:
            raise ValueError("sample_block: token whose word is not in the block")
        if slot_of_row[row] < 0:
            slot_of_row[row] = n_slots
            n_slots += 1
        tok_slot[j] = slot_of_row[row]
    return slot_of_row, tok_slot, n_slots


@njit(cache=True, nogil=True)
def _gibbs_sweep(token_positions, doc_of_token, z, ndk, nk, alpha, beta, beta_sum, seed,
                 tok_slot, w_list, w_len, w_pos):
    """The sampling loop of :func:`sample_block` over prepared word lists."""
    state = np.uint64(seed) * np.uint64(0xD1B54A32D192ED03)
    n_topics = nk.shape[0]
    n_tok = token_positions.shape[0]
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

    # nonzero-topic list of the current document
    d_top = np.empty(n_topics, np.int32)
    d_pos = np.empty(n_topics, np.int32)
    d_len = 0
    cur_doc = -1
    r_sum = 0.0
    # word-bucket terms and their sums over blocks of 4 (two-level search)
    q_val = np.empty(n_topics)
    q_blk = np.empty(n_topics // 4 + 1)

    changed = 0
    for j in range(n_tok):
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
                    d_top[d_len] = k
                    d_pos[k] = d_len
                    d_len += 1
                    coef[k] = (alpha + c) * inv[k]
                    r_sum += c * inv[k]
            r_sum *= beta
            cur_doc = d
        if j + _PREFETCH_AHEAD < n_tok:
            i2 = token_positions[j + _PREFETCH_AHEAD]
            s2 = tok_slot[j + _PREFETCH_AHEAD]
            _prefetch(w_pos, s2, z[i2])
            n_cols = min(2 * w_len[s2] + 2, 2 * n_topics)
            for col in range(0, n_cols, 16):  # 16 int32 per cache line
                _prefetch(w_list, s2, col)
        sl = tok_slot[j]
        n = w_len[sl]

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
        if c == 0:  # swap-remove old from the document list
            d_len -= 1
            last = d_top[d_len]
            p = d_pos[old]
            d_top[p] = last
            d_pos[last] = p
            if d_len == 0:
                r_sum = 0.0
        p = w_pos[sl, old]
        c = w_list[sl, 2 * p + 1] - 1
        w_list[sl, 2 * p + 1] = c
        if c == 0:  # swap-remove old from the word list
            n -= 1
            last = w_list[sl, 2 * n]
            w_list[sl, 2 * p] = last
            w_list[sl, 2 * p + 1] = w_list[sl, 2 * n + 1]
            w_pos[sl, last] = p

        # word bucket: (ndk + a) nwk inv over the word's nonzero topics, with
        # four partial sums to break the floating-point add dependency chain
        q0 = 0.0
        q1 = 0.0
        q2 = 0.0
        q3 = 0.0
        m = 0
        while m + 4 <= n:
            v0 = coef[w_list[sl, 2 * m]] * w_list[sl, 2 * m + 1]
            v1 = coef[w_list[sl, 2 * m + 2]] * w_list[sl, 2 * m + 3]
            v2 = coef[w_list[sl, 2 * m + 4]] * w_list[sl, 2 * m + 5]
            v3 = coef[w_list[sl, 2 * m + 6]] * w_list[sl, 2 * m + 7]
            q_val[m] = v0
            q_val[m + 1] = v1
            q_val[m + 2] = v2
            q_val[m + 3] = v3
            q_blk[m >> 2] = (v0 + v1) + (v2 + v3)
            q0 += v0
            q1 += v1
            q2 += v2
            q3 += v3
            m += 4
        n_blk = m >> 2
        while m < n:
            v0 = coef[w_list[sl, 2 * m]] * w_list[sl, 2 * m + 1]
            q_val[m] = v0
            q0 += v0
            m += 1
        q_sum = (q0 + q1) + (q2 + q3)

        state, u = _uniform(state)
        u *= s_sum + r_sum + q_sum
        new_at = -1  # index of the new topic in the word list, if known
        if u < q_sum:
            b = 0
            while b < n_blk and u >= q_blk[b]:
                u -= q_blk[b]
                b += 1
            m = 4 * b
            while m < n - 1:
                u -= q_val[m]
                if u < 0.0:
                    break
                m += 1
            new = w_list[sl, 2 * m]
            new_at = m
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
            new = _smoothing_topic((u - q_sum - r_sum) / ab, inv, n_topics)

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
            d_top[d_len] = new
            d_pos[new] = d_len
            d_len += 1
        if new_at < 0:
            p = w_pos[sl, new]
            if p < n and p >= 0 and w_list[sl, 2 * p] == new:
                new_at = p
            else:
                new_at = n
                w_list[sl, 2 * n] = new
                w_list[sl, 2 * n + 1] = 0
                w_pos[sl, new] = n
                n += 1
        w_list[sl, 2 * new_at + 1] += 1
        w_len[sl] = n
        z[i] = new
        changed += new != old

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
    docs = sum(
        ll_docs_part(part, lengths, alpha)
        for part, lengths in zip(ndk, doc_lengths, strict=True)
    )
    return ll_words_part(nwk, nk, beta) + docs


# --------------------------------------------------------------------------
# GPU sampler (numba.cuda): the same exclusivity, one level further down
# --------------------------------------------------------------------------

#: threads (document groups = word sub-blocks) of the GPU sampler
CUDA_GROUPS = 128


def cuda_cells(rows: np.ndarray, doc: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The block's tokens grouped into ``groups x groups`` cells: cell ``(g, h)`` holds the
    tokens of documents ``d % groups == g`` whose word's row has ``r % groups == h``, in
    document order. Returns ``(order, cell_ptr)`` (int64)."""
    cell = (doc.astype(np.int64) % groups) * groups + rows.astype(np.int64) % groups
    order = np.argsort(cell, kind="stable").astype(np.int64)
    cell_ptr = np.zeros(groups * groups + 1, np.int64)
    np.cumsum(np.bincount(cell, minlength=groups * groups), out=cell_ptr[1:])
    return order, cell_ptr


def cuda_seeds(seed: int, groups: int) -> np.ndarray:
    """One nonzero xorshift64 state per (sub-step, thread): ``uint64[groups, groups]``."""
    states = np.random.SeedSequence([int(seed)]).generate_state(groups * groups, np.uint64)
    return (states | np.uint64(1)).reshape(groups, groups)


_CUDA: dict[str, object] = {}
cuda = None  # numba.cuda, once _cuda_kernels has imported it


def _cuda_kernels() -> dict[str, object]:
    """Compile the CUDA kernels once, on first use (numba.cuda is imported only here, so
    CPU workers never load it; ``NUMBA_ENABLE_CUDASIM=1`` runs them on numba's simulator)."""
    global cuda  # a module global: the simulator swaps it for its own while a kernel runs
    if _CUDA:
        return _CUDA
    from numba import cuda

    @cuda.jit
    def sweep(t, cell_ptr, order, rows, doc, z, ndk, nwk, nk_local, cdf, seeds,
              alpha, beta, beta_sum):
        """Sub-step ``t``: thread g samples cell (g, (g + t) mod G) in order. Its documents
        and its word rows are its alone in the sub-step, so it sees their exact counts;
        only the topic totals are its own copy (the cluster's staleness, one level down)."""
        g = cuda.grid(1)
        n_groups = nk_local.shape[0]
        if g >= n_groups:
            return
        n_topics = nk_local.shape[1]
        c = g * n_groups + (g + t) % n_groups
        x = seeds[t, g]
        for j in range(cell_ptr[c], cell_ptr[c + 1]):
            i = order[j]
            d = doc[i]
            r = rows[i]
            old = z[i]
            ndk[d, old] -= 1
            nwk[r, old] -= 1
            nk_local[g, old] -= 1
            total = 0.0
            for k in range(n_topics):
                total += (ndk[d, k] + alpha) * (nwk[r, k] + beta) / (nk_local[g, k] + beta_sum)
                cdf[g, k] = total
            x ^= x >> np.uint64(12)
            x ^= x << np.uint64(25)
            x ^= x >> np.uint64(27)
            u = (x >> np.uint64(11)) * (1.0 / 9007199254740992.0) * total
            new = n_topics - 1
            for k in range(n_topics):
                if u < cdf[g, k]:
                    new = k
                    break
            ndk[d, new] += 1
            nwk[r, new] += 1
            nk_local[g, new] += 1
            z[i] = new

    @cuda.jit
    def merge_totals(nk, nk_local):
        """``nk += sum over threads of (their copy - nk)``, then every copy = nk."""
        k = cuda.grid(1)
        if k >= nk.shape[0]:
            return
        base = nk[k]
        total = base
        for g in range(nk_local.shape[0]):
            total += nk_local[g, k] - base
        nk[k] = total
        for g in range(nk_local.shape[0]):
            nk_local[g, k] = total

    _CUDA.update(sweep=sweep, merge_totals=merge_totals, cuda=cuda)
    return _CUDA


def sample_block_cuda(token_positions, words, doc_of_token, z, ndk, row_len, row_topic,
                      row_count, word_row, nk, alpha: float, beta: float, beta_sum: float,
                      seed: int, groups: int = CUDA_GROUPS):
    """:func:`sample_block_sparse` on a GPU: the same arguments, changes and return value.

    The block's tokens are cut into ``groups x groups`` cells (:func:`cuda_cells`); in
    sub-step ``t`` of ``groups``, thread ``g`` samples cell ``(g, (g + t) mod groups)``
    with the dense conditional ``(n_dk + a)(n_wk + b) / (n_k + Vb)``, so no two threads
    share a document or a word row, and each samples with their exact counts; the topic
    totals are merged between sub-steps. A valid collapsed Gibbs chain with the
    staleness of the cluster's rotation (totals only); not the CPU kernel's chain.
    """
    kernels = _cuda_kernels()
    cuda = kernels["cuda"]
    n_topics = nk.shape[0]
    n_rows = row_len.shape[0]
    nwk = np.zeros((n_rows, n_topics), np.int32)
    nwk[np.repeat(np.arange(n_rows), row_len), row_topic] = row_count
    rows = word_row[words[token_positions]].astype(np.int32)
    doc = doc_of_token[token_positions].astype(np.int32)
    z_old = z[token_positions].astype(np.int32)
    groups = max(1, min(int(groups), max(1, token_positions.shape[0])))
    order, cell_ptr = cuda_cells(rows, doc, groups)
    d_z = cuda.to_device(z_old)
    d_ndk = cuda.to_device(np.ascontiguousarray(ndk))
    d_nwk = cuda.to_device(nwk)
    d_nk = cuda.to_device(nk.astype(np.int64))
    d_local = cuda.to_device(np.repeat(nk.astype(np.int64)[None, :], groups, axis=0))
    d_cdf = cuda.device_array((groups, n_topics), np.float64)
    d_seeds = cuda.to_device(cuda_seeds(seed, groups))
    d_cells, d_order = cuda.to_device(cell_ptr), cuda.to_device(order)
    d_rows, d_doc = cuda.to_device(rows), cuda.to_device(doc)
    per_block = 64
    for t in range(groups):
        kernels["sweep"][(groups + per_block - 1) // per_block, per_block](
            t, d_cells, d_order, d_rows, d_doc, d_z, d_ndk, d_nwk, d_local, d_cdf, d_seeds,
            float(alpha), float(beta), float(beta_sum))
        kernels["merge_totals"][(n_topics + per_block - 1) // per_block, per_block](d_nk, d_local)
    z_new = d_z.copy_to_host()
    z[token_positions] = z_new
    ndk[...] = d_ndk.copy_to_host()
    nk[...] = d_nk.copy_to_host()
    nwk = d_nwk.copy_to_host()
    new_len = np.count_nonzero(nwk, axis=1).astype(np.int32)
    r, k = np.nonzero(nwk)
    return (int(np.count_nonzero(z_new != z_old)), new_len, k.astype(np.int32),
            nwk[r, k].astype(np.int32))
