"""LDA: topic recovery on a real 2-worker cluster, count consistency after every
sub-iteration, exactness under redone rounds and moved fragments, the ``lda``
package's log-likelihood, and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from smpframe import Fragment, LocalCluster, WorkerContext, run_local
from smpframe.api import PerFragment, rows_context
from smpframe.apps import lda_kernels as lk
from smpframe.apps.lda import LDA, balance_word_blocks, expand_tokens
from smpframe.data.synthetic_corpus import make_corpus
from smpframe.data.text import Corpus

SAFE = dict(time_limit=25.0)  # no run waits forever, whatever happens to the workers


@pytest.fixture(scope="module")
def small():
    """500 documents over 300 words from 5 known topics (~40,000 tokens)."""
    return make_corpus(n_docs=500, n_words=300, n_topics=5, doc_length=80, alpha=0.1,
                       beta=0.05, seed=0)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def matched_cosines(learned: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Cosine of each true topic with the learned one Hungarian assignment pairs it with."""
    sim = cosine(learned, truth)
    rows, cols = linear_sum_assignment(-sim)
    return sim[rows, cols]


# ---- an in-process driver: the engine's calls, in its order, with the faults it handles ----

class Driver:
    """The SMP round loop without processes: schedule, push, pull, then sync every held
    fragment; ``redo`` pushes each task twice (a redispatched round), ``move`` rebuilds
    fragments from a snapshot on a fresh worker between a round's push and its commit."""

    def __init__(self, program: LDA, corpus, n_fragments: int = 3, seed: int = 0) -> None:
        self.program = program
        program.check_params()
        self.ds = program.load_data(corpus)
        self.ctx = rows_context(program, self.ds, n_fragments, np.random.default_rng(seed))
        program.init(self.ctx)
        program.warm_up("scheduler", np)
        self.workers = [self._worker()]
        self.flight: list[tuple] = []  # dispatched, pushed, not committed
        for f in range(self.ctx.n_fragments):
            self._load(self.workers[0], f)

    def _worker(self) -> WorkerContext:
        wctx = WorkerContext(meta=self.ds.meta)
        self.program.init_worker(wctx)
        self.program.warm_up("worker", wctx.xp)
        return wctx

    def _load(self, wctx: WorkerContext, f: int) -> None:
        a, b = self.ctx.bounds[f]
        fragment = Fragment(f, a, b)
        fragment.state = self.program.load(wctx, fragment, self.ds.fragment(a, b),
                                           self.program.snapshot(self.ctx, f))
        wctx.fragments[f] = fragment

    def holder(self, f: int) -> WorkerContext:
        return next(w for w in self.workers if f in w.fragments)

    def _push(self, f: int, block: dict) -> dict:
        wctx = self.holder(f)
        partial = self.program.push(wctx, wctx.fragments[f], block)
        self.program.check_partial(self.ctx, block, f, partial)  # as the scheduler does
        return partial

    def round(self, redo: bool = False, move: tuple[int, ...] = (),
              move_after: tuple[int, ...] = ()) -> bool:
        """Dispatch (and push) rounds up to the program's pipeline depth, as the runtime
        does, then commit the oldest one."""
        while len(self.flight) <= self.program.pipeline_depth:
            block = self.program.schedule(self.ctx)
            if block is None:
                break
            self.ctx.inflight.append(block)  # dispatched
            tasks = dict(block) if isinstance(block, PerFragment) else \
                dict.fromkeys(range(self.ctx.n_fragments), block)  # a broadcast block
            partials = {f: self._push(f, task) for f, task in tasks.items()}
            if redo:
                partials = {f: self._push(f, task) for f, task in tasks.items()}
            self.flight.append((block, partials))
        if not self.flight:
            return False
        block, partials = self.flight.pop(0)
        for f in move:  # accepted partial, then the fragment moves before the commit
            self.holder(f).fragments.pop(f)
            fresh = self._worker()
            self._load(fresh, f)
            self.workers.append(fresh)
        self.ctx.inflight.pop(0)  # committed
        update = self.program.pull(self.ctx, block, partials)
        self.ctx.round += 1
        if update:
            for wctx in self.workers:
                self.program.sync_worker(wctx, update)
                for fragment in list(wctx.fragments.values()):
                    self.program.sync(wctx, fragment, update)
        for f in move_after:  # the fragment moves between rounds (its worker lost, say)
            self.holder(f).fragments.pop(f)
            fresh = self._worker()
            self._load(fresh, f)
            self.workers.append(fresh)
        if self.ctx.stop_requested:
            self.flight.clear()
        return True

    def run(self, **fault) -> tuple[dict, dict]:
        while not self.ctx.stop_requested and self.round(**fault):
            pass
        return self.program.result(self.ctx)

    def states(self) -> list[dict]:
        return [self.holder(f).fragments[f].state for f in range(self.ctx.n_fragments)]

    def assert_consistent(self) -> None:
        """Model counts are the sum of the fragments' counts of their topics; every
        fragment's ndk agrees with its topics and documents."""
        c, m = self.ctx.cache, self.ctx.model
        K = int(self.program.params["topics"])
        V = m["nwk"].shape[0]
        assert m["nwk"].sum() == c["n_tokens"]
        assert (m["nwk"] >= 0).all()
        np.testing.assert_array_equal(m["nk"], m["nwk"].sum(axis=0))
        nwk = sum(lk.word_topic_counts(st["words"], st["z"], V, K) for st in self.states())
        np.testing.assert_array_equal(m["nwk"], nwk)
        for f, st in enumerate(self.states()):
            a, b = self.ctx.bounds[f]
            np.testing.assert_array_equal(st["ndk"], lk.doc_topic_counts(st["doc"], st["z"], b - a, K))
            np.testing.assert_array_equal(st["ndk"].sum(axis=1), st["doc_lengths"])
            assert not st["pending"] and not st["fresh"]

    def log_likelihood(self) -> float:
        """The lda package's formula on the fragments' own topics, per token."""
        m, K = self.ctx.model, int(self.program.params["topics"])
        p = self.program.params
        V = m["nwk"].shape[0]
        nwk = sum(lk.word_topic_counts(st["words"], st["z"], V, K) for st in self.states())
        ll = lk.log_likelihood(nwk, nwk.sum(axis=0).astype(np.int64),
                               [st["ndk"] for st in self.states()],
                               [st["doc_lengths"] for st in self.states()], p["alpha"], p["beta"])
        return ll / self.ctx.cache["n_tokens"]


