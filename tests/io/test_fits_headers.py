"""Provenance headers of the FITS files gangal writes: the cards, and the data left untouched."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from gangal_core import __version__
from gangal_core.io.fits_headers import provenance_header, write_fits_image
from gangal_core.io.images import read_images


def test_the_header_says_who_wrote_the_file_when_and_with_which_seed() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0, tzinfo=None)
    header = provenance_header(command="simulate", seed=42, extra={"MODEL": "circle", "simulator": "circle"})
    written = datetime.datetime.fromisoformat(header["DATE"])
    assert header["GANGALV"] == __version__ and header["CREATOR"] == "gangal simulate"
    assert before <= written <= before + datetime.timedelta(seconds=5)  # UTC, to the second
    assert header["SEED"] == 42 and header["MODEL"] == "circle"
    assert header["HIERARCH simulator"] == "circle"  # a keyword longer than eight characters


def test_a_simulated_image_names_its_parameters_units_and_values() -> None:
    header = provenance_header(
        command="simulate", parameters=[("x0", "px", 17.5), ("n", "", 0.1), ("r", "px", None)]
    )
    assert [header[f"PNAME{k}"] for k in (1, 2, 3)] == ["x0", "n", "r"]
    assert header["PUNIT1"] == "px" and "PUNIT2" not in header and header["PUNIT3"] == "px"
    assert header["PVAL1"] == 17.5 and header["PVAL2"] == 0.1 and "PVAL3" not in header
    assert "SEED" not in provenance_header(command="sample")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8])
def test_the_data_are_written_unchanged(tmp_path: Path, dtype) -> None:
    data = (np.random.default_rng(0).random((3, 8, 8)) * 100).astype(dtype)
    path = tmp_path / "image.fits"
    write_fits_image(path, data, provenance_header(command="sample", seed=1, extra={"IMAGENUM": 0}))
    with fits.open(path) as hdul:
        assert len(hdul) == 1 and hdul[0].header["IMAGENUM"] == 0 and hdul[0].header["SIMPLE"]
        assert hdul[0].data.dtype.newbyteorder("=") == np.dtype(dtype).newbyteorder("=")
        np.testing.assert_array_equal(hdul[0].data, data)
    np.testing.assert_array_equal(read_images(path)[:, 0], data.astype(np.float32))  # 3 images of 8x8


def test_simulate_fits_output_carries_the_provenance_cards(tmp_path) -> None:
    from astropy.io import fits
    from typer.testing import CliRunner

    from gangal_core.cli import app

    out = tmp_path / "rings.fits"
    result = CliRunner().invoke(app, ["simulate", "-s", "circle", "-n", "8", "--seed", "3", "--out", str(out),
                                      "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    header = fits.getheader(out)
    assert header["CREATOR"] == "gangal simulate" and header["SEED"] == 3 and header["GANGALV"]
    assert [header[f"PNAME{i}"] for i in range(1, 6)] == ["x0", "y0", "r", "n", "b"]
    assert header["PUNIT1"] == "px"
