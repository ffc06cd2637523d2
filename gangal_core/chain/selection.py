"""Model selection during chain training, without touching the test set (``--eval-every K``).

A GAN's losses do not say when its images are best: they oscillate while the generator
improves and while it drifts.  What an astronomer cares about is whether the galaxies
measure like real ones.  With ``--eval-every K``, ``gangal train``:

1. splits a seeded validation part off the training images (``--validation``, default
   10%, at least :data:`MIN_VALIDATION` images); the stages never train on it;
2. every ``K`` epochs (and at the last) draws :attr:`ModelSelection.n_samples` images
   from the stage's moving-average generator, measures them with the evaluator's fast
   path (isophote ellipse fits by default) and compares them with the validation images
   measured once at the start: a Kolmogorov-Smirnov statistic per quantity;
3. scores the epoch by the largest KS statistic (the worst quantity), and keeps the
   generator of the best epoch as ``generator-best.safetensors``; ``gangal sample``
   uses it by default.

The history goes to ``selection.csv`` and ``selection.png`` in the stage folder.

What a stage's samples are: the DCGAN draws from fixed noise (the same every time, so
scores differ by the generator, not the draw); a refiner refines the validation images
at its input resolution and is compared with the same images at its output resolution.
Keep a separate test set for the final figures (the Galaxy Zoo benchmark holds 200 out):
the selected epoch is, by construction, the one that fits the validation part best.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gangal_core.data.sources import DataSource, downscale_nearest
from gangal_core.errors import ConfigError
from gangal_core.evaluation.compare import compare_measurements
from gangal_core.evaluation.evaluator import Measurements
from gangal_core.io.atomic import atomic_write_bytes

from .stages import WEIGHT_FILES

__all__ = ["MIN_VALIDATION", "ModelSelection", "SubsetSource", "finite", "split_validation"]

#: The fewest validation images a selection compares with.
MIN_VALIDATION = 32
#: File names in a stage folder.
HISTORY, PLOT, BEST = "selection.csv", "selection.png", WEIGHT_FILES["best"]


class SubsetSource(DataSource):
    """Some images of another source, by index (a training or validation part).

    Parameters
    ----------
    source : DataSource
        The full source.
    indices : sequence of int
        Its images this source holds, in order.
    part : str
        What the subset is (``"training"``, ``"validation"``): recorded in :meth:`describe`.
    """

    def __init__(self, source: DataSource, indices: Sequence[int], *, part: str) -> None:
        self.source, self.indices, self.part = source, np.asarray(indices, dtype=np.int64), part
        self.name, self.channels, self.resolution = source.name, source.channels, source.resolution

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, index: int) -> np.ndarray:
        return self.source.read(int(self.indices[index]))

    def label(self, index: int) -> str:
        return self.source.label(int(self.indices[index]))

    def describe(self) -> dict[str, Any]:
        return {**self.source.describe(), "part": self.part, "n_images": len(self),
                "of": len(self.source)}  # fmt: skip


def split_validation(
    source: DataSource, fraction: float, *, seed: int, option: str = "--validation"
) -> tuple[SubsetSource, SubsetSource]:
    """A seeded split of ``source`` into a training part and a validation part of ``fraction``.

    Raises
    ------
    ConfigError
        ``fraction`` outside (0, 1), or too few images for :data:`MIN_VALIDATION` validation
        images and as many to train on.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"{option}: expected a share of the images in (0, 1), found {fraction}.")
    n = len(source)
    n_val = max(MIN_VALIDATION, round(fraction * n))
    if n - n_val < MIN_VALIDATION:
        raise ConfigError(
            f"{option} {fraction}: the data hold {n} images, too few for {n_val} validation images and "
            f"at least {MIN_VALIDATION} to train on; give more images or train without --eval-every."
        )
    order = np.random.default_rng(seed + 15_485_863).permutation(n)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return SubsetSource(source, train, part="training"), SubsetSource(source, val, part="validation")


def read_images(source: DataSource, resolution: int) -> np.ndarray:
    """Every image of ``source`` at ``resolution`` (nearest-neighbour), float32 in [0, 1]."""
    images = [downscale_nearest(source.read(i), resolution) for i in range(len(source))]
    out = np.stack(images)
    return out.astype(np.float32) / 255.0 if out.dtype == np.uint8 else out.astype(np.float32)