# ---- a real cluster ---------------------------------------------------------------------

def test_cluster_recovers_known_topics_with_counts_checked_every_round(small):
    corpus, phi, _ = small
    words_before = corpus.words.copy()
    program = LDA(topics=5, alpha=0.1, beta=0.05, iterations=40, ll_every=5, check_counts=True)
    result = run_local(program, data=corpus, workers=2, quiet=True, fragments=8, **SAFE)
    s, m = result.summary, result.model
    assert s["iterations"] == 40 and s["converged"]
    assert s["fragments"] == 8 and s["blocks"] == 16 and s["rounds"] == 40 * 16 + 1  # + the count
    assert s["tokens"] == corpus.words.size and s["topics"] == 5
    assert matched_cosines(m["topic_word"], phi).min() >= 0.9
    np.testing.assert_allclose(m["topic_word"].sum(axis=1), 1.0)
    assert m["nwk"].shape == (300, 5) and m["ndk"].shape == (500, 5)
    np.testing.assert_array_equal(m["ndk"].sum(axis=1), np.diff(corpus.doc_ptr))
    np.testing.assert_array_equal(m["nwk"].sum(axis=0), m["nk"])
    assert len(s["top_words"]) == 5 and all(len(t) == 10 for t in s["top_words"])
    history = dict(s["ll_history"])
    assert sorted(history) == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    assert history[40] == pytest.approx(s["ll_per_token"], rel=1e-12)  # workers' part + ours
    assert history[40] > history[0] + 1.0
    assert s["tokens_per_second"] > 0
    np.testing.assert_array_equal(corpus.words, words_before)  # the caller's data is untouched
    # the chain depends only on the seed and the fragments, not on processes or timing
    # (the count check keeps one round in flight, so the driver checks counts too)
    _, same = Driver(LDA(topics=5, alpha=0.1, beta=0.05, iterations=40, check_counts=True), corpus,
                     n_fragments=8).run()
    np.testing.assert_array_equal(m["nwk"], same["nwk"])
    np.testing.assert_array_equal(m["ndk"], same["ndk"])


