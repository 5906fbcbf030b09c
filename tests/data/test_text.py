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
