"""Fuzz every loader: any input gives a valid result or a one-line InputError naming the file,
never another exception.

Header size lines (Matrix Market, UCI) are left intact in the line-level fuzzing:
a well-formed header declaring 2**31 rows legitimately allocates gigabytes.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from smpframe.data.matrix import load_libsvm, load_matrix_market, load_vector, load_xy
from smpframe.data.ratings import Ratings, load_ratings
from smpframe.data.text import Corpus, load_corpus, load_ldac, load_text, load_uci_bow
from smpframe.errors import InputError

MM = "%%MatrixMarket matrix coordinate real general\n% comment\n3 4 4\n1 1 1.5\n3 4 -2\n2 2 7e-1\n1 3 4\n"
LOADERS = {
    # name: (file name, loader, valid sample, protected leading lines)
    "libsvm": ("data.svm", load_libsvm, "1 1:0.5 3:2\n-1 qid:3 2:1\n# c\n0 1:1e-3 4:-1\n", 0),
    "libsvm_n_features": ("data.svm", lambda p: load_libsvm(p, n_features=4), "1 1:0.5 3:2\n-1 2:1\n", 0),
    "mm": ("data.mtx", load_matrix_market, MM, 3),
    "mm_array": ("data.mtx", load_matrix_market, "%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n4\n", 2),
    "vector": ("y.txt", load_vector, "1\n2.5\n-3e2\n", 0),
    "xy": ("data.txt", lambda p: load_xy(p, None, None), "1 1:0.5 3:2\n-1 2:1\n", 0),
    "ratings_csv": ("ratings.csv", load_ratings, "userId,movieId,rating,timestamp\n1,31,2.5,1\nab,31,4,3\n", 0),
    "ratings_dat": ("ratings.dat", load_ratings, "1::1193::5::978300760\n1::661::3::978302109\n", 0),
    "ratings_space": ("u.data", lambda p: load_ratings(p, "space"), "196\t242\t3\t881250949\n186 302 3.5 1\n", 0),
    "ratings_mm": ("r.mtx", load_ratings, MM, 3),
    "uci": ("docword.f.txt", load_uci_bow, "3\n4\n4\n1 2 2\n1 4 1\n3 1 1\n2 3 3\n", 3),
    "ldac": ("c.dat", load_ldac, "2 0:1 3:2\n0\n1 1:1\n", 0),
    "text": ("t.txt", load_text, "The quick brown fox.\nJumps over the lazy dog's back!\n", 0),
    "corpus": ("c.dat", load_corpus, "2 0:1 3:2\n1 1:1\n", 0),
}
NAMES = sorted(LOADERS)

NASTY = [
    "nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "-1", "0", "-0", "2147483647", "2147483648",
    "4294967296", "9223372036854775808", "99999999999999999999999", "1:1", "-3:1", "0:nan", "1:inf",
    "3000000000:1", "2147483648:1", "qid:1", "qid:x", "", ":", "::", "#", "%", "1_0", "0x10", "1e5", "é", "\u2028",
    "%%MatrixMarket", "\x00", "\r", ",", "1,2", "1::2", ":5", "5:", "1:2:3", "\x85", "\xa0", "\x1c", "\x0b",
]
token = st.one_of(
    st.sampled_from(NASTY),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=" \t:,#%-+.eE0123456789abnfiq", max_size=10),
    st.text(alphabet="\u2028\x85\xa0\x1c\x0b\x0c\r \t", min_size=1, max_size=4),  # odd whitespace
)
bad_line = st.tuples(st.lists(token, max_size=6), st.sampled_from([" ", "\t", ",", ":", "::", ""])).map(
    lambda t: t[1].join(t[0])
)

FUZZ = settings(max_examples=60, deadline=None)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def check_result(result) -> None:
    """Sanity of a successful load: finite values, codes and ids in range."""
    if isinstance(result, tuple):
        for part in result:
            check_result(part)
    elif sp.issparse(result):
        assert np.isfinite(result.data).all()
    elif isinstance(result, np.ndarray):
        assert np.isfinite(result).all()
    elif isinstance(result, Ratings):
        assert len(result.users) == len(result.items) == len(result.values) > 0
        assert 0 <= result.users.min() and result.users.max() < result.n_users
        assert 0 <= result.items.min() and result.items.max() < result.n_items
        assert np.isfinite(result.values).all()
    else:
        assert isinstance(result, Corpus)
        assert (np.diff(result.doc_ptr) >= 0).all() and result.doc_ptr[-1] == len(result.words) > 0
        assert 0 <= result.words.min() and result.words.max() < len(result.vocab)


def load(workdir, name: str, content: bytes):
    """Write ``content`` under the loader's file name, load it, and check the outcome."""
    file_name, loader, _, _ = LOADERS[name]
    folder = workdir / name
    folder.mkdir(exist_ok=True)
    path = folder / file_name
    path.write_bytes(content)
    try:
        result = loader(path)
    except InputError as err:
        assert str(path) in str(err) and str(err).isprintable(), repr(str(err))
        return err
    check_result(result)
    return None


@pytest.mark.parametrize("name", NAMES)
def test_valid_samples_load(workdir, name):
    assert load(workdir, name, LOADERS[name][2].encode()) is None


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(content=st.binary(max_size=300))
def test_random_bytes(workdir, name, content):
    load(workdir, name, content)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_truncated_and_spliced(workdir, name, data):
    sample = LOADERS[name][2].encode()
    cut = data.draw(st.integers(0, len(sample)))
    tail = data.draw(st.integers(cut, len(sample)))
    load(workdir, name, sample[:cut] + sample[tail:])


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_malformed_lines(workdir, name, data):
    _, _, sample, protected = LOADERS[name]
    lines = sample.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(protected, len(lines)))
        replace = data.draw(st.booleans()) and at < len(lines)
        lines[at : at + replace] = [data.draw(bad_line)]
    load(workdir, name, "\n".join(lines).encode())


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_non_utf8_encodings_are_rejected(workdir, name, data):
    sample = LOADERS[name][2]
    at = data.draw(st.integers(0, len(sample)))
    text = sample[:at] + data.draw(st.sampled_from("éß€日")) + sample[at:]
    encoding = data.draw(st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-32"]))
    content = text.encode(encoding, errors="replace")
    if content.isascii() and b"\x00" not in content:
        return  # cp1252/latin-1 replaced the only non-ASCII character with '?'
    err = load(workdir, name, content)
    assert err is not None and ("UTF-8" in str(err) or "NUL" in str(err)), err


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(content=st.text(alphabet=" \t\r\n", max_size=20))
def test_empty_or_blank_files_are_rejected(workdir, name, content):
    assert load(workdir, name, content.encode()) is not None
