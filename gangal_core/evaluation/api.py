"""``gangal_core.evaluate``: what ``gangal evaluate`` runs, callable from Python.

Two image sets are brought to one resolution (a data source is downscaled by nearest
neighbour to the other set's size), reduced to one band, measured by the evaluator, and
compared; the closest-match analysis runs on the full-colour images.  A set is an array
``(N, C, H, W)``, a file or folder the I/O layer reads (a ``gangal sample`` folder included)
or a data source (``galaxyzoo:PATH``, ``synthetic``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from gangal_core.errors import GangalError
from gangal_core.io.atomic import atomic_open, atomic_write_json
from gangal_core.io.folders import prepare_output_folder
from gangal_core.runtime.api import ArgumentError, arg, as_image_tensor, python_names
from gangal_core.runtime.progress import progress_bar

from .compare import EvaluationResult, closest_match, compare_measurements
from .evaluator import Measurements

__all__ = ["evaluate", "load_image_set", "reduce_band"]


def evaluate(
    real: Any,
    generated: Any,
    *,
    out: str | Path | None = None,
    evaluator: str = "isophote",
    method: str = "fast",
    n: int | None = 1000,
    band: str = "sum",
    seed: int = 0,
    workers: int | None = None,
    n_closest: int = 8,
    resolution: int = 128,
    real_options: dict[str, Any] | None = None,
    generated_options: dict[str, Any] | None = None,
    device: str = "cpu",
    plots: bool = True,
    progress: bool = True,
) -> EvaluationResult:
    """Measure two image sets and compare them, as ``gangal evaluate`` does.

    Parameters
    ----------
    real, generated : numpy.ndarray, torch.Tensor or str
        ``(N, C, H, W)`` images, a path (file or folder), or a data source ``SOURCE[:PATH]``.
    out : path-like, optional
        Folder for ``evaluation.json``, the measurement CSVs and the plots.  None: write nothing.
    evaluator, method : str, optional
        The registered evaluator and its method (isophote: ``"fast"`` or ``"photutils"``).
    n : int or None, optional
        Images per set: a seeded random subset (None: all).
    band : str, optional
        ``"sum"`` of the channels, or a channel number.
    seed : int, optional
        Seed of the subsets.
    workers : int, optional
        Processes for slow evaluators.
    n_closest : int, optional
        Pairs shown in ``closest_match.png``.
    resolution : int, optional
        Side a ``generated`` data source is resampled to.
    real_options, generated_options : dict, optional
        Options of a data source.
    device : str, optional
        Where the closest-match distances are computed (default ``"cpu"``).
    plots : bool, optional
        Write the plots into ``out`` (default True).
    progress : bool, optional
        Show a progress bar while measuring (default True).

    Returns
    -------
    EvaluationResult
        :meth:`~EvaluationResult.to_dict` is ``evaluation.json``.
    """
    started = time.perf_counter()
    with python_names():
        folder = None if out is None else prepare_output_folder(out, run_files=("evaluation.json",),
                                                                holds="evaluation.json")  # fmt: skip
        dev = _device(device)
        instance = _evaluator(evaluator, method, workers)
        sets, labels, info = _image_sets(real, generated, n=n, seed=seed, resolution=resolution,
                                         real_options=real_options,
                                         generated_options=generated_options)  # fmt: skip
        measured = _measure(instance, sets, band, progress)
        comparison = compare_measurements(
            measured["real"], measured["generated"], quantities=instance.quantities
        )
        match = closest_match(sets["generated"], sets["real"], seed=seed, device=dev)
        result = EvaluationResult(
            **comparison, evaluator=instance.describe(), method=method, band=band,
            resolution=int(sets["generated"].shape[-1]), real=info["real"], generated=info["generated"],
            closest_match=match["summary"], units=dict(instance.units), measurements=measured,
        )  # fmt: skip
        if folder is not None:
            title = f"{evaluator} ({method}): real vs generated"
            _write_files(folder, result, sets, labels, match, title=title, plots=plots,
                         n_closest=n_closest)  # fmt: skip
        result.seconds = time.perf_counter() - started
        if folder is not None:
            atomic_write_json(folder / "evaluation.json", result.to_dict())
    return result


def _device(name: str) -> Any:
    from gangal_core.runtime.devices import resolve_device

    return resolve_device(name, option=arg("device"))


def _evaluator(name: str, method: str, workers: int | None) -> Any:
    """The registered evaluator, made with its method."""
    from gangal_core.plugins import get_registry

    thing = get_registry().get("evaluator", name)
    try:
        return thing.obj(method=method, workers=workers)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"{arg('evaluator')} {name} {arg('method')} {method}: {exc}") from exc


def _image_sets(
    real: Any,
    generated: Any,
    *,
    n: int | None,
    seed: int,
    resolution: int,
    real_options: dict[str, Any] | None,
    generated_options: dict[str, Any] | None,
) -> tuple[dict[str, np.ndarray], dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Both sets at one resolution (the generated set's), their labels and provenance."""
    gen, gen_labels, gen_info = _one_set(
        generated, "generated", options=generated_options, n=n, seed=seed, resolution=resolution
    )
    real_images, real_labels, real_info = _one_set(
        real, "real", options=real_options, resolution=gen.shape[-1], n=n, seed=seed + 1
    )
    if real_images.shape[1:] != gen.shape[1:]:
        raise ArgumentError(
            f"{arg('real')} images are {tuple(real_images.shape[1:])} but {arg('generated')} images are "
            f"{tuple(gen.shape[1:])}; "
            "give sets of one shape (a data source is resampled to the generated size automatically)."
        )
    sets = {"real": real_images, "generated": gen}
    return sets, {"real": real_labels, "generated": gen_labels}, {"real": real_info, "generated": gen_info}


