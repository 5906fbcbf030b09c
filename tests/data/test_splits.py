"""Splits read by the workers: every line read exactly once, the file's own layout, errors at
the file's line."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from smpframe.data import splits
from smpframe.data.dense import load_dense
from smpframe.data.matrix import load_libsvm
from smpframe.errors import InputError


def read_all(reader: str, path: str, n: int) -> list[dict]:
    """Every split's rows under the file's layout, as the runtime reads them."""
    parts = splits.cut(reader, path, n)
    read = [splits.read(part) for part in parts]
    plan = splits.layout(reader, [facts for _, facts in read], path)
    return [splits.finish(part, rows, plan) for part, (rows, _) in zip(parts, read)]


@pytest.fixture(autouse=True)
def small_splits(monkeypatch):
    monkeypatch.setattr(splits, "MIN_SPLIT_BYTES", 1)  # test files are small


@pytest.mark.parametrize("seed", range(6))
def test_any_cut_reads_every_line_once(tmp_path, seed):
    rng = np.random.default_rng(seed)
    lines = [b"x" * int(rng.integers(0, 30)) for _ in range(int(rng.integers(1, 40)))]
    text = b"\n".join(lines) + (b"\n" if seed % 2 else b"")
    path = tmp_path / "f.txt"
    path.write_bytes(text)
    for _ in range(30):
        edges = np.unique(np.concatenate([[0, len(text)], rng.integers(0, len(text) + 1, 5)]))
        got = b"".join(splits.read_lines(str(path), int(a), int(b))[0]
                       for a, b in zip(edges[:-1], edges[1:]))
        assert got == text


def test_offset_of_each_split_is_where_its_first_line_starts(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"aaa\nbb\nc\n")
    assert splits.read_lines(str(path), 0, 2) == (b"aaa\n", 0)
    assert splits.read_lines(str(path), 2, 5) == (b"bb\n", 4)   # "bb" starts at byte 4
    assert splits.read_lines(str(path), 4, 5) == (b"bb\n", 4)   # a line starting at `start` is ours
    assert splits.read_lines(str(path), 5, 6)[0] == b""         # no line starts in 5..6


def libsvm_text(rng: np.random.Generator, n: int, d: int, zero_based: bool) -> bytes:
    out = []
    for _ in range(n):
        cols = np.sort(rng.choice(d, size=int(rng.integers(0, 5)), replace=False))
        pairs = " ".join(f"{c + (0 if zero_based else 1)}:{rng.normal():.6g}" for c in cols)
        out.append(f"{rng.normal():.6g} {pairs}".strip())
    return ("\n".join(out) + "\n").encode()


@pytest.mark.parametrize("zero_based", [False, True])
@pytest.mark.parametrize("n", [1, 2, 5, 13])
def test_libsvm_splits_join_to_the_whole_file(tmp_path, zero_based, n):
    path = tmp_path / "d.svm"
    path.write_bytes(libsvm_text(np.random.default_rng(n), 200, 30, zero_based))
    X, y = load_libsvm(path)
    parts = read_all("libsvm", str(path), n)
    assert len(parts) == n
    np.testing.assert_array_equal(sp.vstack([p["X"] for p in parts]).toarray(), X.toarray())
    np.testing.assert_array_equal(np.concatenate([p["y"] for p in parts]), y)


def test_the_base_is_decided_file_wide(tmp_path):
    path = tmp_path / "d.svm"
    path.write_bytes(b"1 1:1 3:2\n" * 50 + b"2 0:5\n")  # only the last line has index 0
    parts = read_all("libsvm", str(path), 4)
    X = sp.vstack([p["X"] for p in parts]).tocsr()
    assert X.shape == (51, 4) and X[0, 1] == 1 and X[50, 0] == 5  # 0-based everywhere
    assert all(p["X"].shape[1] == 4 for p in parts)


def test_a_bad_line_in_a_later_split_is_named_by_its_line_in_the_file(tmp_path):
    path = tmp_path / "d.svm"
    path.write_bytes(b"1 1:1\n" * 40 + b"1 2:oops\n" + b"1 1:1\n" * 40)
    parts = splits.cut("libsvm", str(path), 6)
    with pytest.raises(InputError, match=r"d\.svm:41: value 'oops' is not a number"):
        for part in parts:
            splits.read(part)


def test_empty_and_featureless_files_are_refused(tmp_path):
    empty, bare = tmp_path / "e.svm", tmp_path / "b.svm"
    empty.write_bytes(b"\n\n")
    bare.write_bytes(b"1\n2\n")
    with pytest.raises(InputError, match="no samples"):
        read_all("libsvm", str(empty), 2)
    with pytest.raises(InputError, match="no features"):
        read_all("libsvm", str(bare), 2)


def test_csv_header_only_in_the_first_split_and_widths_agree(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n" + "".join(",".join(f"{v:.17g}" for v in row) + "\n" for row in X))
    for n in (1, 3, 7):
        got = np.concatenate([p["X"] for p in read_all("csv", str(path), n)])
        np.testing.assert_array_equal(got, load_dense(path))
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n" * 30 + "1,2,3\n" * 30)
    with pytest.raises(InputError, match="bad.csv:31: expected 2 fields"):
        read_all("csv", str(bad), 4)


def test_npy_row_ranges_and_a_bad_cell_named_by_its_row_in_the_file(tmp_path):
    X = np.arange(60.0).reshape(20, 3)
    path = tmp_path / "x.npy"
    np.save(path, X)
    np.testing.assert_array_equal(np.concatenate([p["X"] for p in read_all("npy", str(path), 6)]), X)
    X[17, 2] = np.nan
    np.save(path, X)
    with pytest.raises(InputError, match=r"row 17, column 2 \(0-based\)"):
        read_all("npy", str(path), 6)
    np.save(path, np.zeros(5))
    with pytest.raises(InputError, match="2-D numeric"):
        splits.cut("npy", str(path), 2)


def test_a_missing_file_and_an_unknown_reader(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        splits.cut("libsvm", str(tmp_path / "none.svm"), 2)
    with pytest.raises(InputError, match="no split reader"):
        splits.cut("parquet-ish", str(tmp_path / "x"), 2)


def test_small_files_are_not_cut_below_the_minimum(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "MIN_SPLIT_BYTES", 4096)
    path = tmp_path / "d.svm"
    path.write_bytes(b"1 1:1\n" * 1000)  # 6000 bytes: one split, however many asked
    assert len(splits.cut("libsvm", str(path), 8)) == 1


def test_a_whole_file_read_in_chunks_is_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "WHOLE_CHUNK_BYTES", 500)
    path = tmp_path / "d.svm"
    path.write_bytes(libsvm_text(np.random.default_rng(9), 300, 40, zero_based=False))
    X, y = load_libsvm(path)
    rows = splits.read_whole("libsvm", str(path))
    assert rows["X"].shape == X.shape and (rows["X"] != X).nnz == 0
    np.testing.assert_array_equal(rows["y"], y)


# ---- Parquet ------------------------------------------------------------------------------

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def write_parquet(path, columns: dict, row_group_size: int) -> None:
    pq.write_table(pa.table(columns), str(path), row_group_size=row_group_size)


def test_parquet_splits_are_row_groups_that_join_to_the_table(tmp_path):
    rng = np.random.default_rng(5)
    cols = {"a": rng.normal(size=1000), "b": rng.integers(0, 9, 1000), "y": rng.normal(size=1000)}
    path = tmp_path / "t.parquet"
    write_parquet(path, cols, row_group_size=90)  # 12 row groups
    parts = splits.cut("parquet", str(path), 5, {"target": "auto", "sparse": True})
    assert len(parts) == 5 and parts[0]["start"] == 0 and parts[-1]["stop"] == 12
    rows = read_all("parquet", str(path), 5)  # no target: every column a feature
    np.testing.assert_array_equal(np.concatenate([p["X"] for p in rows]),
                                  np.column_stack([cols["a"], cols["b"], cols["y"]]))
    read = [splits.read(part)[0] for part in parts]
    np.testing.assert_array_equal(np.concatenate([r["y"] for r in read]), cols["y"])
    X = sp.vstack([r["X"] for r in read]).toarray()
    np.testing.assert_array_equal(X, np.column_stack([cols["a"], cols["b"]]))


@pytest.mark.parametrize("column, message", [
    (pa.array([1.0, None, 3.0] * 40), r"column 'bad', row 1\b.*null"),
    (pa.array([1.0, 2.0, float("inf")] * 40), r"column 'bad', row 2\b.*not finite"),
    (pa.array(["x"] * 120), r"column 'bad' is string"),
])
def test_bad_parquet_columns_are_named_with_their_row(tmp_path, column, message):
    path = tmp_path / "bad.parquet"
    write_parquet(path, {"a": np.arange(120.0), "bad": column}, row_group_size=50)
    with pytest.raises(InputError, match=message):
        for part in splits.cut("parquet", str(path), 3):
            splits.read(part)


def test_parquet_rows_are_counted_from_the_file_start(tmp_path):
    values = np.arange(300.0)
    values[257] = np.nan
    path = tmp_path / "late.parquet"
    write_parquet(path, {"v": values}, row_group_size=100)
    with pytest.raises(InputError, match=r"late\.parquet: column 'v', row 257 "):
        for part in splits.cut("parquet", str(path), 3):
            splits.read(part)


def test_a_parquet_file_without_a_target_or_not_parquet_at_all(tmp_path):
    path = tmp_path / "t.parquet"
    write_parquet(path, {"a": np.arange(10.0)}, row_group_size=5)
    with pytest.raises(InputError, match="no target column"):
        splits.read(splits.cut("parquet", str(path), 1, {"target": "auto"})[0])
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        splits.cut("parquet", str(junk), 2)


# ---- URLs (fsspec) ------------------------------------------------------------------------

def test_a_url_reads_as_its_file(tmp_path):
    pytest.importorskip("fsspec")
    path = tmp_path / "d.svm"
    path.write_bytes(libsvm_text(np.random.default_rng(2), 150, 20, zero_based=False))
    url = path.as_uri()  # file:///...: the same fsspec code path as s3://, gs://, hdfs://
    local = sp.vstack([p["X"] for p in read_all("libsvm", str(path), 4)])
    remote = sp.vstack([p["X"] for p in read_all("libsvm", url, 4)])
    assert (local != remote).nnz == 0 and len(splits.cut("libsvm", url, 4)) == 4
    table = tmp_path / "t.parquet"
    write_parquet(table, {"a": np.arange(40.0), "y": np.ones(40)}, row_group_size=10)
    rows = read_all("parquet", table.as_uri(), 2)
    np.testing.assert_array_equal(np.concatenate([r["X"] for r in rows])[:, 0], np.arange(40.0))


def test_urls_that_cannot_be_read(tmp_path):
    pytest.importorskip("fsspec")
    with pytest.raises(InputError, match="file not found"):
        splits.cut("libsvm", (tmp_path / "none.svm").as_uri(), 2)
    with pytest.raises(InputError, match="cannot open"):
        splits.cut("libsvm", "nosuchprotocol://bucket/x.svm", 2)
    with pytest.raises(InputError, match="local path"):
        splits.cut("npy", (tmp_path / "x.npy").as_uri(), 2)
