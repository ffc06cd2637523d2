"""Tests of the gangal-fitsdir example plugin.

The tests open the source the way gangal does, through the registry
(``open_data_source("fitsdir:PATH", **options)``), so the plugin must be installed
(``pip install ./examples/gangal-fitsdir``): gangal finds plugins through installed entry
points only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits
from gangal_fitsdir import FitsFolder, open_fitsdir
from typer.testing import CliRunner

from gangal_core import ConfigError, ImageFormatError, open_data_source, read_images
from gangal_core.cli import app
from gangal_core.data.batches import ImageBatches
from gangal_core.plugins import get_registry

SIDE = 24


def blob(rng: np.random.Generator, side: int = SIDE, *, peak: float = 100.0) -> np.ndarray:
    """A Gaussian galaxy on a sky of 10 counts with unit noise, float32 ``(side, side)``."""
    yy, xx = np.mgrid[:side, :side]
    x0, y0 = rng.uniform(side / 2 - 2, side / 2 + 2, 2)
    light = peak * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * (side / 8) ** 2))
    return (10.0 + light + rng.normal(0, 1, (side, side))).astype(np.float32)


def write(path: Path, data: np.ndarray, *extensions: fits.ImageHDU) -> Path:
    """One FITS file: ``data`` in the primary HDU (or nothing, when None), then ``extensions``."""
    fits.HDUList([fits.PrimaryHDU(data), *extensions]).writeto(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder of six 2-D cut-outs, 24x24, written out of name order."""
    folder = tmp_path / "cutouts"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in (3, 0, 5, 1, 4, 2):
        write(folder / f"galaxy-{k:02d}.fits", blob(rng))
    (folder / "README.txt").write_text("not a FITS file; ignored")
    return folder


@pytest.fixture
def cubes(tmp_path: Path) -> Path:
    """Four (g, r, i) cubes whose bands hold 1, 2 and 3 times one image, plus 0, 10 and 20."""
    folder = tmp_path / "cubes"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for k in range(4):
        base = blob(rng)
        write(folder / f"cube{k}.fits.gz", np.stack([base, 2 * base + 10, 3 * base + 20]))
    return folder


# ---- what the source hands gangal ------------------------------------------------------------------
def test_opens_through_gangal_and_honours_the_contract(images: Path):
    source = open_data_source(f"fitsdir:{images}")
    assert isinstance(source, FitsFolder)
    assert (len(source), source.channels, source.resolution) == (6, 1, SIDE)
    assert [source.label(i) for i in range(6)] == [f"galaxy-{k:02d}.fits" for k in range(6)]
    for i in range(6):
        image = source.read(i)
        assert image.dtype == np.float32 and image.shape == (1, SIDE, SIDE)
        assert image.min() == 0.0 and image.max() == 1.0  # the percentile interval fills [0, 1]
        # 99.5%: the brightest 0.25% of the pixels (1 of 576) and the faintest are clipped
        assert (image == 1.0).sum() <= 2 and (image == 0.0).sum() <= 2
    assert source.truth() is None
    doc = source.describe()
    assert doc["source"] == "fitsdir" and doc["n_images"] == 6 and doc["stretch"] == "asinh"
    assert doc["first_file"] == "galaxy-00.fits" and json.dumps(doc)


def test_linear_stretch_with_a_fixed_interval_is_exact(images: Path):
    source = open_data_source(f"fitsdir:{images}", stretch="linear", vmin=10, vmax=60)
    raw = fits.getdata(images / "galaxy-02.fits").astype(np.float64)
    assert np.allclose(source.read(2)[0], np.clip((raw - 10) / 50, 0, 1), atol=1e-7)


def test_asinh_stretch_follows_its_formula(images: Path):
    a = 0.05
    source = open_data_source(f"fitsdir:{images}", vmin=0, vmax=120, softening=a)
    t = np.clip(fits.getdata(images / "galaxy-04.fits").astype(np.float64) / 120, 0, 1)
    assert np.allclose(source.read(4)[0], np.arcsinh(t / a) / math.asinh(1 / a), atol=1e-6)
    # asinh lifts the faint light: the sky (about 10 of 120) shows well above its linear 0.08
    linear = open_data_source(f"fitsdir:{images}", vmin=0, vmax=120, stretch="linear").read(4)
    assert np.median(source.read(4)) > 0.3 > 0.1 > np.median(linear)


