"""The vectorised table reader's number fields: fast paths that read exactly what
``float`` reads, and errors that name the line of the first bad field."""
from __future__ import annotations

import numpy as np
import pytest

from smpframe.data.textio import read_table
from smpframe.errors import InputError


def floats(lines: list[str]) -> np.ndarray:
    table = read_table("\n".join(lines).encode(), "f.txt", None, (1,))
    return table.floats(0, "value")


def test_short_long_and_exponent_fields_read_as_float_reads_them():
    rng = np.random.default_rng(0)
    values = rng.standard_normal(5000) * 10.0 ** rng.integers(-30, 30, 5000)
    tokens = [repr(float(v)) for v in values] + ["1", "-2.5", "+3", ".5", "5.", "1E-3", "1e+5",
                                          "123456789012345678901234567890", "0.1000000000000000055511151231257827"]
    np.testing.assert_array_equal(floats(tokens), [float(t) for t in tokens])


@pytest.mark.parametrize("bad, why", [
    ("1_0", "is not a number"), ("0x10", "is not a number"), ("1.2.3", "is not a number"),
    ("1e5e3", "is not a number"), ("1-2", "is not a number"), ("1e", "is not a number"),
    ("nan", "is not finite"), ("1e999", "is not finite"), ("-inf", "is not finite"),
])
def test_a_bad_field_among_long_ones_is_named_with_its_line(bad, why):
    lines = ["1.2345678901234567e-05"] * 50 + [bad] + ["2.5e10"] * 50
    with pytest.raises(InputError, match=f"f.txt:51: value '{bad}' {why}"):
        floats(lines)
