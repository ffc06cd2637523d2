"""Tests of the gangal-star example plugin.

The registry test needs the plugin installed (``pip install ./examples/gangal-star``):
gangal finds plugins through installed entry points only.
"""

from __future__ import annotations

import math

import pytest
import torch
from gangal_star import PHOTONS_PER_UNIT, STAMP, STAR_PERCALL, StarSimulator, expected_counts, star_one

from gangal_core import check_simulator, simulator_from_function
from gangal_core.plugins import get_registry

NPIX = STAMP * STAMP


def _batch(n: int, x0: float, y0: float, fwhm: float, flux: float, sky: float) -> torch.Tensor:
    return torch.tensor([[x0, y0, fwhm, flux, sky]], dtype=torch.float32).repeat(n, 1)


def _counts(images: torch.Tensor) -> torch.Tensor:
    """Back from image units to photon counts (float64, exact integers)."""
    return (images.double() * PHOTONS_PER_UNIT).round()


def test_star_honours_the_contract():
    check_simulator(StarSimulator())


def test_star_percall_honours_the_contract():
    check_simulator(STAR_PERCALL)


def test_images_are_whole_photon_counts_over_the_stated_constant():
    images = StarSimulator().simulate(
        _batch(4, 16, 16, 3, 1500, 8), generator=torch.Generator().manual_seed(1)
    )
    counts = images.double() * PHOTONS_PER_UNIT
    assert torch.allclose(counts, counts.round(), atol=1e-3)
    assert counts.min() >= 0


@pytest.mark.parametrize("sim", [StarSimulator(), STAR_PERCALL], ids=lambda s: s.name)
@pytest.mark.parametrize(("x0", "y0", "fwhm", "flux", "sky"), [(16, 16, 3, 1500, 8), (10, 22, 5, 5000, 1)])
def test_mean_total_counts_is_sky_times_npix_plus_flux(sim, x0, y0, fwhm, flux, sky):
    # The total count of one image is Poisson with mean sky * 1024 + flux (less < 1e-5 flux lost off
    # the edges), so the mean over n images has standard error sqrt(mean / n).  Tolerance: 5 of them.
    n = 2000 if sim is STAR_PERCALL else 4000
    totals = _counts(
        sim.simulate(_batch(n, x0, y0, fwhm, flux, sky), generator=torch.Generator().manual_seed(2))
    )
    totals = totals.sum(dim=(1, 2, 3))
    expected = sky * NPIX + flux
    tolerance = 5 * math.sqrt(expected / n) + 1e-5 * flux
    assert abs(totals.mean().item() - expected) < tolerance
    # and Poisson: the variance equals the mean, to 10%
    assert totals.var().item() == pytest.approx(expected, rel=0.1)


def test_expected_counts_holds_the_whole_star():
    params = torch.tensor([[10, 10, 5, 5000, 3], [22, 22, 1.5, 200, 20], [16.3, 12.7, 2.2, 1000, 1]])
    rates = expected_counts(params).double()
    star = rates.sum(dim=(1, 2, 3)) - params[:, 4].double() * NPIX
    assert torch.allclose(star, params[:, 3].double(), rtol=1e-5)


@pytest.mark.parametrize(("x0", "y0"), [(13.3, 18.7), (10.0, 10.0), (22.0, 10.0), (16.5, 21.9)])
def test_star_appears_where_x0_y0_say(x0, y0):
    # High flux, faint sky: the sky-subtracted centroid of each image, in the same coordinates
    # as x0, y0 (x = col + 0.5, y = 31.5 - row, y up), must lie within 0.3 px of (x0, y0).
    sky = 1.0
    images = StarSimulator().simulate(
        _batch(16, x0, y0, 2.5, 5000, sky), generator=torch.Generator().manual_seed(3)
    )
    light = _counts(images)[:, 0] - sky  # (B, H, W)
    x = torch.arange(STAMP, dtype=torch.float64) + 0.5
    y = STAMP - 0.5 - torch.arange(STAMP, dtype=torch.float64)
    total = light.sum(dim=(1, 2))
    cx = (light * x).sum(dim=(1, 2)) / total
    cy = (light * y[:, None]).sum(dim=(1, 2)) / total
    assert (cx - x0).abs().max() < 0.3, cx
    assert (cy - y0).abs().max() < 0.3, cy


def test_same_seed_same_images_and_percall_matches_star_on_average():
    params = StarSimulator.sample_uniform(8, generator=torch.Generator().manual_seed(4))
    a = StarSimulator().simulate(params, generator=torch.Generator().manual_seed(5))
    b = StarSimulator().simulate(params, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    # star-percall draws from the same rates: its mean image over many draws matches them
    many = params[:1].repeat(4000, 1)
    mean = _counts(STAR_PERCALL.simulate(many, generator=torch.Generator().manual_seed(6))).mean(dim=0)
    rates = expected_counts(params[:1])[0].double()
    assert ((mean - rates).abs() <= 6 * (rates / 4000).sqrt() + 1e-9).all()


@pytest.mark.slow
def test_percall_images_do_not_depend_on_workers():
    params = StarSimulator.sample_uniform(40, generator=torch.Generator().manual_seed(7))
    serial = STAR_PERCALL.simulate(params, generator=torch.Generator().manual_seed(8))
    pooled = simulator_from_function(
        star_one,
        name="star-percall",
        image_shape=StarSimulator.image_shape,
        parameters=StarSimulator.parameters,
        workers=2,
        chunk_size=8,
    )
    try:
        parallel = pooled.simulate(params, generator=torch.Generator().manual_seed(8))
    finally:
        pooled.close()
    assert torch.equal(serial, parallel)


def test_plugin_is_registered():
    # Holds once the example is installed: pip install ./examples/gangal-star
    registry = get_registry()
    star = registry.things["simulator"]["star"]
    assert star.obj is StarSimulator
    assert star.distribution == "gangal-star"
    assert registry.things["simulator"]["star-percall"].obj is STAR_PERCALL
    assert isinstance(registry.simulator("star"), StarSimulator)
