"""Comparing two image sets: measured distributions and the closest-match analysis.

:func:`compare_measurements` puts two sets of :class:`~gangal_core.evaluation.Measurements`
side by side, per quantity: the two-sample Kolmogorov-Smirnov statistic and p-value, the
1-D Wasserstein distance (also divided by the real set's standard deviation, to compare
quantities with different units), summary statistics and the fit-failure rates.
:func:`plot_histograms` draws them like Figs. 11/12 of Fussell & Moews (2019).

:func:`closest_match` is their section 3.2.6 (Fig. 7): for generated images, the nearest
real image by L1 distance on the central 50% crop, set against the nearest-neighbour
distances of real images among themselves.  A generator that memorised its training set
would put generated images much closer to real ones than real images are to each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import stats

from gangal_core.io.plots import pyplot, save_figure

from .evaluator import Measurements

if TYPE_CHECKING:
    from astropy.table import Table

__all__ = ["EvaluationResult", "centre_crop", "closest_match", "compare_measurements", "nearest_l1",
           "plot_closest_match", "plot_distances", "plot_histograms"]  # fmt: skip

REAL_COLOUR, GENERATED_COLOUR = "tab:blue", "tab:red"  # the paper's colours


@dataclass
class EvaluationResult:
    """Two image sets measured and compared: what ``gangal evaluate`` found.

    :meth:`to_dict` is ``evaluation.json``; :meth:`to_table` the per-quantity comparison as an
    astropy table.

    Attributes
    ----------
    failure_rate, n_measured : dict
        Per set (``real``, ``generated``): the fraction of failed measurements and the
        number of successful ones.
    quantities : dict
        Per quantity: each set's summary (``n``, ``mean``, ``std``, ``median``), the KS
        statistic and p-value, the Wasserstein distance and its ratio to the real spread
        (:func:`compare_measurements`).
    evaluator : dict
        The evaluator's description (name, quantities, units...).
    method, band : str
        The evaluator's method and the band measured.
    resolution : int
        Side of the images compared.
    real, generated : dict
        Where each set came from.
    closest_match : dict
        The closest-match summary (:func:`closest_match`).
    seconds : float
        Wall time of the whole evaluation.
    units : dict
        Each quantity's unit (``Evaluator.units``).
    measurements : dict
        The :class:`Measurements` of each set (not in the JSON).
    """

    failure_rate: dict[str, float]
    n_measured: dict[str, int]
    quantities: dict[str, dict[str, Any]]
    evaluator: dict[str, Any] = field(default_factory=dict)
    method: str = ""
    band: str = "sum"
    resolution: int = 0
    real: dict[str, Any] = field(default_factory=dict)
    generated: dict[str, Any] = field(default_factory=dict)
    closest_match: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    units: dict[str, str] = field(default_factory=dict)
    measurements: dict[str, Measurements] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``evaluation.json`` document, exactly as it is written."""
        return {
            "failure_rate": self.failure_rate,
            "n_measured": self.n_measured,
            "quantities": self.quantities,
            "evaluator": self.evaluator,
            "method": self.method,
            "band": self.band,
            "resolution": self.resolution,
            "real": self.real,
            "generated": self.generated,
            "closest_match": self.closest_match,
            "seconds": round(self.seconds, 2),
        }

    def to_table(self) -> Table:
        """The comparison as an astropy :class:`~astropy.table.Table`, one row per quantity.

        Columns: ``quantity``, ``unit`` (from ``Evaluator.units``: quantities differ in unit,
        so a column cannot carry one), ``ks_statistic``, ``ks_pvalue``, ``wasserstein``,
        ``wasserstein_over_real_std``, then ``n``, ``mean``, ``std`` and ``median`` of each
        set (``mean_real``, ``mean_generated``...).  A statistic that could not be computed
        (too few successful measurements) is masked.  ``table.meta`` holds the failure rates
        and the closest-match summary.
        """
        from astropy.table import MaskedColumn, Table

        names = ["ks_statistic", "ks_pvalue", "wasserstein", "wasserstein_over_real_std"]
        for kind in ("real", "generated"):
            names += [f"{stat}_{kind}" for stat in ("n", "mean", "std", "median")]

        def value(entry: dict[str, Any], name: str) -> Any:
            stat, _, kind = name.rpartition("_")
            return entry[kind][stat] if kind in ("real", "generated") else entry[name]

        table = Table(meta={"failure_rate": self.failure_rate, "closest_match": self.closest_match})
        table["quantity"] = list(self.quantities)
        table["unit"] = [self.units.get(q, "") for q in self.quantities]
        for name in names:
            values = [value(entry, name) for entry in self.quantities.values()]
            missing = [v is None for v in values]
            table[name] = MaskedColumn([0 if v is None else v for v in values], mask=missing,
                                       dtype=int if name.startswith("n_") else float)  # fmt: skip
        return table


