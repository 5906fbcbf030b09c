"""LDA corpora: UCI bag-of-words, LDA-C and plain text."""
from __future__ import annotations

import re

import numpy as np
import pytest

from smpframe.data.text import Corpus, load_corpus, load_ldac, load_text, load_uci_bow, tokenize
from smpframe.errors import InputError


def write(tmp_path, name: str, content: bytes | str):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def docs(c: Corpus) -> list[list[str]]:
    """Each document as its list of word strings."""
    assert c.doc_ptr.dtype == np.int64 and c.words.dtype == np.int32 and c.doc_ptr[0] == 0
    return [[c.vocab[w] for w in c.words[c.doc_ptr[d] : c.doc_ptr[d + 1]]] for d in range(c.n_docs)]


def raises_at(path, line, fragment):
    where = f"{path}:{line}: " if line else f"{path}: "
    return pytest.raises(InputError, match="^" + re.escape(where) + ".*" + re.escape(fragment))


UCI = "3\n4\n4\n1 2 2\n1 4 1\n3 1 1\n2 3 3\n"


def test_uci_without_vocab_names_words_by_id(tmp_path):
    c = load_uci_bow(write(tmp_path, "docword.kos.txt", UCI))
    assert docs(c) == [["2", "2", "4"], ["3", "3", "3"], ["1"]]
    assert c.vocab == ["1", "2", "3", "4"] and c.doc_ptr.tolist() == [0, 3, 6, 7]


@pytest.mark.parametrize("vocab_name", ["vocab.kos.txt", "vocab.txt"])
def test_uci_default_vocab(tmp_path, vocab_name):
    write(tmp_path, vocab_name, "apple\nbanana\r\ncherry\ndate\n\n")
    c = load_uci_bow(write(tmp_path, "docword.kos.txt", UCI))
    assert docs(c) == [["banana", "banana", "date"], ["cherry", "cherry", "cherry"], ["apple"]]


def test_uci_unsorted_entries_and_empty_document(tmp_path):
    c = load_uci_bow(write(tmp_path, "docword.x.txt", "3\n2\n3\n3 1 1\n1 2 1\n1 1 2\n"))
    assert docs(c) == [["2", "1", "1"], [], ["1"]]


def test_uci_explicit_vocab_size_must_match(tmp_path):
    vocab = write(tmp_path, "words.txt", "a\nb\n")
    with raises_at(vocab, None, "vocabulary has 2 words but docword.kos.txt says W=4"):
        load_uci_bow(write(tmp_path, "docword.kos.txt", UCI), vocab)


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ("3\n4\n4\n1 2 2\n1 5 1\n3 1 1\n2 3 3\n", 5, "word id 5 is out of range 1..4"),
        ("3\n4\n1\n0 1 1\n", 4, "document id 0 is out of range 1..3"),
        ("3\n4\n1\n4 1 1\n", 4, "document id 4 is out of range 1..3"),
        ("3\n4\n2\n1 1 1\n1 2 0\n", 5, "count 0 is not positive"),
        ("3\n4\n1\n1 2 -2\n", 4, "count -2 is not positive"),
        ("3\n4\n1\n1 2 1.5\n", 4, "count '1.5' is not an integer"),
        ("3\n4\n5\n1 2 2\n", 3, "header says NNZ=5 but the file has 1 entries"),
        ("3\n4\n1\n1 2\n", 4, "expected 3 fields, got 2"),
        ("3\nx\n1\n", 2, "header line 2 must be the integer W, got 'x'"),
        ("3\n4\n", 3, "header line 3 must be the integer NNZ, got ''"),
        ("3\n4", None, "header must have 3 lines"),
        ("3\n4\n0\n", None, "corpus has no tokens"),
        ("", None, "file is empty"),
    ],
)
def test_uci_errors(tmp_path, content, line, fragment):
    path = write(tmp_path, "docword.t.txt", content)
    with raises_at(path, line, fragment):
        load_uci_bow(path)


def test_ldac(tmp_path):
    c = load_ldac(write(tmp_path, "ap.dat", "2 0:1 3:2\n0\n\n1 1:1\n\n"))
    assert docs(c) == [["0", "3", "3"], [], [], ["1"]]
    assert c.vocab == ["0", "1", "2", "3"]


def test_ldac_with_vocab(tmp_path):
    write(tmp_path, "vocab.txt", "a\nb\nc\nd\n")
    c = load_ldac(write(tmp_path, "ap.dat", "2 0:1 3:2\n1 1:1\n"))
    assert docs(c) == [["a", "d", "d"], ["b"]] and c.vocab == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ("2 0:1 3:2\n1 1:0\n", 2, "count 0 is not positive"),
        ("2 0:1\n", 1, "line says 2 terms but has 1"),
        ("1 0:1 junk\n", 1, "line says 1 terms but has 2"),
        ("1 :0:1\n", 1, "expected id:count (non-negative integers), got ':0:1'"),
        ("1 0::1\n", 1, "got '0::1'"),
        ("1 0: 1\n", 1, "line says 1 terms but has 2"),
        ("1 -1:1\n", 1, "got '-1:1'"),
        ("1 1:1\nx 1:1\n", 2, "term count 'x' is not a non-negative integer"),
        ("1 99999999999:1\n", 1, "word id 99999999999 is too large"),
        ("1 5000000:1\n", None, "word ids and no vocabulary file"),
        ("1 0:1\n\u2028\n", 2, "term count '\\u2028' is not a non-negative integer"),
        ("0\n0\n", None, "corpus has no tokens"),
        ("\n \n", None, "file is empty"),
    ],
)
def test_ldac_errors(tmp_path, content, line, fragment):
    path = write(tmp_path, "c.dat", content)
    with raises_at(path, line, fragment):
        load_ldac(path)


