"""Parameter tables (CSV, ECSV, FITS): garbage and damaged files are refused or read soundly; a bad
value names its line."""

from __future__ import annotations

import csv
import io

import astropy.units as u
import numpy as np
from astropy.table import Table
from hypothesis import given
from hypothesis import strategies as st

from gangal_core.simulation.engine import read_parameter_csv

from .conftest import (
    CASES,
    Toy,
    _expect_user_error,
    _scratch,
    _settings,
    _user_error_or,
)
from .inputs import (
    CELLS,
    _is_number,
)

NAMES = ["params.csv", "p a r a m s.csv", "[bold]params.csv", "ünï:smile:.csv", "params", "params.ecsv",
         "params.fits"]  # fmt: skip


@_settings(60)
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.sampled_from([b"", b"\xef\xbb\xbf", b"a,b\n", b"a,a\n1,2\n", b"a,b\n1\n", b"a,b,c\n1,2,3\n"]),
        st.lists(st.lists(CELLS, min_size=1, max_size=4), min_size=1, max_size=4).map(
            lambda rows: "\n".join(",".join(r) for r in [["a", "b"], *rows]).encode()
        ),
    ),
    name=st.sampled_from(NAMES),
)
def test_parameter_csv_garbage(tmp_path, content, name) -> None:
    CASES["parameter CSV garbage"] += 1
    path = _scratch(tmp_path) / name
    path.write_bytes(content)
    values, _ = _user_error_or(lambda: read_parameter_csv(path, Toy()), path)
    if values is not None:  # accepted: then it must be sound
        assert values.dtype == np.float32 and values.shape[1] == 2 and np.isfinite(values).all()


@_settings(60)
@given(
    rows=st.integers(1, 5),
    bad_row=st.integers(0, 4),
    bad_column=st.integers(0, 1),
    cell=CELLS.filter(lambda c: not _is_number(c)),
)
def test_parameter_csv_bad_value_names_the_line(tmp_path, rows, bad_row, bad_column, cell) -> None:
    CASES["parameter CSV bad value"] += 1
    table = [["0.5", "0.5"] for _ in range(rows)]
    table[bad_row % rows][bad_column] = cell
    path = _scratch(tmp_path) / "params.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["b", "a"], *table])
    _expect_user_error(lambda: read_parameter_csv(path, Toy()), path, f"line {bad_row % rows + 2}")


def _valid_table(kind: str) -> bytes:
    """A valid two-parameter table as astropy writes it, with units on one column."""
    table = Table({"b": [0.5, 0.25, 0.75], "a": [0.1, 0.2, 0.3] * u.dimensionless_unscaled})
    buffer = io.BytesIO() if kind == "fits" else io.StringIO()
    table.write(buffer, format="fits" if kind == "fits" else "ascii.ecsv")
    raw = buffer.getvalue()
    return raw if isinstance(raw, bytes) else raw.encode()


@_settings(80)
@given(
    kind=st.sampled_from(["ecsv", "fits"]),
    damage=st.sampled_from(["truncate", "flip", "append"]),
    where=st.floats(0, 1, exclude_max=True),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8),
    garbage=st.binary(max_size=64),
)
def test_parameter_table_damaged(tmp_path, kind, damage, where, flips, garbage) -> None:
    CASES["parameter table damaged"] += 1
    raw = bytearray(_valid_table(kind))
    if damage == "truncate":
        raw = raw[: int(where * len(raw))]
    elif damage == "flip":
        for at, bits in flips:
            raw[int(at * len(raw))] ^= bits
    else:
        raw += garbage
    path = _scratch(tmp_path) / f"params.{kind}"
    path.write_bytes(bytes(raw))
    values, _ = _user_error_or(lambda: read_parameter_csv(path, Toy()), path)
    if values is not None:  # accepted: then it must be sound
        assert values.dtype == np.float32 and values.shape[1] == 2 and np.isfinite(values).all()
