"""``gangal_core.train`` and ``gangal_core.sample``: what ``gangal train`` and ``gangal sample`` run.

A model folder holds one subfolder per stage (``dcgan``, ``stackgan``...) and a
``chain.json`` that lists the finished stages; :func:`sample` rebuilds every network from the
stage files alone.  Errors name the arguments; the commands show their flags instead
(:mod:`gangal_core.runtime.api`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from gangal_core.errors import GangalError
from gangal_core.io.atomic import atomic_open, atomic_write_json
from gangal_core.io.folders import prepare_output_folder
from gangal_core.runtime import distributed
from gangal_core.runtime.api import ArgumentError, arg, python_names
from gangal_core.runtime.devices import resolve_device

from .augment import parse_augment
from .sky import match_sky, read_sky, sky_statistics, write_training_sky

__all__ = ["DEFAULT_TRAINING_IMAGES", "TrainedChain", "default_epochs", "plan_chain", "sample", "train"]

CHAIN_FORMAT = "gangal-chain/1"
#: Images of the reference draw whose sky :func:`sample` compares with the training images',
#: and its seed: the correction depends on the model, not on ``n`` or ``seed``.
SKY_REFERENCE, SKY_REFERENCE_SEED = 256, 1_000_003
STAGE_I = "dcgan"
#: Training images a DCGAN's and a refiner's discriminator see when ``epochs`` is not given
#: (:func:`default_epochs`): 200 and 45 epochs of 1,080 Galaxy Zoo images, the recipe of
#: ``benchmarks/RESULTS.md`` (issue 18), about 50 minutes on 2 CPU cores at W = 32.  Counted in
#: images rather than epochs, a run takes about as long whatever the size of the set.
DEFAULT_TRAINING_IMAGES = {"dcgan": 216_000, "refiner": 48_600}


def default_epochs(kind: str, n_images: int) -> int:
    """Epochs of a ``"dcgan"`` or ``"refiner"`` stage on ``n_images`` when none are given.

    ``DEFAULT_TRAINING_IMAGES[kind] / n_images``, rounded, and at least 1: 200 epochs of the
    DCGAN on 1,080 images, 105 on 2,048, 2 on 100,000.
    """
    images = DEFAULT_TRAINING_IMAGES["dcgan" if kind == "dcgan" else "refiner"]
    return max(1, round(images / max(1, n_images)))


@dataclass
class TrainedChain:
    """A model folder and the stages trained into it.

    Attributes
    ----------
    folder : Path
        The model folder; ``folder / name`` holds each stage.
    stages : dict
        Per finished stage: its ``folder`` (relative), ``epochs``, ``images_per_second`` and ``seconds``.
    data : dict
        The data source's description.
    """

    folder: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``chain.json`` document, exactly as it is written."""
        return {"format": CHAIN_FORMAT, "stages": self.stages, "data": self.data}


