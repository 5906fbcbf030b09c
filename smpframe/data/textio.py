"""Reading delimited text fast and strictly, for every loader.

:func:`read_text` returns bytes known to be UTF-8 text (no NUL, BOM stripped);
:func:`read_table` splits delimited text into fields with vectorised, strict number
parsing; errors are :class:`~smpframe.errors.InputError` naming the file and line.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from smpframe.errors import InputError

MAX_INDEX = 2**31 - 1
"""Largest feature index / matrix dimension accepted (int32 indices downstream)."""

_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE
)
_INTEGER = re.compile(r"[+-]?\d+")


# --------------------------------------------------------------------------- shared helpers


def read_bytes(path: str | Path, limit: int = -1) -> bytes:
    """Read a file's bytes (at most ``limit`` when given), turning OS errors into InputError."""
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path) from None


def check_text(data: bytes, path: str | Path) -> bytes:
    """Return ``data`` without a UTF-8 byte-order mark after checking it is UTF-8 text without NULs."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError("not UTF-8 text", path, data.count(b"\n", 0, exc.start) + 1) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError("contains a NUL byte (binary file?)", path, data.count(b"\n", 0, nul) + 1)
    return data


def read_text(path: str | Path) -> bytes:
    """Read a text file as bytes, checked to be UTF-8 without NULs (see :func:`check_text`)."""
    return check_text(read_bytes(path), path)


def quote(value: object, limit: int = 40) -> str:
    """``'value'`` for an error message: shortened, non-printable characters escaped (one line)."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return f"'{text}'"


def parse_number(token: str) -> float | None:
    """Parse a decimal number strictly (no ``0x``, no ``_``); None when it is not one."""
    return float(token) if _NUMBER.fullmatch(token) else None


def parse_int(token: str) -> int | None:
    """Parse a decimal integer strictly; None when it is not one."""
    return int(token) if _INTEGER.fullmatch(token) else None


def too_large(n: int, what: str) -> str:
    return f"{what} {n} is too large (max {MAX_INDEX})"


# --------------------------------------------------------------------------- vectorised table


