"""LDA: smpframe (2 workers) vs the `lda` package and tomotopy (1 and 2 workers), same corpus.

A synthetic corpus drawn from 100 known topics (``make_corpus``: ~1M tokens, 3,800
documents, 17,000-word vocabulary), K = 100, alpha = 0.1, beta = 0.01, 100 Gibbs
iterations for every method (tomotopy with ``optim_interval = 0``, so its priors
stay fixed). Each method runs in its own process, one after another, in the same
invocation, ``--repeats`` times round robin (default 2; the slow ``lda`` package
``--lda-repeats`` times, default 1); the best tokens/s of each method is reported
(all of them are in the JSON):

* tokens/s: tokens x iterations / sampling seconds (smpframe: the timed solve,
  first round dispatched to last commit, data already on the workers, with the app's
  defaults: 2 vocabulary blocks per worker, one round dispatched ahead; ``--blocks`` and
  ``--pipeline-depth`` change them; the others: ``fit``/``train`` after the corpus is built);
* ``ll_per_token``: the joint log p(w, z) / tokens of the final assignments, computed
  the same way for every method (``lda_kernels.log_likelihood``, equal to the
  ``lda`` package's ``loglikelihood()``); tomotopy's own ``ll_per_word`` is listed too;
* peak memory: VmHWM of each smpframe worker process (sampled from /proc while it
  runs), and of the process running each other method.

    python benchmarks/bench_lda.py --out bench-out/lda.json
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import bar_chart, markdown_table, parser, write_json  # noqa: E402

METHODS = ["smpframe", "lda", "tomotopy-1", "tomotopy-2"]


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def load_corpus_npz(path: str):
    from smpframe.data.text import Corpus
    with np.load(path) as npz:
        return Corpus(npz["doc_ptr"], npz["words"], [f"w{i}" for i in range(int(npz["n_words"]))])


def exact_ll(corpus, z: np.ndarray, n_topics: int, alpha: float, beta: float) -> float:
    """Joint log p(w, z) per token of assignments ``z`` (token order of ``corpus``)."""
    from smpframe.apps import lda_kernels as lk
    lengths = np.diff(corpus.doc_ptr)
    doc = np.repeat(np.arange(corpus.n_docs, dtype=np.int32), lengths)
    ndk, nwk, nk = lk.init_counts(corpus.words, doc, z.astype(np.int32), corpus.n_docs,
                                  len(corpus.vocab), n_topics)
    return lk.log_likelihood(nwk, nk, ndk, lengths, alpha, beta) / corpus.words.size


# ---- one method, in a child process ---------------------------------------------------------

def run_smpframe(corpus, a) -> dict:
    from smpframe import RunConfig
    from smpframe.apps.lda import LDA
    from smpframe.launch.local import local_devices, start_workers, stop_workers
    from smpframe.scheduler.server import SchedulerServer

    program = LDA(topics=a.topics, alpha=a.alpha, beta=a.beta, iterations=a.iterations,
                  ll_every=a.iterations, blocks=a.blocks)
    config = RunConfig(workers=a.workers, fragments=a.workers * a.fragments_per_worker, quiet=True,
                       pipeline_depth=a.pipeline_depth)
    start = time.perf_counter()
    server = SchedulerServer(program, corpus, config, local=True)
    procs = start_workers(server.address, local_devices(program, config), config)
    peaks: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:  # VmHWM only grows: the last reading before exit is the peak
        while not done.is_set():
            for proc in procs:
                mb = vm_hwm_mb(proc.pid)
                if mb is not None:
                    peaks[proc.pid] = max(peaks.get(proc.pid, 0.0), mb)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = server.run()
    finally:
        done.set()
        sampler.join()
        stop_workers(procs)
    wall = time.perf_counter() - start
    s = result.summary
    return {"tokens_per_second": s["tokens_per_second"], "seconds": s["seconds"], "wall_s": wall,
            "ll_per_token": s["ll_per_token"], "iterations": s["iterations"], "rounds": s["rounds"],
            "fragments": s["fragments"], "peak_mb_per_worker": sorted(round(v, 1) for v in peaks.values()),
            "ll_history": s["ll_history"]}


def run_lda_package(corpus, a) -> dict:
    import logging

    import lda
    import scipy.sparse as sp
    logging.getLogger("lda").setLevel(logging.WARNING)
    X = sp.csr_matrix((np.ones(corpus.words.size, np.int64), corpus.words, corpus.doc_ptr),
                      shape=(corpus.n_docs, len(corpus.vocab)))
    X.sum_duplicates()
    model = lda.LDA(n_topics=a.topics, n_iter=a.iterations, alpha=a.alpha, eta=a.beta,
                    random_state=a.seed + 1, refresh=a.iterations)
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    n = corpus.words.size
    return {"tokens_per_second": n * a.iterations / seconds, "seconds": seconds,
            "ll_per_token": float(model.loglikelihood()) / n}


def run_tomotopy(corpus, a, workers: int) -> dict:
    import tomotopy as tp
    mdl = tp.LDAModel(tw=tp.TermWeight.ONE, k=a.topics, alpha=a.alpha, eta=a.beta, seed=a.seed + 1)
    mdl.optim_interval = 0
    vocab = corpus.vocab
    for d in range(corpus.n_docs):
        mdl.add_doc([vocab[w] for w in corpus.words[corpus.doc_ptr[d]:corpus.doc_ptr[d + 1]]])
    mdl.train(0, workers=workers)  # build the model and its random initial state
    start = time.perf_counter()
    mdl.train(a.iterations, workers=workers)
    seconds = time.perf_counter() - start
    # the final assignments in our token order (tomotopy keeps each document's words in order)
    index = {w: i for i, w in enumerate(vocab)}
    used = np.array([index[w] for w in mdl.used_vocabs], dtype=np.int32)
    words = np.concatenate([used[np.asarray(doc.words)] for doc in mdl.docs])
    z = np.concatenate([np.asarray(doc.topics, dtype=np.int32) for doc in mdl.docs])
    if not np.array_equal(words, corpus.words):
        raise RuntimeError("tomotopy changed the documents (word order or vocabulary)")
    n = corpus.words.size
    return {"tokens_per_second": n * a.iterations / seconds, "seconds": seconds,
            "ll_per_token": exact_ll(corpus, z, a.topics, a.alpha, a.beta),
            "tomotopy_ll_per_word": float(mdl.ll_per_word), "workers": workers,
            "isa": tp.isa}


def child(a) -> None:
    import resource
    corpus = load_corpus_npz(a.corpus)
    if a.child == "smpframe":
        out = run_smpframe(corpus, a)
    elif a.child == "lda":
        out = run_lda_package(corpus, a)
    else:
        out = run_tomotopy(corpus, a, int(a.child.split("-")[1]))
    if a.child != "smpframe":
        out["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    print("RESULT " + json.dumps(out), flush=True)


# ---- the comparison ----------------------------------------------------------------------

def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(repeats=2)
    p.add_argument("--lda-repeats", type=int, default=1,
                   help="runs of the (slow) lda package; its speed is far from the others'")
    p.add_argument("--docs", type=int, default=3800)
    p.add_argument("--words", type=int, default=17_000)
    p.add_argument("--doc-length", type=float, default=263.0, help="mean tokens per document")
    p.add_argument("--topics", type=int, default=100)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--beta", type=float, default=0.01)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--fragments-per-worker", type=int, default=1)
    p.add_argument("--blocks", type=int, default=None, help="smpframe's vocabulary blocks "
                   "(default: the LDA app's)")
    p.add_argument("--pipeline-depth", type=int, default=0, help="smpframe's --pipeline-depth")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ", ".join(METHODS))
    p.add_argument("--child", help=argparse_hidden())
    p.add_argument("--corpus", help=argparse_hidden())
    a = p.parse_args()
    if a.child:
        child(a)
        return

    from smpframe.data.synthetic_corpus import make_corpus
    corpus, _, _ = make_corpus(a.docs, a.words, a.topics, a.doc_length, a.alpha, a.beta, a.seed)
    n = int(corpus.words.size)
    print(f"corpus: {n} tokens, {corpus.n_docs} documents, {len(corpus.vocab)} words; "
          f"K={a.topics} alpha={a.alpha} beta={a.beta} iterations={a.iterations}", file=sys.stderr)
    record = {"tokens": n, "documents": corpus.n_docs, "vocabulary": len(corpus.vocab),
              "topics": a.topics, "alpha": a.alpha, "beta": a.beta, "iterations": a.iterations,
              "smpframe_workers": a.workers, "methods": {}}
    methods = [m for m in a.methods.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "corpus.npz")
        np.savez(path, doc_ptr=corpus.doc_ptr, words=corpus.words, n_words=len(corpus.vocab))
        forwarded = [f"--{k}={getattr(a, k.replace('-', '_'))}" for k in
                     ("topics", "alpha", "beta", "iterations", "workers", "fragments-per-worker", "seed",
                      "pipeline-depth")]
        if a.blocks is not None:
            forwarded.append(f"--blocks={a.blocks}")
        runs: dict[str, list[dict]] = {name: [] for name in methods}
        for repeat in range(max(1, a.repeats)):  # round robin: load drifts hit every method
            for name in methods:
                if name == "lda" and repeat >= a.lda_repeats:
                    continue
                cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--corpus", path,
                       *forwarded]
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if proc.returncode != 0 or line is None:
                    raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
                runs[name].append(json.loads(line[len("RESULT "):]))
                print(f"{name}: {runs[name][-1]['tokens_per_second']:.3g} tokens/s, "
                      f"ll/token {runs[name][-1]['ll_per_token']:.5f}", file=sys.stderr, flush=True)
        for name in methods:
            best = dict(max(runs[name], key=lambda r: r["tokens_per_second"]))
            best["all_tokens_per_second"] = [r["tokens_per_second"] for r in runs[name]]
            record["methods"][name] = best
    rows = []
    ref = record["methods"].get("lda", {}).get("ll_per_token")
    for name, r in record["methods"].items():
        peak = r.get("peak_mb_per_worker") or r.get("peak_mb")
        rows.append([name, r["tokens_per_second"] / 1e6, r["seconds"], r["ll_per_token"],
                     None if ref is None else 100.0 * (r["ll_per_token"] - ref) / abs(ref),
                     ", ".join(f"{x:.0f}" for x in peak) if isinstance(peak, list) else peak])
    print(markdown_table(["method", "M tokens/s (best)", "sampling s", "ll/token",
                          "ll vs lda pkg (%)", "peak MB (per worker)"], rows))
    write_json(a.out, record)
    bar_chart(a.out, "LDA: sampling throughput (best run)", {row[0]: {"M tokens/s": row[1]} for row in rows},
              unit="million tokens per second")


def argparse_hidden() -> str:
    import argparse
    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
