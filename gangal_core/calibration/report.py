"""What a calibration leaves behind: the table, ``samples.csv``, ``samples.ecsv`` and the plots.

Plots (PNG, matplotlib's Agg backend, no display needed), axes labelled with the units:

- ``parameters.png``: best-match vs true parameter histograms;
- ``corner.png``: every pair of parameters, best match against the truth when it is known;
- ``emulator.png``: emulator vs simulator images for the same parameters (the paper's Figs. 4/6);
- ``generated.png``: generator -> simulator images beside true images (Figs. 5/7);
- ``losses.png``: loss curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.markup import escape
from rich.table import Table

from gangal_core.io.plots import pyplot, save_figure
from gangal_core.io.tables import write_parameter_table
from gangal_core.simulation.simulator import call_simulator

__all__ = [
    "axis_label",
    "calibration_table",
    "corner_figure",
    "plot_corner",
    "plot_emulator_vs_simulator",
    "plot_generated_vs_true",
    "plot_losses",
    "plot_parameters",
    "write_samples",
    "write_samples_csv",
    "write_samples_ecsv",
]


def write_samples_csv(path: Path, names: tuple[str, ...], samples: np.ndarray) -> None:
    """One row per sample, header = parameter names, six significant digits (atomic)."""
    write_parameter_table(path, names, samples)


def write_samples_ecsv(
    path: Path,
    names: Sequence[str],
    samples: np.ndarray,
    *,
    units: Sequence[str],
    descriptions: Sequence[str] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """The numbers of :func:`write_samples_csv` as an astropy ECSV table: each column in its unit,
    with the parameter's description, and ``meta`` in the header (atomic)."""
    write_parameter_table(path, names, samples, units=units, descriptions=descriptions, meta=meta)


def write_samples(folder: Path, result: Any, *, descriptions: Sequence[str] | None = None) -> None:
    """A :class:`~.result.CalibrationResult`'s samples as ``samples.csv`` and ``samples.ecsv`` in ``folder``.

    The ECSV file holds the same numbers with each column's unit and description, and the
    simulator's name in its header.
    """
    write_samples_csv(folder / "samples.csv", result.names, result.samples)
    meta = {"simulator": result.simulator, "contents": "best-match parameter samples"}
    write_samples_ecsv(folder / "samples.ecsv", result.names, result.samples, units=result.units,
                       descriptions=descriptions, meta=meta)  # fmt: skip


def axis_label(name: str, unit: str | None) -> str:
    """``"r [px]"``, or the name alone when the parameter has no unit."""
    return f"{name} [{unit}]" if unit else name


def calibration_table(doc: dict[str, Any]) -> Table:
    """The paper's Table I/II layout: true and best-match mu and sigma per parameter, for the terminal.

    ``doc`` is a ``calibration.json`` document (:meth:`CalibrationResult.to_dict`); the recovery
    rows are green where they meet :data:`~gangal_core.calibration.result.RECOVERY_BAR`.
    """
    from .result import RECOVERY_BAR, recovery

    names = list(doc["parameters"])
    table = Table(
        title=f"{doc['simulator']}: best-match parameters ({doc['n_samples']} samples)",
        caption="± one standard error (generator snapshots and the finite true set)"
        if any("mean_err" in v for v in doc["parameters"].values())
        else None,
    )
    table.add_column("")
    p = doc["parameters"]
    for name in names:
        table.add_column(escape(axis_label(name, p[name].get("unit"))), justify="right")  # [px] is no markup
    known = all("true_mean" in p[n] for n in names)
    if known:
        table.add_row("True mu", *(f"{p[n]['true_mean']:.4g}" for n in names))
        table.add_row("True sigma", *(f"{p[n]['true_std']:.4g}" for n in names))

    def with_err(entry: dict[str, Any], key: str) -> str:
        err = entry.get(f"{key}_err")
        return f"{entry[key]:.4g}" if err is None else f"{entry[key]:.4g} ± {err:.2g}"

    table.add_row("Best match mu", *(with_err(p[n], "mean") for n in names))
    table.add_row("Best match sigma", *(with_err(p[n], "std") for n in names))
    if known:

        def mark(ok: bool, text: str) -> str:
            return f"[green]{text}[/]" if ok else f"[red]{text}[/]"

        rec = recovery(doc)  # parameters whose true spread is 0 have no ratio: shown as "-"
        dmu = [rec[n]["dmu_over_sigma"] if n in rec else None for n in names]
        ratio = [rec[n]["sigma_ratio"] if n in rec else None for n in names]
        table.add_row(
            "|dmu| / sigma", *("-" if d is None else mark(RECOVERY_BAR.mean_ok(d), f"{d:.3f}") for d in dmu)
        )
        table.add_row(
            "sigma ratio", *("-" if r is None else mark(RECOVERY_BAR.ratio_ok(r), f"{r:.3f}") for r in ratio)
        )
    return table


