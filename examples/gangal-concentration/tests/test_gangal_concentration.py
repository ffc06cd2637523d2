"""Tests of the gangal-concentration example plugin.

The registry and command-line tests need the plugin installed
(``pip install ./examples/gangal-concentration``): gangal finds plugins through installed
entry points only.

The analytic tests apply the plugin's definitions (Petrosian ratio over the annulus
0.8 r .. 1.25 r, eta = 0.2, light within 1.5 r_p) to the exact enclosed light of a
profile, solved with scipy, and compare with what the plugin measures on the profile
drawn into pixels.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gangal_concentration import (
    ANNULUS,
    ETA,
    EXTENT,
    ConcentrationEvaluator,
    concentration_statistics,
    curve_of_growth,
    register_evaluators,
)
from scipy.optimize import brentq
from scipy.special import erf, gamma, gammainc, gammaincinv
from typer.testing import CliRunner

from gangal_core import Measurements, validate_evaluator_class
from gangal_core.cli import app
from gangal_core.plugins import get_registry

METHODS = ("fast", "photutils")
RADII = ("petrosian_radius", "r20", "half_light_radius", "r80")


# ---- analytic profiles ----------------------------------------------------------------------
def expected_statistics(enclosed: Callable[[float], float], r_max: float) -> dict[str, float]:
    """The plugin's definitions applied exactly to a continuous enclosed-light function."""

    def eta(r: float) -> float:
        return (enclosed(ANNULUS[1] * r) - enclosed(ANNULUS[0] * r)) / (
            (ANNULUS[1] ** 2 - ANNULUS[0] ** 2) * enclosed(r)
        )

    grid = np.linspace(r_max * 1e-3, r_max, 4000)
    j = int(np.argmax([eta(r) < ETA for r in grid]))
    assert j > 0, "the profile has no Petrosian radius below r_max"
    r_p = brentq(lambda r: eta(r) - ETA, grid[j - 1], grid[j], xtol=1e-10)
    flux = enclosed(EXTENT * r_p)
    radii = {k: brentq(lambda r, k=k: enclosed(r) - k * flux, 1e-9, EXTENT * r_p, xtol=1e-10)
             for k in (0.2, 0.5, 0.8)}  # fmt: skip
    return {
        "petrosian_radius": r_p,
        "flux": flux,
        "r20": radii[0.2],
        "half_light_radius": radii[0.5],
        "r80": radii[0.8],
        "concentration": 5 * math.log10(radii[0.8] / radii[0.2]),
    }


def gaussian_image(side: int, x0: float, y0: float, sigma: float, flux: float = 1.0) -> np.ndarray:
    """A circular Gaussian integrated exactly over each pixel (pixel centres at whole numbers)."""
    edges = np.arange(side + 1) - 0.5
    fx = np.diff(erf((edges - x0) / (math.sqrt(2) * sigma))) / 2
    fy = np.diff(erf((edges - y0) / (math.sqrt(2) * sigma))) / 2
    return flux * np.outer(fy, fx)


def drawn_image(side: int, x0: float, y0: float, profile: Callable, subpixels: int = 8) -> np.ndarray:
    """A circular profile ``profile(r)`` averaged over ``subpixels**2`` points of each pixel."""
    offsets = (np.arange(subpixels) + 0.5) / subpixels - 0.5
    points = (np.arange(side)[:, None] + offsets).ravel()
    r = np.hypot(points[None, :] - x0, points[:, None] - y0)
    return profile(r).reshape(side, subpixels, side, subpixels).mean(axis=(1, 3))


def _measured(image: np.ndarray, method: str) -> tuple[str, dict[str, float]]:
    status, values = concentration_statistics(image[None], method=method)
    return status[0], {k: float(v[0]) for k, v in values.items()}


