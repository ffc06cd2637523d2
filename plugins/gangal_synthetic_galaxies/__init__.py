"""Seeded synthetic galaxies rendered with GalSim (``--data synthetic``).

Each galaxy is a de Vaucouleurs bulge plus an exponential disk that share one intrinsic
axis ratio ``q = b/a`` and position angle, convolved with a Gaussian PSF and the pixel,
in three colour channels (the bulge redder, the disk bluer, like gri composites shown as
RGB), shown through an asinh stretch of the mean intensity (as SDSS composites are made,
Lupton et al. 2004), over a dark sky with Gaussian noise, clipped to ``[0, 1]``.  The
population is meant to look broadly like Galaxy Zoo 2 cut-outs: one galaxy near the
centre whose light lies mostly within 10-20 % of the image width of it.  The stretch is
monotonic in the intensity, so it keeps the isophotes' shapes, angles and centres: the
true ``ellipticity``, ``angle``, ``x0`` and ``y0`` hold for the images as shown, while
``flux`` and ``half_light_radius`` describe the linear light before the stretch.

Image ``i`` depends only on ``(seed, i, resolution)``: its parameters and its noise are
drawn from ``numpy.random.default_rng([seed, i])``, so the images do not depend on the
order or the thread they are read in, and :meth:`SyntheticGalaxies.truth` recomputes
the parameters of every galaxy without rendering any.

Conventions (all in pixels of the native image, indexed ``[y, x]`` = ``[row, column]``,
pixel centres at whole numbers): ``x0``, ``y0`` is the centre of the light; ``angle`` is
the major axis's position angle in degrees in ``[0, 180)``, counter-clockwise from the
``+x`` axis towards ``+y`` (the convention of ``photutils.isophote`` for an array
indexed ``[y, x]``); ``ellipticity`` is ``1 - q``; ``half_light_radius`` is the
circularised radius ``sqrt(a b)`` of the ellipse holding half the light before the PSF;
``flux`` is the total linear light (mean over the channels, sum over an unbounded image,
before the stretch, sky, noise and clipping; linear intensity 1 is shown as 1);
``psf_fwhm`` is the PSF's full width at half maximum.  The rendering of each galaxy,
GalSim's, is serialised by a lock: GalSim holds the GIL while drawing (two threads draw
no faster than one) and its internal caches are not documented as thread-safe.

Options: ``n`` (number of galaxies, default 2048), ``seed`` (default 0) and
``resolution`` (default 128; every length scales with it, so the population looks the
same at any resolution).
"""

from __future__ import annotations

import csv
import os
import threading
from dataclasses import astuple, dataclass, fields
from typing import Any

import numpy as np

from gangal_core import ConfigError, DataSource, atomic_open, hookimpl

__all__ = [
    "NAME",
    "GalaxyParameters",
    "SyntheticGalaxies",
    "draw_parameters",
    "half_light_radius",
    "open_synthetic",
    "register_data_sources",
    "render_galaxy",
    "write_truth_csv",
]

NAME = "synthetic"
#: Bump when the recipe changes, so that decoded caches of the old images are not reused.
RECIPE_VERSION = 1
#: The resolution the population's pixel scales below are given at.
REFERENCE_RESOLUTION = 128
# Colours of the bulge and the disk in the (R, G, B) channels, before normalising to mean 1.
BULGE_COLOUR = (1.25, 1.00, 0.75)
DISK_COLOUR = (0.90, 0.97, 1.13)
#: Softening of the asinh display stretch, in linear intensity (where intensity 1 shows as 1).
STRETCH_SOFTENING = 0.04
# SersicInfo and friends are cached inside GalSim, which is not documented as
# thread-safe; GalSim holds the GIL while drawing anyway (two threads draw no faster than
# one, measured), so serialising the drawing costs nothing.
_GALSIM_LOCK = threading.Lock()


# Sersic b_n, with gammainc(2n, b_n) = 1/2: scipy.special.gammaincinv(2n, 0.5) for n = 4 and 1
# (written out so that loading the plugin does not import scipy)
_B_DEV, _B_EXP = 7.669249442500804, 1.6783469900166612