def final_lls(corpus, n_fragments: int, seeds: range, **params) -> np.ndarray:
    """Final ll/token of undisturbed chains, one per seed (the run-to-run spread)."""
    return np.array([Driver(LDA(**params), corpus, n_fragments=n_fragments, seed=seed).run()[0]
                     ["ll_per_token"] for seed in seeds])


def within_spread(value: float, finals: np.ndarray) -> bool:
    spread = finals.max() - finals.min()
    return finals.min() - spread <= value <= finals.max() + spread


def test_worker_killed_mid_run_counts_stay_exact(small):
    """SIGKILL one of three workers mid-iteration: its fragments are rebuilt elsewhere from
    the scheduler's topics and the round is redone; every commit passes the count check.
    Unless the lost worker's partial was accepted before it died (its new owners are then
    a round behind, and a count round follows), the chain is exactly the one an
    undisturbed run draws; either way the final log-likelihood is within the run-to-run
    spread of undisturbed chains."""
    corpus, phi, _ = small
    params = dict(topics=5, alpha=0.1, beta=0.05, iterations=30, ll_every=10)
    with LocalCluster(LDA(**params, check_counts=True), corpus, timeout=60.0, workers=3,
                      heartbeat_interval=0.25, scheduler_timeout=10.0, slowdowns=[2.0, 2.0, 2.0],
                      heartbeat_timeout=1.5, fragments=12, **SAFE) as c:
        assert c.wait_for_round(2 * 12 + 5), "run ended early"  # mid-way through iteration 3
        c.procs[1].kill()
        result = c.wait()
    s, m = result.summary, result.model
    assert s["iterations"] == 30 and s["converged"]
    assert any(e["event"] == "worker_lost" for e in result.events)
    assert matched_cosines(m["topic_word"], phi).min() >= 0.9
    np.testing.assert_array_equal(m["ndk"].sum(axis=1), np.diff(corpus.doc_ptr))
    np.testing.assert_array_equal(m["nwk"].sum(axis=0), m["nk"])
    if s["rounds"] == 30 * 12 + 1:  # no recount: the failure left no trace in the chain
        _, same = Driver(LDA(**params), corpus, n_fragments=12).run()
        np.testing.assert_array_equal(m["nwk"], same["nwk"])
        np.testing.assert_array_equal(m["ndk"], same["ndk"])
    assert within_spread(s["ll_per_token"], final_lls(corpus, 12, range(4), **params))


def test_cluster_dispatches_the_next_round_while_one_samples(small):
    """Default blocks (2 per fragment): round s + 1 goes out when round s - 1 commits, with
    the totals committed by then, whatever the timing: the same chain as the in-process
    driver dispatching one round ahead, and not the unpipelined one."""
    corpus = small[0]
    params = dict(topics=5, alpha=0.1, beta=0.05, iterations=8)
    result = run_local(LDA(**params), data=corpus, workers=2, quiet=True, **SAFE)
    assert result.summary["blocks"] == 4 and result.summary["rounds"] == 8 * 4 + 1
    _, ahead = Driver(LDA(**params), corpus, n_fragments=2).run()
    np.testing.assert_array_equal(result.model["nwk"], ahead["nwk"])
    _, unpipelined = Driver(LDA(**params, check_counts=True), corpus, n_fragments=2).run()
    assert not np.array_equal(result.model["nwk"], unpipelined["nwk"])