def train(
    data: Any = "synthetic",
    *,
    out: str | Path,
    chain: Sequence[str] = ("dcgan", "stackgan"),
    data_options: dict[str, Any] | None = None,
    epochs: Sequence[int] = (),
    width: Sequence[int] = (32,),
    batch_size: Sequence[int] = (),
    resolution: int = 64,
    seed: int = 0,
    label_smoothing: float = 0.0,
    spatial_dropout: str = "none",
    dropout_from_epoch: int | None = None,
    dropout_until_epoch: int | None = None,
    lr_decay_from: int | None = None,
    augment: Sequence[str] = (),
    r1_gamma: float = 0.0,
    sample_every: int = 1,
    eval_every: int | None = None,
    validation: float = 0.1,
    eval_samples: int = 256,
    evaluator: str = "isophote",
    ema_decay: float = 0.999,
    cache: str = "memory",
    workers: int | None = None,
    resume: bool = False,
    device: str = "auto",
    precision: str = "float32",
    progress: bool = True,
    console: Console | None = None,
) -> TrainedChain:
    """Train the chained GAN, a DCGAN then refiners, stage after stage into ``out``, as ``gangal train`` does.

    Parameters
    ----------
    data : str or DataSource, optional
        Real images: ``SOURCE`` or ``SOURCE:PATH`` (``"synthetic"``, ``"galaxyzoo:/data/gz2"``)
        or an opened :class:`~gangal_core.DataSource`.
    out : path-like
        Model folder, one subfolder per stage (the stages write checkpoints and sample grids).
    chain : sequence of str, optional
        Stages: ``"dcgan"``, then registered refiners.
    data_options : dict, optional
        Options of the data source (``{"n": 4096}``).
    epochs, width, batch_size : sequence of int, optional
        One value for every stage, or one per stage.  Epochs default to 20 for the DCGAN
        and 12 for a refiner; batch sizes to 32 and the refiner's own.
    resolution, seed, label_smoothing, spatial_dropout, dropout_from_epoch, dropout_until_epoch,
    lr_decay_from, sample_every, ema_decay, cache, workers : optional
        As for :class:`~gangal_core.chain.DCGANTrainer` and
        :class:`~gangal_core.chain.RefinerTrainer`.
    augment : sequence of str, optional
        Augmentations before every stage's discriminator (:mod:`gangal_core.chain.augment`):
        ``"flip"`` and ``"rot90"`` turn the real images (symmetries of the sky),
        ``"translation"`` and ``"cutout"`` change real and generated images alike.  Default none.
    r1_gamma : float, optional
        Weight of the R1 gradient penalty on real images in every stage (default 0: off).
    eval_every : int, optional
        Model selection (:mod:`gangal_core.chain.selection`): every ``eval_every`` epochs
        (and at the last), measure ``eval_samples`` images of each stage with ``evaluator``'s
        fast path against a ``validation`` share of the data held out from training, write
        ``selection.csv`` and ``selection.png``, and keep the best epoch's generator
        (``generator-best.safetensors``, what :func:`sample` uses by default).  Default
        None: no validation split, every image trains.
    validation : float, optional
        The share of the images held out for model selection (default 0.1).
    eval_samples : int, optional
        Generated images per score (default 256).
    evaluator : str, optional
        The registered evaluator that scores (default ``"isophote"``).
    resume : bool, optional
        Continue (or extend) the training in ``out``; a folder holding files is refused otherwise.
    device, precision : str, optional
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; ``"float32"`` or ``"bf16"``.
    progress : bool, optional
        Show a progress bar (default True).
    console : rich.console.Console, optional
        Where a line per finished stage goes; None: nowhere.

    Returns
    -------
    TrainedChain
        :meth:`~TrainedChain.to_dict` is ``chain.json``.
    """
    console = console or Console(quiet=True)
    with python_names():
        dev = distributed.process_device(resolve_device(device, option=arg("device")))
        shard = distributed.setup(dev)
        if not shard.is_main:  # under torchrun only rank 0 writes and prints
            console = Console(quiet=True)
        chain = tuple(chain)
        _check_small_data(dropout_from_epoch, dropout_until_epoch, r1_gamma, lr_decay_from)
        augment = parse_augment(augment, option=arg("augment"))
        plan = plan_chain(chain, resolution=resolution)
        widths = _per_stage(width, chain, "width")
        batch_sizes = _per_stage(batch_size, chain, "batch_size")
        folder = prepare_output_folder(out, resume=resume, holds="files",
                                       resume_to="continue (or extend) that training")  # fmt: skip
        source = _data_source(data, data_options)
        selection = None
        if eval_every is not None:
            source, selection = _selection(source, eval_every, validation=validation, n_samples=eval_samples,
                                           evaluator=evaluator, seed=seed, workers=workers)  # fmt: skip
        epochs_ = [n or default_epochs(s["kind"], len(source))
                   for n, s in zip(_per_stage(epochs, chain, "epochs"), plan, strict=True)]  # fmt: skip
        if shard.is_main:
            _write_real_sheets(folder, source, plan)
            write_training_sky(folder, source, _sides(plan))
        result = TrainedChain(folder, _read_chain(folder), source.describe())
        common = {"seed": seed, "ema_decay": ema_decay, "sample_every": sample_every, "progress": progress,
                  "cache": cache, "workers": workers, "device": dev, "precision": precision,
                  "resume": resume, "augment": augment, "r1_gamma": r1_gamma,
                  "selection": selection}  # fmt: skip
        dcgan = {"resolution": resolution, "label_smoothing": label_smoothing,
                 "spatial_dropout": spatial_dropout, "dropout_from_epoch": dropout_from_epoch,
                 "dropout_until_epoch": dropout_until_epoch, "lr_decay_from": lr_decay_from}  # fmt: skip
        for stage, n_epochs, width_, batch in zip(plan, epochs_, widths, batch_sizes, strict=True):
            stage_folder = folder / stage["name"]
            if _finished(stage_folder, n_epochs):
                console.print(
                    f"{stage['name']}: already trained for {n_epochs} epochs in {stage_folder}; skipped."
                )
                continue
            trainer = _trainer(stage, source, stage_folder, n_epochs, width_, batch, common, dcgan)
            done = trainer.train()
            result.stages[stage["name"]] = {"folder": stage["name"], "epochs": n_epochs,
                                            "images_per_second": round(done.images_per_second, 2),
                                            "seconds": round(done.seconds, 1)}  # fmt: skip
            if shard.is_main:
                atomic_write_json(folder / "chain.json", result.to_dict())
            shard.barrier()
            console.print(
                f"{stage['name']}: {n_epochs} epochs in {done.seconds:.0f} s "
                f"({done.images_per_second:,.1f} images/s) -> {stage_folder}",
                highlight=False,
            )
    return result


