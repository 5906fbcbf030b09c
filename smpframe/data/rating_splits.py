"""Rating files as splits the workers read (reader "ratings", :mod:`smpframe.data.splits`).

A split owns the rating lines that start in its byte range (past the file's head: a BOM,
a header line, or Matrix Market's banner, comments and size line). Its facts are each
side's distinct ids; the layout is the file's sorted ids (integers if every split's are,
else bytes, sorted as :func:`~smpframe.data.ratings.load_ratings` sorts them), so a split's
dense codes are the codes the whole file read in one process gets. Ids cross the wire as
numbers, or as one UTF-8 buffer with end offsets (no string arrays there).

Kept apart from :mod:`smpframe.data.ratings` so that importing the split readers does not
import scipy (a K-Means worker never needs it).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from smpframe.data.textio import check_text, quote, read_bytes, read_table
from smpframe.errors import InputError


_BOM = b"\xef\xbb\xbf"
#: how much of a file's head is read to find its format and where the ratings begin
_HEAD_BYTES = 1 << 20


def ratings_splits(path: str, fmt: str | None = None) -> Any:
    """A ratings file as :class:`~smpframe.api.Splits` its workers read (reader "ratings").

    Only the file's head is read here: the format, and where the ratings begin (past a
    BOM, a header line, or Matrix Market's banner, comments and size line). None for a
    Matrix Market file other than coordinate real/integer general: read it whole
    (:func:`load_ratings`).
    """
    from smpframe.api import Splits
    from smpframe.data.matrix import mm_header
    from smpframe.data.ratings import SEPARATORS, guess_format, skip_header

    from smpframe.data.splits import is_url, open_binary

    if is_url(path):  # any fsspec file system: the workers read their splits from it too
        with open_binary(path) as fh:
            head = fh.read(_HEAD_BYTES)
    else:
        head = read_bytes(path, _HEAD_BYTES)
    if len(head) == _HEAD_BYTES:  # whole lines only: a cut character is not bad text
        head = head[:head.rfind(b"\n") + 1] or head
    bom = len(_BOM) if head.startswith(_BOM) else 0
    text = check_text(head[bom:], path)
    if not text.strip():
        raise InputError("file is empty", path)
    fmt = guess_format(path, text) if fmt is None else fmt
    if fmt == "mm":
        mm = mm_header(text, path)
        if (mm.fmt, mm.symmetry) != ("coordinate", "general") or mm.field not in ("real", "integer"):
            return None
        options = {"fmt": fmt, "body": bom + mm.body, "shape": list(mm.shape), "nnz": mm.nnz}
    elif fmt in SEPARATORS:
        header = skip_header(text, SEPARATORS[fmt])[0]  # without one, split 0 drops the BOM
        options = {"fmt": fmt, "body": bom + header if header else 0}
    else:
        raise InputError(f"unknown ratings format {quote(fmt)} (expected one of csv, tsv, dat, space, mm)")
    return Splits("ratings", str(path), options)


def _read_split(split: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A split's ratings as written (ids int64 when canonical integers, else bytes), and its
    facts: each side's distinct ids, the field count and the offset of its first line."""
    from smpframe.data.splits import in_file, split_text

    path, opts = split["path"], split["options"]
    start = max(split["start"], opts["body"])
    data, begin = (b"", split["stop"]) if start >= split["stop"] else \
        split_text({**split, "start": start})
    users, items, values, width = in_file(lambda: _parse_split(data, path, opts), path, begin)
    facts = {"width": width, "begin": begin, **_id_facts("user", users), **_id_facts("item", items)}
    if opts["fmt"] == "mm":
        facts["nnz"] = opts["nnz"]
    return {"users": users, "items": items, "values": values}, facts


def _parse_split(data: bytes, path: str, opts: dict[str, Any]):
    """(user ids, item ids, ratings, fields per line or None) of a split's lines."""
    from smpframe.data.matrix import blank_comments, mm_index
    from smpframe.data.ratings import SEPARATORS, id_column
    if opts["fmt"] == "mm":
        table = read_table(blank_comments(data), path, None, (3,))
        n_rows, n_cols = opts["shape"]
        users = mm_index(table, 0, n_rows, "row index") + 1  # ids: the 1-based numbers
        items = mm_index(table, 1, n_cols, "column index") + 1
    else:
        table = read_table(data, path, SEPARATORS[opts["fmt"]], (3, 4))
        users, items = id_column(table, 0), id_column(table, 1)
    width = int(table.starts.shape[1]) if len(table) else None
    return users, items, table.floats(2, "rating"), width