class ModelSelection:
    """Scores a stage's generator against validation images every few epochs; keeps the best.

    Parameters
    ----------
    validation : DataSource
        The validation images (:func:`split_validation`).
    every : int
        Epochs between two scores (the last epoch is always scored).
    evaluator : Evaluator
        Measures single-band images (``gangal evaluate``'s, with its fast method).
    n_samples : int, optional
        Generated images per score (default 256).
    seed : int, optional
        Seeds the DCGAN's fixed noise.
    images : dict, optional
        Where the validation images are kept by resolution once read; the stages of one
        chain share one, so the images are decoded once.
    """

    def __init__(
        self,
        validation: DataSource,
        *,
        every: int,
        evaluator: Any,
        n_samples: int = 256,
        seed: int = 0,
        images: dict[int, np.ndarray] | None = None,
    ) -> None:
        if every < 1:
            raise ConfigError(f"every: expected a number of epochs of 1 or more, found {every}.")
        self.validation, self.every, self.evaluator = validation, int(every), evaluator
        self.n_samples, self.seed = int(n_samples), int(seed)
        self._images: dict[int, np.ndarray] = {} if images is None else images
        self._measured: dict[int, Measurements] = {}
        self.rows: list[dict[str, float]] = []
        self.best: dict[str, float] | None = None

    def due(self, epoch: int, last: int) -> bool:
        """Whether epoch ``epoch`` (counted from 1) of ``last`` is scored."""
        return epoch % self.every == 0 or epoch == last

    def images(self, resolution: int) -> np.ndarray:
        """The validation images at ``resolution``, ``(N, C, R, R)`` in [0, 1] (read once)."""
        if resolution not in self._images:
            self._images[resolution] = read_images(self.validation, resolution)
        return self._images[resolution]

    def measure(self, images: np.ndarray) -> Measurements:
        """The evaluator's measurements of ``(N, C, H, W)`` images in [0, 1], channels summed."""
        return self.evaluator.measure(np.ascontiguousarray(images.sum(axis=1)))

    def score(self, generated: np.ndarray, epoch: int) -> dict[str, float]:
        """Compare ``generated`` (``(n, C, R, R)`` in [0, 1]) with the validation images; record it.

        Returns the history row: the epoch, the KS statistic and the Wasserstein distance over
        the real spread of each quantity, the generated images' failure rate, and the score
        (the largest KS statistic; lower is better).
        """
        resolution = generated.shape[-1]
        if resolution not in self._measured:
            self._measured[resolution] = self.measure(self.images(resolution))
        doc = compare_measurements(self._measured[resolution], self.measure(generated),
                                   quantities=self.evaluator.quantities)  # fmt: skip
        row: dict[str, float] = {"epoch": float(epoch)}
        for q, entry in doc["quantities"].items():
            row[f"ks_{q}"] = _number(entry["ks_statistic"])
            row[f"w_over_std_{q}"] = _number(entry["wasserstein_over_real_std"])
        row["failure_rate"] = float(doc["failure_rate"]["generated"])
        ks = [row[f"ks_{q}"] for q in doc["quantities"]]
        row["score"] = float(max(ks)) if ks and all(np.isfinite(ks)) else float("inf")
        self.rows.append(row)
        improved = self.best is None or row["score"] < self.best["score"]
        if improved:
            self.best = row
        return row | {"best": float(improved)}

    def history_csv(self) -> bytes:
        """``selection.csv``: one row per scored epoch."""
        if not self.rows:
            return b""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=[*self.rows[0], "best"], lineterminator="\n")
        writer.writeheader()
        best = self.best["epoch"] if self.best else None
        for row in self.rows:
            writer.writerow({k: (int(v) if k == "epoch" else f"{v:.6g}") for k, v in row.items()}
                            | {"best": int(row["epoch"] == best)})  # fmt: skip
        return out.getvalue().encode()

    def write_history(self, folder: Any) -> None:
        """Write ``selection.csv`` and ``selection.png`` into the stage ``folder`` (atomically)."""
        atomic_write_bytes(folder / HISTORY, self.history_csv())
        plot_selection(folder / PLOT, self.rows, self.best)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state.get("rows", [])]
        self.best = dict(state["best"]) if state.get("best") else None


def fixed_noise(n: int, size: int, seed: int) -> torch.Tensor:
    """The DCGAN's selection noise: the same draws at every score."""
    return torch.randn(n, size, generator=torch.Generator().manual_seed(seed + 7_919))


def finite(row: dict[str, float]) -> dict[str, float | None]:
    """``row`` for JSON: a score that could not be computed (NaN, inf) becomes ``None``."""
    return {k: (float(v) if np.isfinite(v) else None) for k, v in row.items()}


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def plot_selection(path: Any, rows: list[dict[str, float]], best: dict[str, float] | None) -> None:
    """The KS statistic of each quantity against the epoch, the selected epoch marked."""
    from gangal_core.io.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    epochs = [r["epoch"] for r in rows]
    for key in (k for k in (rows[0] if rows else {}) if k.startswith("ks_")):
        ax.plot(epochs, [r[key] for r in rows], marker="o", ms=3, lw=1.2, label=key[3:])
    if best is not None:
        ax.axvline(best["epoch"], color="0.4", ls="--", lw=1, label=f"kept: epoch {int(best['epoch'])}")
    ax.axhline(0.10, color="0.7", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("KS statistic vs validation")
    ax.set_title("model selection")
    ax.legend(frameon=False, fontsize=8)
    save_figure(fig, path)