def _selection(source: Any, every: int, *, validation: float, n_samples: int, evaluator: str, seed: int,
               workers: int | None) -> tuple[Any, Any]:  # fmt: skip
    """The training part of ``source``, and a maker of each stage's :class:`ModelSelection`."""
    from gangal_core.evaluation.api import _evaluator

    from .selection import ModelSelection, split_validation

    if every < 1:
        raise ArgumentError(f"{arg('eval_every')}: expected a number of epochs of 1 or more, found {every}.")
    if n_samples < 2:
        raise ArgumentError(f"{arg('eval_samples')}: expected 2 or more images, found {n_samples}.")
    train_part, held = split_validation(source, validation, seed=seed, option=arg("validation"))
    scorer = _evaluator(evaluator, "fast", workers)
    images: dict[int, np.ndarray] = {}  # the validation images, read once for every stage

    def make() -> ModelSelection:
        return ModelSelection(held, every=every, evaluator=scorer, n_samples=n_samples, seed=seed,
                              images=images)  # fmt: skip

    return train_part, make


def _check_small_data(dropout_from: int | None, dropout_until: int | None, r1_gamma: float,
                      lr_decay_from: int | None = None) -> None:  # fmt: skip
    if dropout_from is not None and dropout_until is not None:
        raise ArgumentError(
            f"{arg('dropout_from_epoch')} {dropout_from} and {arg('dropout_until_epoch')} {dropout_until}: "
            "these are the paper's two readings of one dropout schedule (docs/chained-gan.md); give one."
        )
    if not 0 <= r1_gamma < float("inf"):
        raise ArgumentError(f"{arg('r1_gamma')}: expected a weight of 0 or more, found {r1_gamma}.")
    if lr_decay_from is not None and lr_decay_from < 1:
        raise ArgumentError(f"{arg('lr_decay_from')}: expected an epoch of 1 or more, found {lr_decay_from}.")


def plan_chain(chain: Sequence[str], *, resolution: int = 64) -> list[dict[str, Any]]:
    """Check a chain of stages and work out each stage's input and output resolution.

    The DCGAN may only come first; every other stage must be a registered refiner, whose
    input resolution is the previous stage's output.
    """
    from gangal_core.plugins import get_registry

    registry = get_registry()
    plan, current = [], resolution
    for k, name in enumerate(chain):
        if name == STAGE_I:
            if k:
                raise ArgumentError(
                    f"{arg('chain')} {','.join(chain)}: dcgan generates from noise, so it must come first."
                )
            plan.append({"name": name, "kind": "dcgan", "resolution": resolution})
            continue
        if len(set(chain)) != len(chain):
            raise ArgumentError(
                f"{arg('chain')} {','.join(chain)}: a stage appears twice; each has one folder."
            )
        cls = registry.get("refiner", name).obj
        plan.append({"name": name, "kind": "refiner", "class": cls, "input_resolution": current})
        current *= cls.scale
    return plan