@pytest.mark.parametrize("cut", [3, 6])
def test_resume_continues_the_identical_chain(small, tmp_path, cut):
    """A checkpoint holds the topics, each block's rows in the sampler's order and the
    totals the next round starts from: a resumed run ends exactly where an uninterrupted
    one does (cut with a round in flight or not)."""
    corpus = small[0]
    make = lambda: LDA(topics=5, alpha=0.1, beta=0.05, iterations=4)  # noqa: E731
    whole = run_local(make(), data=corpus, workers=2, quiet=True, **SAFE)
    run_local(make(), data=corpus, workers=2, quiet=True, output=str(tmp_path / "a"),
              max_rounds=cut, checkpoint_every="1", **SAFE)
    resumed = run_local(make(), data=corpus, workers=2, quiet=True, output=str(tmp_path / "b"),
                        resume=str(tmp_path / "a"), **SAFE)
    assert resumed.summary["rounds"] == whole.summary["rounds"] == 4 * 4 + 1
    np.testing.assert_array_equal(resumed.model["nwk"], whole.model["nwk"])
    np.testing.assert_array_equal(resumed.model["ndk"], whole.model["ndk"])


def test_resume_with_other_fragments_draws_topics_from_the_model(small, tmp_path):
    """Resumed on three workers from a two-worker checkpoint: the saved topics do not fit the
    new fragments, so they are drawn from the model's counts and recounted; the run ends
    consistent, near where an uninterrupted run ends."""
    corpus = small[0]
    make = lambda: LDA(topics=5, alpha=0.1, beta=0.05, iterations=12)  # noqa: E731
    run_local(make(), data=corpus, workers=2, quiet=True, output=str(tmp_path / "a"),
              max_rounds=4 * 6, checkpoint_every="1", **SAFE)
    resumed = run_local(make(), data=corpus, workers=3, quiet=True, output=str(tmp_path / "b"),
                        resume=str(tmp_path / "a"), **SAFE)
    s, m = resumed.summary, resumed.model
    assert s["fragments"] == 3 and s["blocks"] == 6 and s["iterations"] == 12
    np.testing.assert_array_equal(m["nwk"].sum(axis=0), m["nk"])
    np.testing.assert_array_equal(m["ndk"].sum(axis=1), np.diff(corpus.doc_ptr))
    np.testing.assert_array_equal(m["nwk"].sum(axis=1), np.bincount(corpus.words, minlength=300))
    history = dict(s["ll_history"])
    assert s["ll_per_token"] > history[0] + 1.0


# ---- count consistency and exactness, in process ----------------------------------------

def test_counts_consistent_after_every_sub_iteration(small):
    driver = Driver(LDA(topics=5, iterations=4, check_counts=True), small[0], n_fragments=3)
    rounds = 0
    while driver.round():
        rounds += 1
        driver.assert_consistent()
    assert rounds == 4 * 6 + 1  # the first round counts the initial topics


def test_redone_rounds_give_the_same_chain(small):
    corpus = small[0]
    clean = Driver(LDA(topics=5, iterations=3), corpus, n_fragments=3)
    clean.run()
    faulty = Driver(LDA(topics=5, iterations=3), corpus, n_fragments=3)  # pipelined, as clean
    step = 0
    while faulty.round(redo=step % 2 == 1):
        step += 1
    faulty.assert_consistent()
    np.testing.assert_array_equal(faulty.ctx.model["nwk"], clean.ctx.model["nwk"])
    for a, b in zip(faulty.states(), clean.states()):
        np.testing.assert_array_equal(a["z"], b["z"])


