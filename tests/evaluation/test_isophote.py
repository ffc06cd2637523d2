"""The isophote evaluator: ground truth on synthetic galaxies, fast vs photutils, failures, order.

Tolerances (stated here, checked below):

* recovery of the true shape of synthetic bulge + disk galaxies whose half-light radius is
  at least twice the PSF's FWHM (so the PSF barely rounds the outer isophotes): median
  ``|d ellipticity| <= 0.02``, every ``|d ellipticity| <= 0.04`` for true ellipticity
  ``>= 0.1`` and ``<= 0.08`` for rounder ones (noise biases a measured ellipticity
  upwards); for true ellipticity ``>= 0.2`` every ``|d angle| <= 5`` degrees with median
  ``<= 2`` (180-degree wrap handled);
* the fast path against photutils (upscaled to 256 here, to keep the test short) on the
  same images: median ``|d ellipticity| <= 0.01``, median ``|d angle| <= 2`` degrees,
  median relative ``|d sma|`` and ``|d flux| <= 2 %``, the same failures.
"""

from __future__ import annotations

import numpy as np
import pytest
from gangal_isophote import IsophoteEvaluator
from gangal_isophote.preprocess import ellipse_sum, to_upscaled, upscale_bicubic

from gangal_core.data.sources import open_data_source
from gangal_core.evaluation.evaluator import OK, Measurements

QUANTITIES = ("ellipticity", "angle", "flux", "sma")


