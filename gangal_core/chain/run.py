"""The work behind ``gangal train`` and ``gangal sample`` (the chained GAN).

A model folder holds one subfolder per stage (``dcgan``, ``stackgan``...) and a
``chain.json`` that lists the finished stages; ``sample`` rebuilds every network from the
stage files alone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from gangal_core.config import SampleConfig, TrainConfig
from gangal_core.data.sources import parse_data_options
from gangal_core.errors import ConfigError, GangalError
from gangal_core.io.atomic import atomic_open, atomic_write_json
from gangal_core.runtime import distributed
from gangal_core.runtime.devices import resolve_device

__all__ = ["plan_chain", "run_sample", "run_train"]

CHAIN_FORMAT = "gangal-chain/1"
STAGE_I = "dcgan"
#: Epochs of a DCGAN and of a refiner when --epochs is not given: about 16 minutes on 2 CPU
#: cores for the default 2,048 synthetic galaxies at W = 32.
DEFAULT_EPOCHS = (20, 12)


def _per_stage(values: tuple[int, ...], chain: tuple[str, ...], option: str) -> list[int | None]:
    if not values:
        return [None] * len(chain)
    if len(values) == 1:
        return [values[0]] * len(chain)
    if len(values) != len(chain):
        raise ConfigError(
            f"{option} {','.join(map(str, values))}: give one value, or one per stage of --chain "
            f"{','.join(chain)} ({len(chain)} values)."
        )
    return list(values)


def plan_chain(chain: tuple[str, ...], *, resolution: int = 64) -> list[dict[str, Any]]:
    """Check a ``--chain`` and work out each stage's input and output resolution.

    The DCGAN may only come first; every other stage must be a registered refiner, whose
    input resolution is the previous stage's output.
    """
    from gangal_core.plugins import get_registry

    registry = get_registry()
    plan, current = [], resolution
    for k, name in enumerate(chain):
        if name == STAGE_I:
            if k:
                raise ConfigError(
                    f"--chain {','.join(chain)}: dcgan generates from noise, so it must come first."
                )
            plan.append({"name": name, "kind": "dcgan", "resolution": resolution})
            continue
        if len(set(chain)) != len(chain):
            raise ConfigError(f"--chain {','.join(chain)}: a stage appears twice; each has one folder.")
        cls = registry.get("refiner", name).obj
        plan.append({"name": name, "kind": "refiner", "class": cls, "input_resolution": current})
        current *= cls.scale
    return plan


def run_train(cfg: TrainConfig, *, progress: bool = True, console: Console | None = None) -> dict[str, Any]:
    """``gangal train``: train each stage of the chain in turn into ``OUT/<stage>``."""
    from gangal_core.data.sources import open_data_source

    from .trainers import DCGANTrainer, RefinerTrainer

    console = console or Console()
    device = distributed.process_device(resolve_device(cfg.device))
    shard = distributed.setup(device)
    if not shard.is_main:  # under torchrun only rank 0 writes and prints
        console = Console(quiet=True)
    plan = plan_chain(cfg.chain, resolution=cfg.resolution)
    epochs = [n or (DEFAULT_EPOCHS[0] if s["kind"] == "dcgan" else DEFAULT_EPOCHS[1])
              for n, s in zip(_per_stage(cfg.epochs, cfg.chain, "--epochs"), plan, strict=True)]  # fmt: skip
    widths = _per_stage(cfg.width, cfg.chain, "--width")
    batch_sizes = _per_stage(cfg.batch_size, cfg.chain, "--batch-size")
    _prepare_model_folder(cfg.out, resume=cfg.resume)
    source = open_data_source(cfg.data, **parse_data_options(cfg.data_option))
    if shard.is_main:
        _write_real_sheets(cfg.out, source, plan)
    done = _read_chain(cfg.out)
    common = {"seed": cfg.seed, "ema_decay": cfg.ema_decay, "sample_every": cfg.sample_every,
              "progress": progress, "cache": cfg.cache, "workers": cfg.workers,
              "device": device, "precision": cfg.precision}  # fmt: skip
    for stage, n_epochs, width, batch_size in zip(plan, epochs, widths, batch_sizes, strict=True):
        folder = cfg.out / stage["name"]
        if _finished(folder, n_epochs):
            console.print(f"{stage['name']}: already trained for {n_epochs} epochs in {folder}; skipped.")
            continue
        options = {**common, "folder": folder, "epochs": n_epochs, "resume": cfg.resume}
        if stage["kind"] == "dcgan":
            trainer = DCGANTrainer(
                source,
                resolution=cfg.resolution,
                width=width,
                batch_size=batch_size or 32,
                label_smoothing=cfg.label_smoothing,
                spatial_dropout=cfg.spatial_dropout,
                dropout_from_epoch=cfg.dropout_from_epoch,
                **options,
            )
        else:
            refiner = stage["class"](channels=source.channels, width=width,
                                     input_resolution=stage["input_resolution"])  # fmt: skip
            trainer = RefinerTrainer(refiner, source, batch_size=batch_size, **options)
        result = trainer.train()
        done[stage["name"]] = {"folder": stage["name"], "epochs": n_epochs,
                               "images_per_second": round(result.images_per_second, 2),
                               "seconds": round(result.seconds, 1)}  # fmt: skip
        if shard.is_main:
            atomic_write_json(cfg.out / "chain.json", {"format": CHAIN_FORMAT, "stages": done,
                                                       "data": source.describe()})  # fmt: skip
        shard.barrier()
        console.print(
            f"{stage['name']}: {n_epochs} epochs in {result.seconds:.0f} s "
            f"({result.images_per_second:,.1f} images/s) -> {folder}",
            highlight=False,
        )
    return done


def _prepare_model_folder(folder: Path, *, resume: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: exists and is not a folder.")
    if not resume and folder.exists() and any(folder.iterdir()):
        raise ConfigError(
            f"--out {folder}: already holds files. Pass --resume to continue (or extend) that training, "
            "or choose another --out."
        )
    folder.mkdir(parents=True, exist_ok=True)


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


def _write_real_sheets(folder: Path, source: Any, plan: list[dict[str, Any]]) -> None:
    """Contact sheets of real images at each stage's resolution, to set beside the samples."""
    from gangal_core.data.sources import downscale_nearest
    from gangal_core.io.plots import save_contact_sheet

    sides = {s.get("resolution") or s["input_resolution"] * s["class"].scale for s in plan}
    picks = np.linspace(0, len(source) - 1, min(36, len(source))).astype(int)
    raw = [np.asarray(source.read(int(i))) for i in picks]
    for side in sorted(sides):
        images = np.stack([downscale_nearest(im, side) for im in raw]).astype(np.float32)
        if raw[0].dtype == np.uint8:
            images /= 255.0
        save_contact_sheet(folder / f"real-{side}.png", images)