def test_each_stretch_is_monotonic_and_in_range(images: Path):
    raw = fits.getdata(images / "galaxy-01.fits").ravel()
    order = np.argsort(raw, kind="stable")
    for stretch in ("asinh", "linear", "sqrt", "log"):
        image = open_data_source(f"fitsdir:{images}", stretch=stretch).read(1).ravel()
        assert image.min() == 0.0 and image.max() == 1.0, stretch
        assert (np.diff(image[order]) >= 0).all(), stretch  # brighter pixels never show darker


def test_cubes_keep_colours_and_bands_pick_and_order_planes(cubes: Path):
    rgb = open_data_source(f"fitsdir:{cubes}", stretch="linear")
    assert (rgb.channels, rgb.resolution) == (3, SIDE)
    image = rgb.read(0)
    # one interval for all three bands of an image: band 2 (3x + 20) is the brightest everywhere
    assert (image[2] >= image[1]).all() and (image[1] >= image[0]).all()
    picked = open_data_source(f"fitsdir:{cubes}", bands="2,0", stretch="linear", vmin=0, vmax=400)
    raw = fits.getdata(cubes / "cube0.fits.gz").astype(np.float64)
    assert picked.channels == 2
    assert np.allclose(picked.read(0), np.clip(raw[[2, 0]] / 400, 0, 1), atol=1e-7)
    one = open_data_source(f"fitsdir:{cubes}", bands=1)
    assert one.read(3).shape == (1, SIDE, SIDE)


def test_hdu_by_default_number_and_name(tmp_path: Path):
    folder = tmp_path / "mef"
    folder.mkdir()
    science = np.arange(16 * 16, dtype=np.float32).reshape(16, 16)
    weight = np.ones((16, 16), dtype=np.float32)
    weight[0, 0] = 5.0
    write(folder / "a.fits", None, fits.ImageHDU(science, name="SCI"), fits.ImageHDU(weight, name="WHT"))
    fixed = {"stretch": "linear", "vmin": 0, "vmax": 255}
    by_default = open_data_source(f"fitsdir:{folder}", **fixed).read(0)[0]  # the first HDU with data
    assert np.allclose(by_default, science / 255)
    for hdu in ("WHT", 2, "2"):
        image = open_data_source(f"fitsdir:{folder}", hdu=hdu, **fixed).read(0)
        assert image[0, 0, 0] == pytest.approx(5 / 255) and image[0, 5, 5] == pytest.approx(1 / 255)
    with pytest.raises(ImageFormatError, match=r"a\.fits has no HDU 7; it holds 0: PRIMARY .*2: WHT"):
        open_data_source(f"fitsdir:{folder}", hdu=7)
    with pytest.raises(ImageFormatError, match="HDU 0 holds no image data"):
        open_data_source(f"fitsdir:{folder}", hdu=0)


def test_round_trip_with_gangals_own_fits_files(tmp_path: Path):
    # `gangal sample --fits` writes each image as fits.PrimaryHDU(image), (C, H, W) in [0, 1];
    # read back with a fixed [0, 1] interval, fitsdir gives what gangal's own reader gives.
    folder = tmp_path / "fits"
    folder.mkdir()
    samples = np.random.default_rng(2).random((5, 3, 16, 16)).astype(np.float32)
    for k, image in enumerate(samples):
        fits.PrimaryHDU(image).writeto(folder / f"{k:06d}.fits")
    source = open_data_source(f"fitsdir:{folder}", stretch="linear", vmin=0, vmax=1)
    mine = np.stack([source.read(i) for i in range(len(source))])
    assert np.array_equal(mine, read_images(folder)) and np.array_equal(mine, samples)


def test_limit_and_nan_median(images: Path, tmp_path: Path):
    assert len(open_data_source(f"fitsdir:{images}", limit=4)) == 4
    data = blob(np.random.default_rng(3))
    data[:3, :] = np.nan  # a masked survey edge
    folder = tmp_path / "edge"
    folder.mkdir()
    write(folder / "edge.fits", data)
    image = open_data_source(f"fitsdir:{folder}", nan="median", stretch="linear", vmin=0, vmax=120).read(0)
    fill = np.median(data[3:]) / 120
    assert np.allclose(image[0, :3], fill, atol=1e-6) and np.isfinite(image).all()