def compare_measurements(
    real: Measurements, generated: Measurements, *, quantities: tuple[str, ...]
) -> dict[str, Any]:
    """Per-quantity KS statistic, Wasserstein distance and summaries of two image sets.

    Only successful measurements enter the statistics; the failure rates are reported
    beside them.  Angles are compared as they are measured, in [0, 180) degrees.
    """
    doc: dict[str, Any] = {
        "failure_rate": {"real": real.failure_rate, "generated": generated.failure_rate},
        "n_measured": {"real": int(real.ok.sum()), "generated": int(generated.ok.sum())},
        "quantities": {},
    }
    for q in quantities:
        a, b = real.values[q][real.ok], generated.values[q][generated.ok]
        entry: dict[str, Any] = {"real": _summary(a), "generated": _summary(b)}
        if len(a) >= 2 and len(b) >= 2:
            ks = stats.ks_2samp(a, b)
            w1 = float(stats.wasserstein_distance(a, b))
            spread = float(np.std(a))
            entry.update(ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue), wasserstein=w1,
                         wasserstein_over_real_std=w1 / spread if spread > 0 else None)  # fmt: skip
        else:
            entry.update(ks_statistic=None, ks_pvalue=None, wasserstein=None, wasserstein_over_real_std=None)
        doc["quantities"][q] = entry
    return doc


def _summary(x: np.ndarray) -> dict[str, float | int | None]:
    if not len(x):
        return {"n": 0, "mean": None, "std": None, "median": None}
    return {
        "n": len(x),
        "mean": float(np.mean(x)),
        "std": float(np.std(x)),
        "median": float(np.median(x)),
    }


