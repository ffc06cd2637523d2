"""The fast path: photutils' isophote fit re-done in torch for a whole batch at once.

For every image of a batch the same walk as ``Ellipse.fit_image`` outwards from ``sma0``
(:mod:`gangal_isophote.reference`) is run together: at each sma of the shared grid
(:func:`~gangal_isophote.preprocess.sma_grid`) every still-walking image gets one
isophote fit, started from its previous isophote's geometry.  One fit iterates, as
photutils' ``EllipseFitter``:

1. sample the image along the trial ellipse and along the ellipses ``1.1`` and ``1.2``
   times larger (gradient) with ``grid_sample`` (bicubic, on the input image: close to
   photutils' bilinear sampling of the bicubically upscaled image, without upscaling), at
   :func:`samples_per_ellipse` polar angles spaced evenly (208 for 128x128 images);
2. fit ``I = I0 + A1 sin(phi) + B1 cos(phi) + A2 sin(2 phi) + B2 cos(2 phi)`` by weighted
   least squares for all images at once (weights ``r(phi)``, the density of photutils'
   samples, which are spaced one upscaled pixel apart);
3. stop as converged when the largest harmonic is below ``conver * 2 * rms(residual)``
   after at least ``minit`` iterations (twice that for the first isophote), stop as
   flagged when fewer than ``fflag`` of the samples lie in the image, stop as failed when
   the gradient's relative error exceeds ``maxgerr`` twice (or the gradient is not
   usable), the ellipticity exceeds 0.95 or the centre leaves the image;
4. otherwise correct the ellipse parameter that belongs to the largest harmonic by
   Jedrzejewski's formulas (the paper's eq. 11), exactly as photutils' correctors do.

The gradient's error uses photutils' sample count (one sample per upscaled pixel of
arc, ``upscale`` as for the reference), so both paths stop growing at the same signal to
noise.  After ``maxit`` iterations the isophote with the smallest harmonic is kept (stop
code 2).  A failed isophote is replaced by its predecessor's geometry; two failures in a
row (or a flagged isophote) from the third isophote on end the walk, as in photutils.
The measured isophote is the outermost converged one; images without one are retried
from the other starts of :func:`~gangal_isophote.preprocess.start_points`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gangal_core import OK

from .preprocess import SMA_STEP, StartGeometry, ellipse_sum, prepare, sma_grid, start_points, upscale_factor

__all__ = ["FitSettings", "fit_fast", "samples_per_ellipse"]

MAX_EPS, MIN_EPS = 0.95, 0.05  # photutils' limits
SAMPLING = "bicubic"  # grid_sample's: the same kernel (a = -0.75) as the reference's upscale
SECTOR_AREA = 2.0  # photutils' bilinear integrator's "sector area" in its convergence test
CONVERGED, MAXIT, FAILED, FLAGGED, SINGULAR = 0, 2, -1, 1, 3


@dataclass(frozen=True)
class FitSettings:
    """photutils' fitting controls (its defaults) and the nominal sampling density.

    ``density`` is samples per input pixel of arc in photutils' run (its upscale factor).
    """

    conver: float = 0.05
    minit: int = 10
    maxit: int = 50
    fflag: float = 0.7
    maxgerr: float = 0.5
    density: float = 1.0


def _sample(image: torch.Tensor, geom: torch.Tensor, sma: torch.Tensor, phi: torch.Tensor) -> tuple:
    """Samples along ellipses: ``image (B,1,H,W)``, ``geom (B,4)`` = x0, y0, eps, pa; ``sma (B,S)``.

    Returns intensities, in-image mask and polar radii, each ``(B, S, M)``.
    """
    height, width = image.shape[-2:]
    x0, y0, eps, pa = (geom[:, i, None, None] for i in range(4))
    q = 1.0 - eps
    radius = sma[:, :, None] * q / torch.sqrt((q * torch.cos(phi)) ** 2 + torch.sin(phi) ** 2)
    x = x0 + radius * torch.cos(phi + pa)
    y = y0 + radius * torch.sin(phi + pa)
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    grid = torch.stack((2.0 * x / (width - 1) - 1.0, 2.0 * y / (height - 1) - 1.0), dim=-1)
    values = F.grid_sample(image, grid, mode=SAMPLING, padding_mode="border", align_corners=True)
    return values[:, 0], inside, radius


def _weighted_stats(values: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and standard deviation along the last axis."""
    total = weights.sum(-1).clamp_min(1e-12)
    mean = (weights * values).sum(-1) / total
    var = (weights * (values - mean[..., None]) ** 2).sum(-1) / total
    return mean, var.clamp_min(0.0).sqrt()


