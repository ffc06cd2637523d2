"""The work behind ``gangal evaluate``: measure two image sets and compare them.

``--real`` and ``--generated`` each name a file or folder the I/O layer reads (a
``gangal sample`` folder included) or a data source (``galaxyzoo:PATH``, ``synthetic``).
Both sets are brought to one resolution (a data source is downscaled by nearest
neighbour to the other set's size), reduced to one band, measured by the evaluator, and
compared; the closest-match analysis runs on the full-colour images.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gangal_core.config import EvaluateConfig
from gangal_core.errors import ConfigError, GangalError
from gangal_core.io.atomic import atomic_open, atomic_write_json
from gangal_core.runtime.progress import progress_bar

from .evaluator import Measurements

__all__ = ["load_image_set", "reduce_band", "run_evaluate"]


def load_image_set(
    spec: str,
    *,
    what: str,
    options: dict[str, Any] | None = None,
    resolution: int | None = None,
    n: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Images ``(N, C, H, W)`` float32 in image units, their labels and their provenance.

    Parameters
    ----------
    spec : str
        A path (file or folder) or ``SOURCE[:PATH]`` naming a registered data source.
    what : str
        The option it came from, for messages (``"--real"``).
    options : dict, optional
        Options for a data source.
    resolution : int, optional
        Resample a data source's images to this side (nearest neighbour).
    n : int, optional
        Keep a seeded random subset of this many images.
    """
    from gangal_core.data.sources import downscale_nearest, open_data_source, parse_data_spec
    from gangal_core.io.images import read_images
    from gangal_core.plugins import get_registry

    path = Path(spec).expanduser()
    name, _ = parse_data_spec(spec) if not path.exists() else ("", None)
    if not path.exists() and name in get_registry().things["data_source"]:
        source = open_data_source(spec, **(options or {}))
        picks = _subset(len(source), n, seed)
        side = resolution or source.resolution
        raw = [np.asarray(source.read(int(i))) for i in picks]
        scale = 255.0 if raw[0].dtype == np.uint8 else 1.0
        images = np.stack([downscale_nearest(im, side) for im in raw]).astype(np.float32) / scale
        return images, [source.label(int(i)) for i in picks], {**source.describe(), "spec": spec}
    if not path.exists():
        raise ConfigError(f"{what} {spec}: no such file or folder, and not a data source SOURCE[:PATH].")
    if options:
        raise ConfigError(f"{what}-option applies to a data source; {spec} is a path.")
    target = path / "samples.npy" if (path / "samples.npy").is_file() else path
    images = read_images(target, what=what)
    labels = _file_labels(target, len(images))
    picks = _subset(len(images), n, seed)
    return images[picks], [labels[i] for i in picks], {"path": str(target.resolve()), "n_images": len(images)}


def _subset(total: int, n: int | None, seed: int) -> np.ndarray:
    if n is None or n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


def _file_labels(path: Path, count: int) -> list[str]:
    if path.is_dir():
        from gangal_core.io.images import FOLDER_SUFFIXES

        names = sorted(p.name for p in path.iterdir() if p.name.lower().endswith(FOLDER_SUFFIXES))
        if len(names) == count:
            return names
    return [f"{path.name}[{i}]" for i in range(count)]


def reduce_band(images: np.ndarray, band: str) -> np.ndarray:
    """``(N, C, H, W)`` to ``(N, H, W)``: the sum of the channels (``"sum"``) or channel ``band``."""
    if band == "sum":
        return images.sum(axis=1)
    try:
        k = int(band)
    except ValueError:
        raise ConfigError(f"--band {band!r}: expected sum or a channel number.") from None
    if not 0 <= k < images.shape[1]:
        raise ConfigError(
            f"--band {band}: the images have {images.shape[1]} channel(s), 0 to {images.shape[1] - 1}."
        )
    return images[:, k]


