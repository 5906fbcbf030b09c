"""smpframe.decomposition.LatentDirichletAllocation: the lda package's chain, known topics."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import NotFittedError

from smpframe.data.synthetic_corpus import make_corpus
from smpframe.decomposition import LatentDirichletAllocation
from tests.estimators import deadline, warm_cluster  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("deadline", "warm_cluster")

K, V, ALPHA, BETA = 5, 150, 0.1, 0.01


def count_matrix(corpus) -> sp.csr_matrix:
    rows = np.repeat(np.arange(corpus.n_docs), np.diff(corpus.doc_ptr))
    return sp.csr_matrix((np.ones(len(corpus.words)), (rows, corpus.words)),
                         shape=(corpus.n_docs, V))


@pytest.fixture(scope="module")
def corpus():
    """Training documents, held-out documents and the true topics (K x V) and mixtures."""
    docs, phi, theta = make_corpus(n_docs=400, n_words=V, n_topics=K, doc_length=80.0,
                                   alpha=ALPHA, beta=BETA, seed=4)
    X = count_matrix(docs)
    return X[:300], X[300:], phi, theta[300:]


@pytest.fixture(scope="module")
def fitted(corpus):
    X = corpus[0]
    est = LatentDirichletAllocation(n_components=K, doc_topic_prior=ALPHA, topic_word_prior=BETA,
                                    max_iter=150, random_state=0)
    return est, est.fit_transform(X)


def matched_topics(ours: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Our topic for each true topic, by the best one-to-one cosine matching."""
    a = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    b = truth / np.linalg.norm(truth, axis=1, keepdims=True)
    rows, cols = linear_sum_assignment(-(b @ a.T))
    return cols[np.argsort(rows)]


def test_log_likelihood_matches_the_lda_package(corpus, fitted):
    lda = pytest.importorskip("lda")
    X = corpus[0]
    est, _ = fitted
    ref = lda.LDA(n_topics=K, n_iter=150, alpha=ALPHA, eta=BETA, random_state=0)
    ref.fit(X.astype(np.int64).toarray())
    tokens = X.sum()
    ours, theirs = est.log_likelihood_ / tokens, ref.loglikelihood() / tokens
    assert ours == pytest.approx(theirs, rel=0.01)
    assert est.n_iter_ == 150
    np.testing.assert_allclose(est.components_.sum(), tokens + K * V * BETA)


def test_recovers_the_true_topics(corpus, fitted):
    _, _, phi, _ = corpus
    est, _ = fitted
    pick = matched_topics(est.components_, phi)
    topic_word = est.components_ / est.components_.sum(axis=1, keepdims=True)
    cosine = [phi[k] @ topic_word[pick[k]] / np.linalg.norm(phi[k]) / np.linalg.norm(topic_word[pick[k]])
              for k in range(K)]
    assert min(cosine) > 0.99


def test_fold_in_recovers_held_out_mixtures(corpus, fitted):
    X, held_out, phi, theta = corpus
    est, train_theta = fitted
    np.testing.assert_allclose(train_theta.sum(axis=1), 1.0)
    assert np.mean(np.abs(est.transform(X) - train_theta)) < 0.02  # fold-in ~ the chain
    pick = matched_topics(est.components_, phi)
    folded = est.transform(held_out)
    np.testing.assert_allclose(folded.sum(axis=1), 1.0)
    assert np.mean(np.abs(folded[:, pick] - theta)) < 0.04
    np.testing.assert_allclose(est.transform(held_out.toarray()), folded)  # dense = sparse


def test_bad_input(corpus, fitted):
    X = corpus[0]
    est, _ = fitted
    with pytest.raises(NotFittedError):
        LatentDirichletAllocation().transform(X)
    with pytest.raises(ValueError, match="Negative"):
        LatentDirichletAllocation().fit(-X)
    with pytest.raises(ValueError, match="whole-number"):
        LatentDirichletAllocation().fit(X * 0.5)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :10])
    with pytest.raises(ValueError, match="no tokens"):
        LatentDirichletAllocation().fit(sp.csr_matrix((3, 4)))
