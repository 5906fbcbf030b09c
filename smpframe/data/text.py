"""Corpora for LDA: UCI bag-of-words, Blei's LDA-C, and plain text (one document per line).

All loaders return a :class:`Corpus` (a flat token stream with document offsets).
Documents keep their input order, so output row d belongs to input document d.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from smpframe.data.textio import (
    MAX_INDEX, Table, count_per_line, parse_int_fields, quote, read_bytes, read_table, read_text, split_tokens,
)
from smpframe.data import budget
from smpframe.errors import InputError

if TYPE_CHECKING:
    from smpframe.api import Dataset, Splits

# A small English stop-word list (function words, pronouns, auxiliaries, contractions).
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't
    have haven't having he he'd he'll he's her here here's hers herself him himself his how
    how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's me more most
    mustn't my myself no nor not now of off on once only or other ought our ours ourselves
    out over own same shan't she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those through to too under until up upon very was wasn't we we'd
    we'll we're we've were weren't what what's when when's where where's which while who
    who's whom why why's will with won't would wouldn't you you'd you'll you're you've your
    yours yourself yourselves also may might must shall us
    """.split()
)

MAX_UNNAMED_WORDS = 1 << 22
"""Most words a corpus may have without a vocabulary file (each gets a name string)."""

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_UINT = re.compile(r"[0-9]+")
_PAIR = re.compile(r"[0-9]+:[0-9]+")
_LDAC_LINE = re.compile(rb"[ \t]*\d+(?:[ \t]+\d+:\d+)+[ \t\r]*")


@dataclass
class Corpus:
    """Token stream: document d's word ids are ``words[doc_ptr[d]:doc_ptr[d + 1]]``;
    ``vocab[w]`` is word w's text."""

    doc_ptr: np.ndarray  # int64[n_docs + 1]
    words: np.ndarray  # int32[n_tokens]
    vocab: list[str]

    @property
    def n_docs(self) -> int:
        return len(self.doc_ptr) - 1


def _bag_to_corpus(
    docs: np.ndarray, words: np.ndarray, counts: np.ndarray, n_docs: int, vocab: list[str], path: str | Path
) -> Corpus:
    """Expand (doc, word, count) entries (0-based ids) into a token stream ordered by document."""
    total = int(counts.sum())
    if total == 0:
        raise InputError("corpus has no tokens", path)
    if total > MAX_INDEX:
        raise InputError(f"corpus has {total} tokens, more than {MAX_INDEX}", path)
    budget.check(total * budget.BYTES_PER_TOKEN, f"the counts' {total} tokens", path)
    order = np.argsort(docs, kind="stable")
    lengths = np.bincount(docs, weights=counts, minlength=n_docs).astype(np.int64)
    doc_ptr = np.concatenate([[0], np.cumsum(lengths)])
    return Corpus(doc_ptr, np.repeat(words[order].astype(np.int32), counts[order]), vocab)


def read_vocab(path: str | Path) -> list[str]:
    """One word per line (surrounding whitespace stripped; trailing blank lines ignored)."""
    words = [w.strip() for w in read_text(path).decode("utf-8").rstrip().split("\n")]
    if words == [""]:
        raise InputError("vocabulary file is empty", path)
    if "" in words:
        raise InputError("empty line in vocabulary", path, words.index("") + 1)
    return words


def _default_vocab(path: Path, name: str | None) -> Path | None:
    """``vocab.<name>.txt`` (UCI naming) or ``vocab.txt`` beside the corpus, if present."""
    candidates = ([path.with_name(f"vocab.{name}.txt")] if name else []) + [path.with_name("vocab.txt")]
    return next((c for c in candidates if c.is_file()), None)


def _id_names(n_words: int, first: int, path: Path) -> list[str]:
    """Word names for a corpus without a vocabulary file: the ids as written in the file."""
    if n_words > MAX_UNNAMED_WORDS:
        raise InputError(f"{n_words} word ids and no vocabulary file (pass one, or check the ids)", path)
    return [str(i) for i in range(first, first + n_words)]


# --------------------------------------------------------------------------- UCI bag of words