def _gradient(values, weights, counts, sma, step) -> tuple[torch.Tensor, torch.Tensor]:
    """photutils' ``EllipseSample.update`` gradient and its error; error NaN where unusable."""
    mean, std = _weighted_stats(values, weights)
    n = counts.clamp_min(1.0)
    g1 = (mean[:, 1] - mean[:, 0]) / (sma * step)
    e1 = torch.sqrt(std[:, 0] ** 2 / n[:, 0] + std[:, 1] ** 2 / n[:, 1]) / (sma * step)
    g2 = (mean[:, 2] - mean[:, 0]) / (sma * 2 * step)
    e2 = torch.sqrt(std[:, 0] ** 2 / n[:, 0] + std[:, 2] ** 2 / n[:, 2]) / (sma * 2 * step)
    previous = g1 + e1
    retry = g1 >= previous / 3.0
    grad, err = torch.where(retry, g2, g1), torch.where(retry, e2, e1)
    hopeless = retry & (g2 >= previous / 3.0)
    grad = torch.where(hopeless, 0.8 * previous, grad)
    err = torch.where(hopeless | (grad >= 0) | (err <= 0), torch.nan, err)
    return grad, err


def _fourier_basis(phi: torch.Tensor) -> torch.Tensor:
    """``(9, M)``: ``1, sin phi, cos phi, sin 2phi, cos 2phi, ..., sin 4phi, cos 4phi``."""
    harmonics = [g(k * phi) for k in range(1, 5) for g in (torch.sin, torch.cos)]
    return torch.stack([torch.ones_like(phi), *harmonics])


def _products() -> torch.Tensor:
    """``P (25, 9)``: products of the basis ``1, sin phi, cos phi, sin 2phi, cos 2phi`` in Fourier terms.

    ``d_i d_j = sum_k P[5 i + j, k] f_k`` with ``f = (1, sin phi, cos phi, ..., sin 4phi, cos 4phi)``.
    """
    phi = torch.linspace(0.0, 2 * np.pi, 64, dtype=torch.float64)[:-1]
    f = _fourier_basis(phi)
    d = f[:5]
    return torch.linalg.lstsq(f.T, (d[:, None] * d[None]).reshape(25, -1).T).solution.T.round(decimals=12)


_PRODUCTS = _products().float()


