"""What a calibration reports, with units: calibration.json's units and correlations, samples.ecsv,
the printed table's headers, and the axes of parameters.png and corner.png.

These need no training: a :class:`CalibrationResult` is built from samples whose correlation is
known, and the figures are caught before they are saved.  ``gangal calibrate`` writing the files
is tested on a real run in ``test_calibration.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from rich.console import Console

from gangal_core.calibration import report
from gangal_core.calibration.result import CalibrationResult

NAMES = ("x0", "angle", "b")
UNITS = ("px", "deg", "")


def _result(n: int = 4000, rho: float = 0.8, *, seed: int = 0) -> CalibrationResult:
    """x0 and angle correlated by ``rho``; b independent of both."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3))
    x0 = 10 + 0.5 * z[:, 0]
    angle = 45 + 3 * (rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1])
    b = 0.5 + 0.1 * z[:, 2]
    return CalibrationResult(
        samples=np.column_stack([x0, angle, b]), names=NAMES, generator=None, losses={}, seconds=1.0,
        simulator="tilted", units=UNITS, truth={"x0": (10.0, 0.5), "angle": (45.0, 3.0), "b": (0.5, 0.1)},
    )  # fmt: skip


def test_calibration_json_adds_each_unit_and_the_correlation_matrix() -> None:
    doc = json.loads(json.dumps(_result().to_dict()))  # what the file holds
    assert [doc["parameters"][n]["unit"] for n in NAMES] == list(UNITS)
    for entry in doc["parameters"].values():  # the keys other code reads are all still there
        assert {"mean", "std", "true_mean", "true_std"} <= set(entry)
    corr = doc["correlation"]
    assert corr["parameters"] == list(NAMES)
    matrix = np.array(corr["matrix"], dtype=float)
    assert matrix.shape == (3, 3) and np.allclose(matrix, matrix.T) and np.allclose(np.diag(matrix), 1)
    assert abs(matrix[0, 1] - 0.8) < 0.03 and abs(matrix[0, 2]) < 0.05 and abs(matrix[1, 2]) < 0.05
    assert list(doc)[:4] == ["simulator", "parameters", "correlation", "n_samples"]


def test_a_parameter_that_does_not_vary_has_no_correlation() -> None:
    result = _result()
    result.samples[:, 2] = 0.5
    matrix = json.loads(json.dumps(result.to_dict()))["correlation"]["matrix"]
    assert matrix[2] == [None, None, None] and [row[2] for row in matrix] == [None, None, None]
    assert matrix[0][0] == 1.0 and matrix[0][1] is not None


def test_the_ecsv_samples_hold_the_csv_numbers_with_units_and_descriptions(tmp_path: Path) -> None:
    result = _result(n=50)
    report.write_samples(tmp_path, result, descriptions=["x of the spot", "tilt", "brightness"])
    csv = Table.read(tmp_path / "samples.csv", format="ascii.csv")
    ecsv = Table.read(tmp_path / "samples.ecsv")
    assert ecsv.colnames == list(NAMES) == csv.colnames
    for name in NAMES:
        np.testing.assert_array_equal(ecsv[name], csv[name])
    assert str(ecsv["x0"].unit) == "px" and str(ecsv["angle"].unit) == "deg" and ecsv["b"].unit is None
    assert ecsv["angle"].description == "tilt" and ecsv.meta["simulator"] == "tilted"


def test_the_printed_table_labels_units() -> None:
    console = Console(record=True, width=200)
    console.print(report.calibration_table(_result().to_dict()))
    text = console.export_text()
    assert "x0 [px]" in text and "angle [deg]" in text
    assert " b " in text and "b [" not in text  # no unit, no brackets


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures the report would save, kept open for inspection."""
    caught: list = []
    monkeypatch.setattr(report, "save_figure", lambda fig, path: caught.append(fig))
    return caught


def test_parameters_png_labels_units(figures: list, tmp_path: Path) -> None:
    result = _result()
    report.plot_parameters(tmp_path / "p.png", NAMES, result.samples, truth=result.truth, units=UNITS)
    labels = [ax.get_xlabel() for ax in figures[0].axes]
    assert labels == ["x0 [px]", "angle [deg]", "b"]


def _visible(fig) -> list:
    return [ax for ax in fig.axes if ax.get_visible()]


@pytest.mark.parametrize("known", ["truth", "true_params", None])
def test_the_corner_plot_shows_every_pair_against_the_truth(figures: list, tmp_path: Path, known) -> None:
    result = _result()
    truth = {"truth": result.truth} if known == "truth" else {}
    if known == "true_params":
        truth = {"true_params": _result(seed=1).samples}
    report.plot_corner(tmp_path / "corner.png", NAMES, result.samples, units=UNITS, **truth)
    fig = figures[0]
    grid = np.array(fig.axes).reshape(3, 3)
    assert len(_visible(fig)) == 6 and not any(
        grid[i][j].get_visible() for i in range(3) for j in range(i + 1, 3)
    )
    assert [ax.get_xlabel() for ax in grid[2]] == ["x0 [px]", "angle [deg]", "b"]
    assert [grid[i][0].get_ylabel() for i in (1, 2)] == ["angle [deg]", "b"]
    pair = grid[1][0]  # angle against x0: shading and best-match contours, then the truth's marks
    truth_contours = 1 if known == "true_params" else 0
    assert len(pair.collections) == 2 + truth_contours
    assert len(pair.patches) == (2 if known == "truth" else 0)  # the 1- and 2-sigma ellipses
    assert len(pair.lines) == (2 if known else 0)  # the true means
    assert ("true" in [t.get_text() for t in fig.legends[0].get_texts()]) == bool(known)
    assert fig._suptitle.get_text() == ("best match against the truth" if known else "best match")


def test_the_corner_plot_zooms_on_the_samples_within_the_ranges(figures: list, tmp_path: Path) -> None:
    result = _result()
    ranges = [(0.0, 100.0), (0.0, 180.0), (0.0, 0.55)]
    report.plot_corner(tmp_path / "c.png", NAMES, result.samples, ranges=ranges)
    grid = np.array(figures[0].axes).reshape(3, 3)
    lo, hi = grid[2][0].get_xlim()
    assert 7 < lo < 9 and 11 < hi < 13  # about the samples' 10 ± 0.5, not the declared 0-100
    assert grid[2][2].get_xlim()[1] == 0.55  # never beyond a declared range
