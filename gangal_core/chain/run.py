"""The work behind ``gangal train`` and ``gangal sample`` (the chained GAN).

Each function resolves the command's options (``--data-option KEY=VALUE`` strings) and calls
the Python API (:mod:`.api`), which does the work and writes the files; errors name the
command's flags (:data:`FLAGS`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console

from gangal_core.config import SampleConfig, TrainConfig
from gangal_core.data.sources import parse_data_options
from gangal_core.runtime.api import command_line_names

from .api import CHAIN_FORMAT, DEFAULT_TRAINING_IMAGES, STAGE_I, default_epochs, plan_chain, sample, train

__all__ = [
    "CHAIN_FORMAT",
    "DEFAULT_TRAINING_IMAGES",
    "FLAGS",
    "STAGE_I",
    "default_epochs",
    "plan_chain",
    "run_sample",
    "run_train",
]

#: How ``gangal train`` and ``gangal sample`` spell the Python API's arguments.
FLAGS = {
    "chain": "--chain",
    "data": "--data",
    "data_options": "--data-option",
    "epochs": "--epochs",
    "width": "--width",
    "batch_size": "--batch-size",
    "out": "--out",
    "model": "--model",
    "n": "-n",
    "resume": "--resume",
    "device": "--device",
    "precision": "--precision",
    "augment": "--augment",
    "r1_gamma": "--r1",
    "dropout_from_epoch": "--dropout-from-epoch",
    "dropout_until_epoch": "--dropout-until-epoch",
    "lr_decay_from": "--lr-decay-from",
    "eval_every": "--eval-every",
    "validation": "--validation",
    "eval_samples": "--eval-samples",
}


def run_train(cfg: TrainConfig, *, progress: bool = True, console: Console | None = None) -> dict[str, Any]:
    """``gangal train``: train each stage of the chain in turn into ``OUT/<stage>``."""
    with command_line_names(FLAGS):
        trained = train(
            cfg.data, out=cfg.out, chain=cfg.chain, data_options=parse_data_options(cfg.data_option),
            epochs=cfg.epochs, width=cfg.width, batch_size=cfg.batch_size, resolution=cfg.resolution,
            seed=cfg.seed, label_smoothing=cfg.label_smoothing, spatial_dropout=cfg.spatial_dropout,
            dropout_from_epoch=cfg.dropout_from_epoch, dropout_until_epoch=cfg.dropout_until_epoch,
            lr_decay_from=cfg.lr_decay_from,
            augment=cfg.augment, r1_gamma=cfg.r1, sample_every=cfg.sample_every, eval_every=cfg.eval_every,
            validation=cfg.validation, eval_samples=cfg.eval_samples,
            ema_decay=cfg.ema_decay, cache=cfg.cache, workers=cfg.workers, resume=cfg.resume,
            device=cfg.device, precision=cfg.precision, progress=bool(getattr(cfg, "progress", progress)),
            console=console or Console(),
        )  # fmt: skip
    return trained.stages


def run_sample(cfg: SampleConfig, *, console: Console | None = None) -> Path:
    """``gangal sample``: draw images through a trained chain and write them."""
    console = console or Console()
    start = time.perf_counter()
    with command_line_names(FLAGS):
        images = sample(
            cfg.model, cfg.n, chain=cfg.chain, out=cfg.out, seed=cfg.seed, weights=cfg.weights,
            batch_size=cfg.batch_size, fits=cfg.fits, png=cfg.png, sky=cfg.sky, data=cfg.data,
            data_options=parse_data_options(cfg.data_option), device=cfg.device, precision=cfg.precision,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    console.print(
        f"Sampled {cfg.n} images {tuple(images.shape[1:])} through {','.join(cfg.chain)} in {seconds:.2f} s: "
        f"{cfg.out}/samples.npy, contact_sheet.png"
        + (", png/" if cfg.png else "")
        + (", fits/" if cfg.fits else ""),
        highlight=False,
    )
    return cfg.out