def plot_parameters(
    path: Path,
    names: tuple[str, ...],
    samples: np.ndarray,
    *,
    true_params: np.ndarray | None = None,
    truth: dict[str, tuple[float, float]] | None = None,
    ranges: list[tuple[float, float]] | None = None,
    units: Sequence[str] | None = None,
) -> None:
    """Best-match parameter histograms, with the true ones (or the true Gaussian) behind."""
    plt = pyplot()
    k = len(names)
    fig, axes = plt.subplots(1, k, figsize=(3.0 * k, 2.8), squeeze=False)
    for j, (ax, name) in enumerate(zip(axes[0], names, strict=True)):
        lo, hi = ranges[j] if ranges else (samples[:, j].min(), samples[:, j].max())
        _marginal(ax, j, name, samples, np.linspace(lo, hi, 60), true_params=true_params, truth=truth)
        ax.set_xlabel(axis_label(name, units[j] if units else ""))
        ax.set_yticks([])
    axes[0][0].legend(fontsize=8, frameon=False)
    fig.suptitle("best-match vs true parameter distributions")
    save_figure(fig, path)


def _marginal(
    ax: Any,
    j: int,
    name: str,
    samples: np.ndarray,
    bins: np.ndarray,
    *,
    true_params: np.ndarray | None,
    truth: Mapping[str, tuple[float, float]] | None,
) -> None:
    """One parameter's best-match histogram over the true one (or the true Gaussian)."""
    if true_params is not None:
        ax.hist(true_params[:, j], bins=bins, density=True, alpha=0.45, color="0.4", label="true")
    elif truth is not None:
        mu, sd = truth[name]
        xs = np.linspace(bins[0], bins[-1], 300)
        ax.plot(xs, np.exp(-0.5 * ((xs - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), "k-", label="true")
    ax.hist(samples[:, j], bins=bins, density=True, histtype="step", lw=1.6, color="C3", label="best match")


#: Probability inside the corner plot's contours: 1 and 2 sigma of a 2-D Gaussian (1 - exp(-r^2 / 2)).
CONTOUR_MASS = (1 - np.exp(-0.5), 1 - np.exp(-2.0))


def plot_corner(path: Path, names: Sequence[str], samples: np.ndarray, **options: Any) -> None:
    """Write :func:`corner_figure` (same arguments) as a PNG, atomically."""
    save_figure(corner_figure(names, samples, **options), path)


def corner_figure(
    names: Sequence[str],
    samples: np.ndarray,
    *,
    units: Sequence[str] | None = None,
    true_params: np.ndarray | None = None,
    truth: Mapping[str, tuple[float, float]] | None = None,
    ranges: Sequence[tuple[float, float]] | None = None,
    bins: int = 30,
) -> Any:
    """The corner plot of the best match: marginals on the diagonal, every pair below it.

    The best match is red: histograms, and in each pair a shaded 2-D histogram with contours
    holding 39% and 86% of the samples (1 and 2 sigma of a 2-D Gaussian).  The truth, when
    known, is grey or black: the true parameters' histograms and contours at the same levels,
    or, with only a ``{name: (mean, std)}`` truth, its Gaussians and the 1- and 2-sigma ellipses
    of independent Gaussians; lines mark the true means.  Axes show the data's extent (within
    ``ranges``), labelled with the units.  Returns the matplotlib figure.
    """
    plt = pyplot()
    samples = np.asarray(samples, dtype=np.float64)
    k = len(names)
    units = list(units) if units else [""] * k
    limits = [_corner_limits(j, name, samples, true_params, truth, ranges) for j, name in enumerate(names)]
    side = max(2.0 * k, 3.0)
    fig, axes = plt.subplots(k, k, figsize=(side, side), squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i][j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                bins_j = np.linspace(*limits[j], bins + 1)
                _marginal(ax, j, names[j], samples, bins_j, true_params=true_params, truth=truth)
                ax.set_yticks([])
            else:
                _corner_pair(ax, j, i, names, samples, limits, bins, true_params=true_params, truth=truth)
                ax.set_ylim(limits[i])
            ax.set_xlim(limits[j])
            _corner_labels(ax, i, j, k, names, units)
    fig.subplots_adjust(hspace=0.1, wspace=0.1, top=0.92)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", frameon=False)
    known = true_params is not None or truth is not None
    fig.suptitle("best match against the truth" if known else "best match")
    return fig


def _corner_labels(ax: Any, i: int, j: int, k: int, names: Sequence[str], units: Sequence[str]) -> None:
    """Names and units on the outer edge of the grid only."""
    if i == k - 1:
        ax.set_xlabel(axis_label(names[j], units[j]))
    else:
        ax.set_xticklabels([])
    if j == 0 and i > 0:
        ax.set_ylabel(axis_label(names[i], units[i]))
    elif i != j:
        ax.set_yticklabels([])


def _corner_limits(j: int, name: str, samples: np.ndarray, true_params: np.ndarray | None,
                   truth: Mapping[str, tuple[float, float]] | None,
                   ranges: Sequence[tuple[float, float]] | None) -> tuple[float, float]:  # fmt: skip
    """Where parameter ``j``'s samples and truth lie, padded, inside its declared range."""
    ends = [np.quantile(samples[:, j], [0.005, 0.995])]
    if true_params is not None:
        ends.append(np.quantile(true_params[:, j], [0.005, 0.995]))
    elif truth is not None:
        mu, sd = truth[name]
        ends.append(np.array([mu - 3 * sd, mu + 3 * sd]))
    lo, hi = min(float(e[0]) for e in ends), max(float(e[1]) for e in ends)
    pad = 0.1 * (hi - lo) or 0.05 * (abs(lo) or 1.0)
    lo, hi = lo - pad, hi + pad
    if ranges:
        lo, hi = max(lo, ranges[j][0]), min(hi, ranges[j][1])
        if not lo < hi:
            lo, hi = ranges[j]
    return lo, hi


def _corner_pair(ax: Any, x: int, y: int, names: Sequence[str], samples: np.ndarray,
                 limits: list[tuple[float, float]], bins: int, *, true_params: np.ndarray | None,
                 truth: Mapping[str, tuple[float, float]] | None) -> None:  # fmt: skip
    """Parameter ``y`` against ``x``: the best match shaded and contoured, the truth over it."""
    extent = [limits[x], limits[y]]
    counts, xe, ye = np.histogram2d(samples[:, x], samples[:, y], bins=bins, range=extent)
    shade = np.ma.masked_equal(counts.T, 0)  # empty bins stay white
    ax.pcolormesh(xe, ye, shade, cmap="Reds", shading="flat", alpha=0.6, rasterized=True)
    _contours(ax, counts, xe, ye, colors="C3", linestyles="solid")
    if true_params is not None:
        true_counts, *_ = np.histogram2d(true_params[:, x], true_params[:, y], bins=bins, range=extent)
        _contours(ax, true_counts, xe, ye, colors="0.25", linestyles="dashed")
        means = true_params[:, x].mean(), true_params[:, y].mean()
    elif truth is not None:
        from matplotlib.patches import Ellipse

        (mx, sx), (my, sy) = truth[names[x]], truth[names[y]]
        for mass in CONTOUR_MASS:
            r = np.sqrt(-2 * np.log(1 - mass))
            ax.add_patch(Ellipse((mx, my), 2 * r * sx, 2 * r * sy, fill=False, ec="k", ls="--", lw=0.9))
        means = mx, my
    else:
        return
    ax.axvline(means[0], color="0.3", lw=0.7)
    ax.axhline(means[1], color="0.3", lw=0.7)


def _contours(ax: Any, counts: np.ndarray, xe: np.ndarray, ye: np.ndarray, **style: Any) -> None:
    """Contours of a 2-D histogram enclosing :data:`CONTOUR_MASS` of its samples.

    The histogram is smoothed by a Gaussian of one bin first, so a few hundred true parameters
    draw a contour, not a scatter of one-bin islands.
    """
    from scipy.ndimage import gaussian_filter

    counts = gaussian_filter(counts.astype(np.float64), 1.0)
    flat = np.sort(counts.ravel())[::-1]
    total = flat.sum()
    if total <= 0:
        return
    cumulative = np.cumsum(flat) / total
    levels = sorted({float(flat[min(np.searchsorted(cumulative, m), len(flat) - 1)]) for m in CONTOUR_MASS})
    levels = [v for v in levels if v > 0]
    if levels:
        centres = (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2
        ax.contour(*centres, counts.T, levels=levels, linewidths=1.0, **style)


def _image_grid(plt, rows: list[list[torch.Tensor]], titles: list[str], suptitle: str):
    n_rows, n_cols = len(rows), len(titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols, 1.6 * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        vmin = min(float(img.min()) for img in row)
        vmax = max(float(img.max()) for img in row)
        for j, img in enumerate(row):
            ax = axes[i][j]
            ax.imshow(img[0].numpy() if img.shape[0] == 1 else img[:3].permute(1, 2, 0).clamp(0, 1).numpy(),
                      cmap="gray", vmin=vmin, vmax=vmax)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=8)
    fig.suptitle(suptitle)
    return fig


def plot_emulator_vs_simulator(
    path: Path, simulator: Any, emulator: Any, *, n: int = 5, seed: int = 0
) -> None:
    """Rows: parameter sets drawn uniformly; columns: simulator, emulator mean, emulator samples."""
    plt = pyplot()
    gen = torch.Generator().manual_seed(seed)
    params = simulator.sample_uniform(n, generator=gen)
    sim = call_simulator(simulator, params, generator=gen, where="the emulator plot")
    with torch.no_grad():
        u = emulator.to_unit(params)
        mean, _ = emulator.network(u)
        mean = emulator.scale.denormalise(mean)
    samples = emulator.emulate(params, generator=gen)
    rows = [[sim[i], mean[i], samples[i]] for i in range(n)]
    fig = _image_grid(plt, rows, ["simulator", "emulator mean", "emulator sample"], "emulator vs simulator")
    save_figure(fig, path)


def plot_generated_vs_true(
    path: Path,
    simulator: Any,
    best_params: np.ndarray,
    true_images: torch.Tensor,
    *,
    n: int = 4,
    seed: int = 0,
) -> None:
    """Top rows: the simulator run on best-match parameters; bottom rows: random true images."""
    plt = pyplot()
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, best_params.shape[0], (n,), generator=gen)
    made = call_simulator(
        simulator,
        torch.as_tensor(best_params[pick.numpy()], dtype=torch.float32),
        generator=gen,
        where="the best-match plot",
    )
    true = true_images[torch.randint(0, true_images.shape[0], (n,), generator=gen)]
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
    vmin = float(min(made.min(), true.min()))
    vmax = float(max(made.max(), true.max()))
    for j in range(n):
        for i, (img, label) in enumerate(((made[j], "generator -> simulator"), (true[j], "true"))):
            ax = axes[i][j]
            ax.imshow(img[0].numpy(), cmap="gray", vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("best-match simulations vs true images")
    save_figure(fig, path)


def plot_losses(path: Path, losses: dict[str, Any], *, title: str) -> None:
    """Loss curves from a :class:`gangal_core.training.LossHistory` state."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    its = np.asarray(losses["iterations"])
    for key, values in losses["values"].items():
        values = np.asarray(values)
        if len(values) > 20:  # a running mean shows the trend through GAN jitter
            k = max(1, len(values) // 50)
            values = np.convolve(values, np.ones(k) / k, mode="same")
        ax.plot(its, values, label=key, lw=1.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    save_figure(fig, path)
