"""The vectorised LIBSVM reader agrees with scikit-learn's, or declines (returns None)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from sklearn.datasets import load_svmlight_file

from smpframe.data.libsvm_fast import read_libsvm_fast


def reference(data: bytes):
    try:
        return load_svmlight_file(io.BytesIO(data), dtype=np.float64, zero_based="auto")
    except Exception:  # noqa: BLE001 - any refusal
        return None


def same(fast, ref) -> bool:
    (X, y), (X2, y2) = fast, ref
    return X.shape == X2.shape and np.array_equal(X.toarray(), X2.toarray()) and np.array_equal(y, y2)


numbers = st.one_of(st.integers(-1000, 1000).map(str),
                    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr))


@st.composite
def libsvm_lines(draw):
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        idx = sorted(draw(st.sets(st.integers(0, 40), max_size=6)))
        pairs = " ".join(f"{i}:{draw(numbers)}" for i in idx)
        sep = draw(st.sampled_from([" ", "  ", "\t"]))
        rows.append(f"{draw(numbers)}{sep if pairs else ''}{pairs}")
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    blank = draw(st.sampled_from(["", "\n", "   \n"]))
    return (blank + ending.join(rows) + draw(st.sampled_from(["", ending]))).encode()


@settings(max_examples=300, deadline=None)
@given(libsvm_lines())
def test_valid_files_read_as_scikit_learn_reads_them(data):
    assume(b":" in data)  # a file without features is declined (see test_what_it_declines)
    ref = reference(data)
    fast = read_libsvm_fast(data)
    assert ref is not None and fast is not None
    assert same(fast, ref)
    assert fast[0].indices.dtype == np.int32


@settings(max_examples=500, deadline=None)
@given(libsvm_lines(), st.integers(0, 10**6), st.sampled_from(list(b": \n\t-.e+x#\x01q0")))
def test_mutated_files_are_read_the_same_or_declined(data, where, byte):
    pos = where % (len(data) + 1)
    mutated = data[:pos] + bytes([byte]) + data[pos:]
    fast = read_libsvm_fast(mutated)
    if fast is not None:  # whatever it accepts, scikit-learn reads the same way
        ref = reference(mutated)
        assert ref is not None and same(fast, ref), mutated


@pytest.mark.parametrize("text", [b"1 1:2:3\n", b"5 1:2:3 4\n", b"1 2:1 1:3\n", b"1 1:nan\n",
                                  b"# c\n1 1:2\n", b"1 qid:3 1:2\n", b"a 1:2\n", b"1 1: 2:3\n",
                                  b"1 :3\n", b"1 1:2\x013:4\n", b"", b"\n \n", b"1 1.5:2\n", b"1\n2\n"])
def test_what_it_declines(text):
    assert read_libsvm_fast(text) is None


def test_n_features_widens_or_declines():
    X, _ = read_libsvm_fast(b"1 1:2 3:4\n", n_features=10)
    assert X.shape == (1, 10)
    assert read_libsvm_fast(b"1 1:2 30:4\n", n_features=10) is None