def test_fragments_moved_between_rounds_give_the_same_chain(small):
    """A fragment rebuilt elsewhere between rounds gets its committed topics back from
    the scheduler's model: no recount, and the chain an undisturbed run draws."""
    corpus = small[0]
    clean = Driver(LDA(topics=5, iterations=3, check_counts=True), corpus, n_fragments=3)
    clean.run()
    moved = Driver(LDA(topics=5, iterations=3, check_counts=True), corpus, n_fragments=3)
    faults = [{}, {"move_after": (1,)}, {"redo": True, "move_after": (0, 2)}, {}]
    step = 0
    while moved.round(**faults[min(step, len(faults) - 1)]):
        step += 1
        moved.assert_consistent()
    assert moved.ctx.round == clean.ctx.round == 3 * 6 + 1
    np.testing.assert_array_equal(moved.ctx.model["nwk"], clean.ctx.model["nwk"])
    np.testing.assert_array_equal(moved.ctx.model["z"], clean.ctx.model["z"])


def test_fragments_moved_before_their_commit_are_recounted(small):
    """A fragment rebuilt elsewhere after its push was accepted and before the commit is a
    round behind the model: its next push says so without sampling, a count round makes
    the model the exact counts of every fragment's topics again, and sampling goes on."""
    corpus = small[0]
    driver = Driver(LDA(topics=5, iterations=4, check_counts=True), corpus, n_fragments=3)
    faults = [{}, {"move": (1,)}, {}, {}, {"redo": True, "move": (0, 2)}, {}, {}]
    step = 0
    while driver.round(**faults[min(step, len(faults) - 1)]):
        step += 1
    driver.assert_consistent()
    assert driver.ctx.round == 4 * 6 + 1 + 2  # the first count, and one after each move
    history = dict(driver.ctx.state["ll_history"])
    assert history[4] > history[0] + 0.5
    assert driver.program.result(driver.ctx)[0]["ll_per_token"] == pytest.approx(
        driver.log_likelihood())


def test_topics_laid_out_for_other_fragments_are_drawn_from_the_model(small):
    """With no topics in the fragment's layout (a resume with other fragments), its new
    owner draws them from the model's counts: a start near the chain, not a random one."""
    corpus = small[0]
    driver = Driver(LDA(topics=5, iterations=10), corpus, n_fragments=2)
    driver.run()
    learned = driver.log_likelihood()
    driver.ctx.state["z_layout"] = []  # as if saved for another layout
    for f in range(2):
        driver.holder(f).fragments.pop(f)
        driver._load(driver.workers[0], f)
    assert all(st["fresh"] for st in driver.states())
    driver.ctx.state["counted"] = False
    driver.round()  # a count round
    driver.assert_consistent()
    start = dict(driver.ctx.state["ll_history"])[0]
    assert driver.log_likelihood() > start + 0.5 * (learned - start)


def test_blocks_param_and_word_balance(small):
    corpus = small[0]
    driver = Driver(LDA(topics=4, iterations=2, blocks=5, check_counts=True), corpus, n_fragments=2)
    _, model = driver.run()
    assert driver.ctx.round == 2 * 5 + 1
    driver.assert_consistent()
    freq = np.bincount(corpus.words, minlength=300).astype(np.int64)
    loads = np.bincount(balance_word_blocks(freq, 5), weights=freq, minlength=5)
    assert loads.max() - loads.min() <= freq.max()  # LPT: within one word of balanced
    with pytest.raises(ValueError, match="blocks"):
        Driver(LDA(topics=4, blocks=2), corpus, n_fragments=3)


