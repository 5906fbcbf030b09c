"""Tests for the compiled LDA Gibbs kernels: count invariants, exactness of the
per-token conditional and of the chain's stationary law, and the
log-likelihood against the ``lda`` package."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from smpframe.apps import lda_kernels as lk


def _corpus(n_docs: int, n_words: int, mean_len: int, seed: int):
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, 2 * mean_len, n_docs)
    doc_ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    p = 1.0 / np.arange(1, n_words + 1)
    words = rng.choice(n_words, doc_ptr[-1], p=p / p.sum()).astype(np.int32)
    doc_of_token = np.repeat(np.arange(n_docs, dtype=np.int32), lens)
    return doc_ptr, words, doc_of_token


def _sweep(blocks, order, block_ptr, words, doc_of_token, z, ndk, nwk, nk, alpha, beta, seed):
    """One iteration: every block in turn, through block-local nwk rows."""
    changed = 0
    for b, (block_words, word_row) in enumerate(blocks):
        nwk_block = nwk[block_words]
        changed += lk.sample_block(
            order[block_ptr[b] : block_ptr[b + 1]], words, doc_of_token, z, ndk,
            nwk_block, word_row, nk, alpha, beta, nwk.shape[0] * beta, seed + b,
        )
        nwk[block_words] = nwk_block
    return changed


def test_build_block_index_groups_by_block_in_document_order():
    doc_ptr, words, _ = _corpus(20, 30, 8, seed=3)
    word_block = (np.arange(30) % 4).astype(np.int32)
    order, block_ptr = lk.build_block_index(doc_ptr, words, word_block)
    assert block_ptr[0] == 0 and block_ptr[-1] == words.size
    assert np.array_equal(np.sort(order), np.arange(words.size))
    for b in range(4):
        pos = order[block_ptr[b] : block_ptr[b + 1]]
        assert np.all(word_block[words[pos]] == b)
        assert np.all(np.diff(pos) > 0)


def test_counts_stay_consistent():
    n_docs, n_words, n_topics, n_blocks = 40, 60, 7, 3
    alpha, beta = 0.3, 0.05
    doc_ptr, words, doc_of_token = _corpus(n_docs, n_words, 25, seed=0)
    z = lk.random_topics(words.size, n_topics, seed=1)
    ndk, nwk, nk = lk.init_counts(words, doc_of_token, z, n_docs, n_words, n_topics)
    word_block = (np.arange(n_words) % n_blocks).astype(np.int32)
    order, block_ptr = lk.build_block_index(doc_ptr, words, word_block)
    blocks = [lk.block_word_rows(word_block, b) for b in range(n_blocks)]
    lengths = np.diff(doc_ptr)
    total_changed = 0
    for it in range(5):
        for b, (block_words, word_row) in enumerate(blocks):
            nwk_block = nwk[block_words]
            total_changed += lk.sample_block(
                order[block_ptr[b] : block_ptr[b + 1]], words, doc_of_token, z, ndk,
                nwk_block, word_row, nk, alpha, beta, n_words * beta, 10 * it + b,
            )
            nwk[block_words] = nwk_block
            assert z.min() >= 0 and z.max() < n_topics
            assert ndk.sum() == words.size and nwk.sum() == words.size
            assert np.array_equal(ndk.sum(axis=1), lengths)
            assert np.array_equal(nk, nwk.sum(axis=0))
            ref_ndk, ref_nwk, ref_nk = lk.init_counts(
                words, doc_of_token, z, n_docs, n_words, n_topics
            )
            assert np.array_equal(ndk, ref_ndk)
            assert np.array_equal(nwk, ref_nwk)
            assert np.array_equal(nk, ref_nk)
    assert total_changed > 0


def test_same_seed_same_chain():
    doc_ptr, words, doc_of_token = _corpus(10, 20, 10, seed=5)
    runs = []
    for _ in range(2):
        z = lk.random_topics(words.size, 4, seed=2)
        ndk, nwk, nk = lk.init_counts(words, doc_of_token, z, 10, 20, 4)
        lk.sample_block(np.arange(words.size), words, doc_of_token, z, ndk, nwk,
                        np.arange(20, dtype=np.int32), nk, 0.1, 0.1, 2.0, 7)
        runs.append(z)
    assert np.array_equal(*runs)


def _chi2_pvalue(observed: np.ndarray, expected_p: np.ndarray) -> float:
    from scipy.stats import chisquare

    return chisquare(observed, expected_p * observed.sum()).pvalue


@pytest.mark.parametrize("alpha,beta", [(0.5, 0.1), (0.05, 2.0), (3.0, 0.01)])
def test_single_token_conditional_is_exact(alpha, beta):
    """Resampling one token with the rest fixed draws iid from p(z_i | rest);
    the (alpha, beta) settings put most mass in the q, s and r buckets in turn."""
    n_topics, n_words = 4, 3
    words = np.array([0, 1, 2, 0, 1, 0, 2, 2], np.int32)
    doc_of_token = np.array([0, 0, 0, 0, 1, 1, 1, 1], np.int32)
    z = np.array([0, 1, 1, 3, 0, 2, 2, 1], np.int32)
    ndk, nwk, nk = lk.init_counts(words, doc_of_token, z, 2, n_words, n_topics)
    target = 3  # word 0 in doc 0
    d, w = doc_of_token[target], words[target]
    ndk_ex, nwk_ex, nk_ex = ndk.copy(), nwk.copy(), nk.copy()
    ndk_ex[d, z[target]] -= 1
    nwk_ex[w, z[target]] -= 1
    nk_ex[z[target]] -= 1
    p = (ndk_ex[d] + alpha) * (nwk_ex[w] + beta) / (nk_ex + n_words * beta)
    p /= p.sum()

    word_row = np.arange(n_words, dtype=np.int32)
    positions = np.array([target], np.int64)
    n_draws = 20000
    counts = np.zeros(n_topics, np.int64)
    for s in range(n_draws):
        lk.sample_block(positions, words, doc_of_token, z, ndk, nwk, word_row, nk,
                        alpha, beta, n_words * beta, s)
        counts[z[target]] += 1
    assert _chi2_pvalue(counts, p) > 1e-4


def _log_joint(z, words, doc_of_token, n_docs, n_words, n_topics, alpha, beta):
    """Unnormalised log p(w, z) by the Griffiths-Steyvers formula."""
    ndk = np.zeros((n_docs, n_topics))
    nwk = np.zeros((n_words, n_topics))
    for w, d, k in zip(words, doc_of_token, z):
        ndk[d, k] += 1
        nwk[w, k] += 1
    nk = nwk.sum(axis=0)
    lg = np.vectorize(math.lgamma)
    return (lg(ndk + alpha).sum() + lg(nwk + beta).sum()
            - lg(nk + n_words * beta).sum())


def test_chain_stationary_law_matches_enumeration():
    """Joint state histogram of a two-block chain vs brute-force p(z | w)."""
    n_topics, n_words, n_docs = 2, 3, 2
    alpha, beta = 0.4, 0.3
    words = np.array([0, 1, 2, 0, 2], np.int32)
    doc_of_token = np.array([0, 0, 0, 1, 1], np.int32)
    doc_ptr = np.array([0, 3, 5], np.int64)
    word_block = np.array([0, 1, 1], np.int32)
    order, block_ptr = lk.build_block_index(doc_ptr, words, word_block)
    blocks = [lk.block_word_rows(word_block, b) for b in range(2)]

    states = list(itertools.product(range(n_topics), repeat=words.size))
    logp = np.array([_log_joint(np.array(s), words, doc_of_token, n_docs, n_words,
                                n_topics, alpha, beta) for s in states])
    exact = np.exp(logp - logp.max())
    exact /= exact.sum()

    z = np.zeros(words.size, np.int32)
    ndk, nwk, nk = lk.init_counts(words, doc_of_token, z, n_docs, n_words, n_topics)
    n_sweeps = 40000
    hist = np.zeros(len(states), np.int64)
    base = n_topics ** np.arange(words.size - 1, -1, -1)
    for it in range(n_sweeps):
        _sweep(blocks, order, block_ptr, words, doc_of_token, z, ndk, nwk, nk,
               alpha, beta, seed=2 * it)
        hist[int(z @ base)] += 1
    empirical = hist / n_sweeps
    # Successive sweeps are correlated, so compare by total variation with a
    # margin well above the Monte-Carlo error (about 0.01 here).
    assert 0.5 * np.abs(empirical - exact).sum() < 0.03
    assert np.all(np.abs(empirical - exact) < 0.01 + 0.15 * exact)


def test_log_likelihood_matches_lda_package():
    lda = pytest.importorskip("lda")
    n_topics, alpha, beta = 5, 0.2, 0.05
    rng = np.random.default_rng(0)
    X = rng.poisson(0.4, size=(30, 50)).astype(np.int64)
    X[:, 0] += 1  # no empty documents
    model = lda.LDA(n_topics=n_topics, n_iter=20, alpha=alpha, eta=beta, random_state=1)
    model.fit(X)
    expected = model.loglikelihood()

    nwk = np.ascontiguousarray(model.nzw_.T)  # lda stores (K, V)
    ndk = model.ndz_
    nk = model.nz_
    lengths = ndk.sum(axis=1)
    ours = lk.log_likelihood(nwk, nk, ndk, lengths, alpha, beta)
    assert ours == pytest.approx(expected, rel=1e-9)

    # the same value from per-fragment document parts
    parts = [ndk[:11], ndk[11:19], ndk[19:]]
    split = lk.log_likelihood(nwk, nk, parts, [p.sum(axis=1) for p in parts], alpha, beta)
    assert split == pytest.approx(expected, rel=1e-9)
    assert lk.ll_words_part(nwk, nk, beta) + sum(
        lk.ll_docs_part(p, p.sum(axis=1), alpha) for p in parts
    ) == pytest.approx(expected, rel=1e-9)
