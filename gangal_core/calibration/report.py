"""What a calibration leaves behind: the table, ``samples.csv`` and the plots.

Plots (PNG, matplotlib's Agg backend, no display needed):

- ``parameters.png``: best-match vs true parameter histograms;
- ``emulator.png``: emulator vs simulator images for the same parameters (the paper's Figs. 4/6);
- ``generated.png``: generator -> simulator images beside true images (Figs. 5/7);
- ``losses.png``: loss curves.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table

from gangal_core.io.atomic import atomic_open
from gangal_core.io.plots import pyplot, save_figure
from gangal_core.simulation.simulator import call_simulator

__all__ = [
    "calibration_table",
    "plot_emulator_vs_simulator",
    "plot_generated_vs_true",
    "plot_losses",
    "plot_parameters",
    "write_samples_csv",
]


def write_samples_csv(path: Path, names: tuple[str, ...], samples: np.ndarray) -> None:
    """One row per sample, header = parameter names (atomic)."""
    with atomic_open(path, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([f"{v:.6g}" for v in row] for row in samples)


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
    for name in names:
        table.add_column(name, justify="right")
    p = doc["parameters"]
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
) -> None:
    """Best-match parameter histograms, with the true ones (or the true Gaussian) behind."""
    plt = pyplot()
    k = len(names)
    fig, axes = plt.subplots(1, k, figsize=(3.0 * k, 2.8), squeeze=False)
    for j, (ax, name) in enumerate(zip(axes[0], names, strict=True)):
        lo, hi = ranges[j] if ranges else (samples[:, j].min(), samples[:, j].max())
        bins = np.linspace(lo, hi, 60)
        if true_params is not None:
            ax.hist(true_params[:, j], bins=bins, density=True, alpha=0.45, color="0.4", label="true")
        elif truth is not None:
            mu, sd = truth[name]
            xs = np.linspace(lo, hi, 300)
            ax.plot(xs, np.exp(-0.5 * ((xs - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), "k-", label="true")
        ax.hist(
            samples[:, j], bins=bins, density=True, histtype="step", lw=1.6, color="C3", label="best match"
        )
        ax.set_xlabel(name)
        ax.set_yticks([])
    axes[0][0].legend(fontsize=8, frameon=False)
    fig.suptitle("best-match vs true parameter distributions")
    save_figure(fig, path)


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