def test_ll_per_token_close_to_lda_package(small):
    lda = pytest.importorskip("lda")
    corpus = small[0]
    summary, _ = Driver(LDA(topics=5, alpha=0.1, beta=0.05, iterations=60), corpus,
                        n_fragments=3).run()
    X = LDA().load_data(corpus).rows["X"]
    reference = lda.LDA(n_topics=5, n_iter=60, alpha=0.1, eta=0.05, random_state=1,
                        refresh=1000).fit(X)
    ref = reference.loglikelihood() / corpus.words.size
    assert summary["ll_per_token"] == pytest.approx(ref, rel=0.02)
    # and the reported figure is the lda package's formula on the fragments' own topics
    driver = Driver(LDA(topics=5, alpha=0.1, beta=0.05, iterations=2), corpus, n_fragments=2)
    assert driver.run()[0]["ll_per_token"] == pytest.approx(driver.log_likelihood(), rel=1e-12)
    zero = Driver(LDA(topics=5, alpha=0.1, beta=0.05, iterations=0), corpus, n_fragments=2)
    assert zero.run()[0]["ll_per_token"] == pytest.approx(zero.log_likelihood(), rel=1e-12)


def test_sparse_kernel_matches_dense_kernel():
    """sample_block_sparse: same chain as sample_block on rows listed in topic order, rows
    no token touches copied, its input rows left as they were."""
    rng = np.random.default_rng(4)
    n, V, K, D = 3000, 40, 7, 30
    words = rng.integers(0, V - 5, n).astype(np.int32)  # the last 5 words never occur
    doc = np.sort(rng.integers(0, D, n)).astype(np.int32)
    z0 = rng.integers(0, K, n).astype(np.int32)
    ndk0, nwk0, nk0 = lk.init_counts(words, doc, z0, D, V, K)
    nwk0[V - 5:] = rng.integers(0, 3, (5, K))  # rows of other fragments' tokens
    nk0 = nwk0.sum(axis=0).astype(np.int64)
    ident = np.arange(V, dtype=np.int32)
    positions = np.arange(n, dtype=np.int64)
    dense = [z0.copy(), ndk0.copy(), nwk0.copy(), nk0.copy()]
    changed = lk.sample_block(positions, words, doc, dense[0], dense[1], dense[2], ident,
                              dense[3], 0.2, 0.05, V * 0.05, 11)
    lengths = np.count_nonzero(nwk0, axis=1).astype(np.int32)
    rows, topics = np.nonzero(nwk0)
    counts = nwk0[rows, topics].astype(np.int32)
    inputs = lengths.copy(), topics.astype(np.int32), counts.copy()
    z, ndk, nk = z0.copy(), ndk0.copy(), nk0.copy()
    changed_sparse, new_len, new_top, new_cnt = lk.sample_block_sparse(
        positions, words, doc, z, ndk, *inputs, ident, nk, 0.2, 0.05, V * 0.05, 11)
    assert changed_sparse == changed > 0
    np.testing.assert_array_equal(z, dense[0])
    np.testing.assert_array_equal(ndk, dense[1])
    np.testing.assert_array_equal(nk, dense[3])
    rebuilt = np.zeros_like(nwk0)
    rebuilt[np.repeat(np.arange(V), new_len), new_top] = new_cnt
    np.testing.assert_array_equal(rebuilt, dense[2])
    assert (new_cnt > 0).all()
    for a, b in zip(inputs, (lengths, topics, counts)):
        np.testing.assert_array_equal(a, b)


# ---- the data-parallel baseline (--schedule data-parallel) --------------------------------

def test_data_parallel_merges_exact_counts_and_redone_rounds_leave_its_chain_alone(small):
    """One round per iteration; after every merge the counts are the counts of the
    fragments' topics, redone rounds draw the same chain, and a moved fragment is
    recounted as in the rotation."""
    corpus = small[0]
    clean = Driver(LDA(topics=5, iterations=3, policy="data-parallel"), corpus, n_fragments=3)
    clean.run()
    assert clean.ctx.round == 3 + 1
    faulty = Driver(LDA(topics=5, iterations=3, policy="data-parallel", check_counts=True), corpus,
                    n_fragments=3)
    while faulty.round(redo=True):
        faulty.assert_consistent()
    np.testing.assert_array_equal(faulty.ctx.model["nwk"], clean.ctx.model["nwk"])
    moved = Driver(LDA(topics=5, iterations=3, policy="data-parallel", check_counts=True), corpus,
                   n_fragments=3)
    step = 0
    while moved.round(**({"move": (1,)} if step == 1 else {})):
        step += 1
    moved.assert_consistent()
    assert moved.ctx.round == 1 + 3 + 1  # iteration 2 without fragment 1, then a count