def _harmonics(values, weights, phi) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted least-squares first and second harmonics ``(B, 5)``, the residual rms, and where it failed.

    Sums along each image's own samples only (no matrix product over the batch), so that
    no result depends on which other images share the batch.
    """
    basis = _fourier_basis(phi)
    moments = (weights[:, None, :] * basis).sum(-1)  # (B, 9)
    normal = (moments[:, None, :] * _PRODUCTS).sum(-1).view(-1, 5, 5)
    rhs = (weights[:, None, :] * basis[:5] * values[:, None, :]).sum(-1)
    ridge = 1e-9 * normal.diagonal(dim1=1, dim2=2).amax(-1).clamp_min(1e-30)
    coeffs, info = torch.linalg.solve_ex(
        normal + ridge[:, None, None] * torch.eye(5, dtype=values.dtype), rhs
    )
    _, rms = _weighted_stats(values - (coeffs[:, :, None] * basis[:5]).sum(1), weights)
    return coeffs, rms, info != 0


def _correct(geom: torch.Tensor, which: torch.Tensor, harmonic, grad, sma) -> torch.Tensor:
    """Jedrzejewski's correction of the parameter of the largest harmonic (photutils' correctors)."""
    x0, y0, eps, pa = geom.unbind(1)
    q = 1.0 - eps
    aux0, aux1 = -harmonic * q / grad, -harmonic / grad
    dx = torch.where(which == 0, -aux0 * pa.sin(), torch.where(which == 1, aux1 * pa.cos(), 0.0))
    dy = torch.where(which == 0, aux0 * pa.cos(), torch.where(which == 1, aux1 * pa.sin(), 0.0))
    new_pa = torch.remainder(pa + harmonic * 2.0 * q / sma / grad / (q**2 - 1.0), torch.pi)
    new_eps = torch.clamp_max(eps - harmonic * 2.0 * q / sma / grad, MAX_EPS)
    pa = torch.where(which == 2, new_pa, pa)
    eps = torch.where(which == 3, new_eps, eps)
    # photutils: a negative ellipticity flips to the other axis; an exact circle is nudged
    flip = eps < 0
    pa = torch.where(flip, torch.where(pa < torch.pi / 2, pa + torch.pi / 2, pa - torch.pi / 2), pa)
    eps = torch.where(flip, torch.clamp_max(-eps, MAX_EPS), eps)
    eps = torch.where(eps == 0, MIN_EPS, eps)
    return torch.stack((x0 + dx, y0 + dy, eps, pa), 1)


def samples_per_ellipse(shape: tuple[int, int]) -> int:
    """Polar angles sampled per ellipse: one per pixel of arc at half the image's half-side, at least 64.

    The same for every image of a given size, so that no result depends on the batch.
    """
    return int(max(64, 8 * np.ceil(np.pi * min(shape) / 2 / 8)))


@dataclass
class _Walks:
    """State of the outward walks of a batch, one row per image still walking."""

    rows: torch.Tensor  # position of each walking image in the batch
    image: torch.Tensor  # (B, 1, H, W)
    grids: torch.Tensor  # (B, R, K): sma grid per start, NaN-padded
    lengths: torch.Tensor  # (B, R)
    starts: torch.Tensor  # (B,) number of starts to try
    initial: torch.Tensor  # (B, R, 4) start geometry of each start
    geom: torch.Tensor  # (B, 4) current trial ellipse
    start: torch.Tensor  # (B, 4) the geometry this isophote started from
    best: torch.Tensor  # (B, 4) smallest-harmonic geometry of this isophote
    best_amp: torch.Tensor
    k: torch.Tensor  # grid index
    it: torch.Tensor  # iteration within the isophote
    retry: torch.Tensor
    lexceed: torch.Tensor
    failed_before: torch.Tensor
    outer: torch.Tensor  # (B, 5) outermost converged: x0, y0, eps, pa, sma

    def keep(self, mask: torch.Tensor) -> _Walks:
        """The walks where ``mask`` is true."""
        return _Walks(**{name: value[mask] for name, value in vars(self).items()})


def _step(w: _Walks, phi: torch.Tensor, settings: FitSettings) -> tuple[torch.Tensor, ...]:
    """One iteration of every walking image's current isophote fit (photutils' ``EllipseFitter.fit``).

    Updates ``w.geom``, ``w.best`` and the counters of the images still iterating; returns
    which images finished their isophote, the stop code, and the sma fitted.
    """
    height, width = w.image.shape[-2:]
    batch, m = len(w.rows), len(phi)
    sma = w.grids[torch.arange(batch), w.retry, w.k]
    scales = torch.tensor([1.0, 1.0 + SMA_STEP, 1.0 + 2 * SMA_STEP], dtype=sma.dtype)
    values, inside, radius = _sample(w.image, w.geom, sma[:, None] * scales, phi)
    weights = torch.where(inside, radius, 0.0)
    counts = weights.sum(-1) * (settings.density * 2 * np.pi / m)  # photutils' samples: one per upscaled px
    grad, err = _gradient(values, weights, counts, sma, SMA_STEP)
    x0, y0, eps = w.geom[:, 0], w.geom[:, 1], w.geom[:, 2]
    exceed = torch.isnan(err) | (err / grad.abs() > settings.maxgerr)
    fail = torch.isnan(err) | (exceed & w.lexceed) | (eps > MAX_EPS)
    fail |= (x0 < 0) | (x0 > width - 1) | (y0 < 0) | (y0 > height - 1)
    fail &= w.it > 0  # photutils checks the sample of the previous iteration's correction
    w.lexceed |= exceed & (w.it > 0)
    coeffs, rms, unsolved = _harmonics(values[:, 0], weights[:, 0], phi)
    amp, which = coeffs[:, 1:].abs().max(1)
    better = amp < w.best_amp
    w.best = torch.where(better[:, None], w.geom, w.best)
    w.best_amp = torch.where(better, amp, w.best_amp)
    singular = (inside[:, 0].sum(1) < 6) | unsolved | ~torch.isfinite(w.geom).all(1)
    fail |= singular
    minit = torch.where(w.k == 0, 2 * settings.minit, settings.minit)
    conv = ~fail & (settings.conver * SECTOR_AREA * rms > amp) & (w.it >= minit - 1)
    flag = ~fail & ~conv & (weights[:, 0].sum(1) < settings.fflag * radius[:, 0].sum(1))
    code = torch.where(singular, SINGULAR, torch.where(fail, FAILED, torch.where(conv, CONVERGED, FLAGGED)))
    finished = fail | conv | flag | (w.it >= settings.maxit - 1)
    code = torch.where(finished & ~(fail | conv | flag), MAXIT, code)
    moved = _correct(w.geom, which, coeffs.gather(1, 1 + which[:, None])[:, 0], grad, sma)
    w.geom = torch.where(finished[:, None], torch.where((code == CONVERGED)[:, None], w.geom, w.best), moved)
    w.it = torch.where(finished, 0, w.it + 1)
    return finished, code, sma


def _advance(w: _Walks, finished: torch.Tensor, code: torch.Tensor, sma: torch.Tensor) -> torch.Tensor:
    """Move the images that finished an isophote along their walk (photutils' ``fit_image``).

    Returns which images are done (their ``outer`` is final).
    """
    conv = finished & (code == CONVERGED)
    w.outer = torch.where(conv[:, None], torch.cat((w.geom, sma[:, None]), 1), w.outer)
    failed = code == FAILED
    bad = finished & (failed | (code == FLAGGED) | (code == SINGULAR))
    # a failed isophote takes its predecessor's geometry; the next starts from it
    w.geom = torch.where(bad[:, None], w.start, w.geom)
    later = (w.k >= 2) & ((code == FLAGGED) | (failed & w.failed_before))
    stop = finished & torch.where(w.k == 0, bad, (code == SINGULAR) | later)
    w.failed_before = torch.where(finished, failed, w.failed_before)
    w.k = torch.where(finished, w.k + 1, w.k)
    stop |= finished & (w.k >= w.lengths.gather(1, w.retry[:, None])[:, 0])
    found = torch.isfinite(w.outer[:, 4])
    again = stop & ~found & (w.retry < w.starts - 1)
    w.retry = torch.where(again, w.retry + 1, w.retry)
    w.k = torch.where(again, 0, w.k)
    w.geom = torch.where(again[:, None], w.initial[torch.arange(len(w.rows)), w.retry], w.geom)
    w.failed_before &= ~again
    w.start = torch.where(finished[:, None], w.geom, w.start)
    w.best_amp = torch.where(finished, torch.inf, w.best_amp)
    w.lexceed &= ~finished
    return stop & ~again


def _fit_batch(
    image: torch.Tensor, start: StartGeometry, rows: np.ndarray, settings: FitSettings
) -> np.ndarray:
    """Outermost converged isophote ``(len(rows), 5)`` of the prepared images ``rows``, with retries.

    Columns x0, y0, eps, pa, sma; NaN where no start converged.
    """
    batch = len(rows)
    points = [start_points(start.row(i)) for i in rows]
    grids = [
        [sma_grid(sma0, start.maxsma[i]) for _, _, sma0 in per] for i, per in zip(rows, points, strict=True)
    ]
    most = max(len(per) for per in points)
    table = np.full((batch, most, max(len(g) for per in grids for g in per)), np.nan, dtype=np.float32)
    initial = np.zeros((batch, most, 4), dtype=np.float32)
    for b, (i, per) in enumerate(zip(rows, points, strict=True)):
        initial[b, : len(per)] = [(x0, y0, start.eps[i], start.pa[i]) for x0, y0, _ in per]
        for r, grid in enumerate(grids[b]):
            table[b, r, : len(grid)] = grid
    table, initial = torch.from_numpy(table), torch.from_numpy(initial)
    zeros, first = torch.zeros(batch, dtype=torch.long), initial[:, 0]
    w = _Walks(rows=torch.arange(batch), image=image, grids=table, lengths=torch.isfinite(table).sum(2),
               starts=torch.tensor([len(per) for per in points]), initial=initial, geom=first.clone(),
               start=first.clone(), best=first.clone(), best_amp=torch.full((batch,), torch.inf),
               k=zeros, it=zeros, retry=zeros, lexceed=zeros.bool(), failed_before=zeros.bool(),
               outer=torch.full((batch, 5), torch.nan))  # fmt: skip
    m = samples_per_ellipse(tuple(image.shape[-2:]))
    phi = torch.arange(m, dtype=torch.float32) * (2 * np.pi / m)
    result = np.full((batch, 5), np.nan)
    while len(w.rows):
        done = _advance(w, *_step(w, phi, settings))
        if bool(done.any()):
            result[w.rows[done].numpy()] = w.outer[done].double().numpy()
            w = w.keep(~done)
    return result


def fit_fast(
    images: np.ndarray,
    *,
    upscale: int,
    levels: dict[str, float] | None = None,
    batch_size: int = 256,
    workers: int = 1,
    settings: FitSettings | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Prepare and measure every image with the batched fitter, ``batch_size`` images at a time.

    Batches run on ``workers`` threads, each with one torch thread (set here, process-wide,
    for the duration): a torch op on one small batch is too short to share out, and a
    thread team spinning on busy cores slows everything down many times over.  Results
    come back in input order.

    Returns the status and the values (``ellipticity``, ``angle`` in degrees, ``flux``,
    ``sma``, ``x0``, ``y0``) in input pixels; ``progress(k)`` after each batch of ``k``.
    """
    n = len(images)
    settings = settings or FitSettings(density=upscale_factor(images.shape[1:], upscale) if n else 1.0)
    status = np.full(n, OK, dtype=object)
    values = {k: np.full(n, np.nan) for k in ("ellipticity", "angle", "flux", "sma", "x0", "y0")}
    spans = [(lo, min(n, lo + batch_size)) for lo in range(0, n, batch_size)]

    def job(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        return _measure_batch(images[span[0] : span[1]], levels or {}, settings)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max(1, min(workers, len(spans)))) as pool:
            for (lo, hi), (batch_status, batch_values) in zip(spans, pool.map(job, spans), strict=True):
                status[lo:hi] = batch_status
                for k, v in batch_values.items():
                    values[k][lo:hi] = v
                if progress is not None:
                    progress(hi - lo)
    finally:
        torch.set_num_threads(threads)
    return status, values


def _measure_batch(images: np.ndarray, levels: dict[str, float], settings: FitSettings) -> tuple:
    """Status and values of one batch: preparation, walks, and the flux inside the outermost isophote."""
    start = prepare(images, **levels)
    status = start.status.copy()
    values = {k: np.full(len(images), np.nan) for k in ("ellipticity", "angle", "flux", "sma", "x0", "y0")}
    rows = np.nonzero(status == OK)[0]
    if len(rows) == 0:
        return status, values
    outer = _fit_batch(torch.from_numpy(images[rows].astype(np.float32))[:, None], start, rows, settings)
    for i, (x0, y0, eps, pa, sma) in zip(rows, outer, strict=True):
        if not np.isfinite(sma):
            status[i] = "no convergence"
            continue
        values["ellipticity"][i], values["angle"][i] = eps, np.degrees(pa % np.pi) % 180.0
        values["sma"][i], values["x0"][i], values["y0"][i] = sma, x0, y0
        values["flux"][i] = ellipse_sum(images[i], x0, y0, sma, eps, pa, antialias=True)
    return status, values