def load_uci_bow(docword_path: str | Path, vocab_path: str | Path | None = None) -> Corpus:
    """Load a UCI bag-of-words ``docword.*.txt`` (header D, W, NNZ; then ``doc word count``, 1-based).

    The vocabulary defaults to ``vocab.<name>.txt`` or ``vocab.txt`` beside it; without
    one, words are named by their 1-based id.
    """
    path = Path(docword_path)
    data = read_text(path)
    (n_docs, n_words, nnz), body = _uci_header(data, path)
    budget.check((n_docs + n_words) * 64, f"the header's D={n_docs} documents and W={n_words} words",
                 path)
    table = read_table(body, path, None, (3,), first_line=4)
    docs = _one_based(table, 0, "document id", n_docs)
    words = _one_based(table, 1, "word id", n_words)
    counts = table.ints(2, "count")
    table.require(counts >= 1, lambda r: f"count {counts[r]} is not positive")
    if len(table) != nnz:
        raise InputError(f"header says NNZ={nnz} but the file has {len(table)} entries", path, 3)
    if vocab_path is None:
        name = re.fullmatch(r"docword\.(.+)\.txt", path.name)
        vocab_path = _default_vocab(path, name and name.group(1))
    if vocab_path is None:
        vocab = _id_names(n_words, 1, path)
    else:
        vocab = read_vocab(vocab_path)
        if len(vocab) != n_words:
            raise InputError(f"vocabulary has {len(vocab)} words but {path.name} says W={n_words}", vocab_path)
    return _bag_to_corpus(docs, words, counts, n_docs, vocab, path)


def _uci_header(data: bytes, path: Path) -> tuple[list[int], bytes]:
    """The three header integers (D, W, NNZ) and the rest of the file."""
    if not data.strip():
        raise InputError("file is empty", path)
    parts = data.split(b"\n", 3)
    header = []
    for lineno, (name, raw) in enumerate(zip(("D", "W", "NNZ"), parts), 1):
        text = raw.decode("utf-8").strip()
        value = int(text) if text.isascii() and text.isdigit() else None
        if value is None:
            message = f"header line {lineno} must be the integer {name}, got {quote(text)}"
            raise InputError(message, path, lineno)
        if value > MAX_INDEX:
            raise InputError(f"{name}={value} is too large (max {MAX_INDEX})", path, lineno)
        header.append(value)
    if len(header) < 3:
        raise InputError("header must have 3 lines: D, W, NNZ", path)
    return header, parts[3] if len(parts) == 4 else b""


def _one_based(table: Table, col: int, what: str, size: int) -> np.ndarray:
    """A 1-based id column checked against ``1..size``, returned 0-based."""
    ids = table.ints(col, what)
    table.require((ids >= 1) & (ids <= size), lambda r: f"{what} {ids[r]} is out of range 1..{size}")
    return ids - 1


# --------------------------------------------------------------------------- LDA-C


def load_ldac(path: str | Path, vocab_path: str | Path | None = None) -> Corpus:
    """Load Blei's LDA-C format: per document ``N id:count ...`` with 0-based word ids.

    Line d is document d (a blank line is an empty document).  The vocabulary
    defaults to ``vocab.txt`` beside the file; without one, words are named by id.
    """
    path = Path(path)
    data = read_text(path)
    if not data.strip():
        raise InputError("file is empty", path)
    docs, words, counts, n_docs = _parse_ldac(data.rstrip(), path)
    vocab_path = _default_vocab(path, None) if vocab_path is None else vocab_path
    if vocab_path is None:
        vocab = _id_names(int(words.max(initial=-1)) + 1, 0, path)
    else:
        vocab = read_vocab(vocab_path)
        outside = np.flatnonzero(words >= len(vocab))
        if len(outside):
            i = outside[0]
            message = f"word id {words[i]} is out of range for the {len(vocab)} words of {vocab_path}"
            raise InputError(message, path, int(docs[i]) + 1)
    return _bag_to_corpus(docs, words, counts, n_docs, vocab, path)