def _per_stage(values: Sequence[int], chain: tuple[str, ...], argument: str) -> list[int | None]:
    values = tuple(values)
    if not values:
        return [None] * len(chain)
    if len(values) == 1:
        return [values[0]] * len(chain)
    if len(values) != len(chain):
        raise ArgumentError(
            f"{arg(argument)} {','.join(map(str, values))}: give one value, or one per stage of "
            f"{arg('chain')} {','.join(chain)} ({len(chain)} values)."
        )
    return list(values)


def _data_source(data: Any, options: dict[str, Any] | None) -> Any:
    """The data source ``data`` names, or ``data`` itself when it is one."""
    from gangal_core.data.sources import DataSource, open_data_source

    if isinstance(data, DataSource):
        return data
    return open_data_source(data, **(options or {}))


def _trainer(stage: dict[str, Any], source: Any, folder: Path, epochs: int, width: int | None,
             batch_size: int | None, common: dict[str, Any], dcgan: dict[str, Any]) -> Any:  # fmt: skip
    """The trainer of one stage: the DCGAN's, or a refiner's."""
    from .trainers import DCGANTrainer, RefinerTrainer

    options = {**common, "folder": folder, "epochs": epochs}
    if common["selection"] is not None:  # each stage scores and keeps its own best
        options["selection"] = common["selection"]()
    if stage["kind"] == "dcgan":
        return DCGANTrainer(source, width=width, batch_size=batch_size or 32, **dcgan, **options)
    refiner = stage["class"](
        channels=source.channels, width=width, input_resolution=stage["input_resolution"]
    )
    return RefinerTrainer(refiner, source, batch_size=batch_size, **options)


def _read_chain(folder: Path) -> dict[str, Any]:
    path = folder / "chain.json"
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GangalError(f"{path}: not readable JSON ({exc}); move it away to start over.") from exc
    if not isinstance(doc, dict) or doc.get("format") != CHAIN_FORMAT:
        raise GangalError(f"{path}: not a gangal chain description ({CHAIN_FORMAT}).")
    return dict(doc.get("stages", {}))


def _finished(folder: Path, epochs: int) -> bool:
    path = folder / "training.json"
    if not path.exists():
        return False
    try:
        return int(json.loads(path.read_text(encoding="utf-8")).get("epochs", -1)) == epochs
    except (OSError, ValueError):
        return False


def _sides(plan: list[dict[str, Any]]) -> list[int]:
    """The image sides the stages of ``plan`` make."""
    return sorted({s.get("resolution") or s["input_resolution"] * s["class"].scale for s in plan})


def _write_real_sheets(folder: Path, source: Any, plan: list[dict[str, Any]]) -> None:
    """Contact sheets of real images at each stage's resolution, to set beside the samples."""
    from gangal_core.data.sources import downscale_nearest
    from gangal_core.io.plots import save_contact_sheet

    sides = _sides(plan)
    picks = np.linspace(0, len(source) - 1, min(36, len(source))).astype(int)
    raw = [np.asarray(source.read(int(i))) for i in picks]
    for side in sides:
        images = np.stack([downscale_nearest(im, side) for im in raw]).astype(np.float32)
        if raw[0].dtype == np.uint8:
            images /= 255.0
        save_contact_sheet(folder / f"real-{side}.png", images)