# ---- the measurement against known profiles ------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("sigma", "x0", "y0"), [(4.0, 31.0, 31.0), (5.0, 30.3, 33.7)])
def test_gaussian_is_recovered(method, sigma, x0, y0):
    # The light of a pixel-integrated Gaussian, spread evenly over each pixel, has a variance of
    # sigma**2 + 1/12 + 1/12 per axis: the profile measured is that broader Gaussian.
    status, got = _measured(gaussian_image(64, x0, y0, sigma), method)
    width = math.sqrt(sigma**2 + 1 / 6)
    want = expected_statistics(lambda r: 1 - math.exp(-(r**2) / (2 * width**2)), 30.0)
    assert status == "ok"
    assert (got["x0"], got["y0"]) == pytest.approx((x0, y0), abs=0.01)
    rel, c_tol = (0.01, 0.02) if method == "fast" else (0.003, 0.006)
    for k in RADII:
        assert got[k] == pytest.approx(want[k], rel=rel), k
    assert got["flux"] == pytest.approx(want["flux"], rel=1e-3)
    assert got["concentration"] == pytest.approx(want["concentration"], abs=c_tol)
    # and the textbook value: C of a Gaussian with the light within 1.5 r_p (99.7% of it) is 2.14
    assert got["concentration"] == pytest.approx(2.141, abs=0.02)


@pytest.mark.parametrize("method", METHODS)
def test_exponential_disk_is_recovered(method):
    h = 4.0  # scale length in pixels; the cusp at the centre is what pixels smooth most
    image = drawn_image(96, 47.2, 46.7, lambda r: np.exp(-r / h) / (2 * math.pi * h**2))
    status, got = _measured(image, method)
    want = expected_statistics(lambda r: 1 - (1 + r / h) * math.exp(-r / h), 45.0)
    assert status == "ok"
    for k in RADII:
        assert got[k] == pytest.approx(want[k], rel=0.01), k
    assert got["flux"] == pytest.approx(want["flux"], rel=1e-3)  # 96.9% of the disk's light
    assert got["concentration"] == pytest.approx(want["concentration"], abs=0.015)
    assert got["concentration"] == pytest.approx(2.73, abs=0.02)


@pytest.mark.parametrize("method", METHODS)
def test_de_vaucouleurs_profile_is_recovered_after_its_sky(method):
    # An r^1/4 profile still has light at the border, which the plugin takes for sky and
    # subtracts (as it would in a real image); the expectation subtracts the same sky.
    r_e, b = 20.0, gammaincinv(8, 0.5)
    total = 2 * math.pi * r_e**2 * 4 * gamma(8) / b**8
    image = drawn_image(128, 63.5, 63.5, lambda r: np.exp(-b * (r / r_e) ** 0.25) / total, subpixels=16)
    status, got = _measured(image, method)
    assert status == "ok" and 0 < got["sky"] < 1e-5
    want = expected_statistics(lambda r: gammainc(8, b * (r / r_e) ** 0.25) - got["sky"] * math.pi * r**2, 60)
    assert got["r20"] == pytest.approx(want["r20"], rel=0.02)  # 4.1 px: the cusp is smoothed by pixels
    for k in ("petrosian_radius", "half_light_radius", "r80", "flux"):
        assert got[k] == pytest.approx(want[k], rel=0.005), k
    assert got["concentration"] == pytest.approx(want["concentration"], abs=0.03)
    assert 4.0 < got["concentration"] < 4.3


def test_curve_of_growth_counts_every_pixel_once():
    # two images in one batch: the histogram of one must not leak into the other
    images = np.stack([np.ones((32, 32)), 2.0 * np.ones((32, 32))])
    centre = np.array([15.5, 15.5])
    radii, flux = curve_of_growth(images, centre, centre, step=0.1, subpixels=4)
    assert radii[1] == pytest.approx(0.1) and flux[:, 0].tolist() == [0.0, 0.0]
    assert flux[:, -1] == pytest.approx([1024.0, 2048.0], rel=1e-12)  # beyond the corners: everything
    inside = (radii >= 3) & (radii <= 15.5)
    area = math.pi * radii[inside] ** 2
    assert np.abs(flux[0, inside] / area - 1).max() < 0.02
    assert np.array_equal(flux[1], 2 * flux[0])
    _, fine = curve_of_growth(images[:1], centre[:1], centre[:1], step=0.1, subpixels=16)
    # more subpixels, closer to the exact area
    assert np.abs(fine[0, inside] - area).mean() < np.abs(flux[0, inside] - area).mean()