def run_evaluate(
    cfg: EvaluateConfig, *, progress: bool = True, console: Console | None = None
) -> dict[str, Any]:
    """``gangal evaluate``: measurements, comparison, closest match, plots and ``evaluation.json``."""
    from gangal_core.data.sources import parse_data_options
    from gangal_core.plugins import get_registry

    from .compare import (
        closest_match,
        compare_measurements,
        plot_closest_match,
        plot_distances,
        plot_histograms,
    )

    console = console or Console()
    started = time.perf_counter()
    _prepare(cfg.out)
    thing = get_registry().get("evaluator", cfg.evaluator)
    try:
        evaluator = thing.obj(method=cfg.method, workers=cfg.workers)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--evaluator {cfg.evaluator} --method {cfg.method}: {exc}") from exc
    generated, gen_labels, gen_info = load_image_set(
        cfg.generated, what="--generated", options=parse_data_options(cfg.generated_option), n=cfg.n,
        seed=cfg.seed, resolution=cfg.resolution,
    )  # fmt: skip
    side = generated.shape[-1]
    real, real_labels, real_info = load_image_set(
        cfg.real, what="--real", options=parse_data_options(cfg.real_option), resolution=side, n=cfg.n,
        seed=cfg.seed + 1,
    )  # fmt: skip
    if real.shape[1:] != generated.shape[1:]:
        raise ConfigError(
            f"--real images are {tuple(real.shape[1:])} but --generated images are "
            f"{tuple(generated.shape[1:])}; "
            "give sets of one shape (a data source is resampled to the generated size automatically)."
        )
    measured = _measure(evaluator, {"real": real, "generated": generated}, cfg.band, progress)
    quantities, units = evaluator.quantities, evaluator.units
    doc = compare_measurements(measured["real"], measured["generated"], quantities=quantities)
    title = f"{cfg.evaluator} ({cfg.method}): real vs generated"
    plot_histograms(cfg.out / "histograms.png", measured["real"], measured["generated"],
                    quantities=quantities, units=units, title=title)  # fmt: skip
    for name, labels in (("real", real_labels), ("generated", gen_labels)):
        _write_measurements(cfg.out / f"measurements_{name}.csv", labels, measured[name], quantities)
    match = closest_match(generated, real, seed=cfg.seed)
    plot_closest_match(cfg.out / "closest_match.png", generated, real, match["generated_index"],
                       match["generated_distance"], n=cfg.n_closest)  # fmt: skip
    plot_distances(cfg.out / "closest_distances.png", match["generated_distance"], match["real_distance"])
    doc.update(
        evaluator=evaluator.describe(), method=cfg.method, band=cfg.band, resolution=side,
        real=real_info, generated=gen_info, closest_match=match["summary"],
        seconds=round(time.perf_counter() - started, 2),
    )  # fmt: skip
    atomic_write_json(cfg.out / "evaluation.json", doc)
    console.print(summary_table(doc, units))
    console.print(
        f"Wrote {cfg.out}/evaluation.json, measurements_real.csv, measurements_generated.csv, "
        f"histograms.png, closest_match.png and closest_distances.png in {doc['seconds']:.0f} s.",
        highlight=False,
    )
    return doc


def _prepare(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: exists and is not a folder.")
    if (folder / "evaluation.json").exists():
        raise ConfigError(f"--out {folder}: already holds evaluation.json; choose another --out.")
    folder.mkdir(parents=True, exist_ok=True)


def _measure(
    evaluator: Any, sets: dict[str, np.ndarray], band: str, progress: bool
) -> dict[str, Measurements]:
    results = {}
    with progress_bar(enabled=progress) as bar:
        for name, images in sets.items():
            task = bar.add_task(f"measuring {name}", total=len(images))
            result = evaluator.measure(
                reduce_band(images, band), progress=lambda k, t=task: bar.advance(t, k)
            )
            if not isinstance(result, Measurements) or len(result) != len(images):
                raise GangalError(
                    f"evaluator {evaluator.name!r} returned {type(result).__name__} "
                    f"for {len(images)} images; "
                    "expected Measurements with one entry per image."
                )
            missing = [q for q in evaluator.quantities if q not in result.values]
            if missing:
                raise GangalError(
                    f"evaluator {evaluator.name!r} declares the quantities {', '.join(evaluator.quantities)} "
                    f"but measured no {', '.join(missing)}."
                )
            results[name] = result
    return results


def _write_measurements(path: Path, labels: list[str], m: Measurements, quantities: tuple[str, ...]) -> None:
    import csv

    with atomic_open(path, "w") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", *quantities, "status"])
        for k, label in enumerate(labels):
            values = ["" if np.isnan(m.values[q][k]) else f"{m.values[q][k]:.6g}" for q in quantities]
            writer.writerow([label, *values, m.status[k]])


def summary_table(doc: dict[str, Any], units: dict[str, str]) -> Table:
    """The printed comparison: per quantity, KS, Wasserstein and the two medians."""
    table = Table(title="real vs generated")
    for column in ("quantity", "KS", "p", "Wasserstein", "W / std(real)", "median real", "median generated"):
        table.add_column(column, justify="right" if column != "quantity" else "left")

    def fmt(x: Any, spec: str = ".3g") -> str:
        return "-" if x is None else format(x, spec)

    for q, e in doc["quantities"].items():
        unit = f" ({units[q]})" if units.get(q) else ""
        table.add_row(f"{q}{unit}", fmt(e["ks_statistic"], ".3f"), fmt(e["ks_pvalue"], ".2g"),
                      fmt(e["wasserstein"]), fmt(e["wasserstein_over_real_std"], ".3f"),
                      fmt(e["real"]["median"]), fmt(e["generated"]["median"]))  # fmt: skip
    fr, cm = doc["failure_rate"], doc["closest_match"]
    table.caption = (
        f"fit failures: real {fr['real']:.1%}, generated {fr['generated']:.1%}.  "
        f"Closest match (L1, centre crop): median generated->real {cm['median_generated_to_real']:.4f}, "
        f"real->real {cm['median_real_to_real']:.4f} "
        f"(ratio {cm['ratio_of_medians']:.2f})"
    )
    return table