def parse_int_fields(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse fields ``buf[s:e]`` as ``-?[0-9]{1,18}``; return (int64 values, ok mask).

    Digits are read right-aligned, one column at a time over all fields at once.
    """
    neg = buf[s] == ord("-")
    p = s + neg
    ok = (e - p >= 1) & (e - p <= 18)
    val = np.zeros(len(s), np.int64)
    width = int((e - p)[ok].max(initial=0))
    for c in range(width):
        pos = e - (width - c)
        act = pos >= p
        d = buf[np.maximum(pos, 0)] - np.uint8(ord("0"))
        ok &= (d <= 9) | ~act
        val *= 10
        val += d * act
    return np.where(neg, -val, val), ok


def _parse_simple_floats(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse fields shaped ``-?digits[.digits]`` with at most 15 digits; return (values, ok mask).

    mantissa / 10**k is exactly what strtod gives for such fields (both operands are
    exact doubles and IEEE division rounds correctly); other fields are not ok and the
    caller parses them one by one.
    """
    neg = buf[s] == ord("-")
    p = s + neg
    ok = (e - p >= 1) & (e - p <= 16)
    mant = np.zeros(len(s), np.int64)
    frac = np.zeros(len(s), np.int8)
    ndig = np.zeros(len(s), np.int8)
    dots = np.zeros(len(s), np.int8)
    width = int((e - p)[ok].max(initial=0))
    for c in range(width):
        pos = e - (width - c)
        act = pos >= p
        b = buf[np.maximum(pos, 0)]
        d = b - np.uint8(ord("0"))
        dig = (d <= 9) & act
        dot = (b == ord(".")) & act
        ok &= dig | dot | ~act
        mant = np.where(dig, mant * 10 + d, mant)
        frac += dig & (dots > 0)
        ndig += dig
        dots += dot
    ok &= (ndig >= 1) & (ndig <= 15) & (dots <= 1)
    val = mant / 10.0**frac
    return np.where(neg, -val, val), ok


#: fields up to this long are read by the exact vectorised parser; longer ones (long
#: mantissas, exponents) by numpy's conversion, which is faster on them
SHORT_FIELD = 8

#: bytes of a decimal number without ``_``, ``x``, ``nan`` or ``inf``: over tokens made of
#: these alone, numpy's conversion (Python's float grammar) accepts just ``_NUMBER``'s
_PLAIN_NUMBER_BYTES = np.zeros(256, bool)
_PLAIN_NUMBER_BYTES[np.frombuffer(b"0123456789+-.eE", np.uint8)] = True


def _convert_plain_floats(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of fields converted, their finite values) for fields ``buf[s:e]``: the fields
    made only of number bytes, converted by numpy in one call. A field numpy refuses, or
    one that overflows, is left out (all of them when one is refused: the caller then
    parses them one by one, and names the bad one)."""
    fields = _gather(buf, s, e)
    width = fields.dtype.itemsize
    raw = fields.view(np.uint8).reshape(len(fields), width)
    plain = (_PLAIN_NUMBER_BYTES[raw] | (raw == 0)).all(axis=1)
    try:
        values = fields[plain].astype(np.float64)
    except ValueError:
        return np.zeros(len(fields), bool), np.empty(0)
    finite = np.isfinite(values)
    plain[np.flatnonzero(plain)[~finite]] = False
    return plain, values[finite]


def _gather(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Copy fields ``buf[s:e]`` into a fixed-width bytes (``S``) array, in bounded-memory chunks."""
    lengths = e - s
    width = max(int(lengths.max(initial=0)), 1)
    out = np.zeros((len(s), width), np.uint8)
    cols = np.arange(width)
    step = max(1, 2**22 // width)
    for i in range(0, len(s), step):
        ss, ll = s[i : i + step, None], lengths[i : i + step, None]
        idx = np.minimum(ss + cols, len(buf) - 1)
        out[i : i + step] = np.where(cols < ll, buf[idx], 0)
    return out.view(f"S{width}").ravel()


def split_tokens(data: bytes, delim: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split ``data`` into maximal runs of bytes that are neither ``delim`` nor ASCII
    whitespace/control characters (bytes <= 32, newline included).

    Returns (buf, starts, ends, newline positions); token i is ``buf[starts[i]:ends[i]]``.
    """
    buf = np.frombuffer(data, np.uint8)
    sep = np.empty(len(buf) + 1, bool)  # sep[i + 1] is byte i's; a separator before byte 0
    sep[0] = True
    np.less_equal(buf, 32, out=sep[1:])
    if delim is not None and delim > 32:
        sep[1:] |= buf == delim
    # token boundaries are where sep flips; they alternate start, end, start, ...
    flips = np.flatnonzero(sep[1:] != sep[:-1])
    if not sep[-1]:
        flips = np.concatenate([flips, [len(buf)]])
    return buf, flips[0::2], flips[1::2], np.flatnonzero(buf == 10)


def count_per_line(positions: np.ndarray, newlines: np.ndarray) -> np.ndarray:
    """Count sorted byte ``positions`` on each line (len(newlines) + 1 lines)."""
    return np.diff(np.searchsorted(positions, newlines), prepend=0, append=len(positions))


@dataclass
class Table:
    """Fields of a delimited text file: row r, column c is ``buf[starts[r, c]:ends[r, c]]``.

    ``lines[r]`` is row r's 1-based line number, used in every error.
    """

    buf: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    lines: np.ndarray
    path: str

    def __len__(self) -> int:
        return len(self.lines)

    def token(self, row: int, col: int) -> str:
        """One field as text, for messages."""
        return self.buf[self.starts[row, col] : self.ends[row, col]].tobytes().decode("utf-8", "replace")

    def fail(self, row: int, message: str) -> InputError:
        """An InputError located at ``row``'s line (the caller raises it)."""
        return InputError(message, self.path, int(self.lines[row]))

    def require(self, ok: np.ndarray, message: Callable[[int], str]) -> None:
        """Raise at the first row where ``ok`` is False, with ``message(row)``."""
        if not ok.all():
            row = int(np.argmin(ok))
            raise self.fail(row, message(row))

    def try_ints(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        """(int64 values, ok mask) of column ``col``; see :func:`parse_int_fields`."""
        return parse_int_fields(self.buf, self.starts[:, col], self.ends[:, col])

    def ints(self, col: int, what: str) -> np.ndarray:
        """Column ``col`` as int64, raising on the first field that is not an integer."""
        values, ok = self.try_ints(col)
        self.require(ok, lambda r: f"{what} {quote(self.token(r, col))} is not an integer")
        return values

    def floats(self, col: int, what: str) -> np.ndarray:
        """Column ``col`` as finite float64, raising on the first bad or non-finite field."""
        s, e = self.starts[:, col], self.ends[:, col]
        short = np.flatnonzero(e - s <= SHORT_FIELD)
        values, ok = np.empty(len(s)), np.zeros(len(s), bool)
        values[short], ok[short] = _parse_simple_floats(self.buf, s[short], e[short])
        rest = np.flatnonzero(~ok)
        if rest.size:  # exponents, long mantissas: numpy's C conversion, where it is strict
            plain, converted = _convert_plain_floats(self.buf, s[rest], e[rest])
            values[rest[plain]] = converted
            rest = rest[~plain]
        for row in rest:  # what numpy might read loosely, or what is wrong: one by one
            tok = self.token(row, col)
            value = parse_number(tok)
            if value is None:
                raise self.fail(row, f"{what} {quote(tok)} is not a number")
            if not np.isfinite(value):
                raise self.fail(row, f"{what} {quote(tok)} is not finite")
            values[row] = value
        return values

    def strings(self, col: int) -> np.ndarray:
        """Column ``col`` as a fixed-width bytes array."""
        return _gather(self.buf, self.starts[:, col], self.ends[:, col])


def _count_message(widths: tuple[int, ...], got: int) -> str:
    want = " or ".join(map(str, widths))
    return f"expected {want} field{'s' if widths != (1,) else ''}, got {got}"


def read_table(
    data: bytes, path: str | Path, sep: bytes | None, widths: tuple[int, ...], first_line: int = 1
) -> Table:
    """Split text into rows of fields, vectorised (10M lines in seconds).

    ``sep`` None splits on runs of whitespace; otherwise fields are separated by
    ``sep`` (e.g. ``b","``, ``b"::"``) and stripped of surrounding whitespace, so a
    field may not be empty or contain whitespace (ASCII control characters count
    as whitespace).  Blank lines are skipped.  The first non-blank line fixes the
    field count, which must be one of ``widths``; every other line must have the
    same count.  ``first_line`` is the line number of ``data``'s first line.
    """
    delim = None
    if sep is not None:
        if len(sep) > 1:  # NUL cannot occur in checked text, so it can stand in for "::"
            data = data.replace(sep, b"\x00")
        delim = sep[0] if len(sep) == 1 else 0
    buf, starts, ends, newlines = split_tokens(data, delim)
    delims = None if delim is None else np.flatnonzero(buf == delim)
    rows = _full_lines(buf, starts, ends, delims, newlines, widths)
    if rows is None:
        rows = _count_fields(starts, delims, newlines, widths, path, first_line)
    k = len(starts) // len(rows) if len(rows) else widths[0]
    table = Table(buf, starts.reshape(-1, k), ends.reshape(-1, k), rows + first_line, str(path))
    if delims is not None and k > 1:
        between = delims.reshape(-1, k - 1)
        # equal counts but a delimiter out of place: some field is empty (and another has a space)
        table.require(
            ((table.ends[:, :-1] <= between) & (between < table.starts[:, 1:])).all(axis=1),
            lambda r: "empty field",
        )
    return table


def _full_lines(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, delims: np.ndarray | None,
    newlines: np.ndarray, widths: tuple[int, ...],
) -> np.ndarray | None:
    """Fast path of :func:`read_table`: when no line is blank and every line has the
    same allowed number of tokens (and of delimiters), return the 0-based line of
    each row; else None.  Sorted tokens whose first and last of each k-group lie on
    line r leave exactly k tokens per line, so no per-line counting is needed."""
    n = len(newlines) + (len(buf) > (newlines[-1] + 1 if len(newlines) else 0))
    if not n or not len(starts):
        return None
    k = int(np.searchsorted(starts, newlines[0] if len(newlines) else len(buf)))
    if k not in widths or len(starts) != k * n:
        return None
    begin = np.concatenate([[0], newlines[: n - 1] + 1])
    end = newlines[:n] if n == len(newlines) else np.concatenate([newlines, [len(buf)]])
    if not ((starts[::k] >= begin) & (ends[k - 1 :: k] <= end)).all():
        return None
    if delims is not None and k > 1:
        if len(delims) != (k - 1) * n or not ((delims[:: k - 1] >= begin) & (delims[k - 2 :: k - 1] <= end)).all():
            return None
    elif delims is not None and len(delims):
        return None
    return np.arange(n)


def _count_fields(
    starts: np.ndarray, delims: np.ndarray | None, newlines: np.ndarray,
    widths: tuple[int, ...], path: str | Path, first_line: int,
) -> np.ndarray:
    """General path of :func:`read_table`: count fields per line, raise at the first
    line with a wrong count, and return the 0-based lines of the non-blank ones."""
    ntok = count_per_line(starts, newlines)
    if delims is None:
        nfield = ntok
    else:
        ndelim = count_per_line(delims, newlines)
        nfield = np.where((ntok > 0) | (ndelim > 0), ndelim + 1, 0)
    rows = np.flatnonzero(nfield)
    k = int(nfield[rows[0]]) if len(rows) else widths[0]
    if k not in widths:
        raise InputError(_count_message(widths, k), path, first_line + int(rows[0]))
    bad = ((nfield != k) & (nfield != 0)) | (ntok != nfield)
    if bad.any():
        i = int(np.argmax(bad))
        if nfield[i] != k:
            raise InputError(_count_message((k,), int(nfield[i])), path, first_line + i)
        raise InputError("empty field" if ntok[i] < nfield[i] else "field contains whitespace", path, first_line + i)
    return rows


# --------------------------------------------------------------------------- LIBSVM