def test_works_with_gangals_batches_and_decoded_cache(cubes: Path, tmp_path: Path):
    source = open_data_source(f"fitsdir:{cubes}")
    for cache in ("memory", tmp_path / "cache"):
        batches = ImageBatches(source, resolutions=(16, 32), batch_size=2, seed=1, cache=cache, workers=2)
        try:
            small, large = next(batches.epoch(0))
            again = next(batches.epoch(0))
        finally:
            batches.close()
        assert small.shape == (2, 3, 16, 16) and large.shape == (2, 3, 32, 32)
        assert 0.0 <= float(small.min()) and float(large.max()) <= 1.0
        assert torch.equal(small, again[0])  # the same (seed, epoch), the same batch
    assert len(list((tmp_path / "cache").glob("fitsdir-*.npy"))) == 3  # two resolutions + filled flags


def test_fingerprint_follows_options_and_files(images: Path):
    base = open_data_source(f"fitsdir:{images}").fingerprint()
    assert open_data_source(f"fitsdir:{images}").fingerprint() == base
    assert open_data_source(f"fitsdir:{images}", stretch="sqrt").fingerprint() != base
    write(images / "galaxy-06.fits", blob(np.random.default_rng(4)))
    assert open_data_source(f"fitsdir:{images}").fingerprint() != base


# ---- errors name the file and say what is wrong ------------------------------------------------------
def _folder_with(tmp_path: Path, bad_name: str, bad: np.ndarray | bytes) -> Path:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write(folder / "a-good.fits", blob(np.random.default_rng(5)))
    if isinstance(bad, bytes):
        (folder / bad_name).write_bytes(bad)
    else:
        write(folder / bad_name, bad.astype(np.float32))
    return folder