# ---- sampling ----------------------------------------------------------------------------------
def sample(
    model: str | Path,
    n: int = 64,
    *,
    chain: Sequence[str] = ("dcgan", "stackgan"),
    out: str | Path | None = None,
    seed: int = 0,
    weights: str = "auto",
    batch_size: int = 256,
    fits: bool = False,
    png: bool = True,
    sky: bool = True,
    data: Any = None,
    data_options: dict[str, Any] | None = None,
    device: str = "auto",
    precision: str = "float32",
) -> np.ndarray:
    """Draw images through a trained chain, as ``gangal sample`` does.

    Parameters
    ----------
    model : path-like
        Model folder written by :func:`train`.
    n : int, optional
        Number of images (default 64).
    chain : sequence of str, optional
        Stages to run: ``("dcgan",)`` alone gives 64x64 images.
    out : path-like, optional
        Folder for ``samples.npy``, ``contact_sheet.png``, ``sample.json`` and, with ``png``
        and ``fits``, one file per image.  None: write nothing.
    seed : int, optional
        Seed of the noise: the same seed gives the same images.
    weights : {"auto", "ema", "raw", "best"}, optional
        ``"auto"`` (default): the weights model selection kept where a stage has them
        (trained with ``eval_every``), else the moving average; ``"ema"`` the moving
        average of the last epoch, ``"raw"`` the last step's, ``"best"`` the selected.
    batch_size : int, optional
        Images per forward pass.
    fits, png : bool, optional
        Also write one FITS file (default False) and one PNG file (default True) per image.
    sky : bool, optional
        Give images generated from noise the training images' sky level and noise
        (:mod:`gangal_core.chain.sky`), where the model folder holds them (``sky.json``,
        written by :func:`train`).  Default True.
    data, data_options : optional
        Real images to refine (the first ``n``) when the chain starts with a refiner.
    device, precision : str, optional
        As for :func:`train`.

    Returns
    -------
    numpy.ndarray
        ``(n, C, H, W)`` float32 images in ``[0, 1]``.
    """
    from .stages import load_generator

    with python_names():
        chain = tuple(chain)
        if out is not None:
            prepare_output_folder(out, run_files=("samples.npy",), holds="samples.npy", create=False)
        model = Path(model)
        if not model.is_dir():
            raise ArgumentError(f"{arg('model')} {model}: no such folder; train one with gangal train --out.")
        _check_stages(model, chain)
        stages = [load_generator(model / name, weights=weights) for name in chain]
        used = [meta.pop("weights_used") for _, meta in stages]  # what "auto" chose, per stage
        if len(set(used)) > 1:
            weights = ",".join(f"{name}={w}" for name, w in zip(chain, used, strict=True))
        else:
            weights = used[0]
        _check_compatible(chain, stages, data)
        start = time.perf_counter()
        draw = {"batch_size": batch_size, "device": device, "precision": precision, "data": data,
                "data_options": data_options}  # fmt: skip
        images = _draw(stages, chain, n, seed=seed, **draw)
        correction = None
        real_sky = read_sky(model, images.shape[-1]) if sky and chain[0] == STAGE_I else None
        if real_sky is not None:
            reference = _draw(stages, chain, SKY_REFERENCE, seed=SKY_REFERENCE_SEED, **draw).numpy()
            generated = sky_statistics(reference)
            matched, correction = match_sky(images.numpy(), real_sky, generated=generated, seed=seed)
            images = torch.from_numpy(matched)
        seconds = time.perf_counter() - start
        if out is not None:
            out = Path(out)
            out.mkdir(parents=True, exist_ok=True)
            provenance = {"MODEL": str(model.resolve()), "CHAIN": ",".join(chain), "WEIGHTS": weights}
            _write_samples(out, images.numpy(), png=png, fits=fits, seed=seed, provenance=provenance)
            atomic_write_json(out / "sample.json", {
                "model": str(model.resolve()), "chain": list(chain), "n": n, "seed": seed, "weights": weights,
                "shape": list(images.shape), "seconds": round(seconds, 3), "values": "float32 in [0, 1]",
                "sky": correction,
            })  # fmt: skip
    return images.numpy()


def _check_stages(model: Path, chain: tuple[str, ...]) -> None:
    """Every stage of ``chain`` is a folder of ``model``; else name the option and what the model holds."""
    for name in chain:
        if not (model / name).is_dir():
            have = sorted({p.parent.name for p in model.glob("*/generator*.safetensors")})
            raise ArgumentError(
                f"{arg('chain')} {name!r}: the model {model} has no stage of that name; "
                f"it has {', '.join(have) if have else 'none yet (train one with gangal train)'}."
            )


