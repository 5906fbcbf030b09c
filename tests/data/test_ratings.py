"""Rating-triplet loader: formats, id remapping, errors, speed, and test-to-train id mapping."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from smpframe.data.ratings import Ratings, apply_mapping, load_ratings
from smpframe.errors import InputError


def write(tmp_path, name: str, content: bytes | str):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def triplets(r: Ratings) -> list[tuple]:
    """(original user, original item, rating) per rating, in file order."""
    return list(zip(r.user_ids[r.users].tolist(), r.item_ids[r.items].tolist(), r.values.tolist()))


def test_movielens_u_data(tmp_path):
    content = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n"
    r = load_ratings(write(tmp_path, "u.data", content))
    assert r.users.tolist() == [1, 0, 1] and r.user_ids.tolist() == [186, 196]
    assert r.items.tolist() == [0, 1, 2] and r.item_ids.tolist() == [242, 302, 377]
    assert r.values.tolist() == [3, 3, 1]
    assert r.users.dtype == np.int64 and r.values.dtype == np.float64 and (r.n_users, r.n_items, len(r)) == (2, 3, 3)


def test_movielens_ratings_csv_with_header(tmp_path):
    content = "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1\n7,31,4,2\n"
    r = load_ratings(write(tmp_path, "ratings.csv", content))
    assert triplets(r) == [(1, 31, 2.5), (1, 1029, 3.0), (7, 31, 4.0)]


def test_movielens_ratings_dat(tmp_path):
    r = load_ratings(write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::661::4::9\n"))
    assert triplets(r) == [(1, 1193, 5.0), (1, 661, 3.0), (2, 661, 4.0)]


def test_whitespace_string_ids_and_blank_lines(tmp_path):
    r = load_ratings(write(tmp_path, "r.txt", "  alice  x 1\n\nbob\ty 2.5\ncarol x -1e1\n"))
    assert r.user_ids.dtype == object and r.user_ids.tolist() == ["alice", "bob", "carol"]
    assert triplets(r) == [("alice", "x", 1.0), ("bob", "y", 2.5), ("carol", "x", -10.0)]


def test_unicode_ids(tmp_path):
    r = load_ratings(write(tmp_path, "r.csv", "zoë,café,1\nzoë,thé,2\n"))
    assert triplets(r) == [("zoë", "café", 1.0), ("zoë", "thé", 2.0)]


def test_leading_zero_ids_stay_distinct(tmp_path):
    r = load_ratings(write(tmp_path, "r.txt", "007 1 1\n7 1 2\n-0 1 3\n"))
    assert r.user_ids.tolist() == ["-0", "007", "7"] and r.users.tolist() == [1, 2, 0]
    assert r.item_ids.tolist() == [1]


def test_sparse_and_negative_int_ids(tmp_path):
    r = load_ratings(write(tmp_path, "r.txt", "-5 10 1\n900000000000 10 2\n-5 3 3\n"))
    assert r.user_ids.tolist() == [-5, 900000000000] and r.users.tolist() == [0, 1, 0]
    assert r.item_ids.tolist() == [3, 10] and r.items.tolist() == [1, 1, 0]


def test_matrix_market_ratings(tmp_path):
    content = "%%MatrixMarket matrix coordinate real general\n% c\n5 6 3\n1 6 5\n4 2 1\n1 2 3.5\n"
    r = load_ratings(write(tmp_path, "r.mtx", content))
    assert triplets(r) == [(1, 6, 5.0), (4, 2, 1.0), (1, 2, 3.5)]
    r2 = load_ratings(write(tmp_path, "r2.txt", content), fmt=None)  # guessed from the banner
    assert triplets(r2) == triplets(r)


def test_explicit_format(tmp_path):
    path = write(tmp_path, "r.txt", "a,b c,1\n")  # guessed csv would reject the space in 'b c'
    with pytest.raises(InputError, match="field contains whitespace"):
        load_ratings(path)
    with pytest.raises(InputError, match="expected 3 or 4 fields, got 2"):
        load_ratings(path, fmt="space")


@pytest.mark.parametrize(
    "name, content, line, fragment",
    [
        ("r.txt", "1 2 3\n1 2\n", 2, "expected 3 fields, got 2"),
        ("r.txt", "1 2 3 4 5\n", 1, "expected 3 or 4 fields, got 5"),
        ("r.csv", "u,i,r\n1,2,3\n1,2\n", 3, "expected 3 fields, got 2"),
        ("r.txt", "1 2 3\n1 2 abc\n", 2, "rating 'abc' is not a number"),
        ("r.txt", "1 2 3\n1 2 nan\n", 2, "rating 'nan' is not finite"),
        ("r.txt", "1 2 3\n1 2 -inf\n", 2, "rating '-inf' is not finite"),
        ("r.csv", "1,,3\n", 1, "empty field"),
        ("r.txt", "", None, "file is empty"),
        ("r.csv", "user,item,rating\n", None, "no ratings"),
        ("r.txt", b"1 2 3\n\xff 2 3\n", 2, "not UTF-8 text"),
        ("r.mtx", "%%MatrixMarket matrix coordinate real general\n2 2 0\n", None, "no ratings"),
        ("r.mtx", "%%MatrixMarket matrix array real general\n1 1\n3\n", None, "coordinate format"),
        ("r.mtx", "%%MatrixMarket matrix coordinate real general\n2 2 1\n3 1 1\n", 3, "row index 3 is out of range"),
    ],
)
def test_errors(tmp_path, name, content, line, fragment):
    path = write(tmp_path, name, content)
    where = f"{path}:{line}: " if line else f"{path}: "
    with pytest.raises(InputError, match="^" + re.escape(where) + ".*" + re.escape(fragment)):
        load_ratings(path)


def test_tsv_format_detects_empty_fields(tmp_path):
    path = write(tmp_path, "r.tsv", "1\t2\t3\n1\t\t3\n")
    assert len(load_ratings(write(tmp_path, "ok.tsv", "1\t2\t3\n"), "tsv")) == 1
    with pytest.raises(InputError, match=":2: empty field"):
        load_ratings(path, "tsv")


def test_unknown_format(tmp_path):
    with pytest.raises(InputError, match="unknown ratings format 'json'"):
        load_ratings(write(tmp_path, "r.txt", "1 2 3\n"), fmt="json")


def test_random_file_matches_python_reference(tmp_path):
    rng = np.random.default_rng(7)
    n = 5000
    users = rng.choice(["u1", "u22", "7", "x-y", "Ω"], n)
    items = rng.integers(0, 10**12, n)
    values = [round(v, d) for v, d in zip(rng.normal(3, 2, n).tolist(), rng.integers(0, 8, n).tolist())]
    values[:3] = [1e-300, -2.5e10, 123456789.0123456789]  # beyond the vectorised fast path
    lines = [f"{u}\t{i}\t{v!r}\t{t}" for u, i, v, t in zip(users, items, values, rng.integers(0, 10**9, n))]
    r = load_ratings(write(tmp_path, "r.tsv", "\n".join(lines)))
    assert triplets(r) == [(str(u), int(i), float(v)) for u, i, v in zip(users, items, values)]
    assert r.user_ids.tolist() == sorted(set(users.tolist()))


def test_100k_lines_well_under_a_second(tmp_path):
    rng = np.random.default_rng(0)
    n = 100_000
    cols = [rng.integers(1, 1000, n), rng.integers(1, 2000, n), rng.integers(1, 11, n) / 2, rng.integers(0, 10**9, n)]
    text = "".join(f"{u}::{i}::{v}::{t}\n" for u, i, v, t in zip(*cols))
    path = write(tmp_path, "ratings.dat", text)
    start = time.process_time()
    r = load_ratings(path)
    assert time.process_time() - start < 1.0
    assert len(r) == n and r.values.tolist() == cols[2].tolist()


def test_apply_mapping_int_ids(tmp_path):
    train = load_ratings(write(tmp_path, "a.txt", "1 10 5\n2 20 4\n3 10 1\n"))
    users, items, known = apply_mapping(train, np.array([2, 9, 3]), np.array([10, 20, 99]))
    assert users.tolist() == [1, -1, 2] and items.tolist() == [0, 1, -1]
    assert known.tolist() == [True, False, False]


def test_apply_mapping_mixed_str_and_int_ids(tmp_path):
    train = load_ratings(write(tmp_path, "a.txt", "1 10 5\n2 20 4\nbob 10 1\n"))
    test = load_ratings(write(tmp_path, "b.txt", "2 10 5\nbob 20 4\n3 u 1\n"))
    users, items, known = apply_mapping(train, test.user_ids[test.users], test.item_ids[test.items])
    assert train.user_ids[users[:2]].tolist() == ["2", "bob"] and users[2] == -1
    assert train.item_ids[items[:2]].tolist() == [10, 20] and items[2] == -1
    assert known.tolist() == [True, True, False]
