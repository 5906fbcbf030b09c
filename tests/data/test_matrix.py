"""LIBSVM, Matrix Market and target-vector loaders, and the shared table splitter."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file, load_svmlight_file

from smpframe.data.matrix import load_libsvm, load_matrix_market, load_vector, load_xy
from smpframe.data.textio import read_bytes, read_table, read_text
from smpframe.errors import InputError


def write(tmp_path, name: str, content: bytes | str):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def raises_at(path, line: int | None, fragment: str):
    """Context manager: InputError located at path[:line] whose message contains fragment."""
    where = f"{path}:{line}: " if line else f"{path}: "
    return pytest.raises(InputError, match="^" + re.escape(where) + ".*" + re.escape(fragment))


# --------------------------------------------------------------------------- LIBSVM


def test_libsvm_matches_sklearn(tmp_path):
    rng = np.random.default_rng(0)
    X = sp.random(40, 25, density=0.2, format="csr", random_state=1)
    y = rng.normal(size=40)
    buf = io.BytesIO()
    dump_svmlight_file(X, y, buf, zero_based=False)
    path = write(tmp_path, "a.svm", buf.getvalue())
    got_X, got_y = load_libsvm(path, n_features=25)
    ref_X, ref_y = load_svmlight_file(str(path), n_features=25, zero_based=False)
    assert isinstance(got_X, sp.csr_matrix) and got_X.dtype == np.float64 and got_y.dtype == np.float64
    np.testing.assert_array_equal(got_X.toarray(), ref_X.toarray())
    np.testing.assert_array_equal(got_y, ref_y)
    np.testing.assert_allclose(got_X.toarray(), X.toarray())


def test_libsvm_hand_values(tmp_path):
    path = write(tmp_path, "a.svm", "# comment\n+1 1:0.5 3:2 # trailing\n\n-1 qid:7 2:1e1\r\n")
    X, y = load_libsvm(path)
    np.testing.assert_array_equal(X.toarray(), [[0.5, 0, 2], [0, 10, 0]])
    np.testing.assert_array_equal(y, [1, -1])


def test_libsvm_zero_based_is_detected(tmp_path):
    X, _ = load_libsvm(write(tmp_path, "a.svm", "1 0:1 2:3\n0 1:2\n"))
    np.testing.assert_array_equal(X.toarray(), [[1, 0, 3], [0, 2, 0]])


def test_libsvm_n_features_pads(tmp_path):
    X, _ = load_libsvm(write(tmp_path, "a.svm", "1 1:1\n"), n_features=4)
    assert X.shape == (1, 4)


def test_libsvm_utf8_bom_is_ignored(tmp_path):
    X, y = load_libsvm(write(tmp_path, "a.svm", b"\xef\xbb\xbf2 1:1\n"))
    assert y.tolist() == [2.0]


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ("1 1:1\n1 2:nan\n", 2, "value 'nan' is not finite"),
        ("1 1:1\ninf 2:1\n", 2, "label 'inf' is not finite"),
        ("1 2:1e999\n", 1, "value '1e999' is not finite"),
        ("1 1:1\n1 -3:1\n", 2, "feature index -3 is negative"),
        ("1 3000000000:1\n", 1, "feature index 3000000000 is too large"),
        ("1 99999999999999999999999:1\n", 1, "is too large"),
        ("1 3:1 2:1\n", 1, "feature indices must be increasing (2 after 3)"),
        ("1 2:1 2:1\n", 1, "must be increasing"),
        ("1 2:abc\n", 1, "value 'abc' is not a number"),
        ("1 2:0x10\n", 1, "value '0x10' is not a number"),
        ("yes 2:1\n", 1, "label 'yes' is not a number"),
        ("1 2\n", 1, "expected index:value, got '2'"),
        ("1 2.5:1\n", 1, "feature index '2.5' is not an integer"),
        ("", None, "file is empty"),
        ("# only a comment\n\n", None, "no samples"),
        (b"1 1:1\n1 2:1 # caf\xe9\n", 2, "not UTF-8 text"),
        ("1 1:1\n".encode("utf-16"), 1, "not UTF-8 text"),
        (b"1 1:1\n1\x00 2:1\n", 2, "NUL byte"),
    ],
)
def test_libsvm_errors(tmp_path, content, line, fragment):
    path = write(tmp_path, "bad.svm", content)
    with raises_at(path, line, fragment):
        load_libsvm(path)


def test_libsvm_n_features_too_small(tmp_path):
    path = write(tmp_path, "a.svm", "1 1:1 3:1\n1 4:1\n")
    with raises_at(path, 2, "feature index 4 exceeds n_features=3"):
        load_libsvm(path, n_features=3)
    with pytest.raises(InputError, match="n_features must be"):
        load_libsvm(path, n_features=0)


def test_missing_file_and_directory(tmp_path):
    with raises_at(tmp_path / "nope.svm", None, "file not found"):
        load_libsvm(tmp_path / "nope.svm")
    with raises_at(tmp_path, None, "is a directory"):
        read_bytes(tmp_path)


# --------------------------------------------------------------------------- Matrix Market

COORD = "%%MatrixMarket matrix coordinate {field} {symmetry}\n"
VALID_MM = {
    "general": COORD.format(field="real", symmetry="general") + "% comment\n3 4 4\n1 1 1.5\n3 4 -2e-3\n2 2 7\n1 1 1\n",
    "symmetric": COORD.format(field="real", symmetry="symmetric") + "3 3 3\n1 1 1\n3 1 2\n3 2 -4\n",
    "skew": COORD.format(field="real", symmetry="skew-symmetric") + "3 3 2\n2 1 3\n3 2 5\n",
    "pattern": COORD.format(field="pattern", symmetry="general") + "2 3 2\n1 3\n2 1\n",
    "integer": COORD.format(field="integer", symmetry="general") + "2 2 2\n1 2 7\n2 1 -3\n",
    "array": "%%MatrixMarket matrix array real general\n2 3\n1\n2\n3\n4\n5\n6\n",
    "array_sym": "%%MatrixMarket matrix array real symmetric\n3 3\n1\n2\n3\n4\n5\n6\n",
    "crlf": (COORD.format(field="real", symmetry="general") + "2 2 1\n1 2 3\n").replace("\n", "\r\n"),
}


@pytest.mark.parametrize("name", sorted(VALID_MM))
def test_matrix_market_matches_scipy(tmp_path, name):
    path = write(tmp_path, f"{name}.mtx", VALID_MM[name])
    got = load_matrix_market(path)
    ref = scipy.io.mmread(str(path))
    if sp.issparse(ref):
        assert isinstance(got, sp.csr_matrix)
        got, ref = got.toarray(), ref.toarray()
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, ref)


def test_matrix_market_hand_values(tmp_path):
    X = load_matrix_market(write(tmp_path, "a.mtx", VALID_MM["general"]))
    np.testing.assert_array_equal(X.toarray(), [[2.5, 0, 0, 0], [0, 7, 0, 0], [0, 0, 0, -2e-3]])
    A = load_matrix_market(write(tmp_path, "b.mtx", VALID_MM["array"]))
    np.testing.assert_array_equal(A, [[1, 3, 5], [2, 4, 6]])


H = COORD.format(field="real", symmetry="general")


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ("", None, "file is empty"),
        ("2 2 1\n1 1 1\n", 1, "missing '%%MatrixMarket' header"),
        ("%%MatrixMarket matrix coordinate real\n", 1, "header must be"),
        ("%%MatrixMarket matrix foo real general\n2 2 1\n", 1, "unknown format 'foo'"),
        ("%%MatrixMarket vector coordinate real general\n", 1, "unsupported object 'vector'"),
        ("%%MatrixMarket matrix coordinate complex general\n2 2 1\n1 1 1 0\n", 1, "complex values are not supported"),
        ("%%MatrixMarket matrix coordinate real hermitian\n", 1, "unsupported symmetry"),
        ("%%MatrixMarket matrix array pattern general\n", 1, "pattern matrices must use coordinate"),
        (H, None, "missing size line"),
        (H + "% c\n2 x 1\n", 3, "size line: 'x' is not a non-negative integer"),
        (H + "2 2\n", 2, "size line: expected 3 integers, got 2"),
        (H + "99999999999 3 1\n1 1 1\n", 2, "dimension 99999999999 is too large"),
        ("%%MatrixMarket matrix coordinate real symmetric\n2 3 1\n", 2, "must be square"),
        (H + "2 3 3\n1 1 1\n2 3 2\n", None, "file is truncated: expected 3 entries, got 2"),
        (H + "2 3 1\n1 1 1\n2 3 2\n", 4, "more entries than the 1"),
        (H + "2 3 2\n1 1 1\n3 1 2\n", 4, "row index 3 is out of range 1..2"),
        (H + "2 3 2\n0 1 1\n1 1 2\n", 3, "row index 0 is out of range 1..2"),
        (H + "2 3 1\n1 4 1\n", 3, "column index 4 is out of range 1..3"),
        (H + "2 3 1\n1 1 nan\n", 3, "value 'nan' is not finite"),
        (H + "2 3 1\n1 1 -Infinity\n", 3, "value '-Infinity' is not finite"),
        (H + "2 3 1\n1 1 0x10\n", 3, "value '0x10' is not a number"),
        (H + "2 3 1\n1 1 1_0\n", 3, "value '1_0' is not a number"),
        (H + "2 3 1\n1 1 1 5\n", 3, "expected 3 fields, got 4"),
        (H + "2 3 1\n1.5 1 1\n", 3, "row index '1.5' is not an integer"),
        ("%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n", None, "truncated"),
    ],
)
def test_matrix_market_errors(tmp_path, content, line, fragment):
    path = write(tmp_path, "bad.mtx", content)
    with raises_at(path, line, fragment):
        load_matrix_market(path)


def test_matrix_market_comment_among_entries(tmp_path):
    X = load_matrix_market(write(tmp_path, "a.mtx", H + "2 2 2\n1 1 1\n% note\n2 2 2\n"))
    np.testing.assert_array_equal(X.toarray(), [[1, 0], [0, 2]])


# --------------------------------------------------------------------------- targets and load_xy


def test_vector_plain_and_mtx(tmp_path):
    np.testing.assert_array_equal(load_vector(write(tmp_path, "y.txt", "1\n-2.5\n\n3e2\n")), [1, -2.5, 300])
    col = "%%MatrixMarket matrix array real general\n3 1\n1\n2\n3\n"
    np.testing.assert_array_equal(load_vector(write(tmp_path, "y.mtx", col)), [1, 2, 3])
    row = H + "1 3 1\n1 2 5\n"
    np.testing.assert_array_equal(load_vector(write(tmp_path, "r.mtx", row)), [0, 5, 0])


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ("1\n2 3\n", 2, "expected 1 field, got 2"),
        ("1\nabc\n", 2, "value 'abc' is not a number"),
        ("1\n2\nNaN\n", 3, "value 'NaN' is not finite"),
        ("", None, "file is empty"),
        ("  \n\n", None, "file is empty"),
        ("%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n4\n", None, "expected a vector"),
    ],
)
def test_vector_errors(tmp_path, content, line, fragment):
    path = write(tmp_path, "y.txt", content)
    with raises_at(path, line, fragment):
        load_vector(path)


def test_load_xy_libsvm_and_label_override(tmp_path):
    path = write(tmp_path, "a.txt", "1 1:1\n0 2:1\n")
    X, y = load_xy(path, None, None)
    assert X.shape == (2, 2) and y.tolist() == [1, 0]
    _, y = load_xy(path, "libsvm", write(tmp_path, "y.txt", "5\n6\n"))
    assert y.tolist() == [5, 6]


def test_load_xy_matrix_market_sibling_labels(tmp_path):
    path = write(tmp_path, "a.mtx", H + "2 2 1\n1 1 1\n")
    with raises_at(path, None, "Matrix Market input needs a target file: pass --labels PATH"):
        load_xy(path, None, None)
    write(tmp_path, "a.labels", "1\n2\n")
    X, y = load_xy(path, None, None)
    assert X.shape == (2, 2) and y.tolist() == [1, 2]
    _, y = load_xy(path, "mm", write(tmp_path, "other.txt", "7\n8\n"))
    assert y.tolist() == [7, 8]


def test_load_xy_length_mismatch_names_both_files(tmp_path):
    path = write(tmp_path, "a.mtx", H + "2 2 1\n1 1 1\n")
    labels = write(tmp_path, "y.txt", "1\n2\n3\n")
    with pytest.raises(InputError) as err:
        load_xy(path, "mm", labels)
    assert str(labels) in str(err.value) and str(path) in str(err.value) and "3 targets" in str(err.value)


def test_load_xy_unknown_format(tmp_path):
    with pytest.raises(InputError, match="unknown data format 'csv'"):
        load_xy(write(tmp_path, "a.csv", "1\n"), "csv", None)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("sep", [b",", b"\t", b"::", None])
def test_read_table_fast_and_general_paths_agree(sep):
    rng = np.random.default_rng(3)
    rows = [[f"u{rng.integers(100)}", str(rng.integers(-5, 5)), f"{rng.normal():.6g}"] for _ in range(200)]
    joiner = " " if sep is None else sep.decode()
    text = "\n".join(joiner.join(r) for r in rows) + "\n"
    fast = read_table(text.encode(), "t", sep, (3,))
    general = read_table(("\n" + text).encode(), "t", sep, (3,))  # a blank first line defeats the fast path
    assert general.lines.tolist() == list(range(2, 202)) and fast.lines.tolist() == list(range(1, 201))
    for table in (fast, general):
        assert [[table.token(r, c) for c in range(3)] for r in range(len(table))] == rows
        np.testing.assert_array_equal(table.floats(2, "v"), [float(r[2]) for r in rows])
        np.testing.assert_array_equal(table.ints(1, "i"), [int(r[1]) for r in rows])


@pytest.mark.parametrize(
    "data, sep, line, message",
    [
        (b"1,2,3\n1,,3\n", b",", 2, "empty field"),
        (b"1,2,3\n1,,3 4\n", b",", 2, "empty field"),
        (b"1,2,3\n1,2 x,3\n", b",", 2, "field contains whitespace"),
        (b"1,2,3\n1,2,3,\n", b",", 2, "expected 3 fields, got 4"),
        (b"1 2\n", None, 1, "expected 3 fields, got 2"),
    ],
)
def test_read_table_errors(data, sep, line, message):
    with pytest.raises(InputError, match=f"^t:{line}: {message}$"):
        read_table(data, "t", sep, (3,))


def test_table_floats_are_exact():
    tokens = ["0.1", "-0.3", "3.5", "123456789012345", "1e-7", "5.", ".5", "+2", "-0", "007.250"]
    table = read_table(("\n".join(tokens) + "\n").encode(), "t", None, (1,))
    got = table.floats(0, "v")
    assert got.tolist() == [float(t) for t in tokens]


def test_read_text_strips_bom(tmp_path):
    assert read_text(write(tmp_path, "a", b"\xef\xbb\xbfabc")) == b"abc"