def run_sample(cfg: SampleConfig, *, console: Console | None = None) -> Path:
    """``gangal sample``: draw images through a trained chain and write them."""
    from .stages import load_generator, sample_chain

    console = console or Console()
    if cfg.out.exists() and (cfg.out / "samples.npy").exists():
        raise ConfigError(f"--out {cfg.out}: already holds samples.npy; choose another --out.")
    if not cfg.model.is_dir():
        raise ConfigError(f"--model {cfg.model}: no such folder; train one with gangal train --out.")
    stages = [load_generator(cfg.model / name, weights=cfg.weights) for name in cfg.chain]
    _check_compatible(cfg, stages)
    if cfg.chain[0] == STAGE_I:  # every stage's images are held at once: one image tells their size
        from gangal_core.runtime.limits import check_fits_in_memory

        from .networks import LATENT_SIZE

        _, per_stage = sample_chain(stages, 1, seed=cfg.seed)
        per_image = 4 * (LATENT_SIZE + sum(x[0].numel() for x in per_stage))
        check_fits_in_memory("-n", cfg.n, per_image, "images through every stage")
    start = time.perf_counter()
    if cfg.chain[0] == STAGE_I:
        images, _ = sample_chain(stages, cfg.n, seed=cfg.seed, batch_size=cfg.batch_size,
                                 device=resolve_device(cfg.device), precision=cfg.precision)  # fmt: skip
    else:
        images = _refine_real(cfg, stages)
    seconds = time.perf_counter() - start
    cfg.out.mkdir(parents=True, exist_ok=True)
    _write_samples(cfg, images.numpy())
    atomic_write_json(cfg.out / "sample.json", {
        "model": str(cfg.model.resolve()), "chain": list(cfg.chain), "n": cfg.n, "seed": cfg.seed,
        "weights": cfg.weights, "shape": list(images.shape), "seconds": round(seconds, 3),
        "values": "float32 in [0, 1]",
    })  # fmt: skip
    console.print(
        f"Sampled {cfg.n} images {tuple(images.shape[1:])} through {','.join(cfg.chain)} in {seconds:.2f} s: "
        f"{cfg.out}/samples.npy, contact_sheet.png"
        + (", png/" if cfg.png else "")
        + (", fits/" if cfg.fits else ""),
        highlight=False,
    )
    return cfg.out