def _draw(stages: list[tuple[Any, dict[str, Any]]], chain: tuple[str, ...], n: int, *, seed: int,
          batch_size: int, device: str, precision: str, data: Any,
          data_options: dict[str, Any] | None) -> torch.Tensor:  # fmt: skip
    """``n`` images through the chain: from noise, or real images refined."""
    from .stages import sample_chain

    if chain[0] != STAGE_I:
        return _refine_real(stages, data, data_options, n)
    # every stage's images are held at once: one image tells their size
    from gangal_core.runtime.limits import check_fits_in_memory

    from .networks import LATENT_SIZE

    _, per_stage = sample_chain(stages, 1, seed=seed)
    per_image = 4 * (LATENT_SIZE + sum(x[0].numel() for x in per_stage))
    check_fits_in_memory(arg("n"), n, per_image, "images through every stage")
    dev = resolve_device(device, option=arg("device"))
    images, _ = sample_chain(stages, n, seed=seed, batch_size=batch_size, device=dev, precision=precision)
    return images


def _check_compatible(chain: tuple[str, ...], stages: list[tuple[Any, dict[str, Any]]], data: Any) -> None:
    from gangal_core.plugins import get_registry

    if chain[0] != STAGE_I and data is None:
        raise ArgumentError(
            f"{arg('chain')} {','.join(chain)} starts with a refiner: give {arg('data')} SOURCE[:PATH], "
            "the real images to refine, or start the chain with dcgan."
        )
    if STAGE_I in chain[1:]:
        raise ArgumentError(
            f"{arg('chain')} {','.join(chain)}: dcgan generates from noise, so it must come first."
        )
    for (_, before), (_, after), name in zip(stages, stages[1:], chain[1:], strict=False):
        if before["stage"] == STAGE_I:
            side = before["generator"]["resolution"]
        else:
            side = (
                before["config"]["input_resolution"]
                * get_registry().get("refiner", before["refiner"]).obj.scale
            )
        want = after["config"]["input_resolution"]
        if side != want:
            raise ArgumentError(
                f"{arg('chain')} {','.join(chain)}: {name} takes {want}x{want} images, "
                f"but the stage before it makes {side}x{side}."
            )


def _refine_real(stages: list[tuple[Any, dict[str, Any]]], data: Any, data_options: dict[str, Any] | None,
                 n: int) -> torch.Tensor:  # fmt: skip
    """Refine the first ``n`` real images of ``data`` (the paper's Fig. 9)."""
    from gangal_core.data.sources import downscale_nearest

    source = _data_source(data, data_options)
    side = stages[0][1]["config"]["input_resolution"]
    n = min(n, len(source))
    raw = np.stack([downscale_nearest(np.asarray(source.read(i)), side) for i in range(n)])
    x = torch.from_numpy(raw.astype(np.float32) / (255.0 if raw.dtype == np.uint8 else 1.0))
    with torch.no_grad():
        for network, _ in stages:
            x = ((network(x) + 1.0) / 2.0).clamp_(0.0, 1.0)
    return x


def _write_samples(out: Path, images: np.ndarray, *, png: bool, fits: bool, seed: int,
                   provenance: dict[str, str]) -> None:  # fmt: skip
    from PIL import Image

    from gangal_core.io.plots import save_contact_sheet

    with atomic_open(out / "samples.npy", "wb") as fh:
        np.save(fh, images.astype(np.float32))
    save_contact_sheet(out / "contact_sheet.png", images[:64])
    if png:
        (out / "png").mkdir(exist_ok=True)
        pixels = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)
        for k, im in enumerate(pixels):
            picture = Image.fromarray(im[0] if im.shape[0] == 1 else im[:3].transpose(1, 2, 0))
            with atomic_open(out / "png" / f"{k:06d}.png", "wb") as fh:
                picture.save(fh, format="PNG")
    if fits:  # each file says what made it: gangal's version, the command, model, chain, seed, index
        from gangal_core.io.fits_headers import provenance_header, write_fits_image

        (out / "fits").mkdir(exist_ok=True)
        header = provenance_header(command="sample", seed=seed, extra=provenance)
        for k, im in enumerate(images):
            header["IMAGENUM"] = (k, "index of this image in samples.npy")
            write_fits_image(out / "fits" / f"{k:06d}.fits", im, header)
