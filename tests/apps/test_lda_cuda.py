"""The LDA GPU sampler (numba.cuda): checked without a GPU on numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, set in a child process before numba loads) against a plain
reference of the same schedule and random numbers, and against the exact conditional;
on a real GPU (``gpu`` mark) against the same reference."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from smpframe.apps import lda_kernels as lk
from smpframe.arrays import gpu_available


def problem(seed: int = 0, n: int = 160, V: int = 12, K: int = 4, D: int = 9):
    """A fragment's block: every word in it (rows = words), counts of random topics."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, V, n).astype(np.int32)
    doc = np.sort(rng.integers(0, D, n)).astype(np.int32)
    z = rng.integers(0, K, n).astype(np.int32)
    ndk, nwk, nk = lk.init_counts(words, doc, z, D, V, K)
    lengths = np.count_nonzero(nwk, axis=1).astype(np.int32)
    r, k = np.nonzero(nwk)
    return dict(token_positions=np.arange(n, dtype=np.int64), words=words, doc_of_token=doc,
                z=z, ndk=ndk, row_len=lengths, row_topic=k.astype(np.int32),
                row_count=nwk[r, k].astype(np.int32), word_row=np.arange(V, dtype=np.int32),
                nk=nk, alpha=0.3, beta=0.1, beta_sum=0.1 * V, seed=seed + 5)


def reference(p: dict, groups: int):
    """The GPU sampler's chain, one thread after another in plain Python."""
    z, ndk, nk = p["z"].copy(), p["ndk"].copy(), p["nk"].astype(np.int64).copy()
    V, K = p["row_len"].size, nk.size
    nwk = np.zeros((V, K), np.int64)
    nwk[np.repeat(np.arange(V), p["row_len"]), p["row_topic"]] = p["row_count"]
    rows, doc = p["word_row"][p["words"]], p["doc_of_token"]
    order, cell_ptr = lk.cuda_cells(rows, doc, groups)
    seeds = lk.cuda_seeds(p["seed"], groups)
    mask = (1 << 64) - 1
    for t in range(groups):
        local = np.repeat(nk[None, :], groups, axis=0)
        for g in range(groups):
            c = g * groups + (g + t) % groups
            x = int(seeds[t, g])
            for j in range(cell_ptr[c], cell_ptr[c + 1]):
                i = order[j]
                d, r, old = doc[i], rows[i], z[i]
                ndk[d, old] -= 1
                nwk[r, old] -= 1
                local[g, old] -= 1
                cdf = np.cumsum([(ndk[d, k] + p["alpha"]) * (nwk[r, k] + p["beta"])
                                 / (local[g, k] + p["beta_sum"]) for k in range(K)])
                x ^= x >> 12
                x ^= (x << 25) & mask
                x ^= x >> 27
                u = (x >> 11) * (1.0 / 9007199254740992.0) * cdf[-1]
                new = int(np.argmax(u < cdf)) if (u < cdf).any() else K - 1
                ndk[d, new] += 1
                nwk[r, new] += 1
                local[g, new] += 1
                z[i] = new
        nk = nk + (local - nk[None, :]).sum(axis=0)
    return z, ndk, nk, nwk


def check_against_reference(groups: int) -> None:
    for seed in range(3):
        p = problem(seed)
        want_z, want_ndk, want_nk, want_nwk = reference(p, groups)
        changed, lengths, topics, counts = lk.sample_block_cuda(**p, groups=groups)
        np.testing.assert_array_equal(p["z"], want_z)
        np.testing.assert_array_equal(p["ndk"], want_ndk)
        np.testing.assert_array_equal(p["nk"], want_nk)
        nwk = np.zeros_like(want_nwk)
        nwk[np.repeat(np.arange(lengths.size), lengths), topics] = counts
        np.testing.assert_array_equal(nwk, want_nwk)
        np.testing.assert_array_equal(nwk, lk.word_topic_counts(p["words"], p["z"], 12, 4))
        assert changed > 0 and (counts > 0).all()


def conditional_pvalue(draws: int = 600) -> float:
    """One token resampled from a fixed state, many seeds: chi-square p-value of its topic
    against the exact conditional (n_dk + a)(n_wk + b) / (n_k + Vb) without the token."""
    from scipy.stats import chisquare
    base = problem(1, n=30)
    i, K = 7, 4
    one = dict(base, token_positions=np.array([i], np.int64))
    d, w, old = base["doc_of_token"][i], base["words"][i], base["z"][i]
    ndk, nk = base["ndk"].copy(), base["nk"].astype(float)
    nwk = lk.word_topic_counts(base["words"], base["z"], 12, K).astype(float)
    ndk[d, old] -= 1
    nwk[w, old] -= 1
    nk[old] -= 1
    p = (ndk[d] + base["alpha"]) * (nwk[w] + base["beta"]) / (nk + base["beta_sum"])
    counts = np.zeros(K)
    for seed in range(draws):
        trial = {key: (v.copy() if isinstance(v, np.ndarray) else v) for key, v in one.items()}
        trial["seed"] = seed
        lk.sample_block_cuda(**trial, groups=1)
        counts[trial["z"][i]] += 1
    return float(chisquare(counts, draws * p / p.sum()).pvalue)


SCRIPT = """
import warnings; warnings.simplefilter("ignore")
import sys; sys.path.insert(0, {root!r})
from tests.apps.test_lda_cuda import check_against_reference, conditional_pvalue
for groups in (1, 3):
    check_against_reference(groups)
from tests.apps.test_lda_cuda import gpu_worker_run
gpu_worker_run()
print("pvalue", conditional_pvalue())
"""


def gpu_worker_run() -> None:
    """The LDA app on a GPU worker context: every count checked after each round, and the
    log-likelihood climbs."""
    from smpframe.apps.lda import LDA
    from smpframe.data.synthetic_corpus import make_corpus
    from tests.apps.test_lda import Driver

    class GPUDriver(Driver):
        def _worker(self):
            wctx = super()._worker()
            wctx.device = "gpu:0"
            return wctx

    corpus = make_corpus(n_docs=30, n_words=25, n_topics=3, doc_length=12, seed=3)[0]
    driver = GPUDriver(LDA(topics=3, iterations=3, ll_every=1, check_counts=True), corpus,
                       n_fragments=2)
    driver.run()
    driver.assert_consistent()
    history = [ll for _, ll in driver.ctx.state["ll_history"]]
    assert history[-1] > history[0], history


def test_cuda_sampler_on_the_simulator_matches_its_reference_and_the_conditional():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(root=root)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pvalue = float(proc.stdout.split("pvalue")[-1])
    assert pvalue > 1e-3, pvalue


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no cupy / CUDA device")
def test_cuda_sampler_on_a_gpu_matches_its_reference():
    check_against_reference(3)
    check_against_reference(lk.CUDA_GROUPS)
