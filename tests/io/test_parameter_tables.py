"""Parameter tables as CSV, ECSV and FITS, with units: read, converted, refused, written.

Every reader of a parameter table (``--params``, ``--true-params``, ``--bank-parameters``)
goes through :func:`gangal_core.simulation.engine.read_parameter_csv`, so the behaviours are
tested there once, and end to end through ``gangal simulate --params`` and a bank's table.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import MaskedColumn, Table
from typer.testing import CliRunner

from gangal_core import Parameter, Simulator
from gangal_core.cli import app
from gangal_core.errors import ConfigError
from gangal_core.io.tables import read_parameter_table, table_format, write_parameter_table
from gangal_core.simulation.bank import load_bank
from gangal_core.simulation.engine import read_parameter_csv


class Tilted(Simulator):
    """Parameters in four kinds of unit: one astropy lacks (px), two it knows, and none."""

    name = "tilted"
    image_shape = (1, 4, 4)
    parameters = (
        Parameter("x0", 0.0, 4.0, unit="px", description="x of the spot"),
        Parameter("angle", 0.0, 180.0, unit="deg", description="tilt"),
        Parameter("energy", 1.0, 100.0, unit="GeV", description="energy"),
        Parameter("b", 0.0, 1.0),
    )

    def simulate(self, params, *, generator):
        return params[:, :1, None, None].expand(-1, 1, 4, 4) + torch.zeros(1)


NAMES = ["x0", "angle", "energy", "b"]
VALUES = np.array([[1.5, 30.0, 10.0, 0.25], [2.5, 90.0, 50.0, 0.75], [3.0, 120.0, 2.0, 0.5]])


def _table(**columns) -> Table:
    """VALUES in the declared units (no unit on ``b``), with ``columns`` replacing some."""
    table = Table()
    table["energy"] = VALUES[:, 2] * u.GeV  # not the simulator's order: columns are found by name
    table["x0"] = VALUES[:, 0] * u.pix
    table["b"] = VALUES[:, 3]
    table["angle"] = VALUES[:, 1] * u.deg
    for name, column in columns.items():
        table[name] = column
    return table


def _write(table: Table, path: Path) -> Path:
    table.write(path, format="ascii.ecsv" if ".ecsv" in path.name or path.suffix == ".csv" else "fits")
    return path


FORMATS = ["t.ecsv", "t.fits", "t.fits.gz"]


@pytest.mark.parametrize("name", FORMATS)
def test_astropy_tables_are_read_in_the_declared_units(tmp_path: Path, name: str) -> None:
    values = read_parameter_csv(_write(_table(), tmp_path / name), Tilted())
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, VALUES, rtol=1e-6)


@pytest.mark.parametrize("name", FORMATS)
def test_a_column_in_another_unit_is_converted(tmp_path: Path, name: str) -> None:
    table = _table(angle=np.deg2rad(VALUES[:, 1]) * u.rad, energy=VALUES[:, 2] * 1000 * u.MeV)
    values = read_parameter_csv(_write(table, tmp_path / name), Tilted())
    np.testing.assert_allclose(values, VALUES, rtol=1e-6)


def test_an_ecsv_file_named_csv_is_read_as_ecsv(tmp_path: Path) -> None:
    """The refusal this fixes: "Found header ['# %ECSV 1.0']"."""
    path = _write(_table(angle=np.deg2rad(VALUES[:, 1]) * u.rad), tmp_path / "params.csv")
    assert path.read_text().startswith("# %ECSV 1.0") and table_format(path) == "ecsv"
    np.testing.assert_allclose(read_parameter_csv(path, Tilted()), VALUES, rtol=1e-6)


def test_a_fits_file_is_known_by_its_first_bytes(tmp_path: Path) -> None:
    path = tmp_path / "params.tbl"
    _table().write(path, format="fits")
    assert table_format(path) == "fits"
    np.testing.assert_allclose(read_parameter_csv(path, Tilted()), VALUES, rtol=1e-6)


def test_plain_csv_without_units_is_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "b,energy,angle,x0\n" + "\n".join(",".join(f"{v}" for v in row[[3, 2, 1, 0]]) for row in VALUES)
    )
    assert table_format(path) == "csv"
    np.testing.assert_allclose(read_parameter_csv(path, Tilted()), VALUES, rtol=1e-6)
    path.write_text("x0,angle,energy\n1,2,3\n")
    with pytest.raises(ConfigError, match=r"the header must name the parameters.*missing \['b'\]"):
        read_parameter_csv(path, Tilted())


@pytest.mark.parametrize("name", FORMATS)
def test_a_unit_that_cannot_be_converted_is_refused_naming_column_and_units(tmp_path: Path, name) -> None:
    path = _write(_table(angle=VALUES[:, 1] * u.m), tmp_path / name)
    with pytest.raises(ConfigError) as caught:
        read_parameter_csv(path, Tilted(), option="--true-params")
    message = str(caught.value)
    for part in ("--true-params", str(path), "column 'angle'", "'m'", "'deg'", "simulator 'tilted'"):
        assert part in message, (part, message)


def test_a_unit_on_a_parameter_declared_without_one_is_refused(tmp_path: Path) -> None:
    path = _write(_table(b=VALUES[:, 3] * u.pix), tmp_path / "t.ecsv")
    with pytest.raises(ConfigError, match=r"column 'b' is in 'pix', but simulator 'tilted' declares no unit"):
        read_parameter_csv(path, Tilted())


def test_a_unit_astropy_does_not_know_must_be_spelled_as_declared(tmp_path: Path) -> None:
    path = tmp_path / "t.ecsv"
    table = Table({"w": [1.0, 2.0]})
    table["w"].unit = u.Unit("widgets", parse_strict="silent")
    table.write(path)
    np.testing.assert_allclose(read_parameter_table(path, ["w"], units=["widgets"]), [[1.0], [2.0]])
    with pytest.raises(
        ConfigError, match=r"column 'w' is in 'widgets', which cannot be converted to 'gadgets'"
    ):
        read_parameter_table(path, ["w"], units=["gadgets"])


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (Table({"x0": [1.0], "angle": [2.0]}), r"the columns must name .*missing \['energy', 'b'\]"),
        (_table(extra=[1.0, 2.0, 3.0]), r"unknown \['extra'\]"),
        (_table(b=["a", "b", "c"]), r"column 'b' holds text \(dtype .*\); expected numbers"),
        (
            _table(b=MaskedColumn([0.1, 0.2, 0.3], mask=[False, True, False])),
            r"row 2: column 'b' has no value",
        ),
        (_table(b=[0.1, np.nan, 0.3]), r"row 2: (values must be finite|column 'b' has no value)"),
        (_table(b=np.ones((3, 2))), r"column 'b' holds arrays of shape \(2,\) per row"),
        (_table()[:0], r"no rows of parameters"),
    ],
    ids=["missing", "unknown", "strings", "masked", "nan", "arrays", "empty"],
)
def test_bad_tables_are_refused_naming_the_file_and_the_problem(tmp_path: Path, table, message) -> None:
    for name in ("t.ecsv", "t.fits"):
        path = _write(table, tmp_path / name)
        with pytest.raises(ConfigError, match=message) as caught:
            read_parameter_csv(path, Tilted())
        assert str(path) in str(caught.value)


def test_a_fits_file_without_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4), dtype=np.float32)).writeto(path)
    with pytest.raises(ConfigError, match=r"--params .*image.fits: cannot read it as a FITS table"):
        read_parameter_csv(path, Tilted())


# ---- writing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["w.csv", "w.ecsv", "w.fits"])
def test_written_tables_read_back_with_the_same_numbers(tmp_path: Path, name: str) -> None:
    values = VALUES + 1e-9  # rounded to six significant digits in every format
    path = tmp_path / name
    write_parameter_table(path, NAMES, values, units=[p.unit for p in Tilted.parameters],
                          descriptions=[p.description for p in Tilted.parameters])  # fmt: skip
    np.testing.assert_array_equal(read_parameter_csv(path, Tilted()), VALUES.astype(np.float32))


def test_ecsv_carries_units_and_descriptions_and_fits_the_provenance(tmp_path: Path) -> None:
    units = [p.unit for p in Tilted.parameters]
    descriptions = [p.description for p in Tilted.parameters]
    kwargs = {
        "units": units,
        "descriptions": descriptions,
        "meta": {"simulator": "tilted"},
        "command": "calibrate",
    }
    write_parameter_table(tmp_path / "w.ecsv", NAMES, VALUES, **kwargs)
    write_parameter_table(tmp_path / "w.fits", NAMES, VALUES, **kwargs)
    table = Table.read(tmp_path / "w.ecsv")
    assert [str(table[n].unit) if table[n].unit else "" for n in NAMES] == units
    assert table["angle"].description == "tilt" and table.meta["simulator"] == "tilted"
    assert "unit: px" in (tmp_path / "w.ecsv").read_text()  # spelled as the simulator declares it
    with fits.open(tmp_path / "w.fits") as hdul:
        head, columns = hdul[0].header, hdul[1].columns
        assert head["CREATOR"] == "gangal calibrate" and head["GANGALV"] and head["DATE"].startswith("20")
        assert columns["x0"].unit == "pix" and columns["energy"].unit == "GeV"


def test_a_table_name_with_another_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"written as .*\.ecsv.*found the name 'w.txt'"):
        write_parameter_table(tmp_path / "w.txt", NAMES, VALUES)
    assert not (tmp_path / "w.txt").exists()


# ---- where tables are read ------------------------------------------------------------------------
def _simulate(params: Path, out: Path):
    args = ["simulate", "--simulator", "circle", "--params", str(params), "--out", str(out)]
    return CliRunner().invoke(app, args)


def test_simulate_takes_an_astropy_table_with_units(tmp_path: Path) -> None:
    table = Table({"x0": [17.0, 18.0] * u.pix, "y0": [17.5, 18.5] * u.pix, "r": [8.0, 7.5],
                   "n": [0.1, 0.1], "b": [0.9, 0.95]})  # fmt: skip
    table.write(tmp_path / "p.ecsv")
    result = _simulate(tmp_path / "p.ecsv", tmp_path / "s.npy")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(tmp_path / "s.parameters.npy")[:, 0], [17.0, 18.0])
    table["x0"].unit = u.s
    table.write(tmp_path / "bad.ecsv")
    result = _simulate(tmp_path / "bad.ecsv", tmp_path / "t.npy")
    assert result.exit_code == 2
    assert "column 'x0' is in 's', which cannot be converted to 'px'" in " ".join(result.output.split())


def test_a_bank_finds_its_ecsv_parameter_table(tmp_path: Path) -> None:
    np.save(tmp_path / "images.npy", np.zeros((3, 1, 4, 4), dtype=np.float32))
    _write(_table(energy=VALUES[:, 2] * 1000 * u.MeV), tmp_path / "images.ecsv")
    bank = load_bank(tmp_path / "images.npy", Tilted())
    np.testing.assert_allclose(bank.parameters.numpy(), VALUES, rtol=1e-6)
