"""Parameter CSV files: garbage is refused or read soundly; a bad value names its line."""

from __future__ import annotations

import csv

import numpy as np
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
    name=st.sampled_from(["params.csv", "p a r a m s.csv", "[bold]params.csv", "ünï:smile:.csv", "params"]),
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
