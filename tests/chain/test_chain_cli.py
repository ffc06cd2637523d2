"""``gangal train`` and ``gangal sample`` end to end on tiny synthetic galaxies, and their errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from gangal_core.io.images import read_images

from .cli import TINY, _invoke


def test_train_writes_every_stage_and_the_chain_description(model: Path) -> None:
    chain = json.loads((model / "chain.json").read_text())
    assert list(chain["stages"]) == ["dcgan", "stackgan"]
    assert chain["stages"]["dcgan"]["epochs"] == 2 and chain["stages"]["stackgan"]["epochs"] == 1
    assert chain["data"]["source"] == "synthetic"
    for stage in ("dcgan", "stackgan"):
        names = {p.name for p in (model / stage).iterdir()}
        assert {"generator.safetensors", "generator-ema.safetensors", "discriminator.safetensors"} <= names
    assert (model / "real-64.png").exists() and (model / "real-128.png").exists()
    assert len(list((model / "dcgan" / "samples").glob("*.png"))) == 2


def test_sample_is_seeded_and_writes_npy_png_and_fits(model: Path, tmp_path: Path) -> None:
    a = _invoke("sample", "--model", model, "-n", 5, "--seed", 3, "--out", tmp_path / "a", "--fits")
    assert a.exit_code == 0, a.output
    b = _invoke("sample", "--model", model, "-n", 5, "--seed", 3, "--out", tmp_path / "b", "--no-png")
    assert b.exit_code == 0, b.output
    x, y = np.load(tmp_path / "a" / "samples.npy"), np.load(tmp_path / "b" / "samples.npy")
    assert x.shape == (5, 3, 128, 128) and x.dtype == np.float32
    assert np.array_equal(x, y)
    assert 0 <= x.min() and x.max() <= 1 and x.std() > 0
    assert not np.array_equal(x[0], x[1])  # different noise, different images
    assert len(list((tmp_path / "a" / "png").glob("*.png"))) == 5
    assert not (tmp_path / "b" / "png").exists()
    assert (tmp_path / "a" / "contact_sheet.png").exists()
    fits_images = read_images(tmp_path / "a" / "fits")
    assert np.allclose(fits_images, x)
    c = _invoke("sample", "--model", model, "-n", 5, "--seed", 4, "--out", tmp_path / "c", "--no-png")
    assert c.exit_code == 0, c.output
    assert not np.array_equal(np.load(tmp_path / "c" / "samples.npy"), x)


def test_sample_fits_files_carry_provenance_and_the_same_pixels(model: Path, tmp_path: Path) -> None:
    from astropy.io import fits

    from gangal_core import __version__

    out = tmp_path / "f"
    result = _invoke("sample", "--model", model, "-n", 2, "--seed", 7, "--out", out, "--fits", "--no-png")
    assert result.exit_code == 0, result.output
    samples = np.load(out / "samples.npy")
    for k in range(2):
        with fits.open(out / "fits" / f"{k:06d}.fits") as hdul:
            header, data = hdul[0].header, hdul[0].data
            assert data.dtype.newbyteorder("=") == np.float32 and np.array_equal(data, samples[k])
            assert header["GANGALV"] == __version__ and header["CREATOR"] == "gangal sample"
            assert header["SEED"] == 7 and header["CHAIN"] == "dcgan,stackgan" and header["WEIGHTS"] == "ema"
            assert header["MODEL"] == str(model.resolve()) and header["IMAGENUM"] == k
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", header["DATE"])


def test_sample_dcgan_alone_gives_64_pixel_images(model: Path, tmp_path: Path) -> None:
    result = _invoke("sample", "--chain", "dcgan", "--model", model, "-n", 3, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "s" / "samples.npy").shape == (3, 3, 64, 64)


def test_refiner_alone_refines_real_images(model: Path, tmp_path: Path) -> None:
    result = _invoke("sample", "--chain", "stackgan", "--model", model, "-n", 4, "--out", tmp_path / "r",
                     "--data", "synthetic")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "r" / "samples.npy").shape == (4, 3, 128, 128)
    missing = _invoke("sample", "--chain", "stackgan", "--model", model, "--out", tmp_path / "r2")
    assert missing.exit_code == 2 and "--data" in missing.output


def test_train_refuses_a_used_folder_and_resume_extends_it(tmp_path: Path) -> None:
    out = tmp_path / "m"
    args = ["train", "--chain", "dcgan", *TINY[:-3], "--batch-size", "16", "--no-progress", "--out", out]
    assert _invoke(*args, "--epochs", "1").exit_code == 0
    again = _invoke(*args, "--epochs", "1")
    assert again.exit_code == 2 and "--resume" in again.output
    same = _invoke(*args, "--epochs", "1", "--resume")
    assert same.exit_code == 0 and "skipped" in same.output
    more = _invoke(*args, "--epochs", "2", "--resume")
    assert more.exit_code == 0, more.output
    assert json.loads((out / "dcgan" / "training.json").read_text())["epochs"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chain", "stackgan,dcgan"], "must come first"),
        (["--chain", "dcgan,nope"], "No refiner named 'nope'"),
        (["--epochs", "1,2,3"], "one per stage"),
        (["--data", "nosuch"], "No data source named 'nosuch'"),
        (["--data-option", "oops"], "KEY=VALUE"),
        (["--width", "0"], "positive"),
        (["--resolution", "32"], "resolution"),
        (["--spatial-dropout", "sometimes"], "--spatial-dropout"),
    ],
)
def test_train_bad_options_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = _invoke("train", "--data", "synthetic", "--data-option", "n=16", "--out", tmp_path / "m", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_sample_bad_options_are_clear_errors(model: Path, tmp_path: Path) -> None:
    missing = _invoke("sample", "--model", tmp_path / "none", "--out", tmp_path / "s")
    assert missing.exit_code == 2 and "no such folder" in missing.output
    assert _invoke("sample", "--model", model, "-n", 2, "--out", tmp_path / "s").exit_code == 0
    again = _invoke("sample", "--model", model, "-n", 2, "--out", tmp_path / "s")
    assert again.exit_code == 2 and "already holds samples.npy" in again.output
    wrong = _invoke("sample", "--chain", "dcgan,stackgan", "--model", tmp_path, "--out", tmp_path / "t")
    assert wrong.exit_code == 2 and "--chain 'dcgan': the model" in wrong.output
    assert "none yet" in wrong.output
    typo = _invoke("sample", "--chain", "dcgan,stackgn", "--model", model, "--out", tmp_path / "u")
    assert typo.exit_code == 2 and "'stackgn'" in typo.output and "it has dcgan, stackgan" in typo.output


def test_default_epochs_count_training_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gangal_core.chain import api

    # the real default: 200 and 45 epochs of 1,080 images, fewer passes over a bigger set
    assert api.default_epochs("dcgan", 1080) == 200 and api.default_epochs("refiner", 1080) == 45
    assert api.default_epochs("dcgan", 2048) == 105 and api.default_epochs("dcgan", 10**6) == 1
    # a run without --epochs trains each stage that many epochs of its training images
    monkeypatch.setattr(api, "DEFAULT_TRAINING_IMAGES", {"dcgan": 96, "refiner": 48})
    result = _invoke("train", *TINY, "--out", tmp_path / "m")
    assert result.exit_code == 0, result.output
    chain = json.loads((tmp_path / "m" / "chain.json").read_text())
    assert [chain["stages"][s]["epochs"] for s in ("dcgan", "stackgan")] == [2, 1]
