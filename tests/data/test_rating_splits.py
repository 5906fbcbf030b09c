"""Rating files cut into splits the workers read: wherever the byte cuts fall, the splits'
codes and ids are those of the whole file read in one process; errors name the file's line."""
from __future__ import annotations

import numpy as np
import pytest

from smpframe.data import splits
from smpframe.data.rating_splits import decode_ids, encode_ids, ratings_splits
from smpframe.data.ratings import load_ratings
from smpframe.errors import InputError


def read_in_splits(path, cuts: list[int], fmt: str | None = None):
    """(users, items, values, user ids, item ids) read as the workers do: byte ranges
    [cuts[i], cuts[i + 1]), their facts combined into one layout, each finished under it."""
    whole = ratings_splits(str(path), fmt)
    parts = [{"reader": "ratings", "path": whole.path, "start": a, "stop": b,
              "options": whole.options} for a, b in zip(cuts[:-1], cuts[1:])]
    read = [splits.read(part) for part in parts]
    plan = splits.layout("ratings", [facts for _, facts in read], whole.path)
    done = [splits.finish(part, rows, plan) for part, (rows, _) in zip(parts, read)]
    return (*(np.concatenate([d[key] for d in done]) for key in ("users", "items", "values")),
            decode_ids(plan["user_ids"]), decode_ids(plan["item_ids"]))


def assert_same_as_whole(path, cuts, fmt=None):
    users, items, values, user_ids, item_ids = read_in_splits(path, cuts, fmt)
    ref = load_ratings(path, fmt)
    np.testing.assert_array_equal(users, ref.users)
    np.testing.assert_array_equal(items, ref.items)
    np.testing.assert_array_equal(values, ref.values)
    assert user_ids.dtype == ref.user_ids.dtype and list(user_ids) == list(ref.user_ids)
    assert item_ids.dtype == ref.item_ids.dtype and list(item_ids) == list(ref.item_ids)


def every_cut(path, n: int = 4, seed: int = 0) -> list[list[int]]:
    """Cuts at every byte into 2 splits, and random cuts into n."""
    size = path.stat().st_size
    rng = np.random.default_rng(seed)
    cuts = [[0, c, size] for c in range(size + 1)]
    return cuts + [[0, *sorted(rng.integers(0, size + 1, n - 1).tolist()), size] for _ in range(40)]


FILES = {
    "header.csv": "userId,movieId,rating,timestamp\n"
                  + "".join(f"{u},{i},{r}.5,99\n" for u, i, r in [(3, 7, 4), (1, 7, 2), (3, 2, 1),
                                                                     (12, 5, 3), (1, 2, 4)]),
    "names.dat": "".join(f"{u}::{i}::{r}\n" for u, i, r in [("ann", "film-b", 4), ("bob", "film-a", 3),
                                                            ("ann", "film-a", 5), ("zoë", "film-c", 1)]),
    # "007" is not 7: one padded id in one split makes every split's ids text
    "mixed.tsv": "".join(f"{u}\t{i}\t{r}\n" for u, i, r in [(7, 1, 3), (8, 2, 4), ("007", 1, 2),
                                                             (9, 3, 5), (7, 3, 1)]),
    "comments.mtx": "%%MatrixMarket matrix coordinate real general\n% users x items\n"
                    "4 6 5\n1 2 3.5\n4 6 1\n% a comment among the entries\n2 2 5\n1 6 2\n4 1 4\n",
    "bom.csv": "\ufeff1,2,3\n2,2,4\n1,3,5\n",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_byte_cut_reads_the_whole_files_codes_and_ids(tmp_path, name):
    path = tmp_path / name
    path.write_text(FILES[name], encoding="utf-8")
    for cuts in every_cut(path):
        assert_same_as_whole(path, cuts)


def test_a_large_file_in_many_splits(tmp_path):
    rng = np.random.default_rng(3)
    n = 30_000
    users, items = rng.integers(1, 700, n), rng.integers(1, 9000, n)
    values = rng.integers(1, 11, n) / 2
    path = tmp_path / "big.csv"
    path.write_text("user,item,rating\n" + "".join(f"{u},{i},{v}\n" for u, i, v in
                                                   zip(users, items, values)))
    for n_splits in (1, 3, 16):
        parts = splits.cut("ratings", str(path), n_splits, ratings_splits(str(path)).options)
        assert len(parts) == n_splits
        assert_same_as_whole(path, [p["start"] for p in parts] + [parts[-1]["stop"]])


def raises_at(path, line: int | None, fragment: str, n_splits: int = 5):
    whole = ratings_splits(str(path))
    with pytest.raises(InputError) as err:
        read = [splits.read(part) for part in splits.cut("ratings", whole.path, n_splits, whole.options)]
        splits.layout("ratings", [facts for _, facts in read], whole.path)
    assert err.value.line == line and fragment in err.value.message, str(err.value)


GOOD = "".join(f"{u},{u % 13},4\n" for u in range(3000))  # 5 splits of about 4 KB


@pytest.mark.parametrize("bad, fragment", [
    ("1,2,four\n", "rating 'four' is not a number"),
    ("1,2,nan\n", "rating 'nan' is not finite"),
    ("1,2\n", "expected 3 fields, got 2"),
])
def test_a_bad_line_in_a_later_split_is_named_by_its_line_in_the_file(tmp_path, bad, fragment):
    path = tmp_path / "r.csv"
    path.write_text(GOOD + GOOD[:300] + bad + GOOD)
    raises_at(path, 3000 + GOOD[:300].count("\n") + 1, fragment)


def test_splits_that_disagree_on_the_field_count_are_named(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(GOOD + GOOD.replace(",4\n", ",4,1\n"))
    raises_at(path, 3001, "got 4")  # within a split, or between two
    with pytest.raises(InputError, match=r"r.csv:3001: expected 3 fields \(as on the lines before\), got 4"):
        read_in_splits(path, [0, len(GOOD), path.stat().st_size])


def test_matrix_market_size_line_and_indices_are_checked(tmp_path):
    entries = "".join(f"{1 + k % 40} {1 + k % 70} 3\n" for k in range(2000))
    path = tmp_path / "r.mtx"
    path.write_text(f"%%MatrixMarket matrix coordinate real general\n40 70 2001\n{entries}")
    raises_at(path, None, "the size line promises 2001 entries, the file has 2000")
    path.write_text(f"%%MatrixMarket matrix coordinate real general\n40 70 2001\n{entries}41 1 2\n")
    raises_at(path, 2003, "row index 41 is out of range 1..40")


def test_symmetric_matrix_market_and_empty_files(tmp_path):
    path = tmp_path / "s.mtx"
    path.write_text("%%MatrixMarket matrix coordinate real symmetric\n3 3 1\n1 2 4\n")
    assert ratings_splits(str(path)) is None  # read whole: mirrored entries
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="file is empty"):
        ratings_splits(str(empty))
    header = tmp_path / "header.csv"
    header.write_text("user,item,rating\n")
    raises_at(header, None, "no samples in file", n_splits=1)
    with pytest.raises(InputError, match="unknown ratings format 'xml'"):
        ratings_splits(str(header), "xml")


@pytest.mark.parametrize("ids", [np.array([-5, 0, 3, 2**40]), np.array(["", "a", "b\u00e9", "\u00e9t\u00e9"], dtype=object)])
def test_ids_cross_the_wire_as_numbers_or_bytes(ids):
    enc = encode_ids(ids)
    assert all(v.dtype.kind in "iu" for v in enc.values())
    back = decode_ids(enc)
    assert list(back) == list(ids) and back.dtype == (np.int64 if ids.dtype.kind == "i" else object)