def _one_set(
    images: Any, argument: str, *, options: dict[str, Any] | None, resolution: int, n: int | None, seed: int
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """One set from an array (labelled by its index) or from what :func:`load_image_set` reads."""
    if isinstance(images, (str, Path)):
        what = arg(argument)
        return load_image_set(images, what=what, options=options, resolution=resolution, n=n, seed=seed)
    array = as_image_tensor(images, argument=argument).numpy()
    picks = _subset(len(array), n, seed)
    kind = f"{type(images).__module__}.{type(images).__name__}"
    return array[picks], [f"{argument}[{i}]" for i in picks], {"source": kind, "n_images": len(array)}


def load_image_set(
    spec: str | Path,
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
    spec : str or path-like
        A path (file or folder) or ``SOURCE[:PATH]`` naming a registered data source.
    what : str
        The option it came from, for messages (``"--real"``, or :func:`arg` ``("real")``).
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

    spec = str(spec)
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
        raise ArgumentError(f"{what} {spec}: no such file or folder, and not a data source SOURCE[:PATH].")
    if options:
        raise ArgumentError(f"{what}-option applies to a data source; {spec} is a path.")
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
        raise ArgumentError(f"{arg('band')} {band!r}: expected sum or a channel number.") from None
    if not 0 <= k < images.shape[1]:
        raise ArgumentError(
            f"{arg('band')} {band}: the images have {images.shape[1]} channel(s), 0 to {images.shape[1] - 1}."
        )
    return images[:, k]


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


def _write_files(folder: Path, result: EvaluationResult, sets: dict[str, np.ndarray],
                 labels: dict[str, list[str]], match: dict[str, Any], *, title: str, plots: bool,
                 n_closest: int) -> None:  # fmt: skip
    """The histograms, the measurement CSVs and the closest-match plots."""
    from .compare import plot_closest_match, plot_distances, plot_histograms

    real, generated = result.measurements["real"], result.measurements["generated"]
    quantities = tuple(result.quantities)
    if plots:
        plot_histograms(folder / "histograms.png", real, generated, quantities=quantities, units=result.units,
                        title=title)  # fmt: skip
    for name in ("real", "generated"):
        _write_measurements(folder / f"measurements_{name}.csv", labels[name], result.measurements[name],
                            quantities)  # fmt: skip
    if plots:
        plot_closest_match(folder / "closest_match.png", sets["generated"], sets["real"],
                           match["generated_index"], match["generated_distance"], n=n_closest)  # fmt: skip
        plot_distances(folder / "closest_distances.png", match["generated_distance"], match["real_distance"])


def _write_measurements(path: Path, labels: list[str], m: Measurements, quantities: tuple[str, ...]) -> None:
    import csv

    with atomic_open(path, "w") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", *quantities, "status"])
        for k, label in enumerate(labels):
            values = ["" if np.isnan(m.values[q][k]) else f"{m.values[q][k]:.6g}" for q in quantities]
            writer.writerow([label, *values, m.status[k]])
