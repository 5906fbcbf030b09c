"""Files that claim more than they hold, or more memory than the budget, are one line."""
from __future__ import annotations

import numpy as np
import pytest

from smpframe.data import budget
from smpframe.data.dense import load_dense
from smpframe.data.matrix import load_libsvm
from smpframe.data.text import load_ldac, load_uci_bow
from smpframe.errors import InputError


@pytest.fixture
def small_budget():
    budget.set_limit(64 << 20)  # 64 MiB
    yield
    budget.set_limit(None)


def test_an_npy_header_claiming_more_than_the_file_holds(tmp_path):
    path = tmp_path / "huge.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**9, 1000)})
        fh.write(b"\0" * 4000)
    with pytest.raises(InputError, match="header claims a 1000000000 x 1000") as err:
        load_dense(path)
    assert "huge.npy" in str(err.value)


def test_an_npy_within_its_size_but_over_the_budget(tmp_path, small_budget):
    path = tmp_path / "big.npy"
    np.save(path, np.zeros((1 << 20, 9)))  # 72 MiB
    with pytest.raises(InputError, match="memory budget of 64.0 MiB"):
        load_dense(path)


@pytest.mark.parametrize("text", [b"1 2000000000:1\n", b"1 1:1 2000000000:2 # careful reader\n"])
def test_a_libsvm_index_of_two_billion(tmp_path, text):
    path = tmp_path / "wide.svm"
    path.write_bytes(text)
    with pytest.raises(InputError, match="2000000000 features") as err:
        load_libsvm(path)
    assert "wide.svm" in str(err.value) and "--max-memory" in str(err.value)


def test_a_uci_header_claiming_two_billion_documents(tmp_path):
    path = tmp_path / "docword.x.txt"
    path.write_bytes(b"2000000000\n2000000000\n1\n1 1 1\n")
    with pytest.raises(InputError, match="D=2000000000"):
        load_uci_bow(path)


def test_an_ldac_count_of_two_billion(tmp_path):
    path = tmp_path / "docs.ldac"
    path.write_bytes(b"1 0:2000000000\n")
    with pytest.raises(InputError, match="2000000000 tokens") as err:
        load_ldac(path)
    assert "docs.ldac" in str(err.value)


@pytest.mark.parametrize("text, size", [("8G", 8 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29),
                                        ("100", 100)])
def test_sizes_parse(text, size):
    assert budget.parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "8X"])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        budget.parse_size(text)