def test_data_parallel_reaches_the_rotation_log_likelihood_within_its_spread(small):
    """Final ll/token of 5 chains each: the data-parallel median lies within the rotation's
    run-to-run range (max - min over its seeds) of that range."""
    corpus = small[0]
    finals = {policy: [Driver(LDA(topics=5, alpha=0.1, beta=0.05, iterations=60, ll_every=60,
                                  policy=policy), corpus, n_fragments=4, seed=seed).run()[0]["ll_per_token"]
                       for seed in range(5)]
              for policy in ("rotation", "data-parallel")}
    rotation = np.array(finals["rotation"])
    spread = rotation.max() - rotation.min()
    assert 0 < spread < 0.05
    assert rotation.min() - spread <= np.median(finals["data-parallel"]) <= rotation.max() + spread


def test_cluster_data_parallel_recovers_known_topics(small):
    corpus, phi, _ = small
    program = LDA(topics=5, alpha=0.1, beta=0.05, iterations=30, ll_every=10, check_counts=True,
                  policy="data-parallel")
    result = run_local(program, data=corpus, workers=2, quiet=True, fragments=4, **SAFE)
    s, m = result.summary, result.model
    assert s["converged"] and s["iterations"] == 30 and s["rounds"] == 31 and s["blocks"] == 1
    assert matched_cosines(m["topic_word"], phi).min() >= 0.9
    assert dict(s["ll_history"])[30] == pytest.approx(s["ll_per_token"], rel=1e-12)
    _, same = Driver(LDA(topics=5, alpha=0.1, beta=0.05, iterations=30, policy="data-parallel"),
                     corpus, n_fragments=4).run()
    np.testing.assert_array_equal(m["nwk"], same["nwk"])


def test_schedule_option_and_its_checks():
    from smpframe.errors import InputError
    from smpframe.params import program_options
    option = next(o for o in program_options(LDA) if o.name == "policy")
    assert option.flag == "--schedule" and option.choices == ("rotation", "data-parallel")
    assert option.default == "rotation"
    with pytest.raises(InputError, match="--schedule"):
        LDA(policy="hogwild").check_params()
    with pytest.raises(InputError, match="--blocks"):
        LDA(policy="data-parallel", blocks=4).check_params()


def test_make_corpus_is_deterministic_and_well_formed():
    corpus, phi, theta = make_corpus(n_docs=50, n_words=40, n_topics=3, doc_length=20, seed=7)
    again = make_corpus(n_docs=50, n_words=40, n_topics=3, doc_length=20, seed=7)[0]
    np.testing.assert_array_equal(corpus.words, again.words)
    assert phi.shape == (3, 40) and theta.shape == (50, 3)
    np.testing.assert_allclose(phi.sum(axis=1), 1.0)
    np.testing.assert_allclose(theta.sum(axis=1), 1.0)
    assert corpus.doc_ptr[0] == 0 and corpus.doc_ptr[-1] == corpus.words.size
    assert (np.diff(corpus.doc_ptr) >= 1).all() and len(corpus.vocab) == 40
    assert 0 <= corpus.words.min() and corpus.words.max() < 40


def test_expand_tokens_keeps_documents_and_counts():
    corpus = Corpus(np.array([0, 3, 3, 5]), np.array([2, 0, 2, 1, 1], np.int32), ["a", "b", "c"])
    X = LDA().load_data(corpus).rows["X"]
    doc_ptr, words, doc = expand_tokens(X)
    np.testing.assert_array_equal(doc_ptr, [0, 3, 3, 5])
    np.testing.assert_array_equal(words, [0, 2, 2, 1, 1])  # word order inside a document
    np.testing.assert_array_equal(doc, [0, 0, 0, 2, 2])


