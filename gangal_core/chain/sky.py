"""The sky of generated galaxies: its level and noise matched to the training images'.

A GAN learns the galaxy and little of the noise around it.  On the Galaxy Zoo sample the
DCGAN's sky came out three times quieter than the real one (a robust sigma of 0.004 against
0.012 in ``[0, 1]`` units) and darker.  That is not cosmetic: every measurement that works
relative to the noise is biased by it.  An isophote fit follows a quieter profile further
out, so the generated galaxies measured 12% larger than real ones (``benchmarks/RESULTS.md``,
issue 18); source detection, signal-to-noise cuts and deblending shift the same way.

Astronomers make simulated images realistic the same way: add the survey's sky and noise.
:func:`sky_statistics` measures the sky of a set of images: per channel, the median over
images of each image's border-frame median (the level) and of its robust noise, 1.4826 times
the median absolute deviation (MAD) of the border pixels, which stars and neighbours in the
frame do not inflate.  ``gangal train`` stores the training images' sky at every resolution
the chain produces (:data:`SKY_FILE`); :func:`match_sky` then gives a set of generated images
the missing part: the difference of the levels, and Gaussian noise of
``sqrt(max(sigma_real**2 - sigma_generated**2, 0))``, clipped to ``[0, 1]``.  Images that are
already as noisy as the real ones get no noise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gangal_core.data.sources import DataSource, downscale_nearest
from gangal_core.errors import GangalError
from gangal_core.io.atomic import atomic_write_json

__all__ = ["SKY_FILE", "SKY_FORMAT", "match_sky", "read_sky", "sky_statistics", "write_training_sky"]

#: The file in a model folder that holds the training images' sky, per resolution.
SKY_FILE = "sky.json"
SKY_FORMAT = "gangal-sky/1"
#: Training images measured for the stored sky (evenly spaced over the set).
N_SKY_IMAGES = 512
#: Images per block of drawn noise: the noise depends on the seed, not on how many are drawn.
_BLOCK = 256


def _border(side: int) -> np.ndarray:
    width = max(2, side // 16)  # the isophote evaluator's sky frame
    mask = np.zeros((side, side), bool)
    mask[:width] = mask[-width:] = True
    mask[:, :width] = mask[:, -width:] = True
    return mask


def sky_statistics(images: np.ndarray) -> dict[str, list[float]]:
    """The sky of ``(n, C, H, W)`` images in ``[0, 1]``: per-channel ``level`` and ``sigma``.

    Per image and channel, the median of the border frame (``max(2, side // 16)`` pixels wide)
    and 1.4826 times its median absolute deviation; then the median of each over the images.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != images.shape[-2] or len(images) == 0:
        raise GangalError(f"sky statistics: expected square (n, C, H, W) images, found shape {images.shape}.")
    frame = images[:, :, _border(images.shape[-1])]  # (n, C, m)
    level = np.median(frame, axis=2)
    sigma = 1.4826 * np.median(np.abs(frame - level[..., None]), axis=2)
    return {"level": np.median(level, axis=0).tolist(), "sigma": np.median(sigma, axis=0).tolist()}


def match_sky(
    images: np.ndarray, real: dict[str, list[float]], *, generated: dict[str, list[float]], seed: int = 0
) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Give generated ``images`` the ``real`` sky: shift the level, add the missing noise.

    Parameters
    ----------
    images : numpy.ndarray
        ``(n, C, H, W)`` generated images in ``[0, 1]``.
    real, generated : dict
        :func:`sky_statistics` of the real images and of the generator's images (a
        reference draw, so that the correction does not depend on ``n``).
    seed : int, optional
        Seed of the noise.  Image ``i`` gets the same noise whatever ``n`` is.

    Returns
    -------
    images : numpy.ndarray
        The corrected images, float32, clipped to ``[0, 1]``.
    correction : dict
        Per channel, the level ``shift`` and the ``noise`` sigma added.
    """
    images = np.asarray(images, dtype=np.float32)
    shift = np.asarray(real["level"], np.float32) - np.asarray(generated["level"], np.float32)
    missing = np.square(real["sigma"]) - np.square(generated["sigma"])
    noise = np.sqrt(np.maximum(missing, 0)).astype(np.float32)
    if len(shift) != images.shape[1]:
        raise GangalError(
            f"sky: the stored sky has {len(shift)} channels, the images {images.shape[1]}; "
            "the model folder's sky.json belongs to another data set."
        )
    rng = np.random.default_rng([int(seed), 20190101])
    out = np.empty_like(images)
    for start in range(0, len(images), _BLOCK):
        block = images[start : start + _BLOCK]
        draw = rng.standard_normal(size=(_BLOCK, *images.shape[1:]), dtype=np.float32)[: len(block)]
        out[start : start + _BLOCK] = block + shift[:, None, None] + noise[:, None, None] * draw
    np.clip(out, 0.0, 1.0, out=out)
    return out, {"shift": shift.tolist(), "noise": noise.tolist()}


def write_training_sky(folder: Path, source: DataSource, sides: list[int]) -> dict[str, Any]:
    """Measure ``source``'s sky at each of ``sides`` and write :data:`SKY_FILE` in ``folder``."""
    picks = np.unique(np.linspace(0, len(source) - 1, min(N_SKY_IMAGES, len(source))).astype(int))
    raw = [np.asarray(source.read(int(i))) for i in picks]
    scale = 255.0 if raw[0].dtype == np.uint8 else 1.0
    doc: dict[str, Any] = {"format": SKY_FORMAT, "n_images": len(picks), "resolutions": {}}
    for side in sorted(set(sides)):
        images = np.stack([downscale_nearest(im, side) for im in raw]).astype(np.float32) / scale
        doc["resolutions"][str(side)] = sky_statistics(images)
    atomic_write_json(Path(folder) / SKY_FILE, doc)
    return doc


def read_sky(folder: Path, side: int) -> dict[str, list[float]] | None:
    """The training images' sky at ``side`` from a model folder; None where it holds none."""
    path = Path(folder) / SKY_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GangalError(f"{path}: not readable JSON ({exc}); delete it, or sample with --no-sky.") from exc
    if not isinstance(doc, dict) or doc.get("format") != SKY_FORMAT:
        raise GangalError(f"{path}: not a gangal sky description ({SKY_FORMAT}).")
    return doc.get("resolutions", {}).get(str(side))
