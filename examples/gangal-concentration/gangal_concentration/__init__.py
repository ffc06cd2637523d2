"""Example gangal plugin: the CAS concentration index and Petrosian sizes of galaxy images.

The plugin registers one evaluator, ``concentration``, for ``gangal evaluate``.  Per image
it measures four standard, model-free galaxy morphology quantities:

``concentration``
    ``C = 5 log10(r80 / r20)`` (Bershady, Jangren & Conselice 2000; Conselice 2003), where
    ``r20`` and ``r80`` are the radii of the circles holding 20% and 80% of the galaxy's
    light.  About 2.1 for a Gaussian, 2.7 for an exponential disk, 4.2 for a de
    Vaucouleurs profile.
``half_light_radius``
    ``r50``, the radius of the circle holding half the light, in pixels.
``petrosian_radius``
    ``r_p``, where the Petrosian ratio falls to 0.2 (SDSS's definition; Blanton et al.
    2001), in pixels.
``flux``
    The galaxy's light, the sky-subtracted sum within ``1.5 r_p`` (Conselice 2003), in
    the images' units.

:class:`ConcentrationEvaluator` is written directly against
:class:`gangal_core.evaluation.Evaluator` and measures a whole batch at once in numpy.
It is registered by :func:`register_evaluators`, which gangal finds through the entry
point ``concentration = "gangal_concentration"`` in the group ``gangal`` (see
``pyproject.toml``).  :func:`concentration_statistics` is the same measurement as a plain
function that also returns the centre, the sky, ``r20`` and ``r80``.

References
----------
Bershady, M. A., Jangren, A. & Conselice, C. J. 2000, AJ 119, 2645.
Blanton, M. R. et al. 2001, AJ 121, 2358.
Conselice, C. J. 2003, ApJS 147, 1.
Petrosian, V. 1976, ApJ 209, L1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from gangal_core import OK, Evaluator, Measurements, hookimpl

__all__ = [
    "ANNULUS",
    "ETA",
    "EXTENT",
    "METHODS",
    "ConcentrationEvaluator",
    "concentration_statistics",
    "curve_of_growth",
    "find_centres",
    "max_radius",
    "register_evaluators",
    "sky_and_noise",
]

ETA = 0.2  # Petrosian ratio at the Petrosian radius (SDSS: Blanton et al. 2001)
ANNULUS = (0.8, 1.25)  # the annulus, in units of r, whose mean surface brightness is "the" one at r
EXTENT = 1.5  # the galaxy's light is the light within EXTENT * r_p (Conselice 2003)
FRACTIONS = (0.2, 0.5, 0.8)  # r20, r50, r80
R_START = 1.0  # the Petrosian radius is looked for from 1 px out: within a pixel there is no profile
METHODS = ("fast", "photutils")
MIN_SIDE = 8  # smallest image side measured
_ANNULUS_AREA = ANNULUS[1] ** 2 - ANNULUS[0] ** 2  # annulus area over the area within r: 0.9225
_MEASURED = ("concentration", "half_light_radius", "petrosian_radius", "flux", "r20", "r80")


# ---- the steps shared by both methods ------------------------------------------------------
def sky_and_noise(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sky level and pixel noise of each image, from its border.

    Parameters
    ----------
    images : numpy.ndarray
        ``(N, H, W)`` float images.

    Returns
    -------
    sky, sigma : numpy.ndarray
        Each ``(N,)``: the median of a border frame ``max(2, min(H, W) // 16)`` pixels wide,
        and 1.4826 times the median absolute deviation from it (the standard deviation of
        Gaussian noise), or the frame's standard deviation where that is zero (quantised
        images), never below ``1e-12``.
    """
    height, width = images.shape[1:]
    w = max(2, min(height, width) // 16)
    frame = np.ones((height, width), dtype=bool)
    frame[w:-w, w:-w] = False
    border = images[:, frame]
    sky = np.median(border, axis=1)
    sigma = 1.4826 * np.median(np.abs(border - sky[:, None]), axis=1)
    sigma = np.where(sigma > 0, sigma, border.std(axis=1))
    return sky, np.maximum(sigma, 1e-12)


def find_centres(
    light: np.ndarray,
    sigma: np.ndarray,
    *,
    detect_k: float = 5.0,
    threshold_k: float = 2.0,
    max_iterations: int = 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detect the central galaxy of each sky-subtracted image and find its centre.

    Detection: the brightest pixel of the image smoothed by a 3x3 mean, within the central
    window (a circle of radius ``min(H, W) / 4`` about the image centre
    ``((W - 1) / 2, (H - 1) / 2)``), must exceed ``detect_k * sigma / 3`` (``sigma / 3`` is
    the noise of a 3x3 mean of white noise).  Centre: the flux-weighted centroid of the
    pixels brighter than ``threshold_k * sigma`` within the window, the window then moved to
    the centroid, until it moves less than 0.01 px (at most ``max_iterations`` times).  The
    window keeps neighbours near the edges out.

    Parameters
    ----------
    light : numpy.ndarray
        ``(N, H, W)`` sky-subtracted images, indexed ``[y, x]``, pixel centres at whole numbers.
    sigma : numpy.ndarray
        ``(N,)`` pixel noise.
    detect_k : float, optional
        Detection threshold in noise sigmas of the smoothed image (default 5).
    threshold_k : float, optional
        Pixels fainter than ``threshold_k * sigma`` are left out of the centroid (default 2).
    max_iterations : int, optional
        At most this many centroid steps (default 20).

    Returns
    -------
    x0, y0 : numpy.ndarray
        ``(N,)`` centres in pixels (column, row); NaN where ``found`` is False.
    found : numpy.ndarray
        ``(N,)`` bool: False where no source was detected.
    """
    from scipy.ndimage import uniform_filter

    n, height, width = light.shape
    x0, y0 = np.full(n, (width - 1) / 2.0), np.full(n, (height - 1) / 2.0)
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    window = min(height, width) / 4.0

    def in_window(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (xs[None, None, :] - x[:, None, None]) ** 2 + (ys[None, :, None] - y[:, None, None]) ** 2 <= (
            window**2
        )

    smooth = uniform_filter(light, size=(1, 3, 3), mode="nearest")
    peak = np.where(in_window(x0, y0), smooth, -np.inf).max(axis=(1, 2))
    found = peak > detect_k * sigma / 3.0
    weights = np.where(light > threshold_k * sigma[:, None, None], light, 0.0)
    for _ in range(max_iterations):
        w = np.where(in_window(x0, y0), weights, 0.0)
        total = w.sum(axis=(1, 2))
        found &= total > 0
        safe = np.where(found, total, 1.0)
        nx = np.where(found, (w.sum(axis=1) * xs).sum(axis=1) / safe, x0)
        ny = np.where(found, (w.sum(axis=2) * ys).sum(axis=1) / safe, y0)
        moved = np.hypot(nx - x0, ny - y0)
        x0, y0 = nx, ny
        if not (moved >= 0.01).any():
            break
    return np.where(found, x0, np.nan), np.where(found, y0, np.nan), found


def max_radius(x0: np.ndarray, y0: np.ndarray, height: int, width: int) -> np.ndarray:
    """Radius of the largest circle about ``(x0, y0)`` that lies inside an ``H x W`` image."""
    return np.minimum.reduce([x0 + 0.5, width - 0.5 - x0, y0 + 0.5, height - 0.5 - y0])


def curve_of_growth(
    light: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    *,
    step: float = 0.1,
    subpixels: int = 4,
    r_out: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The light within circles of radius ``0, step, 2 step, ...`` about each centre.

    Each pixel ``(row, col)``, the square ``[col - 0.5, col + 0.5] x [row - 0.5, row + 0.5]``,
    is split into ``subpixels x subpixels`` equal parts, each carrying an equal share of the
    pixel's value and counted in a circle when its centre lies inside (photutils' aperture
    method ``"subpixel"``), for every radius at once: one weighted histogram of the parts'
    distances per image, summed cumulatively.

    Parameters
    ----------
    light : numpy.ndarray
        ``(N, H, W)`` images.
    x0, y0 : numpy.ndarray
        ``(N,)`` centres in pixels (column, row; pixel centres at whole numbers).
    step : float, optional
        Spacing of the radii in pixels (default 0.1).
    subpixels : int, optional
        Parts per pixel side (default 4).
    r_out : float, optional
        Largest radius wanted (default: far enough to cover every pixel).

    Returns
    -------
    radii : numpy.ndarray
        ``(R + 1,)`` float64, ``radii[j] = j * step``.
    flux : numpy.ndarray
        ``(N, R + 1)`` float64: ``flux[i, j]`` is the light of image ``i`` within
        ``radii[j]`` (``flux[:, 0] = 0``).
    """
    n, height, width = light.shape
    if np.shape(x0) != (n,) or np.shape(y0) != (n,):
        raise ValueError(
            f"curve_of_growth: {n} images but centres of shape {np.shape(x0)} and {np.shape(y0)}; "
            f"expected ({n},) each."
        )
    s = int(subpixels)
    if r_out is None:
        r_out = math.hypot(height, width)
    n_bins = max(1, math.ceil(r_out / step))
    offsets = (np.arange(s) + 0.5) / s - 0.5
    xs = (np.arange(width)[:, None] + offsets).ravel()  # centres of the parts, (W s,)
    ys = (np.arange(height)[:, None] + offsets).ravel()  # (H s,)
    dx2 = (xs[None, :] - x0[:, None]) ** 2  # (N, W s)
    dy2 = (ys[None, :] - y0[:, None]) ** 2  # (N, H s)
    distance = dy2[:, :, None] + dx2[:, None, :]  # squared for now, (N, H s, W s)
    np.sqrt(distance, out=distance)
    distance /= step
    np.minimum(distance, n_bins, out=distance)  # bin n_bins: beyond r_out
    bins = distance.astype(np.intp)
    del distance
    bins += (np.arange(n) * (n_bins + 1))[:, None, None]
    parts = np.repeat(np.repeat(light / (s * s), s, axis=1), s, axis=2)
    hist = np.bincount(bins.ravel(), weights=parts.ravel(), minlength=n * (n_bins + 1))
    flux = np.zeros((n, n_bins + 1))
    flux[:, 1:] = np.cumsum(hist.reshape(n, n_bins + 1)[:, :n_bins], axis=1)
    return np.arange(n_bins + 1) * step, flux


def _interpolate(flux: np.ndarray, r: np.ndarray, step: float) -> np.ndarray:
    """``flux`` (N, R + 1) on the grid ``j * step``, linearly interpolated at radii ``r`` (N, K)."""
    position = np.clip(r / step, 0.0, flux.shape[1] - 1.0)
    j = np.minimum(position.astype(np.intp), flux.shape[1] - 2)
    t = position - j
    below = np.take_along_axis(flux, j, axis=1)
    return below + t * (np.take_along_axis(flux, j + 1, axis=1) - below)


def _first(mask: np.ndarray) -> np.ndarray:
    """Index of the first True of each row, or -1."""
    return np.where(mask.any(axis=1), mask.argmax(axis=1), -1)


# ---- the fast method: every radius of every image at once ---------------------------------------
def _measure_fast(
    light: np.ndarray, x0: np.ndarray, y0: np.ndarray, r_max: np.ndarray, *, step: float, subpixels: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = len(light)
    radii, flux = curve_of_growth(
        light, np.nan_to_num(x0), np.nan_to_num(y0), step=step, subpixels=subpixels,
        r_out=float(np.nanmax(r_max, initial=step)),
    )  # fmt: skip
    rows = np.arange(n)
    # Petrosian ratio on the grid, where the outer edge of its annulus lies inside the image
    r = np.broadcast_to(radii, flux.shape)
    inner, outer = (_interpolate(flux, a * r, step) for a in ANNULUS)
    usable = (ANNULUS[1] * r <= r_max[:, None]) & (flux > 0) & (r >= R_START - 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(usable, (outer - inner) / (_ANNULUS_AREA * flux), np.nan)
    j = _first(usable & (eta < ETA))
    jj = np.maximum(j, 1)
    before, at = eta[rows, jj - 1], eta[rows, jj]
    straddles = usable[rows, jj - 1] & (before >= ETA)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_p = radii[jj] - np.where(straddles, (ETA - at) / (before - at), 0.0) * step
    r_p = np.where(j > 0, r_p, np.nan)
    total = _interpolate(flux, np.nan_to_num(EXTENT * r_p)[:, None], step)[:, 0]
    out: dict[str, np.ndarray] = {"petrosian_radius": r_p, "flux": total}
    for k in FRACTIONS:
        level = k * total
        i = np.maximum(_first(flux >= level[:, None]), 1)
        low, high = flux[rows, i - 1], flux[rows, i]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"r{round(100 * k)}"] = radii[i - 1] + (level - low) / (high - low) * step
    status = _status(r_p, r_max, total)
    return status, out


def _status(r_p: np.ndarray, r_max: np.ndarray, total: np.ndarray) -> np.ndarray:
    status = np.full(len(r_p), OK, dtype=object)
    status[~(total > 0)] = "no flux"
    status[EXTENT * r_p > r_max] = "aperture off the image"
    status[np.isnan(r_p)] = "no petrosian radius"
    return status


# ---- the reference method: photutils' exact apertures and root finding ---------------------------
def _measure_exact_one(
    light: np.ndarray, x0: float, y0: float, r_max: float, *, step: float
) -> tuple[str, dict[str, float]]:
    """One image with exact circle-pixel overlaps; crossings bracketed on the grid, then solved."""
    from photutils.aperture import CircularAperture
    from scipy.optimize import brentq

    cache: dict[float, float] = {}

    def within(r: float) -> float:
        if r <= 0:
            return 0.0
        if r not in cache:
            cache[r] = float(CircularAperture((x0, y0), r=r).do_photometry(light, method="exact")[0][0])
        return cache[r]

    def eta(r: float) -> float:
        inside = within(r)
        if inside <= 0:
            return math.nan
        return (within(ANNULUS[1] * r) - within(ANNULUS[0] * r)) / (_ANNULUS_AREA * inside)

    r_p, previous, j = math.nan, math.nan, math.ceil(R_START / step - 1e-9)
    while ANNULUS[1] * j * step <= r_max:
        value = eta(j * step)
        if value < ETA:
            a, b = (j - 1) * step, j * step
            r_p = brentq(lambda r: eta(r) - ETA, a, b, xtol=1e-6) if previous >= ETA else b
            break
        previous, j = value, j + 1
    total = within(EXTENT * r_p) if EXTENT * r_p <= r_max else math.nan
    status = str(_status(np.array([r_p]), np.array([r_max]), np.array([total]))[0])
    values = {"petrosian_radius": r_p, "flux": total}
    if status != OK:
        return status, values
    grid = [*np.arange(1, math.ceil(EXTENT * r_p / step)) * step, EXTENT * r_p]
    for k in FRACTIONS:
        a = 0.0
        for b in grid:
            if within(b) >= k * total:
                break
            a = b
        values[f"r{round(100 * k)}"] = brentq(lambda r, k=k: within(r) - k * total, a, b, xtol=1e-6)
    return status, values


def _measure_exact(
    light: np.ndarray, x0: np.ndarray, y0: np.ndarray, r_max: np.ndarray, *, step: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = len(light)
    status = np.full(n, "no source", dtype=object)
    out = {k: np.full(n, np.nan) for k in ("petrosian_radius", "flux", "r20", "r50", "r80")}
    for i in np.flatnonzero(np.isfinite(x0)):
        status[i], values = _measure_exact_one(
            light[i], float(x0[i]), float(y0[i]), float(r_max[i]), step=step
        )
        for k, v in values.items():
            out[k][i] = v
    return status, out


# ---- both together ----------------------------------------------------------------------------
def concentration_statistics(
    images: np.ndarray,
    *,
    method: str = "fast",
    step: float = 0.1,
    subpixels: int = 4,
    detect_k: float = 5.0,
    threshold_k: float = 2.0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Concentration, Petrosian radius and light radii of every image of a batch.

    Parameters
    ----------
    images : numpy.ndarray
        ``(N, H, W)`` single-band images in linear units, indexed ``[y, x]``, at least
        8x8 pixels.
    method : {"fast", "photutils"}, optional
        How the light within a circle is measured; see :class:`ConcentrationEvaluator`.
    step : float, optional
        Spacing in pixels of the radii the curve of growth is sampled at (default 0.1).
    subpixels : int, optional
        Parts per pixel side for the fast method (default 4).
    detect_k, threshold_k : float, optional
        Detection and centroid thresholds in noise sigmas; see :func:`find_centres`
        (defaults 5 and 2).

    Returns
    -------
    status : numpy.ndarray
        ``(N,)`` object array: ``"ok"`` or why the measurement failed.
    values : dict of str to numpy.ndarray
        ``(N,)`` float64 arrays: ``concentration``, ``half_light_radius`` (``r50``),
        ``petrosian_radius``, ``flux``, ``r20``, ``r80`` (all radii in pixels), the centre
        ``x0``, ``y0`` (column, row) and the ``sky`` level; NaN where ``status`` is not
        ``"ok"`` (``x0``, ``y0`` and ``sky`` are kept wherever they were found).

    Raises
    ------
    ValueError
        If ``images`` is not ``(N, H, W)`` with ``H, W >= 8``, or ``method`` is unknown.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or min(images.shape[1:]) < MIN_SIDE:
        raise ValueError(
            f"concentration: expected images of shape (N, H, W) with H, W >= {MIN_SIDE}, "
            f"found {images.shape}."
        )
    if method not in METHODS:
        raise ValueError(f"concentration: method={method!r}; expected one of {', '.join(METHODS)}.")
    height, width = images.shape[1:]
    finite = np.isfinite(images).all(axis=(1, 2))
    clean = np.where(finite[:, None, None], images, 0.0)
    flat = np.ptp(clean, axis=(1, 2)) <= 1e-12 * np.maximum(1.0, np.abs(clean).max(axis=(1, 2)))
    sky, sigma = sky_and_noise(clean)
    light = clean - sky[:, None, None]
    x0, y0, found = find_centres(light, sigma, detect_k=detect_k, threshold_k=threshold_k)
    usable = finite & ~flat & found
    x0, y0 = np.where(usable, x0, np.nan), np.where(usable, y0, np.nan)
    r_max = max_radius(x0, y0, height, width)
    if method == "fast":
        status, values = _measure_fast(light, x0, y0, r_max, step=step, subpixels=subpixels)
    else:
        status, values = _measure_exact(light, x0, y0, r_max, step=step)
    status[~found] = "no source"
    status[flat] = "flat image"
    status[~finite] = "non-finite pixels"
    values["half_light_radius"] = values.pop("r50")
    with np.errstate(divide="ignore", invalid="ignore"):
        values["concentration"] = 5.0 * np.log10(values["r80"] / values["r20"])
    failed = status != OK
    out = {k: np.where(failed, np.nan, values[k]) for k in _MEASURED}
    out.update(x0=x0, y0=y0, sky=np.where(finite, sky, np.nan))
    return status, out


class ConcentrationEvaluator(Evaluator):
    """CAS concentration, half-light radius, Petrosian radius and Petrosian flux of each image.

    Parameters
    ----------
    method : {"fast", "photutils"}, optional
        ``"fast"`` (default) measures the light within every circle of every image of a
        batch at once, splitting each pixel into ``subpixels x subpixels`` parts and
        interpolating linearly between radii ``step`` apart; ``"photutils"``, the
        reference, measures it with ``photutils.aperture.CircularAperture`` and exact
        circle-pixel overlaps, one image at a time, and solves for each radius with
        ``scipy.optimize.brentq``.  The two agree to about 0.02 in ``C`` and 0.5% in the
        radii on galaxies a few pixels across or larger.
    workers : int, optional
        Accepted because ``gangal evaluate`` passes ``--workers`` to every evaluator, and
        checked, but not used: the measurement runs in the calling thread (numpy's
        histogram and photutils' apertures hold the GIL; threads made neither method
        faster).  About 300 images/s at 128x128 with ``"fast"``, 35 with ``"photutils"``.
    batch_size : int, optional
        Images per batch (default 16); results do not depend on it.  The fast method
        holds about ``24 * batch_size * H * W * subpixels**2`` bytes at once (100 MB for
        16 images of 128x128).
    step : float, optional
        Spacing in pixels of the radii the curve of growth is bracketed on (default 0.1).
    subpixels : int, optional
        Parts per pixel side for the fast method (default 4).
    detect_k, threshold_k : float, optional
        Detection and centroid thresholds, in noise sigmas (defaults 5 and 2; see Notes).

    Notes
    -----
    Per image (one band, ``(H, W)``, indexed ``[y, x]``, pixel centres at whole numbers,
    pixel ``(row, col)`` covering ``[col - 0.5, col + 0.5] x [row - 0.5, row + 0.5]``):

    1. **Sky.** The median of a border frame ``max(2, min(H, W) // 16)`` pixels wide is
       subtracted; the noise ``sigma`` is 1.4826 times its median absolute deviation
       (:func:`sky_and_noise`).
    2. **Detection and centre.** The galaxy is detected when the brightest pixel of the
       3x3-smoothed image within ``min(H, W) / 4`` of the image centre stands
       ``detect_k`` noise sigmas (of the smoothed image, ``sigma / 3``) above the sky.  Its
       centre is the flux-weighted centroid of the pixels above ``threshold_k * sigma``
       within ``min(H, W) / 4`` of the current estimate, iterated from the image centre
       (:func:`find_centres`).  All apertures are circles about it.  ``L(r)`` is the
       sky-subtracted light within radius ``r``; ``r_max`` the radius of the largest
       circle inside the image.
    3. **Petrosian radius.** The Petrosian ratio is the mean surface brightness in the
       annulus ``0.8 r .. 1.25 r`` over the mean within ``r`` (SDSS; Blanton et al. 2001)::

           eta(r) = (L(1.25 r) - L(0.8 r)) / ((1.25**2 - 0.8**2) L(r))

       and ``r_p`` is the first radius, scanning outwards by ``step`` from 1 px while
       ``1.25 r <= r_max``, where it falls below 0.2.
    4. **Light.** ``flux = L(1.5 r_p)`` (Conselice 2003); ``r20``, ``r50``, ``r80`` are the
       smallest radii with ``L(r) = 0.2, 0.5, 0.8 flux``, ``concentration`` is
       ``5 log10(r80 / r20)`` and ``half_light_radius`` is ``r50``.

    An image that cannot be measured gets NaN values and a status saying why:
    ``"non-finite pixels"``, ``"flat image"``, ``"no source"`` (nothing detected
    near the centre), ``"no petrosian radius"`` (``eta`` stays above
    0.2 out to ``r_max / 1.25``: the galaxy fills the image, or the sky is wrong),
    ``"aperture off the image"`` (``1.5 r_p > r_max``) or ``"no flux"``.  It is never dropped.

    The centre is the light's centroid, not the point of least asymmetry that CAS uses; for
    regular galaxies the two differ by a fraction of a pixel.
    """

    name: ClassVar[str] = "concentration"
    quantities: ClassVar[tuple[str, ...]] = ("concentration", "half_light_radius", "petrosian_radius", "flux")
    units: ClassVar[dict[str, str]] = {
        "concentration": "",
        "half_light_radius": "px",
        "petrosian_radius": "px",
        "flux": "relative",
    }

    def __init__(
        self,
        *,
        method: str = "fast",
        workers: int | None = None,
        batch_size: int = 16,
        step: float = 0.1,
        subpixels: int = 4,
        detect_k: float = 5.0,
        threshold_k: float = 2.0,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"concentration: method={method!r}; expected one of {', '.join(METHODS)}.")
        for option, value in (("workers", workers), ("batch_size", batch_size), ("subpixels", subpixels)):
            if option == "workers" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"concentration: {option}={value!r}; expected a positive whole number.")
        if not 0 < float(step) <= 1:
            raise ValueError(f"concentration: step={step!r}; expected a number of pixels in (0, 1].")
        for option, value in (("detect_k", detect_k), ("threshold_k", threshold_k)):
            if not float(value) >= 0:
                raise ValueError(f"concentration: {option}={value!r}; expected a number >= 0.")
        self.method = method
        self.workers = None if workers is None else int(workers)
        self.batch_size, self.subpixels = int(batch_size), int(subpixels)
        self.step = float(step)
        self.levels = {"detect_k": float(detect_k), "threshold_k": float(threshold_k)}

    def measure(self, images: np.ndarray, *, progress: Callable[[int], None] | None = None) -> Measurements:
        """Measure every image of ``images``, ``(N, H, W)`` float, one band.

        Parameters
        ----------
        images : numpy.ndarray
            The images, in any linear units (gangal's are in [0, 1]); at least 8x8 pixels.
        progress : callable, optional
            Called with the number of images finished, once per batch; the calls add up
            to ``N``.

        Returns
        -------
        Measurements
            The four quantities in input order, NaN where the status is not ``"ok"``.

        Raises
        ------
        ValueError
            If ``images`` is not ``(N, H, W)`` with ``H, W >= 8``.
        """
        images = np.asarray(images)
        if images.ndim != 3 or min(images.shape[1:]) < MIN_SIDE:
            raise ValueError(
                f"concentration: expected images of shape (N, H, W) with H, W >= {MIN_SIDE}, "
                f"found {images.shape}."
            )
        options = {"method": self.method, "step": self.step, "subpixels": self.subpixels, **self.levels}
        parts = []
        for start in range(0, len(images), self.batch_size):
            status, values = concentration_statistics(images[start : start + self.batch_size], **options)
            parts.append(Measurements({q: values[q] for q in self.quantities}, status))
            if progress is not None:
                progress(len(status))
        if not parts:
            return Measurements({q: np.empty(0) for q in self.quantities}, np.empty(0, dtype=object))
        return Measurements.concatenate(parts)

    def describe(self) -> dict[str, Any]:
        """The evaluator, its method and every setting the measurement depends on."""
        doc: dict[str, Any] = {
            "evaluator": self.name,
            "method": self.method,
            "eta": ETA,
            "annulus": list(ANNULUS),
            "extent": EXTENT,
            "step": self.step,
            **self.levels,
            "centre": "iterated centroid",
            "batch_size": self.batch_size,
        }
        if self.method == "fast":
            doc["subpixels"] = self.subpixels
        else:
            import photutils

            doc["photutils"] = photutils.__version__
        return doc


@hookimpl
def register_evaluators(register):
    """Register the ``concentration`` evaluator."""
    register("concentration", ConcentrationEvaluator)