def test_bad_params_and_data_are_input_errors(small):
    from smpframe.errors import InputError
    with pytest.raises(InputError, match="topics"):
        LDA(topics=0).check_params()
    with pytest.raises(InputError, match="alpha"):
        LDA(alpha=0).check_params()
    with pytest.raises(InputError, match="no tokens"):
        LDA().load_data(Corpus(np.array([0, 0]), np.zeros(0, np.int32), ["a"]))


# ---- the CLI ------------------------------------------------------------------------------

def _cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smpframe.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_cli_bad_docword_exits_2_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad_docword.txt"
    bad.write_text("2\n3\n3\n1 1 2\n1 x 1\n2 3 1\n")
    proc = _cli("run", "lda", "--data", str(bad), "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:5" in lines[0], proc.stderr


def test_uci_docword_read_by_the_workers(small, tmp_path):
    """A UCI docword file (with an empty document and a vocabulary beside it) read by the
    two workers, split by documents: the run sees every token and document, names topics'
    words from the vocabulary, and its ndk rows are the documents' lengths."""
    corpus = small[0]
    lines = []
    for d in range(corpus.n_docs):
        if d == 7:
            continue  # an empty document
        ids, counts = np.unique(corpus.words[corpus.doc_ptr[d]:corpus.doc_ptr[d + 1]],
                                return_counts=True)
        lines += [f"{d + 1} {w + 1} {c}" for w, c in zip(ids, counts)]
    path = tmp_path / "docword.small.txt"
    path.write_text(f"{corpus.n_docs}\n300\n{len(lines)}\n" + "\n".join(lines) + "\n")
    (tmp_path / "vocab.small.txt").write_text("\n".join(corpus.vocab) + "\n")
    result = run_local(LDA(topics=5, alpha=0.1, beta=0.05, iterations=5), data=str(path),
                       workers=2, quiet=True, **SAFE)
    s = result.summary
    lengths = np.diff(corpus.doc_ptr)
    lengths[7] = 0
    assert s["read_on"] == "workers" and s["fragments"] == 2 and s["iterations"] == 5
    assert s["tokens"] == lengths.sum() and s["documents"] == corpus.n_docs
    assert all(w in corpus.vocab for topic in s["top_words"] for w in topic)
    np.testing.assert_array_equal(result.model["ndk"].sum(axis=1), lengths)


def test_cli_small_run_writes_results(tmp_path):
    data = tmp_path / "corpus.ldac"
    corpus, _, _ = make_corpus(n_docs=1000, n_words=60, n_topics=3, doc_length=30, seed=1)
    with open(data, "w") as fh:
        for d in range(corpus.n_docs):
            ids, counts = np.unique(corpus.words[corpus.doc_ptr[d]:corpus.doc_ptr[d + 1]],
                                    return_counts=True)
            fh.write(f"{len(ids)} " + " ".join(f"{i}:{c}" for i, c in zip(ids, counts)) + "\n")
    (tmp_path / "vocab.txt").write_text("\n".join(corpus.vocab) + "\n")
    out = tmp_path / "out"
    proc = _cli("run", "lda", "--data", str(data), "--topics", "3", "--iterations", "5",
                "--output", str(out), "--quiet", "--time-limit", "25")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["iterations"] == 5 and result["topics"] == 3
    assert result["tokens"] == corpus.words.size and np.isfinite(result["ll_per_token"])
    assert result["fragments"] == 2  # LDA's default: one fragment per worker
    with np.load(out / "model.npz") as npz:
        assert npz["nwk"].shape == (60, 3) and npz["topic_word"].shape == (3, 60)
    lines = (out / "topics.txt").read_text().splitlines()  # LDA.extra_outputs
    assert len(lines) == 3 and lines[0].startswith("topic 0")
    assert all(word in corpus.vocab for word in lines[0].split(": ", 1)[1].split())