# ---- invariances ------------------------------------------------------------------------------------
def test_scale_sky_rotation_and_size():
    base = gaussian_image(64, 30.3, 33.7, 4.0)
    _, ref = _measured(base, "fast")
    _, scaled = _measured(7.0 * base + 0.25, "fast")  # brighter, on a sky of 0.25
    for k in ("concentration", *RADII):
        assert scaled[k] == pytest.approx(ref[k], abs=1e-6), k
    assert scaled["flux"] == pytest.approx(7 * ref["flux"], rel=1e-6)
    assert scaled["sky"] == pytest.approx(0.25, abs=1e-9)
    _, turned = _measured(np.rot90(base).copy(), "fast")  # counter-clockwise: (x, y) -> (y, 63 - x)
    assert (turned["x0"], turned["y0"]) == pytest.approx((ref["y0"], 63 - ref["x0"]), abs=1e-6)
    assert turned["concentration"] == pytest.approx(ref["concentration"], abs=0.005)
    _, wide = _measured(gaussian_image(128, 63.3, 64.1, 8.0), "fast")
    assert wide["half_light_radius"] == pytest.approx(2 * ref["half_light_radius"], rel=0.01)
    assert wide["concentration"] == pytest.approx(ref["concentration"], abs=0.01)


def test_results_do_not_depend_on_batches():
    rng = np.random.default_rng(1)
    images = np.stack([gaussian_image(48, 23.5 + rng.normal(), 23.5 + rng.normal(), s) for s in (2, 3, 4, 5)])
    images = images + rng.normal(0, 1e-4, images.shape)
    one = ConcentrationEvaluator(batch_size=1).measure(images)
    many = ConcentrationEvaluator(batch_size=3, workers=2).measure(images)  # workers: accepted, unused
    assert one.status.tolist() == many.status.tolist() == ["ok"] * 4
    for q in ConcentrationEvaluator.quantities:
        assert np.array_equal(one.values[q], many.values[q]), q
    assert np.all(np.diff(one.values["half_light_radius"]) > 0)  # wider Gaussians, larger radii


def test_fast_agrees_with_photutils_on_noisy_galaxies():
    from gangal_core import open_data_source

    source = open_data_source("synthetic", n=10, resolution=64)
    images = np.stack([source.read(i) for i in range(len(source))]).sum(axis=1)
    fast_status, fast = concentration_statistics(images, method="fast")
    ref_status, ref = concentration_statistics(images, method="photutils")
    assert fast_status.tolist() == ref_status.tolist() == ["ok"] * 10
    assert np.abs(fast["concentration"] - ref["concentration"]).max() < 0.03
    for k in RADII:
        assert np.abs(fast[k] / ref[k] - 1).max() < 0.01, k
    # bulge + disk galaxies through an asinh stretch: between a Gaussian and a de Vaucouleurs profile
    assert (2.0 < fast["concentration"]).all() and (fast["concentration"] < 4.5).all()


# ---- failures are recorded, never dropped ------------------------------------------------------
def test_failures_name_their_reason_and_spare_the_other_images():
    good = gaussian_image(24, 11.5, 11.5, 2.5)
    nan = good.copy()
    nan[3, 4] = np.nan
    noise = np.random.default_rng(2).normal(0, 1, (24, 24))
    images = np.stack([
        good,
        np.zeros((24, 24)),
        nan,
        noise,
        gaussian_image(24, 5.5, 11.5, 2.5),  # 1.25 r_p = 7.2 px > the 6 px to the edge
        gaussian_image(24, 7.0, 11.5, 2.5),  # r_p found, but 1.5 r_p = 8.6 px > 7.5 px
    ])  # fmt: skip
    for method in METHODS:
        status, values = concentration_statistics(images, method=method)
        assert status.tolist() == ["ok", "flat image", "non-finite pixels", "no source",
                                   "no petrosian radius", "aperture off the image"], method  # fmt: skip
        assert np.isfinite(values["concentration"][0])
        assert np.isnan(values["concentration"][1:]).all() and np.isnan(values["flux"][1:]).all()
        alone = concentration_statistics(images[:1], method=method)[1]
        assert values["concentration"][0] == alone["concentration"][0]


