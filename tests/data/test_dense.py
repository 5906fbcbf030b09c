"""Dense loaders (.npy, CSV, densified LIBSVM) and the Gaussian-blob generator."""
from __future__ import annotations

import numpy as np
import pytest

from smpframe.data.dense import check_dense, guess_format, load_dense, make_blobs
from smpframe.errors import InputError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ---- .npy -----------------------------------------------------------------------------

def test_npy_round_trip_and_int_promotion(tmp_path):
    X = np.arange(12, dtype=np.int32).reshape(4, 3)
    np.save(tmp_path / "x.npy", X)
    got = load_dense(tmp_path / "x.npy")
    assert got.dtype == np.float64 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, X)


@pytest.mark.parametrize("array, message", [
    (np.array([1.0, np.nan, 2.0, 3.0]).reshape(2, 2), "row 0, column 1"),
    (np.array([[1.0, 2.0], [3.0, np.inf]]), "row 1, column 1"),
    (np.zeros(5), "2-D"),
    (np.zeros((0, 3)), "empty data"),
    (np.zeros((3, 0)), "empty data"),
    (np.array([["a", "b"]]), "numeric"),
])
def test_npy_bad_arrays(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(InputError, match=message) as err:
        load_dense(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_npy_object_array_and_garbage(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="obj.npy"):
        load_dense(tmp_path / "obj.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(InputError, match="junk.npy"):
        load_dense(tmp_path / "junk.npy")
    with pytest.raises(InputError, match="file not found"):
        load_dense(tmp_path / "missing.npy")


def test_check_dense_in_memory():
    np.testing.assert_array_equal(check_dense([[1, 2], [3, 4]]), [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(InputError, match="not finite"):
        check_dense(np.array([[1.0, np.nan]]))


# ---- CSV ------------------------------------------------------------------------------

def test_csv_with_header_and_blank_lines(tmp_path):
    path = write(tmp_path, "a.csv", "x,y,z\n1,2,3\n\n4.5, -5e-1 ,6\r\n")
    np.testing.assert_array_equal(load_dense(path), [[1, 2, 3], [4.5, -0.5, 6]])


def test_csv_without_header_and_whitespace_separated(tmp_path):
    np.testing.assert_array_equal(load_dense(write(tmp_path, "b.csv", "1,2\n3,4\n")),
                                  [[1, 2], [3, 4]])
    np.testing.assert_array_equal(load_dense(write(tmp_path, "c.txt", "\n1 2\t3\n4  5 6\n")),
                                  [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(load_dense(write(tmp_path, "d.csv", "7\n8\n")), [[7], [8]])


@pytest.mark.parametrize("text, line, message", [
    ("1,2,3\n4,5\n", 2, "expected 3 fields, got 2"),           # ragged
    ("a,b\n1,2\n3,4,5\n", 3, "expected 2 fields, got 3"),       # ragged after a header
    ("1,2\n3,abc\n", 2, "'abc' is not a number"),
    ("1,2\n3,4\n5,nan\n", 3, "not finite"),
    ("1,2\ninf,4\n", 2, "not finite"),
    ("h1,h2\n1,2\n3,\n", 3, "empty field"),
    ("1,x\n2,3\n", 1, "'x' is not a number"),                  # mixed first line is data
    ("1,2\n3,4\n5,6\n7,oops\n9,bad\n", 4, "'oops'"),           # the earliest bad line
    ("1,2\n3,4\n5,6\n7,8\n9e,1\n", 5, "'9e'"),
])
def test_csv_errors_name_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(InputError, match=message) as err:
        load_dense(path)
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("text, message", [
    ("", "file is empty"), ("\n \n", "file is empty"), ("a,b,c\n", "no data rows"),
])
def test_csv_empty(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        load_dense(write(tmp_path, "e.csv", text))


def test_csv_binary_rejected(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"1,2\n\x00\x01,3\n")
    with pytest.raises(InputError, match="NUL"):
        load_dense(path)


# ---- LIBSVM and format choice ----------------------------------------------------------

def test_libsvm_densified(tmp_path):
    path = write(tmp_path, "d.svm", "1 1:0.5 3:2\n0 2:-1\n")
    np.testing.assert_array_equal(load_dense(path), [[0.5, 0, 2], [0, -1, 0]])
    np.testing.assert_array_equal(load_dense(write(tmp_path, "d.data", "1 1:0.5\n"), "libsvm"),
                                  [[0.5]])


def test_libsvm_bad_line(tmp_path):
    path = write(tmp_path, "bad.svm", "1 1:0.5\n1 2:zz\n")
    with pytest.raises(InputError, match="bad.svm:2"):
        load_dense(path)


def test_format_guess():
    assert guess_format("a.NPY") == "npy" and guess_format("x.csv") == "csv"
    assert guess_format("x.libsvm") == "libsvm"
    with pytest.raises(InputError, match="--format"):
        guess_format("data.bin")
    with pytest.raises(InputError, match="unknown format"):
        load_dense("x.csv", "hdf5")


# ---- blobs ------------------------------------------------------------------------------

def test_make_blobs_deterministic_and_clustered():
    X, labels = make_blobs(n=6400, d=3, centers=64, seed=5)
    assert X.shape == (6400, 3) and labels.shape == (6400,)
    assert np.bincount(labels).tolist() == [100] * 64
    X2, labels2 = make_blobs(n=6400, d=3, centers=64, seed=5)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(labels, labels2)
    assert not np.array_equal(make_blobs(n=6400, d=3, centers=64, seed=6)[0], X)
    # points sit about one standard deviation from their blob's mean
    means = np.array([X[labels == j].mean(axis=0) for j in range(64)])
    spread = np.sqrt(((X - means[labels]) ** 2).sum(axis=1).mean() / 3)
    assert 0.9 < spread < 1.1
    assert make_blobs().__len__() == 2 and make_blobs()[0].shape == (270_000, 3)