def test_ldac_word_outside_vocab(tmp_path):
    vocab = write(tmp_path, "v.txt", "a\nb\n")
    path = write(tmp_path, "c.dat", "1 0:1\n1 2:1\n")
    with raises_at(path, 2, f"word id 2 is out of range for the 2 words of {vocab}"):
        load_ldac(path, vocab)


def test_tokenize():
    words = tokenize("The QUICK brown-fox doesn’t x 42 café_au lait!")
    assert words == ["quick", "brown", "fox", "42", "café", "au", "lait"]
    assert tokenize("The a of", frozenset()) == ["the", "of"]


def test_load_text(tmp_path):
    path = write(tmp_path, "t.txt", "The quick brown fox.\n\nA fox, a dog; and the fox!\n")
    c = load_text(path)
    assert docs(c) == [["quick", "brown", "fox"], [], ["fox", "dog", "fox"]]
    assert c.vocab == ["quick", "brown", "fox", "dog"]
    c = load_text(path, min_count=2)
    assert docs(c) == [["fox"], [], ["fox", "fox"]] and c.vocab == ["fox"]
    c = load_text(path, stopwords=False)
    assert docs(c)[2] == ["fox", "dog", "and", "the", "fox"]


def test_load_text_errors(tmp_path):
    path = write(tmp_path, "t.txt", "the and of\n")
    with raises_at(path, None, "corpus has no tokens"):
        load_text(path)
    with raises_at(tmp_path / "u.txt", None, "corpus has no tokens"):
        load_text(write(tmp_path, "u.txt", "fox\n"), min_count=2)
    with raises_at(tmp_path / "e.txt", None, "file is empty"):
        load_text(write(tmp_path, "e.txt", "\n\n"))
    with raises_at(tmp_path / "b.txt", 2, "not UTF-8 text"):
        load_text(write(tmp_path, "b.txt", b"ok\ncaf\xe9\n"))
    with pytest.raises(InputError, match="min_count must be at least 1"):
        load_text(path, min_count=0)


def test_load_corpus_guesses_format(tmp_path):
    assert load_corpus(write(tmp_path, "docword.kos.txt", UCI)).n_docs == 3
    assert docs(load_corpus(write(tmp_path, "c.dat", "\n2 0:1 1:2\n"))) == [[], ["0", "1", "1"]]
    assert docs(load_corpus(write(tmp_path, "t.txt", "2 cats: 3 dogs\n"))) == [["cats", "dogs"]]


def test_load_corpus_options(tmp_path):
    path = write(tmp_path, "t.txt", "Some words here\n")
    assert docs(load_corpus(path, "text", stopwords=False)) == [["some", "words", "here"]]
    with pytest.raises(InputError, match="only applies to uci and ldac"):
        load_corpus(path, "text", vocab=path)
    with pytest.raises(InputError, match="unknown corpus format 'xml'"):
        load_corpus(path, "xml")
    with raises_at(tmp_path / "missing.txt", None, "file not found"):
        load_corpus(tmp_path / "missing.txt")


# ---- splits: each worker reads its own part of a corpus file -------------------------------

def read_in_splits(path, fmt: str, cuts: list[int], **kw):
    """The corpus read as the workers do: byte ranges [cuts[i], cuts[i+1]), facts combined,
    each split finished under the file's layout; returns (X of every split stacked, layout)."""
    import scipy.sparse as sp

    from smpframe.data import splits
    from smpframe.data.text import corpus_splits

    split, _ = corpus_splits(path, fmt, None, True, **kw)
    parts = [{"reader": split.reader, "path": split.path, "start": a, "stop": b,
              "options": split.options} for a, b in zip(cuts[:-1], cuts[1:])]
    read = [splits.read(part) for part in parts]
    plan = splits.layout(split.reader, [facts for _, facts in read], split.path)
    done = [splits.finish(part, rows, plan)["X"] for part, (rows, _) in zip(parts, read)]
    return sp.vstack(done, format="csr"), plan


def whole_counts(corpus: Corpus) -> np.ndarray:
    from smpframe.data.text import corpus_dataset
    return corpus_dataset(corpus).rows["X"].toarray()