def _parse_ldac(data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Vectorised LDA-C parse: (document = 0-based line, word id, count) of every pair,
    and the number of documents (lines).

    Tokens are split at whitespace and ':'.  On a line, token 0 is N and tokens
    1, 3, ... are ids, each followed directly by ':' and its count; the line must
    hold 1 + 2N tokens.  A bad line is explained by :func:`_ldac_problem`.
    """
    buf, starts, ends, newlines = split_tokens(data, ord(":"))
    ntok = count_per_line(starts, newlines)
    line_of = np.repeat(np.arange(len(ntok)), ntok)
    pos = np.arange(len(starts)) - (np.cumsum(ntok) - ntok)[line_of]
    values, ok = parse_int_fields(buf, starts, ends)
    head, is_id = pos == 0, pos % 2 == 1
    after = np.append(buf, ord("\n"))[ends]  # the byte after each token
    before = np.insert(buf, 0, ord("\n"))[starts]  # and the byte before it
    good = ok & (values >= 0) & np.where(is_id, after == ord(":"), after != ord(":"))
    good &= ~(head | is_id) | (before != ord(":"))
    good[:-1] &= ~is_id[:-1] | (starts[1:] == ends[:-1] + 1)  # "id:count" without spaces
    good[head] &= ntok[line_of[head]] == 1 + 2 * values[head]
    if not good.all():
        line = int(line_of[np.argmin(good)])
        raise InputError(_ldac_problem(data.split(b"\n")[line]), path, line + 1)
    ids, counts, docs = values[is_id], values[(pos > 0) & ~is_id], line_of[is_id]
    if (ids > MAX_INDEX).any():
        i = int(np.argmax(ids > MAX_INDEX))
        raise InputError(f"word id {ids[i]} is too large (max {MAX_INDEX})", path, int(docs[i]) + 1)
    if (counts == 0).any():
        raise InputError("count 0 is not positive", path, int(docs[np.argmax(counts == 0)]) + 1)
    return docs, ids, counts, len(ntok)


def _ldac_problem(line: bytes) -> str:
    """Explain why one LDA-C line (not blank to :func:`split_tokens`) is malformed."""
    tokens = [t.decode("utf-8") for t in line.split()]  # ASCII whitespace only, unlike str.split()
    if not _UINT.fullmatch(tokens[0]):
        return f"term count {quote(tokens[0])} is not a non-negative integer"
    if len(tokens) - 1 != int(tokens[0]):
        return f"line says {tokens[0]} terms but has {len(tokens) - 1}"
    bad = next((t for t in tokens[1:] if not _PAIR.fullmatch(t)), None)
    if bad:
        return f"expected id:count (non-negative integers), got {quote(bad)}"
    return "expected 'N id:count id:count ...'"


# --------------------------------------------------------------------------- plain text


def tokenize(line: str, stop: frozenset[str] = STOP_WORDS) -> list[str]:
    """Lower-cased words of 2+ characters (letters/digits, inner apostrophes), minus ``stop``."""
    words = _WORD.findall(line.lower().replace("\u2019", "'"))
    return [w for w in words if len(w) > 1 and w not in stop]


def load_text(path: str | Path, stopwords: bool = True, min_count: int = 1) -> Corpus:
    """Load plain text, one document per line (blank lines are empty documents).

    Words seen fewer than ``min_count`` times in the corpus are dropped; the
    vocabulary is in order of first appearance.
    """
    if min_count < 1:
        raise InputError(f"min_count must be at least 1, got {min_count}")
    data = read_text(path)
    if not data.strip():
        raise InputError("file is empty", path)
    lines = data.decode("utf-8").rstrip().split("\n")
    stop = STOP_WORDS if stopwords else frozenset()
    words, lengths, index = _tokenized(lines, stop)
    vocab = list(index)
    if min_count > 1:
        keep = np.bincount(words, minlength=len(vocab)) >= min_count
        mask = keep[words]
        lengths = np.bincount(np.repeat(np.arange(len(lines)), lengths)[mask], minlength=len(lines))
        words = (np.cumsum(keep) - 1)[words[mask]]
        vocab = [w for w, k in zip(vocab, keep) if k]
    if not len(words):
        raise InputError("corpus has no tokens (words of 2+ letters, not stop words, seen min_count times)", path)
    return Corpus(np.concatenate([[0], np.cumsum(lengths)]), words.astype(np.int32), vocab)


# --------------------------------------------------------------------------- dispatch


def load_corpus(
    path: str | Path, fmt: str | None = None, vocab: str | Path | None = None, stopwords: bool = True
) -> Corpus:
    """Load a corpus in ``fmt`` "uci", "ldac" or "text"; None guesses (name ``docword*`` →
    uci, a first line like ``2 0:1 5:3`` → ldac, else text).  ``vocab`` applies to uci/ldac."""
    fmt = _guess_format(Path(path)) if fmt is None else fmt
    if fmt == "uci":
        return load_uci_bow(path, vocab)
    if fmt == "ldac":
        return load_ldac(path, vocab)
    if fmt != "text":
        raise InputError(f"unknown corpus format {quote(fmt)} (expected uci, ldac or text)")
    if vocab is not None:
        raise InputError("a vocabulary file only applies to uci and ldac corpora")
    return load_text(path, stopwords)


def _guess_format(path: Path) -> str:
    if path.name.lower().startswith("docword"):
        return "uci"
    head = read_bytes(path, 1 << 16).lstrip().split(b"\n", 1)[0]
    return "ldac" if _LDAC_LINE.fullmatch(head) else "text"


# --------------------------------------------------------------------------- in-memory and split input


def corpus_dataset(corpus: Corpus) -> Dataset:
    """A corpus as LDA's dataset: rows are documents, ``X`` their word counts (CSR ``D x V``)."""
    import scipy.sparse as sp

    from smpframe.api import Dataset

    doc_ptr = np.array(corpus.doc_ptr, dtype=np.int64)  # copies: the CSR below takes them
    words = np.array(corpus.words, dtype=np.int32)      # over and sorts them in place
    n_words = len(corpus.vocab)
    if words.size == 0:
        raise InputError("corpus has no tokens")
    if words.min() < 0 or words.max() >= n_words:
        raise InputError(f"word ids must be in 0..{n_words - 1} (the vocabulary's size)")
    n_docs = doc_ptr.size - 1
    X = sp.csr_matrix((np.ones(words.size, np.int32), words, doc_ptr), shape=(n_docs, n_words))
    X.sum_duplicates()  # counts per (doc, word), words sorted within each document
    X.data = X.data.astype(np.int32)
    return Dataset(rows={"X": X}, meta={"n_words": n_words},
                   weights=np.diff(doc_ptr).astype(np.float64) + 1e-3)


def corpus_splits(path: str | Path, fmt: str | None, vocab: str | Path | None,
                  stopwords: bool) -> tuple[Splits, list[str] | None]:
    """A corpus file as splits the workers read (:data:`SPLIT_READERS`), and its word names
    when a vocabulary file gives them. Only the header (UCI) and the vocabulary are read here."""
    from smpframe.api import Splits

    path = Path(path)
    fmt = _guess_format(path) if fmt is None else fmt
    if fmt == "uci":
        head = read_bytes(path, 4096)
        (n_docs, n_words, nnz), _ = _uci_header(head, path)
        body = sum(len(line) + 1 for line in head.split(b"\n", 3)[:3])
        if vocab is None:
            name = re.fullmatch(r"docword\.(.+)\.txt", path.name)
            vocab = _default_vocab(path, name and name.group(1))
        names = None if vocab is None else read_vocab(vocab)
        if names is not None and len(names) != n_words:
            raise InputError(f"vocabulary has {len(names)} words but {path.name} says W={n_words}", vocab)
        options = {"n_docs": n_docs, "n_words": n_words, "nnz": nnz, "body": body}
        return Splits("uci", str(path), options, {"first_id": 1}), names
    if fmt == "ldac":
        vocab = _default_vocab(path, None) if vocab is None else vocab
        names = None if vocab is None else read_vocab(vocab)
        options = {"n_vocab": None if names is None else len(names),
                   "vocab_file": None if vocab is None else str(vocab)}
        return Splits("ldac", str(path), options, {"first_id": 0}), names
    if fmt != "text":
        raise InputError(f"unknown corpus format {quote(fmt)} (expected uci, ldac or text)")
    if vocab is not None:
        raise InputError("a vocabulary file only applies to uci and ldac corpora")
    return Splits("text", str(path), {"stopwords": bool(stopwords)}), None


def _is_last(split: dict) -> bool:
    """Whether the split ends the file (then it owns what trails its last document)."""
    from smpframe.data.splits import _size
    size = _size(split["path"])
    return split["start"] < size <= split["stop"]


def _rest_is_blank(path: str, offset: int) -> bool:
    """Whether the file holds only whitespace from ``offset`` on (blank lines at the end of
    a file are not documents, as :func:`load_ldac` and :func:`load_text` read it)."""
    from smpframe.data.splits import open_binary

    with open_binary(path) as fh:
        fh.seek(offset)
        while True:
            chunk = fh.read(4096)
            if not chunk:
                return True
            if chunk.strip():
                return False


def _documents(data: bytes, path: str, begin: int) -> bytes | None:
    """A split's lines, one document a line, without the final newline, and without the
    blank lines that end the file (None: no document)."""
    if not data:
        return None
    if data.rstrip() != data and _rest_is_blank(path, begin + len(data)):
        return data.rstrip() or None
    return data[:-1] if data.endswith(b"\n") else data


def _csr(docs: np.ndarray, words: np.ndarray, counts: np.ndarray, n_docs: int, width: int):
    import scipy.sparse as sp
    X = sp.csr_matrix((counts.astype(np.int32), (docs, words)), shape=(n_docs, width))
    X.sum_duplicates()
    return X


def _first_field(line: bytes) -> int | None:
    field = line.split(None, 1)[:1]
    return int(field[0]) if field and field[0].isdigit() else None


def _read_uci_split(split: dict) -> tuple[dict, dict]:
    """A UCI docword split by documents: it owns the documents whose first entry starts in
    its byte range (entries grouped by document, as UCI files are), and the empty
    documents before them, so every document 1..D is in exactly one split."""
    from smpframe.data.splits import open_binary

    path, opts = split["path"], split["options"]
    body, n_docs, n_words = opts["body"], opts["n_docs"], opts["n_words"]
    start = max(split["start"], body)
    data, begin = (b"", split["stop"]) if start >= split["stop"] else \
        _split_text({**split, "start": start})
    prev = None  # the document of the line before this split's first one
    with open_binary(path) as fh:
        if begin > body:
            fh.seek(max(body, begin - 256))
            before = fh.read(begin - max(body, begin - 256)).rstrip().rsplit(b"\n", 1)[-1]
            prev = _first_field(before)
        lines = data.rstrip().rsplit(b"\n", 1)
        last = _first_field(lines[-1]) if data.strip() else None
        if last is not None:  # the rest of the last document, past the range
            fh.seek(begin + len(data))
            tail = []
            while True:
                chunk = fh.read(1 << 16)
                if not chunk:
                    break
                rows = chunk.split(b"\n")
                keep = 0
                while keep < len(rows) - 1 and (not rows[keep].strip()
                                                 or _first_field(rows[keep]) == last):
                    keep += 1
                tail.append(b"\n".join(rows[:keep]) + (b"\n" if keep else b""))
                if keep < len(rows) - 1:
                    break
                fh.seek(fh.tell() - len(rows[-1]))  # a partial line: read it whole next time
                if len(rows) == 1:
                    break
            data += b"".join(tail)
    first_doc = 1 if prev is None else prev + 1

    def parse():
        table = read_table(data, path, None, (3,)) if data.strip() else None
        if table is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        docs = _one_based(table, 0, "document id", n_docs)
        words = _one_based(table, 1, "word id", n_words)
        counts = table.ints(2, "count")
        table.require(counts >= 1, lambda r: f"count {counts[r]} is not positive")
        order = np.ones(len(docs), bool)
        order[1:] = docs[1:] >= docs[:-1]
        table.require(order, lambda r: "document ids decrease: a file split by documents "
                                       "needs its entries grouped by document (--read-on scheduler)")
        return docs, words, counts

    docs, words, counts = _located(parse, path, begin)
    if prev is not None:  # the previous split's last document goes on here: not ours
        own = docs != prev - 1  # (docs are 0-based)
        docs, words, counts = docs[own], words[own], counts[own]
    stop_doc = n_docs if _is_last(split) else (int(docs[-1]) + 1 if docs.size else first_doc - 1)
    n = max(stop_doc - (first_doc - 1), 0)
    X = _csr(docs - (first_doc - 1), words, counts, n, n_words)
    return {"X": X}, {"entries": int(len(docs)), "nnz": opts["nnz"], "n_words": n_words}


def _uci_layout(facts: list[dict], path: str) -> dict:
    entries, nnz = sum(f["entries"] for f in facts), facts[0]["nnz"]
    if entries != nnz:
        raise InputError(f"header says NNZ={nnz} but the file has {entries} entries", path, 3)
    return {"n_words": facts[0]["n_words"]}


def _fail(message: str, path: str, line: int) -> None:
    raise InputError(message, path, line)


def _read_ldac_split(split: dict) -> tuple[dict, dict]:
    """An LDA-C split: the lines (documents) starting in its byte range."""
    path, opts = split["path"], split["options"]
    data, begin = _split_text(split)
    text = _documents(data, path, begin)
    if text is None:
        docs = words = counts = np.zeros(0, np.int64)
        n_lines = 0
    else:
        docs, words, counts, n_lines = _located(lambda: _parse_ldac(text, Path(path)), path, begin)
    n_vocab = opts.get("n_vocab")
    if n_vocab is not None and words.size and int(words.max()) >= n_vocab:
        i = int(np.argmax(words >= n_vocab))
        message = (f"word id {words[i]} is out of range for the {n_vocab} words of "
                   f"{opts.get('vocab_file')}")
        _located(lambda: _fail(message, path, int(docs[i]) + 1), path, begin)
    width = int(words.max(initial=-1)) + 1
    return {"X": _csr(docs, words, counts, n_lines, width)}, {"max_id": width - 1,
                                                             "n_vocab": n_vocab}


def _split_text(split: dict) -> tuple[bytes, int]:
    """:func:`smpframe.data.splits.split_text`: a split's checked lines and their offset."""
    from smpframe.data.splits import split_text

    return split_text(split)


def _tokenized(lines: list[str], stop: frozenset) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Word ids of every line's tokens (ids in order of first appearance), tokens per
    line, and the id of each word."""
    index: dict[str, int] = {}
    ids: list[int] = []
    lengths = np.zeros(len(lines), np.int64)
    for d, line in enumerate(lines):
        tokens = tokenize(line, stop)
        ids.extend(index.setdefault(w, len(index)) for w in tokens)
        lengths[d] = len(tokens)
    return np.array(ids, dtype=np.int64), lengths, index


def _located(parse, path: str, begin: int):
    """:func:`smpframe.data.splits.in_file`: errors of ``parse`` name the file's line."""
    from smpframe.data.splits import in_file

    return in_file(parse, path, begin)


def _read_text_split(split: dict) -> tuple[dict, dict]:
    """A plain-text split: its lines (documents), word ids local to the split (in order of
    first appearance) until :func:`_text_layout` merges the splits' vocabularies."""
    data, begin = _split_text(split)
    raw = _documents(data, split["path"], begin)
    lines = [] if raw is None else raw.decode("utf-8").split("\n")
    stop = STOP_WORDS if split["options"].get("stopwords", True) else frozenset()
    words, lengths, index = _tokenized(lines, stop)
    docs = np.repeat(np.arange(len(lines)), lengths)
    X = _csr(docs, words, np.ones(words.size, np.int64), len(lines), len(index))
    return {"X": X, "vocab": np.array(list(index), dtype=str)}, {"vocab": list(index)}


def _ldac_layout(facts: list[dict], path: str) -> dict:
    """The vocabulary's size, or without a vocabulary file the largest word id + 1."""
    n_vocab = facts[0]["n_vocab"]
    return {"n_words": n_vocab if n_vocab is not None else max(f["max_id"] for f in facts) + 1}


def _text_layout(facts: list[dict], path: str) -> dict:
    index: dict[str, int] = {}
    for fact in facts:  # in file order: the whole file's order of first appearance
        for word in fact["vocab"]:
            index.setdefault(word, len(index))
    return {"vocab": list(index), "n_words": len(index)}


def _bag_finish(rows: dict, plan: dict) -> dict:
    import scipy.sparse as sp
    X = rows["X"]
    return {"X": sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], plan["n_words"]))}


def _text_finish(rows: dict, plan: dict) -> dict:
    import scipy.sparse as sp
    X = rows["X"]
    index = {w: i for i, w in enumerate(plan["vocab"])}
    to_global = np.array([index[w] for w in rows["vocab"]], dtype=np.int32)
    X = sp.csr_matrix((X.data, to_global[X.indices], X.indptr), shape=(X.shape[0], len(index)))
    X.sort_indices()
    return {"X": X}


#: split readers of :mod:`smpframe.data.splits` (read a split, combine facts, apply the layout)
SPLIT_READERS = {
    "uci": (_read_uci_split, _uci_layout, _bag_finish),
    "ldac": (_read_ldac_split, _ldac_layout, _bag_finish),
    "text": (_read_text_split, _text_layout, _text_finish),
}