# ---- the evaluator and its registration ----------------------------------------------------------
def test_evaluator_measures_and_reports_progress():
    images = np.stack([gaussian_image(32, 15.5, 15.5, s) for s in (1.5, 2.0, 2.5)] + [np.zeros((32, 32))])
    done = []
    m = ConcentrationEvaluator(batch_size=2).measure(images, progress=done.append)
    assert isinstance(m, Measurements) and len(m) == 4 and sum(done) == 4
    assert set(m.values) == set(ConcentrationEvaluator.quantities)
    assert m.status.tolist() == ["ok", "ok", "ok", "flat image"] and m.failure_rate == 0.25
    assert ConcentrationEvaluator(method="photutils").describe()["photutils"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "psychic"}, "method='psychic'; expected one of fast, photutils"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"workers": 2.5}, "workers=2.5"),
        ({"step": 3}, "step=3"),
        ({"detect_k": -1}, "detect_k=-1"),
    ],
)
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ConcentrationEvaluator(**options)


def test_images_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        ConcentrationEvaluator().measure(np.zeros((32, 32)))
    with pytest.raises(ValueError, match="H, W >= 8"):
        ConcentrationEvaluator().measure(np.zeros((2, 4, 4)))


def test_plugin_is_registered():
    # Holds once the example is installed: pip install ./examples/gangal-concentration
    assert validate_evaluator_class(ConcentrationEvaluator) == []
    thing = get_registry().things["evaluator"]["concentration"]
    assert thing.obj is ConcentrationEvaluator
    assert thing.distribution == "gangal-concentration"
    registered = []
    register_evaluators(register=lambda *args: registered.append(args))
    assert registered == [("concentration", ConcentrationEvaluator)]


# ---- the command line -----------------------------------------------------------------------
def test_gangal_plugins_lists_it():
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.output) if r["name"] == "concentration"]
    assert rows == [{"name": "concentration", "kind": "evaluator", "distribution": "gangal-concentration",
                     "version": "0.1.0", "plugin": "concentration"}]  # fmt: skip


def test_gangal_evaluate_with_the_concentration_evaluator(tmp_path: Path):
    rng = np.random.default_rng(3)
    gaussians = np.stack([gaussian_image(64, 31.5 + rng.normal(), 31.5 + rng.normal(), rng.uniform(3, 5))
                          for _ in range(8)])  # fmt: skip
    np.save(tmp_path / "gaussians.npy", np.repeat(gaussians[:, None] * 50, 3, axis=1).astype(np.float32))
    out = tmp_path / "eval"
    args = ["evaluate", "--evaluator", "concentration", "--real", "synthetic", "--real-option", "n=8",
            "--generated", str(tmp_path / "gaussians.npy"), "--out", str(out), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "evaluation.json").read_text())
    assert set(doc["quantities"]) == set(ConcentrationEvaluator.quantities)
    assert doc["evaluator"]["evaluator"] == "concentration" and doc["evaluator"]["eta"] == ETA
    assert doc["failure_rate"] == {"real": 0.0, "generated": 0.0}
    generated = list(csv.DictReader((out / "measurements_generated.csv").open()))
    assert len(generated) == 8 and {r["status"] for r in generated} == {"ok"}
    assert [float(r["concentration"]) for r in generated] == pytest.approx([2.14] * 8, abs=0.02)
    real = list(csv.DictReader((out / "measurements_real.csv").open()))
    assert all(2.0 < float(r["concentration"]) < 4.5 for r in real)
    # galaxies are more concentrated than Gaussians: the comparison sees it
    assert doc["quantities"]["concentration"]["real"]["median"] > 2.3


def test_gangal_evaluate_bad_method_is_a_clear_error(tmp_path: Path):
    images = str(tmp_path / "g.npy")
    np.save(images, np.zeros((4, 1, 16, 16), dtype=np.float32))
    result = CliRunner().invoke(app, ["evaluate", "--evaluator", "concentration", "--method", "psychic",
                                      "--real", images, "--generated", images, "--out", str(tmp_path / "e"),
                                      "--no-progress"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "method='psychic'; expected one of fast, photutils" in result.output
    assert "Traceback" not in result.output
