"""What both isophote paths share: the upscale, the sky, the starting geometry, the sma grid and the flux.

Everything here works in pixels of the input image, indexed ``[y, x]`` = ``[row, column]``
with pixel centres at whole numbers (photutils' convention); angles are in radians,
counter-clockwise from ``+x`` towards ``+y``.  The reference path maps these to its
upscaled frame with :func:`to_upscaled` and back with :func:`from_upscaled`.

The preparation of one image (:func:`prepare`):

1. **Sky.**  The sky level is the median of a border frame ``max(2, side // 16)`` pixels
   wide and its noise ``sigma`` 1.4826 times the median absolute deviation there (the
   standard deviation where that is zero).  The same is measured on the image smoothed by a
   3x3 box, whose noise ``sigma_s`` then accounts for any correlation of the noise (JPEG).
2. **Detection.**  The smoothed image's brightest pixel inside the central half of the
   frame (``|x - xc| <= W/4``, ``|y - yc| <= H/4``) must lie ``detect_k`` (default 5)
   ``sigma_s`` above the sky, or the image is a failure (``"no source"``).  The source is
   the 8-connected set of smoothed pixels above ``sky + threshold_k * sigma_s`` (default 2)
   that holds that pixel; other such sets are *neighbours*.  When the source's
   flux-weighted centre lies more than a quarter of its size from the peak, a neighbour
   has merged with it, and the threshold is doubled (up to six times) until it does not
   (multi-threshold deblending, for the moments only).
3. **Moments.**  Flux-weighted first and second moments of the sky-subtracted image
   over the source give the start centre, ellipticity ``1 - sqrt(l2 / l1)`` (clipped to
   ``[0.05, 0.9]``), position angle and size ``sqrt(l1)`` (``l1 >= l2`` the covariance's
   eigenvalues).
4. **maxsma.**  The mean sky-subtracted intensity in elliptical annuli one pixel wide
   (moment geometry, neighbours' pixels left out) is followed outwards;
   ``maxsma`` is the middle of the first annulus whose mean falls below
   ``sky_k * sigma`` (default 3), capped at the distance from the centre to the nearest
   image edge.
5. **sma grid.**  ``sma0 = clip(size, 2, maxsma / 1.1)`` px and the grid is photutils'
   geometric one, ``sma0 * 1.1**k`` for ``k = 0, 1, ...`` while below ``maxsma``.
6. **Starts.**  If no isophote of that walk converges, the fit starts again from ``sma0``
   times 0.6, 1.6, 0.35, 0.8, 1.25, 0.45 and 0.25, and then all eight again from the
   brightness peak instead of the moment centre (:func:`start_points`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from gangal_core import OK

__all__ = [
    "RETRY_FACTORS",
    "SMA_STEP",
    "StartGeometry",
    "as_image_batch",
    "ellipse_sum",
    "from_upscaled",
    "prepare",
    "sky_and_noise",
    "sma_grid",
    "start_points",
    "to_upscaled",
    "upscale_bicubic",
    "upscale_factor",
]

#: Relative growth of the semi-major axis between isophotes (photutils' default ``step``).
SMA_STEP = 0.1
#: Smallest starting semi-major axis, input pixels.
MIN_SMA0 = 2.0
#: Images prepared at a time.
PREPARE_CHUNK = 256
#: Multiples of ``sma0`` the fits start from, in turn, until one converges (:func:`start_points`).
RETRY_FACTORS = (1.0, 0.6, 1.6, 0.35, 0.8, 1.25, 0.45, 0.25)
#: The starts from the brightness peak are tried only if it lies this far (px) from the moment centre.
PEAK_OFFSET = 1.0


@dataclass
class StartGeometry:
    """Per-image starting point of the isophote fits, in input pixels and radians.

    Attributes
    ----------
    x0, y0, eps, pa, size : ndarray
        Moment centre, ellipticity, position angle (``[0, pi)``) and major-axis rms radius.
    xp, yp : ndarray
        The brightness peak (centroid of the 3x3 smoothed pixels around the brightest one),
        the centre the second round of starts uses.
    sma0, maxsma : ndarray
        Starting semi-major axis and the limit of the sma grid.
    sky, sigma : ndarray
        Sky level and pixel noise estimated on the border.
    status : ndarray of object
        ``"ok"`` or why the image cannot be fitted (``"flat image"``, ``"no source"``...).
    """

    x0: np.ndarray
    y0: np.ndarray
    eps: np.ndarray
    pa: np.ndarray
    size: np.ndarray
    xp: np.ndarray
    yp: np.ndarray
    sma0: np.ndarray
    maxsma: np.ndarray
    sky: np.ndarray
    sigma: np.ndarray
    status: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))

    def row(self, i: int) -> dict[str, float]:
        """The numbers of image ``i`` as plain floats (for sending to a worker process)."""
        names = ("x0", "y0", "eps", "pa", "size", "xp", "yp", "sma0", "maxsma", "sky", "sigma")
        return {k: float(getattr(self, k)[i]) for k in names}


def as_image_batch(images: np.ndarray) -> np.ndarray:
    """Check ``images`` is ``(N, H, W)``; floating point kept as it is, anything else as float64.

    Raises
    ------
    ValueError
        If ``images`` is not three-dimensional or an image is smaller than 8x8 pixels.
    """
    array = np.asarray(images)
    if array.ndim != 3:
        raise ValueError(
            f"isophote: expected single-band images of shape (N, H, W); got shape {array.shape} "
            "(reduce colour images to one band first, e.g. by summing the channels)."
        )
    if array.shape[0] and min(array.shape[1:]) < 8:
        raise ValueError(f"isophote: images of shape {array.shape[1:]} are too small; need at least 8x8.")
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float64)


def upscale_factor(shape: tuple[int, int], upscale: int) -> float:
    """The factor that brings the longer side of ``shape`` to ``upscale`` pixels (never below 1)."""
    return max(1.0, float(upscale) / max(shape))


def upscale_bicubic(images: np.ndarray, upscale: int) -> tuple[np.ndarray, float]:
    """Bicubic upscale of ``(N, H, W)`` or ``(H, W)`` by the factor of :func:`upscale_factor`.

    ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)`` with the
    factor itself, so that output pixel ``u`` samples input coordinate ``(u + 0.5) / s - 0.5``
    on both axes (see :func:`to_upscaled`).

    Returns
    -------
    upscaled : ndarray
        float64, the same number of dimensions as ``images``.
    factor : float
        The factor ``s``.
    """
    array = np.asarray(images, dtype=np.float32)
    factor = upscale_factor(array.shape[-2:], upscale)
    if factor == 1.0:
        return array.astype(np.float64), factor
    batch = torch.from_numpy(np.ascontiguousarray(array.reshape(-1, 1, *array.shape[-2:])))
    out = F.interpolate(batch, scale_factor=factor, mode="bicubic", align_corners=False,
                        recompute_scale_factor=False)  # fmt: skip
    return out.numpy().reshape(*array.shape[:-2], *out.shape[-2:]).astype(np.float64), factor


def to_upscaled(coordinate: float, factor: float) -> float:
    """Input-pixel coordinate to the upscaled frame of :func:`upscale_bicubic`."""
    return factor * (coordinate + 0.5) - 0.5


def from_upscaled(coordinate: float, factor: float) -> float:
    """Upscaled-frame coordinate back to input pixels."""
    return (coordinate + 0.5) / factor - 0.5


def sky_and_noise(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust standard deviation of each image's border frame.

    The frame is ``max(2, min(H, W) // 16)`` pixels wide; the noise is 1.4826 times the
    median absolute deviation, or the standard deviation where that is zero (quantised
    images), or ``1e-12`` for a constant border.
    """
    height, width = images.shape[1:]
    w = max(2, min(height, width) // 16)
    mask = np.ones((height, width), dtype=bool)
    mask[w:-w, w:-w] = False
    border = images[:, mask]
    sky = np.median(border, axis=1)
    sigma = 1.4826 * np.median(np.abs(border - sky[:, None]), axis=1)
    std = border.std(axis=1)
    sigma = np.where(sigma > 0, sigma, std)
    return sky, np.maximum(sigma, 1e-12)


def start_points(start: dict[str, float]) -> list[tuple[float, float, float]]:
    """The ``(x0, y0, sma0)`` the fits of one prepared image start from, in the order tried.

    ``sma0`` times each of :data:`RETRY_FACTORS` from the moment centre, then the same
    from the brightness peak unless it lies within :data:`PEAK_OFFSET` of the moment centre
    (where a neighbour or an asymmetric galaxy pulls the moments off the galaxy's centre).
    ``start`` is :meth:`StartGeometry.row`.
    """
    centres = [(start["x0"], start["y0"])]
    if np.hypot(start["xp"] - start["x0"], start["yp"] - start["y0"]) >= PEAK_OFFSET:
        centres.append((start["xp"], start["yp"]))
    return [(x, y, start["sma0"] * f) for x, y in centres for f in RETRY_FACTORS]


def sma_grid(sma0: float, maxsma: float, step: float = SMA_STEP) -> np.ndarray:
    """The semi-major axes photutils' ``fit_image`` visits outwards from ``sma0``.

    ``sma0`` and then ``sma0 * (1 + step)**k`` while below ``maxsma`` (multiplied step by
    step, as photutils does).
    """
    grid = [sma0]
    while True:
        nxt = grid[-1] * (1.0 + step)
        if nxt >= maxsma:
            return np.array(grid)
        grid.append(nxt)


def prepare(
    images: np.ndarray, *, detect_k: float = 5.0, threshold_k: float = 2.0, sky_k: float = 3.0
) -> StartGeometry:
    """Sky, detection, moment geometry and sma limits of every image (see the module's notes).

    Parameters
    ----------
    images : ndarray
        ``(N, H, W)`` float, one band.
    detect_k, threshold_k, sky_k : float, optional
        Detection peak, source-mask threshold (both in units of the smoothed image's noise)
        and ``maxsma`` level (in units of the pixel noise), each above the sky.

    Returns
    -------
    StartGeometry
        NaN geometry and a failure status where an image cannot be fitted.
    """
    images = as_image_batch(images)
    n = images.shape[0]
    names = ("x0", "y0", "eps", "pa", "size", "xp", "yp", "sma0", "maxsma", "sky", "sigma")
    out = {k: np.full(n, np.nan) for k in names}
    status = np.full(n, OK, dtype=object)
    levels = {"detect_k": detect_k, "threshold_k": threshold_k, "sky_k": sky_k}
    for lo in range(0, n, PREPARE_CHUNK):  # in chunks, to bound the memory of the float64 copies
        chunk = images[lo : lo + PREPARE_CHUNK].astype(np.float64)
        sky, sigma = sky_and_noise(chunk)
        smooth = ndimage.uniform_filter(chunk, size=(1, 3, 3), mode="nearest")
        sky_s, sigma_s = sky_and_noise(smooth)
        for j, image in enumerate(chunk):
            noise = (sky[j], sigma[j], sky_s[j], sigma_s[j])
            status[lo + j], geometry = _prepare_one(image, smooth[j], *noise, **levels)
            for k, v in {**geometry, "sky": sky[j], "sigma": sigma[j]}.items():
                out[k][lo + j] = v
    return StartGeometry(**out, status=status)


def _prepare_one(
    image: np.ndarray, smooth: np.ndarray, sky: float, sigma: float, sky_s: float, sigma_s: float,
    *, detect_k: float, threshold_k: float, sky_k: float,
) -> tuple[str, dict[str, float]]:  # fmt: skip
    """Status and start geometry of one image (see :func:`prepare`)."""
    if not np.isfinite(image).all():
        return "non-finite pixels", {}
    if np.ptp(image) <= 1e-12 * max(1.0, abs(float(image.max()))):
        return "flat image", {}
    height, width = image.shape
    r0, r1 = int(np.ceil((height - 1) / 2 - height / 4)), int(np.floor((height - 1) / 2 + height / 4)) + 1
    c0, c1 = int(np.ceil((width - 1) / 2 - width / 4)), int(np.floor((width - 1) / 2 + width / 4)) + 1
    centre = smooth[r0:r1, c0:c1]
    peak = np.unravel_index(int(np.argmax(centre)), centre.shape)
    if centre[peak] < sky_s + detect_k * sigma_s:
        return "no source", {}
    peak = (peak[0] + r0, peak[1] + c0)
    labels, moments = _deblended_moments(image - sky, smooth - sky_s, peak, level=threshold_k * sigma_s)
    if moments is None:
        return "no source", {}
    x0, y0, eps, pa, size = moments
    edge = min(x0, width - 1 - x0, y0, height - 1 - y0)
    if edge < MIN_SMA0:
        return "source at the edge", {}
    keep = (labels == 0) | (labels == labels[peak])  # leave separate neighbours out of the profile
    maxsma = _profile_limit(image - sky, keep, x0, y0, eps, pa, level=sky_k * sigma, limit=edge)
    sma0 = float(np.clip(size, MIN_SMA0, max(MIN_SMA0, maxsma / (1.0 + SMA_STEP))))
    xp, yp = _peak_centroid(smooth - sky_s, peak)
    return OK, {"x0": x0, "y0": y0, "eps": eps, "pa": pa, "size": size, "xp": xp, "yp": yp, "sma0": sma0,
                "maxsma": maxsma}  # fmt: skip


def _peak_centroid(smooth: np.ndarray, peak: tuple) -> tuple[float, float]:
    """Centroid ``(x, y)`` of the positive smoothed values in the 3x3 pixels around ``peak``."""
    r0, c0 = max(0, peak[0] - 1), max(0, peak[1] - 1)
    window = np.clip(smooth[r0 : peak[0] + 2, c0 : peak[1] + 2], 0.0, None)
    ys, xs = np.mgrid[r0 : r0 + window.shape[0], c0 : c0 + window.shape[1]]
    total = window.sum()
    return float((window * xs).sum() / total), float((window * ys).sum() / total)


def _deblended_moments(image: np.ndarray, smooth: np.ndarray, peak: tuple, *, level: float) -> tuple:
    """Labels of ``smooth > level`` and the moments of the source (None if there is none).

    ``image`` and ``smooth`` are sky-subtracted.  The source is the 8-connected region of
    ``smooth > level`` holding ``peak``.  A region whose flux-weighted centre lies more
    than a quarter of its size (major-axis rms radius) from the peak holds a neighbour too;
    the threshold is then doubled, up to six times, until it does not: a simple
    multi-threshold deblending.
    """
    labels = ndimage.label(smooth > level, structure=np.ones((3, 3)))[0]
    cut, moments = labels, None
    for j in range(7):
        if j:
            cut = ndimage.label(smooth > level * 2**j, structure=np.ones((3, 3)))[0]
        found = _moments(image, cut == cut[peak])
        if found is None:
            break
        moments = found
        if np.hypot(found[0] - peak[1], found[1] - peak[0]) <= 0.25 * max(found[4], 1.0):
            break
    return labels, moments


def _moments(image: np.ndarray, source: np.ndarray) -> tuple[float, ...] | None:
    """Flux-weighted centre, ellipticity, angle and major-axis rms radius over ``source``."""
    ys, xs = np.nonzero(source)
    weights = np.clip(image[ys, xs], 0.0, None)
    total = weights.sum()
    if len(ys) < 5 or total <= 0:
        return None
    x0, y0 = float(weights @ xs / total), float(weights @ ys / total)
    dx, dy = xs - x0, ys - y0
    cxx, cyy, cxy = weights @ (dx * dx) / total, weights @ (dy * dy) / total, weights @ (dx * dy) / total
    half_trace, diff = 0.5 * (cxx + cyy), np.hypot(0.5 * (cxx - cyy), cxy)
    l1, l2 = half_trace + diff, max(half_trace - diff, 0.0)
    eps = float(np.clip(1.0 - np.sqrt(l2 / l1), 0.05, 0.9)) if l1 > 0 else 0.05
    pa = float(0.5 * np.arctan2(2.0 * cxy, cxx - cyy)) % np.pi
    return x0, y0, eps, pa, float(np.sqrt(l1))


def _profile_limit(
    image: np.ndarray, keep: np.ndarray, x0: float, y0: float, eps: float, pa: float, *, level: float,
    limit: float,
) -> float:  # fmt: skip
    """Middle of the first one-pixel elliptical annulus whose mean is below ``level`` (at most ``limit``)."""
    ys, xs = np.nonzero(keep)
    radius = _elliptical_radius(xs - x0, ys - y0, eps, pa)
    inside = radius < limit
    bins = radius[inside].astype(np.intp)
    sums = np.bincount(bins, weights=image[ys[inside], xs[inside]])
    counts = np.bincount(bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    below = np.nonzero((mean < level) & (counts > 0))[0]
    below = below[below >= 1]
    return float(min(below[0] + 0.5, limit)) if len(below) else float(limit)


def _elliptical_radius(dx: np.ndarray, dy: np.ndarray, eps: float, pa: float) -> np.ndarray:
    """Semi-major axis of the ellipse (``eps``, ``pa``) through each offset ``(dx, dy)``."""
    cos, sin = np.cos(pa), np.sin(pa)
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    return np.hypot(along, across / (1.0 - eps))


def ellipse_sum(
    image: np.ndarray, x0: float, y0: float, sma: float, eps: float, pa: float, *, antialias: bool = False
) -> float:
    """Sum of ``image`` inside an ellipse, in the image's own pixels.

    ``antialias=False``: the pixels whose centres lie inside or on the ellipse, as
    photutils' ``Isophote.tflux_e``.  ``antialias=True``: each pixel weighted by its
    approximate fractional cover, a linear ramp one pixel wide across the edge in the
    pixel's distance to the ellipse, ``clip(0.5 - d, 0, 1)`` with
    ``d ~ (r_e - sma) / |grad r_e|`` (``r_e`` the elliptical radius of the pixel centre);
    the sum then follows the ellipse's area smoothly, not in whole pixels.
    """
    height, width = image.shape
    reach = sma + 2.0
    r0, r1 = max(0, int(np.floor(y0 - reach))), min(height, int(np.ceil(y0 + reach)) + 1)
    c0, c1 = max(0, int(np.floor(x0 - reach))), min(width, int(np.ceil(x0 + reach)) + 1)
    ys, xs = np.mgrid[r0:r1, c0:c1]
    dx, dy = xs - x0, ys - y0
    radius = _elliptical_radius(dx, dy, eps, pa)
    patch = image[r0:r1, c0:c1].astype(np.float64)
    if not antialias:
        return float(patch[radius <= sma].sum())
    cos, sin = np.cos(pa), np.sin(pa)
    along, across = dx * cos + dy * sin, (-dx * sin + dy * cos) / (1.0 - eps) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        grad = np.hypot(along * cos - across * sin, along * sin + across * cos) / radius
    distance = np.where(radius > 0, (radius - sma) / np.where(grad > 0, grad, 1.0), -sma)
    return float((patch * np.clip(0.5 - distance, 0.0, 1.0)).sum())
