"""`gangal emulate --out`: the file its suffix names, refusals of outputs that hold something else, ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits
from typer.testing import CliRunner, Result

from gangal_core import calibration as cal
from gangal_core.calibration.networks import ConvEmulator, ImageScale
from gangal_core.cli import app
from gangal_core.io.images import read_images
from gangal_core.io.writers import read_file_description


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Path:
    """A small untrained emulator of a two-parameter 8x8 simulator, a in [0, 1] and b in [0.1, 1]."""
    folder = tmp_path_factory.mktemp("emulator")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        emu = cal.TrainedEmulator(
            network=ConvEmulator((1, 8, 8), 2, width=8, hidden=16), scale=ImageScale(offset=0.5, scale=0.6),
            simulator="toy", arch="conv", info={},
            parameters=[{"name": "a", "low": 0.0, "high": 1.0, "unit": "adu"},
                        {"name": "b", "low": 0.1, "high": 1.0, "unit": ""}],
        )  # fmt: skip
    cal.save_emulator(emu, folder)
    return folder


def _cli(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def _emulate(emulator: Path, params: Path, out: Path, *more: object) -> Result:
    return _cli("emulate", "--emulator", emulator, "--params", params, "--out", out, *more)


def _assert_user_error(result: Result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for part in parts:
        assert part in text, (part, text)


@pytest.fixture
def params(tmp_path: Path) -> Path:
    path = tmp_path / "p.csv"
    path.write_text("b,a\n0.5,0.25\n1.0,0\n0.1,1\n")  # the ranges' ends are inside
    return path


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".fits"])
def test_each_suffix_writes_that_file_with_the_parameters(tmp_path, emulator, params, suffix) -> None:
    out = tmp_path / f"fast{suffix}"
    result = _emulate(emulator, params, out, "--seed", 3)
    assert result.exit_code == 0, result.output
    images = read_images(out)
    assert images.shape == (3, 1, 8, 8) and np.isfinite(images).all()
    run = read_file_description(out)
    assert run["format"] == f"gangal-emulation-{suffix[1:]}" and (run["n"], run["seed"]) == (3, 3)
    same = tmp_path / f"again{suffix}"
    assert _emulate(emulator, params, same, "--seed", 3).exit_code == 0
    np.testing.assert_array_equal(read_images(same), images)  # the same seed, the same images


def test_fits_output_has_the_parameter_table(tmp_path, emulator, params) -> None:
    assert _emulate(emulator, params, tmp_path / "fast.fits").exit_code == 0
    with fits.open(tmp_path / "fast.fits") as hdul:
        table = hdul["PARAMETERS"]
        assert table.columns.names == ["a", "b"] and table.columns.units == ["adu", ""]
        np.testing.assert_array_equal(table.data["a"], np.array([0.25, 0, 1], np.float32))


def test_an_unknown_suffix_is_refused_with_the_formats(tmp_path, emulator, params) -> None:
    _assert_user_error(_emulate(emulator, params, tmp_path / "fast.h5"), "--out", "fast.h5", ".npz", "FITS",
                       "found '.h5'")  # fmt: skip
    _assert_user_error(_emulate(emulator, params, tmp_path / "fast"), "found no suffix")


def test_an_existing_file_of_other_options_is_refused_unless_overwrite(tmp_path, emulator, params) -> None:
    out = tmp_path / "fast.npz"
    assert _emulate(emulator, params, out).exit_code == 0
    before = out.read_bytes()
    _assert_user_error(_emulate(emulator, params, out, "--seed", 4), f"--out {out}", "seed: 0 there, 4 now",
                       "--overwrite")  # fmt: skip
    assert out.read_bytes() == before
    assert _emulate(emulator, params, out).exit_code == 0  # the same options: written again
    result = _emulate(emulator, params, out, "--seed", 4, "--overwrite")
    assert result.exit_code == 0, result.output
    assert read_file_description(out)["seed"] == 4


def test_a_foreign_file_is_refused(tmp_path, emulator, params) -> None:
    out = tmp_path / "mine.npy"
    np.save(out, np.zeros(3))
    result = _emulate(emulator, params, out)
    _assert_user_error(result, "already exists", "no gangal emulation", "--overwrite")
    np.testing.assert_array_equal(np.load(out), np.zeros(3))


def test_out_of_range_rows_are_refused(tmp_path, emulator) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n0.5,0.5\n1.5,0.5\n0.5,0.05\n")
    _assert_user_error(_emulate(emulator, bad, tmp_path / "x.npy"),
                       f"--params {bad}, line 3: a = 1.5 is outside the range the emulator was trained on, "
                       "[0, 1] (1 more row(s) are outside too).")  # fmt: skip
    assert not (tmp_path / "x.npy").exists()
