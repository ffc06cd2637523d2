"""Example gangal plugin: a star on a photon-counting detector.

A single point source, blurred by a circular Gaussian point-spread function (PSF),
is observed on a 32x32 detector that counts photons, over a flat sky background.
The plugin registers two simulators:

``star``
    :class:`StarSimulator`, written directly against :class:`gangal_core.Simulator`
    and vectorised over the batch in torch.  This is the way to write a new simulator.
``star-percall``
    The same physics written as a per-sample numpy function, :func:`star_one`, and
    wrapped with :func:`gangal_core.simulator_from_function`, as one would wrap an
    external code that makes one image per call.  Its images follow the same
    distribution as ``star``'s but are not the same draws.

Both are registered by :func:`register_simulators`, which gangal finds through the
entry point ``star = "gangal_star"`` in the group ``gangal`` (see ``pyproject.toml``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from gangal_core import Parameter, Simulator, hookimpl, simulator_from_function

__all__ = [
    "FWHM_PER_SIGMA",
    "PHOTONS_PER_UNIT",
    "STAMP",
    "STAR_PERCALL",
    "StarSimulator",
    "expected_counts",
    "register_simulators",
    "star_one",
]

STAMP = 32  # the detector is STAMP x STAMP pixels
PHOTONS_PER_UNIT = 100.0  # image value = photon count / PHOTONS_PER_UNIT
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM of a Gaussian / its sigma, ~2.3548


def expected_counts(params: torch.Tensor) -> torch.Tensor:
    """Mean photon count of every pixel: the Poisson rates :class:`StarSimulator` draws from.

    Parameters
    ----------
    params : torch.Tensor
        ``(B, 5)`` tensor of ``(x0, y0, fwhm, flux, sky)`` in physical units.

    Returns
    -------
    torch.Tensor
        float32 tensor of shape ``(B, 1, 32, 32)``, in photons (not divided by
        :data:`PHOTONS_PER_UNIT`), on the device of ``params``.

    Raises
    ------
    ValueError
        If some ``fwhm`` is not positive or some ``flux`` or ``sky`` is negative.

    Notes
    -----
    The detector covers ``[0, 32] x [0, 32]`` with unit pixels, ``x`` to the right and
    ``y`` up, as gangal's built-in simulators: pixel ``(row, col)`` spans
    ``col <= x <= col + 1`` and ``31 - row <= y <= 32 - row``.  The PSF is a circular
    Gaussian of standard deviation ``sigma = fwhm / (2 sqrt(2 ln 2))``, integrated
    exactly over each pixel; being separable it is the product of one fraction per
    axis::

        fx[col] = (erf((col + 1 - x0) / (sqrt(2) sigma)) - erf((col - x0) / (sqrt(2) sigma))) / 2
        fy[row] = (erf((32 - row - y0) / (sqrt(2) sigma)) - erf((31 - row - y0) / (sqrt(2) sigma))) / 2
        rate[row, col] = sky + flux * fy[row] * fx[col]

    Light falling outside the detector is lost; within the declared ranges the star is
    at least 4.7 sigma from every edge, so the loss is below ``1e-5 * flux``.
    """
    p = params.to(torch.float64)
    x0, y0, fwhm, flux, sky = (p[:, i : i + 1] for i in range(5))  # each (B, 1)
    if bool((fwhm <= 0).any() | (flux < 0).any() | (sky < 0).any()):
        raise ValueError("star: fwhm must be > 0, and flux and sky >= 0")
    scale = fwhm / FWHM_PER_SIGMA * math.sqrt(2.0)  # sqrt(2) sigma, (B, 1)
    edges = torch.arange(STAMP + 1, dtype=torch.float64, device=p.device)  # 0, 1, ..., 32
    cdf_x = torch.erf((edges - x0) / scale)  # (B, 33), at x = 0 ... 32
    cdf_y = torch.erf((STAMP - edges - y0) / scale)  # (B, 33), at y = 32 ... 0 (top row first)
    fx = ((cdf_x[:, 1:] - cdf_x[:, :-1]) / 2).clamp_min_(0.0)  # (B, W)
    fy = ((cdf_y[:, :-1] - cdf_y[:, 1:]) / 2).clamp_min_(0.0)  # (B, H)
    rates = sky.unsqueeze(2) + flux.unsqueeze(2) * fy.unsqueeze(2) * fx.unsqueeze(1)  # (B, H, W)
    return rates.to(torch.float32).unsqueeze(1)


class StarSimulator(Simulator):
    """A star seen by a photon-counting detector, ``p = (x0, y0, fwhm, flux, sky)``.

    Each image is one Poisson draw of the photon count in every pixel, divided by
    :data:`PHOTONS_PER_UNIT` (100 photons), so that values are of order one: sky pixels
    hold about 0.01 to 0.2, and the brightest, sharpest star peaks near 16::

        image[0, row, col] = Poisson(rate[row, col]) / 100
        rate[row, col]     = sky + flux * (PSF integrated over the pixel)

    with the rates of :func:`expected_counts` (pixel ``(row, col)`` spans
    ``col <= x <= col + 1`` and ``31 - row <= y <= 32 - row``, ``y`` up).  The only
    randomness is ``torch.poisson(rates, generator=generator)``.

    Notes
    -----
    An image's total count is Poisson too, with mean ``1024 sky + flux`` (less the
    light that falls off the detector, below ``1e-5 flux`` in the declared ranges).
    """

    name = "star"
    image_shape = (1, STAMP, STAMP)
    parameters = (
        Parameter("x0", 10.0, 22.0, unit="px", description="x of the star, from the left edge"),
        Parameter("y0", 10.0, 22.0, unit="px", description="y of the star, from the bottom edge (y up)"),
        Parameter("fwhm", 1.5, 5.0, unit="px", description="full width at half maximum of the Gaussian PSF"),
        Parameter("flux", 200.0, 5000.0, unit="photons", description="expected photons from the star"),
        Parameter("sky", 1.0, 20.0, unit="photons/px", description="expected sky photons per pixel"),
    )
    # A made-up "true" population, well inside the ranges, for demos and benchmarks.
    reference_truth: ClassVar[dict[str, tuple[float, float]]] = {
        "x0": (16.0, 1.0),
        "y0": (16.0, 1.0),
        "fwhm": (3.0, 0.4),
        "flux": (1500.0, 300.0),
        "sky": (8.0, 1.5),
    }

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Draw one star image per row of ``params``.

        Parameters
        ----------
        params : torch.Tensor
            float32 tensor of shape ``(B, 5)``, columns ``(x0, y0, fwhm, flux, sky)`` in
            physical units.
        generator : torch.Generator
            Source of the Poisson draws; it must live on the device of ``params``.

        Returns
        -------
        torch.Tensor
            float32 tensor of shape ``(B, 1, 32, 32)``: photon counts divided by
            :data:`PHOTONS_PER_UNIT`, on the device of ``params``.
        """
        counts = torch.poisson(expected_counts(params), generator=generator)
        return counts.div_(PHOTONS_PER_UNIT)


