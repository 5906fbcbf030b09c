"""A synthetic corpus drawn from LDA's own generative process, with the true topics.

Used as ``smpframe run lda``'s built-in data, by the LDA tests (topic recovery) and
by ``benchmarks/bench_lda.py``. Deterministic in ``seed``; vectorised (a 1M-token
corpus takes well under a second).
"""
from __future__ import annotations

import numpy as np

from smpframe.data.text import Corpus


def _dirichlet(rng: np.random.Generator, concentration: float, shape: tuple[int, int]) -> np.ndarray:
    """Rows drawn from a symmetric Dirichlet, safe for tiny concentrations.

    Gamma(c) draws with c << 1 underflow to 0 in float64; drawing them in log
    space (``log G = log G' + log(U) / c`` with ``G' ~ Gamma(c + 1)``) and
    normalising with the row max keeps every row a proper distribution.
    """
    log_g = np.log(rng.standard_gamma(concentration + 1.0, shape)) \
        + np.log(rng.random(shape)) / concentration
    log_g -= log_g.max(axis=1, keepdims=True)
    p = np.exp(log_g)
    return p / p.sum(axis=1, keepdims=True)


def make_corpus(n_docs: int = 2000, n_words: int = 2000, n_topics: int = 20,
                doc_length: float = 100.0, alpha: float = 0.1, beta: float = 0.01,
                seed: int = 0) -> tuple[Corpus, np.ndarray, np.ndarray]:
    """Documents drawn from ``n_topics`` known topics over an ``n_words`` vocabulary.

    ``phi[k] ~ Dirichlet(beta)`` (``K x V``, rows sum to 1), ``theta[d] ~
    Dirichlet(alpha)`` (``D x K``), each document's length ~ Poisson(doc_length)
    (at least 1), each token's topic ~ theta[d] and its word ~ phi[topic].
    Tokens of a document are in random order. Words are named ``w0``, ``w1``, ...

    Returns ``(corpus, phi, theta)``.
    """
    if min(n_docs, n_words, n_topics) < 1 or doc_length <= 0 or alpha <= 0 or beta <= 0:
        raise ValueError("make_corpus needs positive sizes, doc_length, alpha and beta")
    rng = np.random.default_rng(seed)
    phi = _dirichlet(rng, beta, (n_topics, n_words))
    theta = _dirichlet(rng, alpha, (n_docs, n_topics))
    lengths = np.maximum(rng.poisson(doc_length, n_docs), 1).astype(np.int64)
    per_doc_topic = rng.multinomial(lengths, theta)  # D x K token counts
    n_tokens = int(lengths.sum())
    topic = np.repeat(np.tile(np.arange(n_topics), n_docs), per_doc_topic.ravel())
    doc = np.repeat(np.arange(n_docs), lengths)
    words = np.empty(n_tokens, np.int32)
    cdf = np.cumsum(phi, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(n_tokens)
    for k in range(n_topics):
        at = np.flatnonzero(topic == k)
        words[at] = np.minimum(np.searchsorted(cdf[k], u[at], side="right"), n_words - 1)
    shuffle = np.lexsort((rng.random(n_tokens), doc))  # random order inside each document
    doc_ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    corpus = Corpus(doc_ptr, words[shuffle], [f"w{i}" for i in range(n_words)])
    return corpus, phi, theta