@dataclass(frozen=True)
class GalaxyParameters:
    """Everything that fixes one galaxy's image except its noise.

    Lengths are in pixels and angles in degrees, with the module's conventions;
    ``bulge_radius`` and ``disk_radius`` are the two components' half-light radii,
    ``sky`` and ``noise_sigma`` the sky level and noise standard deviation as shown, and
    the colours multiply the components' light in (R, G, B), with mean 1.
    """

    ellipticity: float
    angle: float
    bulge_fraction: float
    bulge_radius: float
    disk_radius: float
    flux: float
    x0: float
    y0: float
    psf_fwhm: float
    sky: float
    noise_sigma: float
    bulge_colour: tuple[float, float, float]
    disk_colour: tuple[float, float, float]

    @property
    def half_light_radius(self) -> float:
        """Circularised radius holding half the light before the PSF."""
        return float(half_light_radius(self.bulge_fraction, self.bulge_radius, self.disk_radius))


def draw_parameters(rng: np.random.Generator, resolution: int = REFERENCE_RESOLUTION) -> GalaxyParameters:
    """Draw one galaxy's parameters; always the same number of draws from ``rng``.

    Parameters
    ----------
    rng : numpy.random.Generator
        ``default_rng([seed, index])``; the noise is drawn from it afterwards.
    resolution : int, optional
        Image side in pixels; lengths scale as ``resolution / 128`` and fluxes as its square.
    """
    scale = resolution / REFERENCE_RESOLUTION
    u = rng.random(12)
    early = u[0] < 0.3  # bulge-dominated, rounder; otherwise a disk galaxy
    bulge_fraction = 0.6 + 0.4 * u[1] if early else 0.5 * u[1]
    q_min = 0.45 if early else 0.2
    q = q_min + (1.0 - q_min) * u[2]
    disk_radius = (5.5 + 5.5 * u[3]) * scale  # exponential disk r90 ~ 2.3 x this: 10-20 % of the width
    bulge_radius = disk_radius * (0.25 + 0.3 * u[4])
    central = 0.3 * 4.0 ** u[5]  # central intensity (0.3-1.2) the galaxy would have as a pure disk
    flux = central * 2.0 * np.pi * (disk_radius / _B_EXP) ** 2
    jitter = (u[6:8] - 0.5) * 3.0 * scale  # up to 1.5 px (at 128) off centre
    colours = np.exp(0.06 * rng.standard_normal(6)).reshape(2, 3) * (BULGE_COLOUR, DISK_COLOUR)
    colours /= colours.mean(axis=1, keepdims=True)
    centre = (resolution - 1) / 2.0
    return GalaxyParameters(
        ellipticity=float(1.0 - q),
        angle=float(180.0 * u[8]),
        bulge_fraction=float(bulge_fraction),
        bulge_radius=float(bulge_radius),
        disk_radius=float(disk_radius),
        flux=float(flux),
        x0=float(centre + jitter[0]),
        y0=float(centre + jitter[1]),
        psf_fwhm=float((1.5 + 1.0 * u[9]) * scale),
        sky=float(0.015 * u[10]),
        noise_sigma=float(0.01 + 0.02 * u[11]),
        bulge_colour=tuple(float(c) for c in colours[0]),
        disk_colour=tuple(float(c) for c in colours[1]),
    )