# ---- the same physics, one sample per call, as an external code would provide -------
_erf = np.vectorize(math.erf, otypes=[float])


def star_one(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One star image from ``p = (x0, y0, fwhm, flux, sky)``, in numpy: the per-call version.

    Same recipe as :class:`StarSimulator` (see :func:`expected_counts`), with the Poisson
    draw from ``rng``.  Module-level, so it can be pickled to worker processes
    (``simulator_from_function(..., workers=4)``).

    Returns
    -------
    numpy.ndarray
        ``(32, 32)`` array of photon counts divided by :data:`PHOTONS_PER_UNIT`.
    """
    x0, y0, fwhm, flux, sky = p
    scale = fwhm / FWHM_PER_SIGMA * math.sqrt(2.0)
    edges = np.arange(STAMP + 1.0)
    fx = np.diff(_erf((edges - x0) / scale)) / 2  # columns, x to the right
    fy = -np.diff(_erf((STAMP - edges - y0) / scale)) / 2  # rows, top row first (y up)
    rates = sky + flux * np.outer(fy, fx)
    return rng.poisson(np.maximum(rates, 0.0)) / PHOTONS_PER_UNIT


STAR_PERCALL = simulator_from_function(
    star_one,
    name="star-percall",
    image_shape=StarSimulator.image_shape,
    parameters=StarSimulator.parameters,
    reference_truth=StarSimulator.reference_truth,
)


@hookimpl
def register_simulators(register):
    """Register ``star`` (a Simulator subclass) and ``star-percall`` (an adapted function)."""
    register(StarSimulator)
    register(STAR_PERCALL)