def plot_histograms(
    path: Path,
    real: Measurements,
    generated: Measurements,
    *,
    quantities: tuple[str, ...],
    units: dict[str, str],
    labels: tuple[str, str] = ("real", "generated"),
    title: str = "",
) -> None:
    """Histograms of each quantity for both sets (the paper's Figs. 11/12), one panel each."""
    plt = pyplot()
    cols = 2 if len(quantities) > 1 else 1
    rows = -(-len(quantities) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, q in zip(axes.flat, quantities, strict=False):
        a, b = real.values[q][real.ok], generated.values[q][generated.ok]
        both = np.concatenate([a, b])
        if not len(both):
            ax.set_visible(False)
            continue
        lo, hi = np.percentile(both, [0.5, 99.5]) if q != "angle" else (0.0, 180.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
        ax.hist(
            a, bins=bins, density=True, histtype="stepfilled", alpha=0.45, color=REAL_COLOUR, label=labels[0]
        )
        ax.hist(b, bins=bins, density=True, histtype="step", lw=1.6, color=GENERATED_COLOUR, label=labels[1])
        unit = units.get(q, "")
        ax.set_xlabel(f"{q} ({unit})" if unit else q)
        ax.set_ylabel("density")
    for ax in list(axes.flat)[len(quantities) :]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def centre_crop(images: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """The central ``fraction`` of each side of ``(N, C, H, W)`` images (the paper crops 50%)."""
    h, w = images.shape[-2:]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    top, left = (h - ch) // 2, (w - cw) // 2
    return images[..., top : top + ch, left : left + cw]


def nearest_l1(
    queries: np.ndarray,
    references: np.ndarray,
    *,
    exclude_self: bool = False,
    chunk: int = 256,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """For each query image, the reference image nearest in L1 distance (eq. 8).

    Parameters
    ----------
    queries, references : ndarray
        Images of one shape, ``(N, ...)`` and ``(M, ...)``.
    exclude_self : bool, optional
        ``queries`` *are* ``references``: skip each image's distance to itself (for the
        real-vs-real nearest distances).
    chunk : int, optional
        Queries per block of the distance matrix.
    device : str or torch.device, optional
        Where the distances are computed (default the CPU).

    Returns
    -------
    distance : ndarray
        ``(N,)`` mean absolute difference per value (the L1 distance divided by the number
        of values, so it reads in image units whatever the image size).
    index : ndarray
        ``(N,)`` index of the nearest reference.
    """
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).reshape(len(queries), -1).to(device)
    r = torch.from_numpy(np.ascontiguousarray(references, dtype=np.float32)).reshape(len(references), -1)
    r = r.to(device)
    if q.shape[1] != r.shape[1]:
        raise ValueError(
            f"queries and references differ in size: {tuple(queries.shape)} vs {tuple(references.shape)}"
        )
    dist, index = np.empty(len(q)), np.empty(len(q), dtype=np.int64)
    for start in range(0, len(q), chunk):
        d = torch.cdist(q[start : start + chunk], r, p=1.0)
        if exclude_self:
            rows = torch.arange(d.shape[0], device=d.device)
            d[rows, rows + start] = float("inf")
        best = d.min(dim=1)
        dist[start : start + chunk] = best.values.cpu().numpy() / q.shape[1]
        index[start : start + chunk] = best.indices.cpu().numpy()
    return dist, index


def closest_match(
    generated: np.ndarray, real: np.ndarray, *, fraction: float = 0.5, n_real_pairs: int | None = 2000,
    seed: int = 0, device: str | torch.device = "cpu",
) -> dict[str, Any]:  # fmt: skip
    """The closest-match analysis of section 3.2.6 on the central crops.

    Returns the nearest real image of every generated image and its distance, the
    nearest-neighbour distances of (up to ``n_real_pairs``) real images among themselves,
    and a summary: the medians, their ratio (about 1 or more: no sign of memorisation; well
    below 1: generated images sit on top of real ones), and the fraction of generated
    images closer to a real image than the 1st percentile of real-vs-real distances.
    The distances are computed on ``device`` (:func:`nearest_l1`).
    """
    g, r = centre_crop(generated, fraction), centre_crop(real, fraction)
    gen_dist, gen_index = nearest_l1(g, r, device=device)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(r), size=min(len(r), n_real_pairs or len(r)), replace=False))
    real_dist, _ = nearest_l1(r[pick], r[pick], exclude_self=True, device=device)
    floor = float(np.percentile(real_dist, 1))
    return {
        "generated_distance": gen_dist,
        "generated_index": gen_index,
        "real_distance": real_dist,
        "summary": {
            "crop_fraction": fraction,
            "distance": "mean absolute difference per value on the central crop",
            "median_generated_to_real": float(np.median(gen_dist)),
            "median_real_to_real": float(np.median(real_dist)),
            "ratio_of_medians": float(np.median(gen_dist) / max(np.median(real_dist), 1e-12)),
            "real_to_real_1st_percentile": floor,
            "fraction_generated_below_that": float(np.mean(gen_dist < floor)),
            "n_generated": len(g),
            "n_real_reference": len(r),
            "n_real_pairs": len(pick),
        },
    }


def plot_closest_match(path: Path, generated: np.ndarray, real: np.ndarray, index: np.ndarray,
                       distance: np.ndarray, *, n: int = 8) -> None:  # fmt: skip
    """Fig. 7: generated images, their closest real images and the absolute differences."""
    plt = pyplot()
    n = min(n, len(generated))
    fig, axes = plt.subplots(3, n, figsize=(1.5 * n, 4.8), squeeze=False)
    for k in range(n):
        pair = [generated[k], real[index[k]]]
        for row, image in enumerate([*pair, np.abs(pair[0] - pair[1])]):
            ax = axes[row][k]
            ax.imshow(_rgb(image))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][k].set_title(f"L1 {distance[k]:.3f}", fontsize=7)
    for row, label in enumerate(("generated", "closest real", "|difference|")):
        axes[row][0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _rgb(image: np.ndarray) -> np.ndarray:
    c = image.shape[0]
    picture = image[0] if c == 1 else np.moveaxis(image[:3], 0, -1)
    return np.clip(picture, 0.0, 1.0)


def plot_distances(path: Path, generated_distance: np.ndarray, real_distance: np.ndarray) -> None:
    """Histograms of generated-to-real and real-to-real nearest L1 distances."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    both = np.concatenate([generated_distance, real_distance])
    bins = np.linspace(0, np.percentile(both, 99.5) * 1.05 + 1e-9, 41)
    ax.hist(
        real_distance, bins=bins, density=True, alpha=0.45, color=REAL_COLOUR, label="real to nearest real"
    )
    ax.hist(generated_distance, bins=bins, density=True, histtype="step", lw=1.6, color=GENERATED_COLOUR,
            label="generated to nearest real")  # fmt: skip
    ax.set_xlabel("nearest-neighbour L1 distance (per value, central 50% crop)")
    ax.set_ylabel("density")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
