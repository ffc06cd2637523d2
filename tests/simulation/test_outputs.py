"""`gangal simulate --out`: the file its suffix names, refusals of outputs holding something else, ranges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from gangal_circle import CircleSimulator

from gangal_core.errors import ConfigError, PluginError
from gangal_core.io.images import read_images
from gangal_core.io.writers import read_file_description
from gangal_core.simulation.bank import load_bank
from gangal_core.simulation.engine import run_simulation

from .test_simulation import CrashesOnThirdChunk, _assert_user_error, _cli, _expected

RUN = ["simulate", "-s", "circle", "-n", 40, "--chunk-size", 16, "--seed", 2]


def _circle(*, seed: int) -> np.ndarray:
    """The images of RUN with ``seed``."""
    return _expected(CircleSimulator(), 40, seed=seed, chunk_size=16)[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---- the format the suffix names ---------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".fits", ".npz", ".npy", ".FITS", ".fts"])
def test_a_file_suffix_writes_that_file_with_the_runs_images(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"rings{suffix}"
    result = _cli(*RUN, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file()
    np.testing.assert_array_equal(read_images(out), _circle(seed=2))
    description = read_file_description(out)
    assert (description["simulator"], description["n"], description["seed"]) == ("circle", 40, 2)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_fits_output_holds_the_parameters_with_units_and_the_run(tmp_path: Path) -> None:
    assert _cli(*RUN, "--out", tmp_path / "rings.fits").exit_code == 0
    _, expected_params = _expected(CircleSimulator(), 40, seed=2, chunk_size=16)
    with fits.open(tmp_path / "rings.fits") as hdul:
        hdul.verify("exception")
        table = hdul["PARAMETERS"]
        assert table.columns.names == ["x0", "y0", "r", "n", "b"]
        assert table.columns.units[:3] == ["px", "px", "px"]
        np.testing.assert_array_equal(np.column_stack([table.data[n] for n in table.columns.names]),
                                      expected_params)  # fmt: skip
        run = json.loads(hdul[0].header["GANGAL"])
    assert run["format"] == "gangal-simulation-fits" and run["parameters"][2]["description"]


def test_npz_output_holds_the_parameters_and_their_names(tmp_path: Path) -> None:
    assert _cli(*RUN, "--out", tmp_path / "rings.npz").exit_code == 0
    _, expected_params = _expected(CircleSimulator(), 40, seed=2, chunk_size=16)
    with np.load(tmp_path / "rings.npz", allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["parameters"], expected_params)
        assert list(archive["parameter_names"]) == ["x0", "y0", "r", "n", "b"]


@pytest.mark.parametrize("name", ["rings.h5", "rings.fits.gz", "rings.png", "run.1"])
def test_an_unknown_suffix_is_refused_with_the_formats(tmp_path: Path, name: str) -> None:
    result = _cli(*RUN, "--out", tmp_path / name)
    _assert_user_error(result, f"--out {tmp_path / name}", "does not write", ".npy", ".npz", ".fits",
                       "folder of safetensors shards")  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_a_folder_of_shards_whatever_its_name(tmp_path: Path) -> None:
    (tmp_path / "run.1").mkdir()
    assert _cli(*RUN, "--out", tmp_path / "run.1").exit_code == 0
    assert (tmp_path / "run.1" / "manifest.json").is_file()


def test_a_folder_named_like_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rings.fits").mkdir()  # what gangal simulate --out rings.fits once made
    _assert_user_error(_cli(*RUN, "--out", tmp_path / "rings.fits"), "is a folder", "one file")
    assert list((tmp_path / "rings.fits").iterdir()) == []


def test_a_shard_of_a_file_output_is_refused(tmp_path: Path) -> None:
    _assert_user_error(_cli(*RUN, "--out", tmp_path / "r.fits", "--shard", "0/2"), "--shard", "r.fits")


@pytest.mark.parametrize("suffix", [".fits", ".npz", ".npy"])
def test_a_file_output_is_a_bank_with_its_parameters(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"bank{suffix}"
    assert _cli(*RUN, "--out", out).exit_code == 0
    bank = load_bank(out, CircleSimulator())
    expected, expected_params = _expected(CircleSimulator(), 40, seed=2, chunk_size=16)
    np.testing.assert_array_equal(bank.images.numpy(), expected)
    np.testing.assert_array_equal(bank.parameters.numpy(), expected_params)


# ---- outputs that already exist ------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npy", ".npz", ".fits"])
def test_a_file_of_another_run_is_refused_and_kept(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"rings{suffix}"
    assert _cli(*RUN, "--out", out).exit_code == 0
    before = _files(tmp_path)
    result = _cli(*RUN, "--out", out, "--seed", 5)
    _assert_user_error(result, f"--out {out}", "different gangal simulation run", "seed: 2 there, 5 now",
                       "--overwrite")  # fmt: skip
    assert _files(tmp_path) == before


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".fits"])
def test_the_same_run_is_written_again(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"rings{suffix}"
    assert _cli(*RUN, "--out", out).exit_code == 0
    first = out.stat().st_ino
    result = _cli(*RUN, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.stat().st_ino != first  # a new file, renamed over the old one
    np.testing.assert_array_equal(read_images(out), _circle(seed=2))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".fits"])
def test_a_foreign_file_is_refused_unless_overwrite(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"mine{suffix}"
    out.write_bytes(b"my own data")
    _assert_user_error(_cli(*RUN, "--out", out), f"--out {out}", "already exists", "no gangal simulation",
                       "--overwrite")  # fmt: skip
    assert out.read_bytes() == b"my own data"
    result = _cli(*RUN, "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_images(out), _circle(seed=2))


def test_overwrite_replaces_every_file_of_an_npy_output(tmp_path: Path) -> None:
    out = tmp_path / "rings.npy"
    assert _cli(*RUN, "--out", out).exit_code == 0
    result = _cli(*RUN, "--out", out, "--seed", 5, "--overwrite")
    assert result.exit_code == 0, result.output
    expected, params = _expected(CircleSimulator(), 40, seed=5, chunk_size=16)
    np.testing.assert_array_equal(np.load(out), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "rings.parameters.npy"), params)
    assert json.loads((tmp_path / "rings.json").read_text())["seed"] == 5


def test_a_stray_sidecar_counts_as_an_existing_npy_output(tmp_path: Path) -> None:
    (tmp_path / "rings.parameters.npy").write_bytes(b"older")
    _assert_user_error(_cli(*RUN, "--out", tmp_path / "rings.npy"), "rings.parameters.npy beside it")
    assert (tmp_path / "rings.parameters.npy").read_bytes() == b"older"


def test_overwrite_never_replaces_a_folder_of_shards(tmp_path: Path) -> None:
    assert _cli(*RUN, "--out", tmp_path / "rings").exit_code == 0
    before = _files(tmp_path / "rings")
    result = _cli(*RUN, "--out", tmp_path / "rings", "--seed", 5, "--overwrite")
    _assert_user_error(result, "different simulation run", "never a folder of shards")
    assert _files(tmp_path / "rings") == before


def test_a_crash_leaves_neither_the_file_nor_its_staging(tmp_path: Path) -> None:
    for suffix in (".fits", ".npz", ".npy"):
        with pytest.raises(PluginError):
            run_simulation(CrashesOnThirdChunk(), n=80, out=tmp_path / f"c{suffix}", chunk_size=16, workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".fits"])
def test_a_crash_while_overwriting_keeps_the_old_output(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"c{suffix}"
    run_simulation(CircleSimulator(), n=80, out=out, chunk_size=16, seed=1)
    before = _files(tmp_path)
    with pytest.raises(PluginError):
        run_simulation(CrashesOnThirdChunk(), n=80, out=out, chunk_size=16, workers=1, overwrite=True)
    assert _files(tmp_path) == before


def test_the_python_api_refuses_and_overwrites_by_keyword(tmp_path: Path) -> None:
    out = tmp_path / "c.npz"
    run_simulation(CircleSimulator(), n=16, out=out, chunk_size=16)
    with pytest.raises(ConfigError, match=r"seed: 0 there, 1 now.*overwrite"):
        run_simulation(CircleSimulator(), n=16, out=out, chunk_size=16, seed=1)
    summary = run_simulation(CircleSimulator(), n=16, out=out, chunk_size=16, seed=1, overwrite=True)
    assert summary.files == (str(out),) and read_file_description(out)["seed"] == 1


# ---- parameters outside their ranges -------------------------------------------------------------
def _csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "chosen.csv"
    path.write_text("x0,y0,r,n,b\n" + "".join(f"{row}\n" for row in rows))
    return path


def test_out_of_range_params_are_refused_by_line_and_range(tmp_path: Path) -> None:
    csv = _csv(tmp_path, "18,18,8,0.1,0.9", "18,18,12,0.1,0.9", "18,18,8,0.1,1.5")
    result = _cli("simulate", "-s", "circle", "--params", csv, "--out", tmp_path / "c.npy")
    _assert_user_error(result, f"--params {csv}, line 3: r = 12 is outside the range simulator 'circle' "
                       "declares, [6, 10] (1 more row(s) are outside too)", "--allow-out-of-range",
                       "--range")  # fmt: skip
    assert list(tmp_path.iterdir()) == [csv]


def test_allow_out_of_range_simulates_them(tmp_path: Path) -> None:
    csv = _csv(tmp_path, "18,18,12,0.1,0.9")
    result = _cli("simulate", "-s", "circle", "--params", csv, "--out", tmp_path / "c.npy",
                  "--allow-out-of-range")  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = np.array([[18, 18, 12, 0.1, 0.9]], np.float32)
    np.testing.assert_array_equal(np.load(tmp_path / "c.parameters.npy"), expected)


def test_a_wider_range_takes_them_and_the_bounds_are_inside(tmp_path: Path) -> None:
    csv = _csv(tmp_path, "18,18,12,0.1,0.9", "14.8,21.2,6,0.35,1.1")  # 1.1: float32(1.1) > 1.1
    result = _cli("simulate", "-s", "circle", "--params", csv, "--out", tmp_path / "c.npy",
                  "--range", "r=5:12")  # fmt: skip
    assert result.exit_code == 0, result.output