def every_cut(path, n: int = 3, seed: int = 0) -> list[list[int]]:
    """Random byte cuts into n splits, plus cuts at every byte for 2 splits."""
    size = path.stat().st_size
    rng = np.random.default_rng(seed)
    cuts = [[0, c, size] for c in range(size + 1)]
    cuts += [[0, *sorted(rng.integers(0, size + 1, n - 1).tolist()), size] for _ in range(50)]
    return cuts


def test_uci_splits_by_documents_cover_every_document_once(tmp_path):
    """Entries grouped by document (as UCI files are): wherever the byte cuts fall, each
    document is read by exactly one split, empty documents (2, 5 and the last two) too."""
    body = "1 2 2\n1 4 1\n3 1 1\n3 3 3\n3 4 1\n4 2 1\n6 1 5\n6 2 1\n"
    path = write(tmp_path, "docword.t.txt", f"8\n4\n{body.count(chr(10))}\n{body}")
    want = whole_counts(load_uci_bow(path))
    assert want.shape == (8, 4)
    for cuts in every_cut(path):
        X, plan = read_in_splits(path, "uci", cuts)
        assert plan["n_words"] == 4
        np.testing.assert_array_equal(X.toarray(), want, err_msg=str(cuts))


def test_uci_split_errors_name_the_file_line(tmp_path):
    path = write(tmp_path, "docword.t.txt", "3\n4\n3\n1 2 2\n2 1 1\n1 4 1\n")
    with raises_at(path, 6, "document ids decrease"):
        read_in_splits(path, "uci", [0, path.stat().st_size])
    size = path.stat().st_size
    bad = write(tmp_path, "docword.u.txt", "3\n4\n3\n1 2 2\n2 x 1\n3 4 1\n")
    for cut in range(size):
        with raises_at(bad, 5, "word id"):
            read_in_splits(bad, "uci", [0, cut, size])
    short = write(tmp_path, "docword.v.txt", "3\n4\n4\n1 2 2\n2 1 1\n3 4 1\n")
    with raises_at(short, 3, "NNZ=4"):
        read_in_splits(short, "uci", [0, 12, short.stat().st_size])


def test_ldac_splits_are_lines_with_blank_documents_kept(tmp_path):
    path = write(tmp_path, "c.dat", "2 0:1 3:2\n0\n\n1 1:1\n2 2:1 0:4\n\n\n")
    want = whole_counts(load_ldac(path))
    assert want.shape == (5, 4)  # trailing blank lines are not documents, inner ones are
    for cuts in every_cut(path):
        X, plan = read_in_splits(path, "ldac", cuts)
        np.testing.assert_array_equal(X.toarray(), want, err_msg=str(cuts))


def test_ldac_split_errors_name_the_file_line(tmp_path):
    path = write(tmp_path, "c.dat", "2 0:1 3:2\n1 1:1\n2 2:x 0:4\n")
    size = path.stat().st_size
    for cut in range(size):
        with raises_at(path, 3, "id:count"):
            read_in_splits(path, "ldac", [0, cut, size])
    write(tmp_path, "vocab.txt", "a\nb\nc\n")
    big = write(tmp_path, "d.dat", "1 0:1\n1 1:1\n1 3:1\n")
    with raises_at(big, 3, "out of range"):
        read_in_splits(big, "ldac", [0, 6, big.stat().st_size])


def test_text_splits_merge_their_vocabularies_in_file_order(tmp_path):
    text = "Apples and pears\n\nthe pears, the plums\nplums apples figs\n\n"
    path = write(tmp_path, "docs.txt", text)
    whole = load_text(path)
    want = whole_counts(whole)
    for cuts in every_cut(path):
        X, plan = read_in_splits(path, "text", cuts)
        assert plan["vocab"] == whole.vocab, cuts
        np.testing.assert_array_equal(X.toarray(), want, err_msg=str(cuts))


def test_lda_runs_on_splits_its_workers_read(tmp_path):
    """A file given to the app is read by the workers (the scheduler holds word counts and
    topics, never the documents); --read-on scheduler reads it here, the same corpus."""
    from smpframe import run_local
    from smpframe.apps.lda import LDA
    from smpframe.data.synthetic_corpus import make_corpus

    corpus = make_corpus(n_docs=800, n_words=50, n_topics=3, doc_length=20, seed=2)[0]
    lines = [" ".join(f"w{corpus.words[i]}" for i in range(corpus.doc_ptr[d], corpus.doc_ptr[d + 1]))
             for d in range(corpus.n_docs)]
    path = write(tmp_path, "docs.txt", "\n".join(lines) + "\n")
    runs = {where: run_local(LDA(topics=3, iterations=5, fmt="text"), data=str(path), workers=2,
                             quiet=True, read_on=where, time_limit=30.0)
            for where in ("workers", "scheduler")}
    for where, result in runs.items():
        s = result.summary
        assert s["read_on"] == where and s["fragments"] == 2
        assert s["tokens"] == corpus.words.size and s["documents"] == corpus.n_docs
        assert s["vocabulary"] == len(set(corpus.words.tolist()))
        assert all(w.startswith("w") for topic in s["top_words"] for w in topic)
        np.testing.assert_array_equal(result.model["ndk"].sum(axis=1), np.diff(corpus.doc_ptr))