def half_light_radius(bulge_fraction: Any, bulge_radius: Any, disk_radius: Any) -> np.ndarray:
    """Radius holding half the light of bulge + disk (circularised, before the PSF).

    Vectorised bisection on the enclosed light of the two Sersic profiles (n = 4 and 1),
    which is ``P(2n, b_n (r / r_e)^(1/n))`` with ``P`` the regularised lower incomplete gamma
    function; the answer lies between the two components' half-light radii.
    """
    from scipy.special import gammainc

    bt, rb, rd = (np.asarray(a, dtype=np.float64) for a in (bulge_fraction, bulge_radius, disk_radius))
    lo, hi = np.minimum(rb, rd), np.maximum(rb, rd)
    for _ in range(40):  # 2^-40 of the bracket
        mid = 0.5 * (lo + hi)
        bulge, disk = gammainc(8.0, _B_DEV * (mid / rb) ** 0.25), gammainc(2.0, _B_EXP * mid / rd)
        enclosed = bt * bulge + (1.0 - bt) * disk
        below = enclosed < 0.5
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def render_galaxy(
    p: GalaxyParameters,
    resolution: int,
    *,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Render one galaxy as float32 ``(3, resolution, resolution)`` in ``[0, 1]``.

    Parameters
    ----------
    p : GalaxyParameters
        The galaxy.
    resolution : int
        Image side in pixels.
    rng : numpy.random.Generator, optional
        Source of the sky noise; ``None`` renders the noiseless galaxy without sky.
    """
    import galsim

    centre = (resolution - 1) / 2.0
    # folding_threshold 1e-2 (GalSim's default 5e-3): FFTs a quarter faster; the images change by
    # at most 1.4e-4 in linear intensity (1e-3 as shown, a quarter of one 8-bit level; measured)
    gsparams = galsim.GSParams(folding_threshold=1e-2)
    with _GALSIM_LOCK:
        psf = galsim.Gaussian(fwhm=p.psf_fwhm, gsparams=gsparams)
        shear = galsim.Shear(q=1.0 - p.ellipticity, beta=p.angle * galsim.degrees)
        options = {"nx": resolution, "ny": resolution, "scale": 1.0, "offset": (p.x0 - centre, p.y0 - centre)}
        parts = []
        bulge = galsim.DeVaucouleurs(half_light_radius=p.bulge_radius, gsparams=gsparams)
        disk = galsim.Exponential(half_light_radius=p.disk_radius, gsparams=gsparams)
        components = (
            (p.bulge_fraction, bulge, p.bulge_colour),
            (1.0 - p.bulge_fraction, disk, p.disk_colour),
        )
        for fraction, profile, colour in components:
            if fraction > 0:
                drawn = galsim.Convolve(profile.shear(shear), psf).drawImage(**options).array
                parts.append((fraction * p.flux * np.asarray(colour, dtype=np.float32), drawn))
    image = np.zeros((3, resolution, resolution), dtype=np.float32)
    for weights, drawn in parts:
        image += weights[:, None, None] * drawn
    _stretch(image)
    if rng is not None:
        noise = rng.standard_normal((3, resolution, resolution), dtype=np.float32)
        image += np.float32(p.sky) + np.float32(p.noise_sigma) * noise
    return np.clip(image, 0.0, 1.0, out=image)


def _stretch(image: np.ndarray) -> None:
    """Apply the display stretch in place: ``asinh`` of the channel mean, colours kept.

    Each pixel's channels are scaled by ``F(I) / I`` with ``I`` their mean and
    ``F(I) = asinh(I / s) / asinh(1 / s)``, ``s`` = :data:`STRETCH_SOFTENING` (Lupton et al.
    2004, as SDSS gri composites are made): ``F(1) = 1``, faint light is lifted and bright
    light compressed.  The channel mean becomes ``F(I)``, a monotonic function of ``I``, so
    isophote shapes, orientations and centres are unchanged.
    """
    mean = image.mean(axis=0)
    gain = np.full_like(mean, 1.0 / (STRETCH_SOFTENING * np.arcsinh(1.0 / STRETCH_SOFTENING)))  # F(I)/I at 0
    lit = mean > 1e-8
    gain[lit] = np.arcsinh(mean[lit] / STRETCH_SOFTENING) / (np.arcsinh(1.0 / STRETCH_SOFTENING) * mean[lit])
    image *= gain


class SyntheticGalaxies(DataSource):
    """``n`` seeded bulge + disk galaxies, rendered on demand.

    Parameters
    ----------
    n : int, optional
        Number of galaxies (default 2048).
    seed : int, optional
        Seed of the population (default 0); image ``i`` uses ``default_rng([seed, i])``.
    resolution : int, optional
        Side of the images in pixels (default 128).
    """

    name = NAME
    channels = 3

    def __init__(self, *, n: int = 2048, seed: int = 0, resolution: int = REFERENCE_RESOLUTION) -> None:
        self.n = _whole("n", n, minimum=1)
        self.seed = _whole("seed", seed, minimum=0)
        self.resolution = _whole("resolution", resolution, minimum=16)
        self._truth: dict[str, np.ndarray] | None = None
        self._truth_lock = threading.Lock()

    def __len__(self) -> int:
        """Number of galaxies."""
        return self.n

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.n:
            raise IndexError(f"synthetic galaxy {index} out of range: the source holds {self.n}")
        return np.random.default_rng([self.seed, int(index)])

    def parameters(self, index: int) -> GalaxyParameters:
        """The parameters of galaxy ``index`` (no rendering)."""
        return draw_parameters(self._rng(index), self.resolution)

    def render(self, index: int, *, noise: bool = True) -> np.ndarray:
        """Galaxy ``index`` as float32 ``(3, H, W)`` in ``[0, 1]``; ``noise=False``: without sky and noise."""
        rng = self._rng(index)
        p = draw_parameters(rng, self.resolution)
        return render_galaxy(p, self.resolution, rng=rng if noise else None)

    def read(self, index: int) -> np.ndarray:
        """Galaxy ``index`` with sky and noise, float32 ``(3, H, W)`` in ``[0, 1]``."""
        return self.render(index)

    def truth(self) -> dict[str, np.ndarray]:
        """Each galaxy's true shape, size, position, flux and PSF (see the module's conventions).

        Returns
        -------
        dict of str to ndarray
            ``ellipticity``, ``angle``, ``half_light_radius``, ``bulge_fraction``, ``flux``,
            ``x0``, ``y0``, ``psf_fwhm``, and ``bulge_radius``, ``disk_radius``, ``sky``,
            ``noise_sigma``; float64 arrays of length ``n``.
        """
        with self._truth_lock:
            if self._truth is None:
                rows = [astuple(self.parameters(i)) for i in range(self.n)]
                names = [f.name for f in fields(GalaxyParameters)]
                table = {k: np.array([r[j] for r in rows], dtype=np.float64) for j, k in enumerate(names)
                         if k not in ("bulge_colour", "disk_colour")}  # fmt: skip
                hlr = half_light_radius(table["bulge_fraction"], table["bulge_radius"], table["disk_radius"])
                order = ("ellipticity", "angle", "half_light_radius", "bulge_fraction", "flux", "x0", "y0",
                         "psf_fwhm", "bulge_radius", "disk_radius", "sky", "noise_sigma")  # fmt: skip
                self._truth = {k: hlr if k == "half_light_radius" else table[k] for k in order}
                for array in self._truth.values():
                    array.flags.writeable = False
            return dict(self._truth)

    def describe(self) -> dict[str, Any]:
        """Provenance: recipe version, GalSim version, ``n``, ``seed`` and ``resolution``."""
        import galsim

        return {
            "source": NAME,
            "recipe_version": RECIPE_VERSION,
            "galsim": galsim.__version__,
            "n_images": self.n,
            "seed": self.seed,
            "resolution": self.resolution,
        }


def _whole(option: str, value: Any, *, minimum: int) -> int:
    """``value`` as an int of at least ``minimum`` (command-line options may arrive as text)."""
    try:
        number = int(str(value).strip()) if not isinstance(value, bool | float) else None
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise ConfigError(f"synthetic: {option}={value!r}: expected a whole number of at least {minimum}.")
    return number


def write_truth_csv(source: DataSource, path: str | os.PathLike) -> None:
    """Write ``source.truth()`` as CSV, one row per image: ``index`` then the truth columns.

    Parameters
    ----------
    source : DataSource
        A source whose :meth:`~gangal_core.data.DataSource.truth` is not None.
    path : path-like
        The CSV file, written atomically (its folder must exist).
    """
    truth = source.truth()
    if truth is None:
        raise ConfigError(f"data source {source.name!r} has no truth table to write to {path}.")
    names = list(truth)
    with atomic_open(path, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["index", *names])
        columns = [np.asarray(truth[k]) for k in names]
        for i in range(len(source)):
            writer.writerow([i, *(repr(float(c[i])) for c in columns)])


def open_synthetic(
    path: str | os.PathLike | None, *, n: int = 2048, seed: int = 0, resolution: int = 128
) -> DataSource:
    """The ``synthetic`` factory (``--data synthetic``); it takes no path.

    Parameters
    ----------
    path : None
        Must be None: the images are defined by ``n``, ``seed`` and ``resolution`` alone.
    n, seed, resolution : int, optional
        See :class:`SyntheticGalaxies`.
    """
    if path is not None:
        raise ConfigError(
            f"--data synthetic:{path}: the synthetic source takes no path; its images are fixed by the "
            "options n, seed and resolution (write the true parameters with "
            "gangal_synthetic_galaxies.write_truth_csv)."
        )
    try:
        import galsim  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "--data synthetic needs GalSim, which is not installed; run pip install galsim."
        ) from exc
    return SyntheticGalaxies(n=n, seed=seed, resolution=resolution)


@hookimpl
def register_data_sources(register):
    """Register the ``synthetic`` data source."""
    register(NAME, open_synthetic)
