"""Tests for gangal_core.io.writers: .npy, .npz and FITS files written in blocks, read back by read_images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from gangal_core.io import writers
from gangal_core.io.images import read_images
from gangal_core.io.writers import (
    file_format,
    image_file_parts,
    read_file_description,
    read_file_parameters,
    write_image_file,
)

NAMES = ["x0", "r", "b"]
UNITS = ["px", "px", ""]
DESCRIPTION = {"format": "test", "seed": 3, "note": "µ in a header stays ASCII", "long": "x" * 300}


def _arrays(n: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, 2, 5, 3), dtype=np.float32), rng.random((n, 3), dtype=np.float32)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".fits", ".fit", ".FTS"])
def test_each_format_reads_back_exactly(tmp_path: Path, suffix: str) -> None:
    images, params = _arrays()
    path = tmp_path / f"out{suffix}"
    write_image_file(path, images, parameters=params, parameter_names=NAMES, parameter_units=UNITS,
                     description=DESCRIPTION)  # fmt: skip
    np.testing.assert_array_equal(read_images(path), images)
    assert read_file_description(path) == DESCRIPTION
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in image_file_parts(path))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".fits"])
def test_parameters_read_back_with_their_names(tmp_path: Path, suffix: str) -> None:
    images, params = _arrays()
    path = tmp_path / f"out{suffix}"
    write_image_file(path, images, parameters=params, parameter_names=NAMES,
                     description={"parameter_names": NAMES})  # fmt: skip
    values, names = read_file_parameters(path)
    np.testing.assert_array_equal(values, params)
    assert names == NAMES
    write_image_file(tmp_path / f"bare{suffix}", images)
    with pytest.raises(ValueError, match="no parameters gangal wrote"):
        read_file_parameters(tmp_path / f"bare{suffix}")


def test_fits_file_is_valid_with_a_parameter_table_and_units(tmp_path: Path) -> None:
    images, params = _arrays()
    write_image_file(tmp_path / "o.fits", images, parameters=params, parameter_names=NAMES,
                     parameter_units=UNITS, description=DESCRIPTION)  # fmt: skip
    with fits.open(tmp_path / "o.fits") as hdul:
        hdul.verify("exception")
        assert [h.name for h in hdul] == ["PRIMARY", "PARAMETERS"]
        assert hdul[0].data.shape == (7, 2, 5, 3) and hdul[0].header["ORIGIN"].startswith("gangal")
        np.testing.assert_array_equal(hdul[0].data, images)
        table = hdul["PARAMETERS"]
        assert table.columns.names == NAMES and table.columns.units == ["px", "px", ""]
        np.testing.assert_array_equal(np.column_stack([table.data[n] for n in NAMES]), params)
    assert (tmp_path / "o.fits").stat().st_size % 2880 == 0


def test_npz_archive_holds_named_arrays_without_pickles(tmp_path: Path) -> None:
    images, params = _arrays()
    write_image_file(tmp_path / "o.npz", images, parameters=params, parameter_names=NAMES,
                     description=DESCRIPTION)  # fmt: skip
    with np.load(tmp_path / "o.npz", allow_pickle=False) as archive:
        assert archive.files == ["images", "parameters", "parameter_names", "description"]
        np.testing.assert_array_equal(archive["images"], images)
        np.testing.assert_array_equal(archive["parameters"], params)
        assert list(archive["parameter_names"]) == NAMES


def test_npy_writes_its_sidecars_and_images_alone_without_them(tmp_path: Path) -> None:
    images, params = _arrays()
    write_image_file(tmp_path / "a.npy", images, parameters=params, parameter_names=NAMES,
                     description=DESCRIPTION)  # fmt: skip
    np.testing.assert_array_equal(np.load(tmp_path / "a.parameters.npy"), params)
    write_image_file(tmp_path / "b.npz", images)
    with np.load(tmp_path / "b.npz") as archive:
        assert archive.files == ["images"]
    assert read_file_description(tmp_path / "b.npz") is None


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".fits"])
def test_memory_mapped_arrays_are_written_in_blocks(tmp_path: Path, monkeypatch, suffix: str) -> None:
    images, params = _arrays(23)
    np.save(tmp_path / "big.npy", images)
    mapped = np.load(tmp_path / "big.npy", mmap_mode="r")
    monkeypatch.setattr(writers, "BLOCK_BYTES", images[:1].nbytes * 4)  # 4 images a block: 6 blocks
    written: list[int] = []
    real_blocks = writers._blocks
    monkeypatch.setattr(writers, "_blocks", lambda a: (written.append(len(b)) or b for b in real_blocks(a)))
    write_image_file(tmp_path / f"out{suffix}", mapped, parameters=params, parameter_names=NAMES)
    assert written[:6] == [4, 4, 4, 4, 4, 3]
    np.testing.assert_array_equal(read_images(tmp_path / f"out{suffix}"), images)


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    images, params = _arrays()

    def broken(block):
        raise OSError("disk full")

    monkeypatch.setattr(writers, "_blocks", broken)
    for suffix in (".npz", ".fits"):
        with pytest.raises(OSError, match="disk full"):
            write_image_file(tmp_path / f"o{suffix}", images, parameters=params, parameter_names=NAMES)
    assert list(tmp_path.iterdir()) == []


def test_foreign_or_damaged_files_hold_no_description(tmp_path: Path) -> None:
    images, _ = _arrays()
    np.save(tmp_path / "plain.npy", images)
    np.savez(tmp_path / "plain.npz", images=images)
    fits.PrimaryHDU(images).writeto(tmp_path / "plain.fits")
    (tmp_path / "junk.fits").write_bytes(b"SIMPLE  = garbage")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    for name in ("plain.npy", "plain.npz", "plain.fits", "junk.fits", "junk.npz", "missing.fits", "x.h5"):
        assert read_file_description(tmp_path / name) is None, name


def test_formats_are_known_by_suffix_in_any_case() -> None:
    assert [file_format(p) for p in ("a.npy", "a.NPZ", "a.Fits", "a.fit", "a.fts")] == [
        "npy", "npz", "fits", "fits", "fits"
    ]  # fmt: skip
    assert [file_format(p) for p in ("a", "a.h5", "a.fits.gz", "a.png")] == [None] * 4
    with pytest.raises(ValueError, match=r"\.npy, \.npz, \.fits"):
        write_image_file("a.h5", np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="parameters"):
        write_image_file("a.npz", np.zeros((2, 1, 2, 2), np.float32), parameters=np.zeros((3, 1)),
                         parameter_names=["a"])  # fmt: skip
