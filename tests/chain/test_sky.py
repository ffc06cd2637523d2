"""The sky of generated images matched to the training images' (level and robust noise)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gangal_core.chain.sky import SKY_FILE, match_sky, read_sky, sky_statistics
from gangal_core.errors import GangalError

from .cli import _invoke


def _sky(n: int, level: float, sigma: float, *, seed: int = 0, side: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = level + sigma * rng.standard_normal((n, 3, side, side))
    yy, xx = np.mgrid[:side, :side] - side / 2
    images += 0.8 * np.exp(-(xx**2 + yy**2) / 30.0)  # a galaxy in the middle, off the border
    return images.astype(np.float32)


def test_sky_statistics_measure_the_border_level_and_robust_noise() -> None:
    images = _sky(40, 0.05, 0.01)
    images[:, :, 0, 5] = 1.0  # a star in the frame of every image: the MAD ignores it
    stats = sky_statistics(images)
    assert np.allclose(stats["level"], 0.05, atol=0.002)
    assert np.allclose(stats["sigma"], 0.01, rtol=0.08)
    with pytest.raises(GangalError, match="square"):
        sky_statistics(np.zeros((2, 3, 8, 9)))


def test_match_sky_gives_quiet_images_the_real_sky_and_leaves_noisy_ones_their_noise() -> None:
    real = sky_statistics(_sky(40, 0.05, 0.02, seed=1))
    quiet = np.clip(_sky(300, 0.01, 0.002, seed=2), 0, 1)
    matched, correction = match_sky(quiet, real, generated=sky_statistics(quiet), seed=0)
    after = sky_statistics(matched)
    assert np.allclose(after["level"], real["level"], atol=0.003)
    assert np.allclose(after["sigma"], real["sigma"], rtol=0.1)
    assert np.allclose(correction["noise"], np.sqrt(0.02**2 - 0.002**2), rtol=0.1)
    assert matched.min() >= 0 and matched.max() <= 1
    noisy = np.clip(_sky(50, 0.05, 0.05, seed=3), 0, 1)
    same, correction = match_sky(noisy, real, generated=sky_statistics(noisy), seed=0)
    assert correction["noise"] == [0.0, 0.0, 0.0]  # noise is only ever added
    shift = np.asarray(correction["shift"], np.float32)[:, None, None]
    assert np.allclose(same, np.clip(noisy + shift, 0, 1), atol=1e-6)  # the level alone moved


def test_match_sky_noise_depends_on_the_seed_and_not_on_how_many() -> None:
    real = {"level": [0.05] * 3, "sigma": [0.02] * 3}
    images = np.full((300, 3, 16, 16), 0.5, np.float32)
    generated = sky_statistics(images)
    all_of_them, _ = match_sky(images, real, generated=generated, seed=7)
    first_ten, _ = match_sky(images[:10], real, generated=generated, seed=7)
    assert np.array_equal(first_ten, all_of_them[:10])
    assert not np.array_equal(match_sky(images[:10], real, generated=generated, seed=8)[0], first_ten)
    with pytest.raises(GangalError, match="channels"):
        match_sky(images[:, :1], real, generated=generated)


def test_train_stores_the_sky_and_sample_matches_it(model: Path, tmp_path: Path) -> None:
    assert read_sky(model, 64) is not None and read_sky(model, 128) is not None
    assert read_sky(model, 32) is None
    on = _invoke("sample", "--model", model, "-n", 4, "--seed", 2, "--out", tmp_path / "on", "--no-png")
    off = _invoke("sample", "--model", model, "-n", 4, "--seed", 2, "--out", tmp_path / "off", "--no-png",
                  "--no-sky")  # fmt: skip
    assert on.exit_code == 0 and off.exit_code == 0, on.output + off.output
    correction = json.loads((tmp_path / "on" / "sample.json").read_text())["sky"]
    assert set(correction) == {"shift", "noise"} and len(correction["noise"]) == 3
    assert json.loads((tmp_path / "off" / "sample.json").read_text())["sky"] is None
    x, y = np.load(tmp_path / "on" / "samples.npy"), np.load(tmp_path / "off" / "samples.npy")
    assert x.shape == y.shape and not np.array_equal(x, y)


def test_a_broken_sky_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / SKY_FILE).write_text("{not json")
    with pytest.raises(GangalError, match=r"sky.json: not readable JSON.*--no-sky"):
        read_sky(tmp_path, 64)
    (tmp_path / SKY_FILE).write_text('{"format": "other"}')
    with pytest.raises(GangalError, match="not a gangal sky description"):
        read_sky(tmp_path, 64)