def angle_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b|`` in degrees for axes (modulo 180)."""
    return np.abs((np.asarray(a) - np.asarray(b) + 90.0) % 180.0 - 90.0)


@pytest.fixture(scope="module")
def galaxies() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """24 synthetic galaxies as one band (channel sum), with their truth."""
    source = open_data_source("synthetic", n=24, seed=3)
    images = np.stack([source.read(i).sum(0) for i in range(len(source))]).astype(np.float64)
    return images, source.truth()


@pytest.fixture(scope="module")
def fast(galaxies) -> Measurements:
    return IsophoteEvaluator(method="fast", batch_size=16).measure(galaxies[0])


#: The galaxies the (slower) photutils path is run on: a handful, of varied shape.
REFERENCE_SUBSET = [1, 4, 7, 11, 15]


@pytest.fixture(scope="module")
def reference(galaxies) -> Measurements:
    images = galaxies[0][REFERENCE_SUBSET]
    return IsophoteEvaluator(method="photutils", upscale=256, workers=1).measure(images)


def resolved(truth: dict[str, np.ndarray]) -> np.ndarray:
    return truth["half_light_radius"] >= 2.0 * truth["psf_fwhm"]


def check_recovery(m: Measurements, truth: dict[str, np.ndarray], use: np.ndarray) -> None:
    assert m.ok[use].all(), m.status[use]
    de = np.abs(m.values["ellipticity"] - truth["ellipticity"])
    assert np.median(de[use]) <= 0.02 and de[use].max() <= 0.08, de[use]
    assert (de[use & (truth["ellipticity"] >= 0.1)] <= 0.04).all(), de[use]
    elongated = use & (truth["ellipticity"] >= 0.2)
    da = angle_difference(m.values["angle"], truth["angle"])[elongated]
    assert len(da) >= 3
    assert np.median(da) <= 2.0 and da.max() <= 5.0, da


def test_fast_recovers_true_shapes(galaxies, fast):
    _, truth = galaxies
    use = resolved(truth)
    assert use.sum() >= 15
    check_recovery(fast, truth, use)
    assert ((fast.values["angle"] >= 0) & (fast.values["angle"] < 180))[fast.ok].all()


def test_reference_recovers_true_shapes(galaxies, reference):
    _, truth = galaxies
    subset = {k: v[REFERENCE_SUBSET] for k, v in truth.items()}
    check_recovery(reference, subset, resolved(subset))


def test_fast_agrees_with_photutils(fast, reference):
    f = Measurements({k: v[REFERENCE_SUBSET] for k, v in fast.values.items()}, fast.status[REFERENCE_SUBSET])
    assert list(f.status) == list(reference.status)
    ok = f.ok
    e_ref = reference.values["ellipticity"]
    assert np.median(np.abs(f.values["ellipticity"] - e_ref)[ok]) <= 0.01
    elongated = ok & (e_ref > 0.2)
    assert np.median(angle_difference(f.values["angle"], reference.values["angle"])[elongated]) <= 2.0
    for name in ("sma", "flux"):
        relative = np.abs(f.values[name] / reference.values[name] - 1.0)[ok]
        assert np.median(relative) <= 0.02, (name, relative)


def test_photutils_results_do_not_depend_on_upscale(galaxies, reference):
    """sma and flux come back in input pixels: upscaling to 512 instead of 256 changes little."""
    images, _ = galaxies
    i = REFERENCE_SUBSET[1]
    m = IsophoteEvaluator(method="photutils", upscale=512, workers=1).measure(images[i : i + 1])
    assert m.ok[0]
    assert m.values["sma"][0] == pytest.approx(reference.values["sma"][1], rel=0.11)  # at most a grid step
    assert m.values["flux"][0] == pytest.approx(reference.values["flux"][1], rel=0.05)
    assert m.values["ellipticity"][0] == pytest.approx(reference.values["ellipticity"][1], abs=0.02)
    assert 0 < reference.values["flux"][1] < images[i].sum()
    assert (reference.values["sma"] < 64).all()


@pytest.fixture(scope="module")
def mixed(galaxies) -> np.ndarray:
    """A galaxy, a flat image, pure noise, an image with a NaN, and another galaxy."""
    images, _ = galaxies
    rng = np.random.default_rng(5)
    nan = images[2].copy()
    nan[10, 10] = np.nan
    return np.stack(
        [images[0], np.zeros_like(images[0]), rng.normal(0.1, 0.03, images[0].shape), nan, images[4]]
    )


@pytest.mark.parametrize("method", ["fast", "photutils"])
def test_failures_are_recorded_in_order(mixed, method):
    calls: list[int] = []
    m = IsophoteEvaluator(method=method, upscale=128, workers=1).measure(mixed, progress=calls.append)
    assert len(m) == 5 and sum(calls) == 5
    assert list(m.status[[1, 2, 3]]) == ["flat image", "no source", "non-finite pixels"]
    assert m.status[0] == OK and m.status[4] == OK
    for name in QUANTITIES:
        assert np.isnan(m.values[name][[1, 2, 3]]).all()
        assert np.isfinite(m.values[name][[0, 4]]).all()
    assert m.failure_rate == pytest.approx(0.6)


def test_fast_does_not_depend_on_batch_size_or_order(galaxies, fast):
    images, _ = galaxies
    calls: list[int] = []
    small = IsophoteEvaluator(method="fast", batch_size=5).measure(images[:12], progress=calls.append)
    assert calls == [5, 5, 2]
    for name in QUANTITIES:
        np.testing.assert_allclose(small.values[name], fast.values[name][:12], rtol=1e-6, atol=1e-9)
    order = np.arange(12)[::-1]
    backwards = IsophoteEvaluator(method="fast", batch_size=12).measure(images[:12][order])
    for name in QUANTITIES:
        np.testing.assert_allclose(
            backwards.values[name], fast.values[name][:12][order], rtol=1e-6, atol=1e-9
        )


def test_photutils_pool_keeps_input_order(galaxies, reference):
    images, _ = galaxies
    calls: list[int] = []
    pooled = IsophoteEvaluator(method="photutils", upscale=256, workers=2)
    m = pooled.measure(images[REFERENCE_SUBSET[:3]], progress=calls.append)
    assert sum(calls) == 3
    for name in QUANTITIES:
        np.testing.assert_allclose(m.values[name], reference.values[name][:3], rtol=1e-9)
    assert pooled.last_timing["cpu_seconds_per_fit"] > 0


def test_upscale_maps_coordinates():
    y, x = np.mgrid[0:32, 0:32]
    blob = np.exp(-((x - 12.3) ** 2 + (y - 17.6) ** 2) / (2 * 2.0**2))
    big, factor = upscale_bicubic(blob, 128)
    assert factor == 4.0 and big.shape == (128, 128)
    yy, xx = np.mgrid[0:128, 0:128]
    assert (big * xx).sum() / big.sum() == pytest.approx(to_upscaled(12.3, factor), abs=0.02)
    assert (big * yy).sum() / big.sum() == pytest.approx(to_upscaled(17.6, factor), abs=0.02)
    assert big.sum() / factor**2 == pytest.approx(blob.sum(), rel=1e-3)


def test_ellipse_sum_counts_area():
    ones = np.ones((101, 101))
    area = np.pi * 30.0 * 30.0 * (1 - 0.4)
    assert ellipse_sum(ones, 50.2, 49.7, 30.0, 0.4, 0.7, antialias=True) == pytest.approx(area, rel=0.005)
    assert ellipse_sum(ones, 50.2, 49.7, 30.0, 0.4, 0.7) == pytest.approx(area, rel=0.02)


def test_misuse_raises():
    evaluator = IsophoteEvaluator()
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        evaluator.measure(np.zeros((64, 64)))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        evaluator.measure(np.zeros((2, 3, 64, 64)))
    with pytest.raises(ValueError, match="method"):
        IsophoteEvaluator(method="ellipse")
    with pytest.raises(ValueError, match="workers"):
        IsophoteEvaluator(workers=0)
    with pytest.raises(TypeError):
        IsophoteEvaluator(colour="red")  # type: ignore[call-arg]
    empty = evaluator.measure(np.zeros((0, 64, 64)))
    assert len(empty) == 0 and set(empty.values) == set(QUANTITIES)


def test_registered_as_isophote():
    from gangal_core.evaluation.evaluator import validate_evaluator_class
    from gangal_core.plugins import get_registry

    assert get_registry().get("evaluator", "isophote").obj is IsophoteEvaluator
    assert validate_evaluator_class(IsophoteEvaluator) == []
    assert IsophoteEvaluator.quantities == QUANTITIES
    assert IsophoteEvaluator(method="photutils").describe()["method"] == "photutils"