def _id_facts(side: str, ids: np.ndarray) -> dict[str, np.ndarray]:
    """A split's distinct ids of one side, for the wire (numbers, or bytes and ends)."""
    uniq = np.unique(ids)
    if uniq.dtype.kind == "i":
        return {f"{side}_ints": uniq}
    enc = encode_ids(uniq)
    return {f"{side}_bytes": enc["bytes"], f"{side}_ends": enc["ends"]}


def _layout(facts: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """Every split's lines have one field count; the file's sorted ids of each side
    (numbers if every split's are, else bytes: a number's digits are its text)."""
    from smpframe.data.splits import same_width

    same_width(facts, path)
    if "nnz" in facts[0]:
        entries = sum(f["n_rows"] for f in facts)
        if entries != facts[0]["nnz"]:
            raise InputError(f"the size line promises {facts[0]['nnz']} entries, the file has "
                             f"{entries}", path)
    return {"user_ids": _merge_ids(facts, "user"), "item_ids": _merge_ids(facts, "item")}


def _merge_ids(facts: list[dict[str, Any]], side: str) -> dict[str, np.ndarray]:
    ints = [f.get(f"{side}_ints") for f in facts]
    if all(i is not None for i in ints):
        return {"ints": np.unique(np.concatenate(ints))}
    parts = [i.astype("S") if i is not None else
             _known({"bytes": f[f"{side}_bytes"], "ends": f[f"{side}_ends"]})
             for i, f in zip(ints, facts)]
    return encode_ids(np.unique(np.concatenate(parts)))


def _finish(rows: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """A split's ratings with dense codes: positions in the file's sorted ids."""
    return {"users": _codes(plan["user_ids"], rows["users"]),
            "items": _codes(plan["item_ids"], rows["items"]), "values": rows["values"]}


def _codes(enc: dict[str, np.ndarray], raw: np.ndarray) -> np.ndarray:
    known = _known(enc)
    if known.dtype.kind == "S" and raw.dtype.kind == "i":
        raw = raw.astype("S")
    return np.searchsorted(known, raw).astype(np.int64)


def encode_ids(ids: np.ndarray) -> dict[str, np.ndarray]:
    """Sorted ids for the wire (no object or string arrays there): int64 as they are,
    str/bytes as one UTF-8 buffer and each id's end offset."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return {"ints": ids.astype(np.int64)}
    raw = [i.encode("utf-8") if isinstance(i, str) else bytes(i) for i in ids.tolist()]
    ends = np.cumsum([len(r) for r in raw], dtype=np.int64)
    return {"bytes": np.frombuffer(b"".join(raw), np.uint8), "ends": ends}


def decode_ids(enc: dict[str, np.ndarray]) -> np.ndarray:
    """Ids from :func:`encode_ids`, as a :class:`Ratings` keeps them (int64, or str objects)."""
    from smpframe.data.ratings import as_str

    known = _known(enc)
    return known if known.dtype.kind == "i" else as_str(known)


def _known(enc: dict[str, np.ndarray]) -> np.ndarray:
    """Encoded ids as int64, or as a fixed-width bytes array (sorted as bytes)."""
    if "ints" in enc:
        return np.asarray(enc["ints"], dtype=np.int64)
    buf, ends = np.asarray(enc["bytes"], np.uint8), np.asarray(enc["ends"], np.int64)
    lengths = np.diff(ends, prepend=0)
    width = max(int(lengths.max(initial=0)), 1)
    cells = np.zeros((len(ends), width), np.uint8)
    row = np.repeat(np.arange(len(ends)), lengths)
    cells[row, np.arange(len(buf)) - np.repeat(ends - lengths, lengths)] = buf
    return cells.view(f"S{width}").ravel()


#: the "ratings" split reader (:mod:`smpframe.data.splits`)
SPLIT_READERS = {"ratings": (_read_split, _layout, _finish)}
