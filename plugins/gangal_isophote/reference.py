"""The reference path: photutils' isophote fitter on bicubically upscaled images, as in the paper.

Each image is upscaled with :func:`~gangal_isophote.preprocess.upscale_bicubic` (to 512
pixels on a side by default) and fitted with ``photutils.isophote.Ellipse.fit_image``
from the start geometry of :func:`~gangal_isophote.preprocess.prepare` (mapped to the
upscaled frame), with photutils' defaults otherwise (bilinear sampling, ``step=0.1``
geometric growth, ``conver=0.05``, ``minit=10``, ``maxit=50``, ``fflag=0.7``,
``maxgerr=0.5``, no sigma clipping), ``maxsma`` from the image's profile and
``minsma = sma0`` (the isophotes inside ``sma0`` are not measured; photutils still fits
one, at ``sma0 / 1.1``, which is ignored).  The measured isophote is the outermost one of
the outward walk (``sma >= sma0``) with stop code 0 (converged);
if there is none, or photutils gives up on the first isophote, the fit is retried from the
other starts of :func:`~gangal_isophote.preprocess.start_points` (other ``sma0``, then
the brightness peak as centre) before the image is recorded as a failure.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

import numpy as np

from gangal_core import OK

from .preprocess import (
    RETRY_FACTORS,
    SMA_STEP,
    StartGeometry,
    ellipse_sum,
    from_upscaled,
    start_points,
    to_upscaled,
    upscale_bicubic,
)

__all__ = ["describe_reference", "fit_reference", "fit_reference_one"]

Result = tuple[str, dict[str, float], float]


def fit_reference_one(image: np.ndarray, start: dict[str, float], *, upscale: int) -> Result:
    """Fit one prepared image with photutils; returns ``(status, values, seconds)``.

    ``values`` holds ``ellipticity``, ``angle`` (degrees), ``flux`` and ``sma`` in input
    pixels, plus the centre ``x0``, ``y0``; NaN when the status is not ``"ok"``.
    """
    begin = time.process_time()
    try:
        status, values = _fit(image, start, upscale=upscale)
    except Exception as exc:  # photutils may raise on pathological images; record, never drop
        status, values = f"error: {type(exc).__name__}: {exc}"[:120], {}
    nan = {k: np.nan for k in ("ellipticity", "angle", "flux", "sma", "x0", "y0")}
    return status, {**nan, **values}, time.process_time() - begin


def _fit(image: np.ndarray, start: dict[str, float], *, upscale: int) -> tuple[str, dict[str, float]]:
    big, factor = upscale_bicubic(image, upscale)
    status, outer = "no convergence", None
    for x0, y0, sma0 in start_points(start):
        centre = (to_upscaled(x0, factor), to_upscaled(y0, factor))
        try:
            outer = _outermost(big, *centre, sma0 * factor, start, factor)
        except Exception as exc:  # photutils may raise on pathological images; try the next start
            status = f"error: {type(exc).__name__}: {exc}"[:120]
        if outer is not None:
            break
    if outer is None:
        return status, {}
    flux = ellipse_sum(big, outer.x0, outer.y0, outer.sma, outer.eps, outer.pa) / factor**2
    return OK, {
        "ellipticity": float(outer.eps),
        "angle": float(np.degrees(outer.pa % np.pi)) % 180.0,
        "flux": float(flux),
        "sma": float(outer.sma / factor),
        "x0": from_upscaled(outer.x0, factor),
        "y0": from_upscaled(outer.y0, factor),
    }


def _outermost(big: np.ndarray, x0: float, y0: float, sma0: float, start: dict[str, float], factor: float):
    """Geometry of the outermost converged isophote of one ``fit_image`` from ``sma0``, or None."""
    from photutils.isophote import Ellipse, EllipseGeometry

    geometry = EllipseGeometry(x0=x0, y0=y0, sma=sma0, eps=start["eps"], pa=start["pa"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        isophotes = Ellipse(big, geometry=geometry).fit_image(
            sma0=sma0, minsma=sma0, maxsma=start["maxsma"] * factor, step=SMA_STEP
        )
    # the outward walk only: fit_image also fits one isophote inside minsma = sma0, which the
    # fast path does not (its sma0 / 1.1 would otherwise count when nothing outside converges)
    outward = [iso for iso in isophotes if iso.stop_code == 0 and iso.sma >= sma0 * (1 - 1e-9)]
    return max(outward, key=lambda iso: iso.sma).sample.geometry if outward else None


def _init_worker() -> None:
    """One thread per worker process: the pool itself spreads the work over the cores."""
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def fit_reference(
    images: np.ndarray,
    start: StartGeometry,
    *,
    upscale: int,
    workers: int | None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Fit every image with photutils, over a pool of ``workers`` processes.

    Images whose preparation failed are not fitted (their status is kept).  Results
    come back in input order whatever order the workers finish in; ``progress(1)`` is
    called as each image finishes.  The workers are spawned (not forked: torch's thread
    pool does not survive a fork), so a script calling this with ``workers > 1`` needs
    the usual ``if __name__ == "__main__":`` guard.

    Returns
    -------
    status : ndarray of object
    values : dict of str to ndarray
        ``ellipticity``, ``angle``, ``flux``, ``sma``, ``x0``, ``y0``.
    seconds : ndarray
        CPU seconds each fit took in its worker (0 for images not fitted).
    """
    n = len(images)
    status = start.status.copy()
    values = {k: np.full(n, np.nan) for k in ("ellipticity", "angle", "flux", "sma", "x0", "y0")}
    seconds = np.zeros(n)
    todo = [i for i in range(n) if status[i] == OK]
    if progress is not None and n > len(todo):
        progress(n - len(todo))

    def store(i: int, result: Result) -> None:
        status[i], found, seconds[i] = result
        for k, v in found.items():
            values[k][i] = v
        if progress is not None:
            progress(1)

    workers = _worker_count(workers, len(todo))
    if workers <= 1:
        for i in todo:
            store(i, fit_reference_one(images[i], start.row(i), upscale=upscale))
        return status, values, seconds
    try:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
            jobs = {pool.submit(fit_reference_one, images[i], start.row(i), upscale=upscale): i for i in todo}
            for future in as_completed(jobs):
                store(jobs[future], future.result())
    except BrokenProcessPool as exc:
        raise RuntimeError(
            "isophote: a photutils worker process died.  The workers are spawned, so a script that "
            "measures with method='photutils' must do so under `if __name__ == '__main__':`; "
            "or pass workers=1 to fit in this process."
        ) from exc
    return status, values, seconds


def _worker_count(workers: int | None, jobs: int) -> int:
    """``workers`` or one per available core, never more than there are jobs."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(int(workers), jobs))


def describe_reference() -> dict[str, Any]:
    """The photutils settings the reference path uses (for the evaluation report)."""
    import photutils

    return {
        "photutils": photutils.__version__,
        "retry_factors": list(RETRY_FACTORS),
        "peak_starts": True,
        "step": SMA_STEP,
    }
