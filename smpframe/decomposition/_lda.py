"""``LatentDirichletAllocation``: scikit-learn's interface on the built-in LDA sampler."""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import digamma
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, check_non_negative

from smpframe._estimator import SMPEstimator, check_positive_float, check_positive_int
from smpframe.apps.lda import LDA
from smpframe.data.text import Corpus
from smpframe.launch.cluster import Cluster

#: fold-in (transform): at most this many updates per call, stopped when the mean
#: change of the document-topic parameters is below the tolerance (scikit-learn's values)
FOLD_IN_ITER = 100
FOLD_IN_TOL = 1e-3


def as_corpus(X: sp.csr_matrix) -> Corpus:
    """A documents x words count matrix as the token stream the LDA program reads."""
    doc_ptr = np.zeros(X.shape[0] + 1, np.int64)
    np.cumsum(np.asarray(X.sum(axis=1)).ravel().astype(np.int64), out=doc_ptr[1:])
    words = np.repeat(X.indices.astype(np.int32), X.data.astype(np.int64))
    return Corpus(doc_ptr, words, [str(w) for w in range(X.shape[1])])


class LatentDirichletAllocation(ClassNamePrefixFeaturesOutMixin, TransformerMixin, SMPEstimator):
    """LDA topic model by collapsed Gibbs sampling (:class:`smpframe.apps.lda.LDA`).

    The input is a documents x words matrix of token counts, dense or scipy sparse, as
    for scikit-learn's estimator; counts must be whole numbers (a Gibbs sampler draws
    one topic per token). scikit-learn fits by variational Bayes; this samples, so
    the results are a posterior sample, not a variational optimum.

    Parameters
    ----------
    n_components : int
        Topics.
    doc_topic_prior : float, optional
        Symmetric document-topic prior alpha (default ``1 / n_components``).
    topic_word_prior : float, optional
        Symmetric topic-word prior beta (default ``1 / n_components``).
    max_iter : int
        Gibbs sweeps over every token.
    random_state : int, RandomState or None
        Seed of the chain (the run option ``seed``).
    {cluster_parameters}

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Topic-word pseudo-counts: the sampled word-topic counts plus ``topic_word_prior_``
        (normalise a row for a topic's word distribution).
    doc_topic_prior_, topic_word_prior_ : float
        The priors used.
    log_likelihood_ : float
        Joint ``log p(w, z)`` of the final sample (the ``lda`` package's ``loglikelihood()``).
    n_iter_ : int
        Sweeps done.
    n_features_in_ : int
    """

    def __init__(self, n_components: int = 10, doc_topic_prior: float | None = None,
                 topic_word_prior: float | None = None, max_iter: int = 100,
                 random_state: Any = None, n_workers: int = 2,
                 cluster: Cluster | None = None) -> None:
        self.n_components = n_components
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.max_iter = max_iter
        self.random_state = random_state
        self.n_workers = n_workers
        self.cluster = cluster

    def fit(self, X: Any, y: Any = None) -> "LatentDirichletAllocation":
        """Sample topics for the documents (rows) of the count matrix ``X``."""
        self._fit(X)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, and return the training documents' topic distributions from the final
        sample, ``(n_dk + alpha) / (n_d + K alpha)``: the sampler's own estimate, with no
        extra pass (``transform`` on the same rows folds them in again, and differs a
        little)."""
        ndk = self._fit(X)
        theta = ndk + self.doc_topic_prior_
        return theta / theta.sum(axis=1, keepdims=True)

    def _fit(self, X: Any) -> np.ndarray:
        """Run the sampler; set the attributes; return the document-topic counts."""
        k = check_positive_int(self.n_components, "n_components")
        iterations = check_positive_int(self.max_iter, "max_iter")
        alpha = self._prior(self.doc_topic_prior, "doc_topic_prior", k)
        beta = self._prior(self.topic_word_prior, "topic_word_prior", k)
        X = self._counts(X, reset=True)
        if X.sum() == 0:
            raise ValueError("X has no tokens: every count is zero")
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        program = LDA(topics=k, alpha=alpha, beta=beta, iterations=iterations,
                      ll_every=iterations, top_words=0)
        result = self._run(program, as_corpus(X), seed=seed)
        self.doc_topic_prior_, self.topic_word_prior_ = alpha, beta
        self.components_ = np.asarray(result.model["nwk"], dtype=np.float64).T + beta
        self.log_likelihood_ = float(result.summary["log_likelihood"])
        self.n_iter_ = int(result.summary["iterations"])
        return np.asarray(result.model["ndk"], dtype=np.float64)

    @staticmethod
    def _prior(value: float | None, name: str, k: int) -> float:
        return 1.0 / k if value is None else check_positive_float(value, name)

    def _counts(self, X: Any, reset: bool) -> sp.csr_matrix:
        """``X`` checked (finite, non-negative whole numbers) as CSR."""
        X = self._validate(X, reset=reset, accept_sparse="csr", dtype=(np.float64, np.float32))
        X = sp.csr_matrix(X, dtype=np.float64)
        X.eliminate_zeros()
        check_non_negative(X, "LatentDirichletAllocation")
        if not np.array_equal(X.data, np.round(X.data)):
            raise ValueError("LatentDirichletAllocation needs whole-number counts in X")
        return X

    def transform(self, X: Any) -> np.ndarray:
        """Topic distributions of the documents in ``X`` (rows sum to 1) by fold-in.

        Mean-field updates of each document's Dirichlet parameters ``gamma`` against the
        fitted topic-word distributions ``phi`` (rows of ``components_``, normalised),
        which stay fixed: ``gamma_dk = alpha + sum_w n_dw phi_kw exp(psi(gamma_dk)) /
        sum_j phi_jw exp(psi(gamma_dj))``, all documents at once.
        """
        check_is_fitted(self)
        X = self._counts(X, reset=False)
        phi = self.components_ / self.components_.sum(axis=1, keepdims=True)
        alpha = self.doc_topic_prior_
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        lengths = np.asarray(X.sum(axis=1))
        gamma = np.repeat(alpha + lengths / phi.shape[0], phi.shape[0], axis=1)
        for _ in range(FOLD_IN_ITER):
            e = np.exp(digamma(gamma))
            norm = np.einsum("ik,ki->i", e[rows], phi[:, X.indices])
            ratio = sp.csr_matrix((X.data / norm, X.indices, X.indptr), shape=X.shape)
            new = alpha + e * np.asarray(ratio @ phi.T)
            change = float(np.mean(np.abs(new - gamma)))
            gamma = new
            if change < FOLD_IN_TOL:
                break
        return gamma / gamma.sum(axis=1, keepdims=True)

    @property
    def _n_features_out(self) -> int:
        """Output columns of :meth:`transform` (names for ``get_feature_names_out``)."""
        return self.components_.shape[0]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        return tags