BAD_FILES = {
    "nan": (
        np.full((SIDE, SIDE), np.nan),
        r"has 576 NaN or infinite pixel\(s\) \(the first at band 0, row 0, ",
    ),
    "size": (
        np.zeros((SIDE, 20)),
        r"holds 1 band\(s\) of 20x24 pixels .* but the first file, a-good\.fits, ",
    ),
    "bands": (np.zeros((3, SIDE, SIDE)), r"holds 3 band\(s\) of 24x24 pixels"),
    "1-d": (np.zeros(10), r"holds an array of shape \(10,\); expected a 2-D image \(y, x\) or a 3-D cube"),
    "flat": (np.full((SIDE, SIDE), 7.0), r"is flat: at least 99\.5% of its pixels equal 7"),
    "corrupt": (b"SIMPLE  =                    T" + b" " * 50 + b"garbage", "is not a readable FITS file"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")  # astropy's, on the corrupt one
def test_a_bad_file_is_named_when_read(tmp_path: Path, kind: str):
    bad, message = BAD_FILES[kind]
    source = open_data_source(f"fitsdir:{_folder_with(tmp_path, 'b-bad.fits', bad)}")
    source.read(0)  # the good file is fine
    with pytest.raises(ImageFormatError, match=r"b-bad\.fits " + message):
        source.read(1)
    assert len(source.check()) == 1 and "b-bad.fits" in source.check()[0]


def test_a_bad_first_file_fails_at_open(tmp_path: Path):
    folder = tmp_path / "wide"
    folder.mkdir()
    write(folder / "wide.fits", np.zeros((16, 32), dtype=np.float32))
    message = r"wide\.fits is 32x16 pixels \(width x height\); expected square cut-outs"
    with pytest.raises(ImageFormatError, match=message):
        open_data_source(f"fitsdir:{folder}")


CUTOUTS = "fitsdir:{tmp}/cutouts"


@pytest.mark.parametrize(
    ("spec", "options", "error", "message"),
    [
        ("fitsdir", {}, ConfigError, "needs a folder: fitsdir:PATH"),
        ("fitsdir:{tmp}/nowhere", {}, ConfigError, "no such folder"),
        ("fitsdir:{tmp}/cutouts/galaxy-00.fits", {}, ConfigError, "this is a file"),
        ("fitsdir:{tmp}/empty", {}, ImageFormatError, "holds no FITS files .* it is empty"),
        ("fitsdir:{tmp}/text", {}, ImageFormatError, r"holds no FITS files .* 1 other file\(s\): notes\.txt"),
        (CUTOUTS, {"stretch": "cubic"}, ConfigError, "stretch='cubic'; expected one of asinh"),
        (CUTOUTS, {"percentile": 0}, ConfigError, "percentile=0; expected a number > 0"),
        (CUTOUTS, {"softening": "soft"}, ConfigError, "softening='soft'; expected a number > 0"),
        (CUTOUTS, {"vmin": 1}, ConfigError, "give both"),
        (CUTOUTS, {"vmin": 2, "vmax": 1}, ConfigError, "vmax must be larger than vmin"),
        (CUTOUTS, {"bands": "0,x"}, ConfigError, "bands='0,x'; expected band numbers"),
        (CUTOUTS, {"bands": 2}, ImageFormatError, r"holds 1 band\(s\), 0 to 0; bands=2"),
        (CUTOUTS, {"hdu": -1}, ConfigError, "hdu=-1; expected an HDU number"),
        (CUTOUTS, {"nan": "ignore"}, ConfigError, "nan='ignore'; expected one of error, median"),
        (CUTOUTS, {"limit": 0}, ConfigError, "limit=0; expected a whole number > 0"),
        (CUTOUTS, {"colour": "red"}, ConfigError, "unknown option 'colour'; the options are hdu, bands"),
    ],
)
def test_bad_paths_and_options_are_clear_errors(images: Path, tmp_path: Path, spec, options, error, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hello")
    with pytest.raises(error, match=message):
        open_data_source(spec.format(tmp=tmp_path), **options)


# ---- registration and the command line -----------------------------------------------------------
def test_plugin_is_registered():
    # Holds once the example is installed: pip install ./examples/gangal-fitsdir
    thing = get_registry().things["data_source"]["fitsdir"]
    assert thing.obj is open_fitsdir
    assert thing.distribution == "gangal-fitsdir"


def test_gangal_train_on_a_fits_folder(tmp_path: Path):
    folder = tmp_path / "train"
    folder.mkdir()
    rng = np.random.default_rng(6)
    for k in range(32):
        write(folder / f"g{k:03d}.fits", np.stack([blob(rng, 32), blob(rng, 32), blob(rng, 32)]))
    out = tmp_path / "model"
    args = ["train", "--chain", "dcgan", "--data", f"fitsdir:{folder}", "--data-option", "stretch=sqrt",
            "--data-option", "bands=2,1,0", "--width", "4", "--batch-size", "16", "--epochs", "1",
            "--no-progress", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    chain = json.loads((out / "chain.json").read_text())
    assert chain["data"]["source"] == "fitsdir" and chain["data"]["n_images"] == 32
    assert chain["data"]["stretch"] == "sqrt" and chain["data"]["bands"] == [2, 1, 0]
    assert (out / "real-64.png").stat().st_size > 1000 and (out / "dcgan" / "generator.safetensors").exists()


def test_gangal_train_names_a_bad_file(tmp_path: Path):
    folder = tmp_path / "train"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for k in range(8):
        image = blob(rng, 32)
        if k == 3:
            image[5, 5] = np.inf
        write(folder / f"g{k}.fits", image)
    args = ["train", "--chain", "dcgan", "--data", f"fitsdir:{folder}", "--width", "4", "--batch-size", "4",
            "--epochs", "1", "--no-progress", "--out", str(tmp_path / "m")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "g3.fits has 1 NaN or infinite pixel(s)" in result.output and "Traceback" not in result.output


def test_gangal_evaluate_reads_a_fits_folder(images: Path, tmp_path: Path):
    np.save(tmp_path / "generated.npy", np.stack([open_fitsdir(images).read(i) for i in range(6)]))
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["evaluate", "--real", f"fitsdir:{images}", "--real-option", "limit=5",
                                      "--generated", str(tmp_path / "generated.npy"), "--out", str(out),
                                      "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "evaluation.json").read_text())
    assert doc["real"]["source"] == "fitsdir" and doc["real"]["n_images"] == 5
    labels = [line.split(",")[0] for line in (out / "measurements_real.csv").read_text().splitlines()[1:]]
    assert labels == [f"galaxy-{k:02d}.fits" for k in range(5)]