def _check_compatible(cfg: SampleConfig, stages: list[tuple[Any, dict[str, Any]]]) -> None:
    from gangal_core.plugins import get_registry

    if cfg.chain[0] != STAGE_I and cfg.data is None:
        raise ConfigError(
            f"--chain {','.join(cfg.chain)} starts with a refiner: give --data SOURCE[:PATH], the real "
            "images to refine, or start the chain with dcgan."
        )
    if STAGE_I in cfg.chain[1:]:
        raise ConfigError(
            f"--chain {','.join(cfg.chain)}: dcgan generates from noise, so it must come first."
        )
    for (_, before), (_, after), name in zip(stages, stages[1:], cfg.chain[1:], strict=False):
        if before["stage"] == STAGE_I:
            side = before["generator"]["resolution"]
        else:
            side = (
                before["config"]["input_resolution"]
                * get_registry().get("refiner", before["refiner"]).obj.scale
            )
        want = after["config"]["input_resolution"]
        if side != want:
            raise ConfigError(
                f"--chain {','.join(cfg.chain)}: {name} takes {want}x{want} images, "
                f"but the stage before it makes {side}x{side}."
            )


def _refine_real(cfg: SampleConfig, stages: list[tuple[Any, dict[str, Any]]]) -> torch.Tensor:
    """Refine the first ``n`` real images of ``--data`` (the paper's Fig. 9)."""
    from gangal_core.data.sources import downscale_nearest, open_data_source

    source = open_data_source(cfg.data, **parse_data_options(cfg.data_option))
    side = stages[0][1]["config"]["input_resolution"]
    n = min(cfg.n, len(source))
    raw = np.stack([downscale_nearest(np.asarray(source.read(i)), side) for i in range(n)])
    x = torch.from_numpy(raw.astype(np.float32) / (255.0 if raw.dtype == np.uint8 else 1.0))
    with torch.no_grad():
        for network, _ in stages:
            x = ((network(x) + 1.0) / 2.0).clamp_(0.0, 1.0)
    return x


def _write_samples(cfg: SampleConfig, images: np.ndarray) -> None:
    from PIL import Image

    from gangal_core.io.plots import save_contact_sheet

    with atomic_open(cfg.out / "samples.npy", "wb") as fh:
        np.save(fh, images.astype(np.float32))
    save_contact_sheet(cfg.out / "contact_sheet.png", images[:64])
    if cfg.png:
        (cfg.out / "png").mkdir(exist_ok=True)
        pixels = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)
        for k, im in enumerate(pixels):
            picture = Image.fromarray(im[0] if im.shape[0] == 1 else im[:3].transpose(1, 2, 0))
            with atomic_open(cfg.out / "png" / f"{k:06d}.png", "wb") as fh:
                picture.save(fh, format="PNG")
    if cfg.fits:
        from astropy.io import fits

        (cfg.out / "fits").mkdir(exist_ok=True)
        for k, im in enumerate(images):
            with atomic_open(cfg.out / "fits" / f"{k:06d}.fits", "wb") as fh:
                fits.PrimaryHDU(im).writeto(fh)
