"""Training and sampling the chained GAN: a DCGAN (stage I) and refiners (stage II).

Fussell & Moews (2019) train the two stages independently: the DCGAN on real images at
64x64, the StackGAN refiner on pairs of the same real images at 64x64 and 128x128
(section 3.4), both with alternating single steps of Adam on the discriminator and the
generator (section 3.1).  :class:`GANTrainer` is that loop, written once; the stages
differ only in what the generator is given and how its loss is formed
(:class:`DCGANTrainer`, :class:`RefinerTrainer`).  At sampling time the chain feeds the
DCGAN's images, mapped from ``[-1, 1]`` to ``[0, 1]`` by ``(x + 1) / 2``, to the refiner.

Each stage writes into its own folder: ``generator.safetensors`` (the trained weights),
``generator-ema.safetensors`` (their exponential moving average, what ``sample`` uses by
default), ``discriminator.safetensors``, a ``training.json``, a loss plot and sample grids
every few epochs.  The network configuration travels in each file's metadata, so
:func:`load_generator` rebuilds a network from its file alone.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gangal_core.data.batches import ImageBatches
from gangal_core.data.sources import DataSource
from gangal_core.errors import ConfigError
from gangal_core.io.atomic import atomic_open
from gangal_core.runtime.devices import autocast, to_device
from gangal_core.runtime.distributed import current as current_shard
from gangal_core.runtime.distributed import global_batch_norm
from gangal_core.training import LossHistory, Trainer

from .augment import R1_EVERY, DifferentiableAugment, r1_penalty
from .networks import (
    LATENT_SIZE,
    DCGANDiscriminator,
    DCGANGenerator,
    ExponentialMovingAverage,
    Refiner,
    channels_last,
)
from .selection import BEST, ModelSelection, finite, fixed_noise
from .stages import save_network

__all__ = ["CHECKPOINT", "GRID_SIZE", "DCGANTrainer", "DiscriminatorWonWarning", "GANTrainer",
           "RefinerTrainer", "StageResult"]  # fmt: skip


CHECKPOINT = "checkpoint.safetensors"
GRID_SIZE = 36  # images in each sample grid
#: Adam's learning rate for both networks (the paper's Table 1).
LEARNING_RATE = 2e-4
#: A discriminator whose loss averages below this over :data:`WON_EPOCHS` epochs in a row has
#: won: it tells every generated image from every real one, and the generator stops learning
#: (healthy training keeps it near 0.2-1.5; on 540 Galaxy Zoo images seed 0 fell to 0.001 by
#: iteration 400 and drew grey noise from then on, benchmarks/RESULTS.md, issue 18).
WON_LOSS = 0.01
WON_EPOCHS = 3


class DiscriminatorWonWarning(UserWarning):
    """The discriminator has won: the generator is not learning and its samples will not improve."""


@dataclass
class StageResult:
    """What a finished stage reports: where it is, how long it took, how fast it went."""

    folder: Path
    epochs: int
    seconds: float
    images_per_second: float
    losses: LossHistory


class GANTrainer(Trainer):
    """Alternating one-step discriminator / one-step generator training, by epochs.

    Subclasses say what the generator is given (:meth:`generator_input`), which images
    are real (:meth:`real_images`) and the generator's loss (:meth:`generator_loss`); the
    GAN step, sample grids and the moving average live here, and the loop, checkpoints and
    resume in :class:`~gangal_core.training.Trainer`.

    Parameters
    ----------
    generator, discriminator : nn.Module
        The networks; the discriminator returns logits.
    batches : ImageBatches
        The real images, by epoch.
    folder : Path
        Where the stage writes its files.
    epochs : int
        Passes over the data.
    seed : int, optional
        Seed of the noise, dropout and the data order.
    betas : tuple of float, optional
        Adam's betas (the paper's (0.5, 0.999)).
    ema_decay : float, optional
        Decay of the generator's moving average (0.999).
    augment : sequence of str, optional
        Augmentations of what the discriminator sees
        (:data:`~gangal_core.chain.augment.AUGMENTATIONS`; default none): the symmetries
        (flips, 90-degree turns) of real images only, translation and cutout of real and
        generated images alike.
    r1_gamma : float, optional
        Weight ``gamma`` of the R1 penalty on real images (default 0: off), evaluated every
        :data:`~gangal_core.chain.augment.R1_EVERY` steps.
    sample_every : int, optional
        Epochs between sample grids (and at the last epoch).
    selection : ModelSelection, optional
        Score the generator against validation images every few epochs and keep the best
        (:mod:`gangal_core.chain.selection`); default none.
    resume : bool, optional
        Continue from the checkpoint in ``folder``.
    progress : bool, optional
        Show a progress bar with the losses.
    device : str or torch.device, optional
        Where the networks train (default the CPU); images and noise are prepared on the CPU
        and moved (pinned memory for CUDA), so a seed draws the same noise on every device.
    precision : {"float32", "bf16"}, optional
        ``"bf16"``: forward passes under bfloat16 autocast (mixed precision).
    """

    stage = "gan"

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        batches: ImageBatches,
        *,
        folder: Path,
        epochs: int,
        seed: int = 0,
        betas: tuple[float, float] = (0.5, 0.999),
        ema_decay: float = 0.999,
        augment: Sequence[str] = (),
        r1_gamma: float = 0.0,
        sample_every: int = 1,
        selection: ModelSelection | None = None,
        resume: bool = False,
        progress: bool = True,
        device: str | torch.device = "cpu",
        precision: str = "float32",
    ) -> None:
        self.selection = selection
        super().__init__(
            iterations=int(epochs) * len(batches),
            checkpoint=Path(folder) / CHECKPOINT,
            checkpoint_every=len(batches),
            resume=resume,
            progress=progress,
            description=self.stage,
            device=device,
            precision=precision,
            history_every=max(1, len(batches) // 20),
        )
        # under torchrun, batch statistics over the global batch, as one process computes them
        generator = global_batch_norm(generator, self.device)
        discriminator = global_batch_norm(discriminator, self.device)
        # channels-last convolutions run 3-5x faster on CPU for the refiner (benchmarks/RESULTS.md)
        generator.to(self.device, memory_format=torch.channels_last)
        discriminator.to(self.device, memory_format=torch.channels_last)
        self.generator, self.discriminator, self.batches = generator, discriminator, batches
        self.folder = Path(folder)
        self.epochs, self.seed = int(epochs), int(seed)
        self.sample_every = max(1, int(sample_every))
        self.ema = ExponentialMovingAverage(generator, decay=ema_decay)
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=self.learning_rate(0), betas=betas)
        self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=self.learning_rate(0), betas=betas)
        self.noise = torch.Generator().manual_seed(self.seed)
        self.models.update(generator=generator, discriminator=discriminator, ema=self.ema)
        self.optimisers.update(generator=self.opt_g, discriminator=self.opt_d)
        self.generators["noise"] = self.noise
        self.augment = DifferentiableAugment(augment, generator=torch.Generator().manual_seed(self.seed + 2))
        if self.augment:  # a run without augmentation keeps its checkpoints as they were
            self.generators["augment"] = self.augment.generator
        if r1_gamma < 0:
            raise ConfigError(f"r1_gamma: expected a weight of 0 or more, found {r1_gamma}.")
        self.r1_gamma, self._r1 = float(r1_gamma), 0.0
        self._batches_iter: Any = None
        self._position = (-1, -1)  # (epoch, batch) the open iterator is at
        self._d_losses: list[float] = []  # this epoch's, for :meth:`watch_discriminator`
        self._won_epochs, self._warned = 0, False

    # ---- what a stage supplies ----------------------------------------------------------------
    def generator_input(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError

    def real_images(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The real images the discriminator sees, in ``[-1, 1]``."""
        return batch[-1] * 2.0 - 1.0

    def generator_loss(
        self, fake_logits: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The non-saturating GAN loss, -log D(G(z)) (section 2.1)."""
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits)), {}

    def real_labels(self, n: int) -> torch.Tensor:
        return torch.ones(n)

    def learning_rate(self, epoch: int) -> float:
        return LEARNING_RATE

    def on_epoch_start(self, epoch: int) -> None:
        """Hook for schedules that change by epoch (learning rate, dropout)."""

    def grid_input(self) -> torch.Tensor:
        """The fixed generator input of the sample grids."""
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """What the stage's files record about it (network config and options)."""
        return {}

    # ---- the GAN step --------------------------------------------------------------------------
    def step(self, iteration: int) -> dict[str, float]:
        epoch, b = divmod(iteration, len(self.batches))
        if self._position != (epoch, b):
            self._start_epoch(epoch, b)
        batch = next(self._batches_iter)
        self._position = (epoch, b + 1)
        dev, mixed = self.device, autocast(self.device, self.precision)
        real = channels_last(to_device(self.real_images(batch), dev))
        generator_input = to_device(self.generator_input(batch), dev)
        real_labels = to_device(self.real_labels(len(real)), dev)
        with mixed:
            fake = self.generator(channels_last(generator_input))
        loss_d = self.discriminator_loss(real, fake.detach(), real_labels, iteration)
        self.update("discriminator", loss_d)

        with autocast(dev, self.precision):
            fake_logits = self.discriminator(self.seen(fake)).float()
        loss_g, parts = self.generator_loss(fake_logits, fake.float(), real)
        self.update("generator", loss_g)
        self.ema.update()

        last = b == len(self.batches) - 1
        if last and self.shard.is_main and ((epoch + 1) % self.sample_every == 0 or epoch + 1 == self.epochs):
            self.save_grid(epoch + 1)
        if last and self.shard.is_main and self.selection and self.selection.due(epoch + 1, self.epochs):
            self.select(epoch + 1)
        r1 = {"R1": self._r1} if self.r1_gamma else {}
        losses = {"D": float(loss_d.detach()), "G": float(loss_g.detach()), **parts, **r1}
        self._d_losses.append(losses["D"])
        if last:
            self.watch_discriminator(epoch + 1)
        return losses

    def watch_discriminator(self, epoch: int) -> None:
        """Warn once when the discriminator has won (:data:`WON_LOSS`), naming what to do."""
        mean, self._d_losses = sum(self._d_losses) / max(1, len(self._d_losses)), []
        self._won_epochs = self._won_epochs + 1 if mean < WON_LOSS else 0
        if self._won_epochs < WON_EPOCHS or self._warned or not self.shard.is_main:
            return
        self._warned = True
        warnings.warn(
            f"{self.stage}: the discriminator has won (its loss averaged {mean:.2g} in epoch {epoch}, below "
            f"{WON_LOSS} for {WON_EPOCHS} epochs): the generator is not learning and its samples will not "
            f"improve. Stop (Ctrl-C) and train again with another --seed, or on more images "
            f"({len(self.batches.source):,} now).",
            DiscriminatorWonWarning,
            stacklevel=2,
        )

    # ---- model selection ---------------------------------------------------------------------
    def selection_images(self, n: int) -> torch.Tensor:
        """``n`` images of the moving-average generator in [0, 1], for :class:`ModelSelection`."""
        raise NotImplementedError

    @torch.no_grad()
    def select(self, epoch: int) -> None:
        """Score the moving-average generator now; keep its weights if they are the best so far."""
        self.folder.mkdir(parents=True, exist_ok=True)
        images = self.selection_images(self.selection.n_samples).float().cpu().numpy()
        row = self.selection.score(images, epoch)
        if row["best"]:
            meta = {**self.metadata(), "epochs": epoch, "seed": self.seed, "selected_by": finite(row)}
            save_network(self.folder / BEST, self.ema.model, role="generator-ema", **meta)
        self.selection.write_history(self.folder)

    def extra_state(self) -> dict[str, Any]:
        return {"selection": self.selection.state_dict()} if self.selection else {}

    def load_extra_state(self, extra: dict[str, Any]) -> None:
        if self.selection and "selection" in extra:
            self.selection.load_state_dict(extra["selection"])

    def _in_batches(self, inputs: torch.Tensor, size: int = 64) -> torch.Tensor:
        model = self.ema.model
        outputs = [model(channels_last(to_device(inputs[k : k + size], self.device))).float().cpu()
                   for k in range(0, len(inputs), size)]  # fmt: skip
        return (torch.cat(outputs) + 1) / 2

    def seen(self, images: torch.Tensor, *, real: bool = False) -> torch.Tensor:
        """What the discriminator sees of (``real`` or generated) ``images``: augmented if asked."""
        return channels_last(self.augment(images, real=real)) if self.augment else images

    def discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor, real_labels: torch.Tensor, iteration: int
    ) -> torch.Tensor:
        """The discriminator's cross-entropy on (augmented) real and generated images, plus lazy R1."""
        r1_now = self.r1_gamma > 0 and iteration % R1_EVERY == 0
        real_seen = self.seen(real, real=True)
        if r1_now:
            real_seen = real_seen.detach().requires_grad_(True)
        with autocast(self.device, self.precision):
            real_logits = self.discriminator(real_seen).float()
            fake_logits = self.discriminator(self.seen(fake)).float()
        loss = F.binary_cross_entropy_with_logits(
            real_logits, real_labels
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        if r1_now:
            penalty = r1_penalty(real_logits, real_seen)
            self._r1 = float(penalty.detach())
            loss = loss + self.r1_gamma / 2 * R1_EVERY * penalty
        return loss

    def _start_epoch(self, epoch: int, b: int) -> None:
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = self.learning_rate(epoch)
        self.on_epoch_start(epoch)
        self._batches_iter = self.batches.epoch(epoch, start=b)

    # ---- around the loop -----------------------------------------------------------------------
    def before_training(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(self.seed)  # dropout; restored from the checkpoint on resume
        self.generator.train()
        self.discriminator.train()

    def fit(self) -> None:
        try:
            super().fit()
        finally:
            self.batches.close()

    def train(self) -> StageResult:
        """Train for :attr:`epochs`, then write the stage's weights and plots."""
        return super().train()

    def result(self) -> StageResult:
        images = self.epochs * len(self.batches) * self.batches.batch_size
        result = StageResult(self.folder, self.epochs, self.seconds, images / max(self.seconds, 1e-9),
                             self.history)  # fmt: skip
        if self.shard.is_main:  # under torchrun only rank 0 writes
            self.write(result)
        return result

    def write(self, result: StageResult) -> None:
        meta = {**self.metadata(), "epochs": self.epochs, "seed": self.seed,
                "data": self.batches.source.describe()}  # fmt: skip
        if self.selection and self.selection.best:
            meta["selection"] = {"every": self.selection.every, "n_samples": self.selection.n_samples,
                                 "validation": self.selection.validation.describe(),
                                 "best": finite(self.selection.best)}  # fmt: skip
        if self.augment or self.r1_gamma:  # recorded when used; older files stay as they were
            meta["small_data"] = {"augment": list(self.augment.policy), "r1_gamma": self.r1_gamma}
        save_network(self.folder / "generator.safetensors", self.generator, role="generator", **meta)
        save_network(self.folder / "generator-ema.safetensors", self.ema.model, role="generator-ema", **meta)
        save_network(
            self.folder / "discriminator.safetensors", self.discriminator, role="discriminator", **meta
        )
        summary = {
            **meta,
            "seconds": round(result.seconds, 2),
            "images_per_second": round(result.images_per_second, 2),
            "batch_size": self.batches.batch_size,
            "batches_per_epoch": len(self.batches),
            "final_losses": {k: v[-1] for k, v in self.history.values.items() if v},
        }
        with atomic_open(self.folder / "training.json", "w") as fh:
            json.dump(summary, fh, indent=2)
        from gangal_core.calibration.report import plot_losses

        plot_losses(self.folder / "losses.png", self.history.state_dict(), title=f"{self.stage} training")

    @torch.no_grad()
    def save_grid(self, epoch: int) -> None:
        from gangal_core.io.plots import save_contact_sheet

        images = self.ema.model(channels_last(to_device(self.grid_input(), self.device))).float().cpu()
        (self.folder / "samples").mkdir(parents=True, exist_ok=True)
        save_contact_sheet(self.folder / "samples" / f"epoch-{epoch:04d}.png", (images + 1) / 2)


def _my_rows(batch_size: int) -> slice:
    """This process's rows of every global batch (all of them outside torchrun)."""
    shard = current_shard()
    if batch_size % shard.world_size:
        raise ConfigError(
            f"--batch-size {batch_size}: cannot be shared by {shard.world_size} processes; "
            f"use a multiple of {shard.world_size}."
        )
    per = batch_size // shard.world_size
    return slice(shard.rank * per, (shard.rank + 1) * per)


class DCGANTrainer(GANTrainer):
    """Stage I: the DCGAN on real images, with the paper's options.

    Parameters
    ----------
    source : DataSource
        Real images.
    resolution : {64, 128}, optional
        64 (section 2.2) or the 128x128 variant (section 3.3).
    width : int, optional
        Channel scale W (128 in the paper; 32 is CPU-sized).
    batch_size : int, optional
        32, as in the paper.
    label_smoothing : float, optional
        Real labels drawn from ``[1 - d, 1 + d]`` (section 3.2.4; the paper tried 0.3). 0 = off.
    spatial_dropout : {"none", "generator", "discriminator", "both"}, optional
        Spatial dropout between hidden layers (section 3.2.5).
    dropout_from_epoch : int, optional
        Switch on dropout (p = 0.5) before the discriminator's last layer from this epoch
        (counted from 1): the reading of section 3.3's text, "introducing a dropout layer
        at the 200th epoch".  ``None``: never.
    dropout_until_epoch : int, optional
        Dropout (p = 0.5) before the discriminator's last layer for epochs 1 to this one,
        then off: the reading of the paper's framed specification and Fig. 8's caption.
        At most one of the two readings may be given.
    lr_decay_from : int, optional
        Keep the paper's learning rate (2e-4) up to this epoch (counted from 1), then let it
        fall linearly, epoch by epoch, to zero after the last (the schedule of pix2pix and
        CycleGAN).  ``None`` (default): constant, as in the paper's Table 1.
    cache, workers
        Passed to :class:`~gangal_core.data.ImageBatches`.
    **options
        Passed to :class:`GANTrainer` (``folder``, ``epochs``, ``seed``...).
    """

    stage = "dcgan"

    def __init__(
        self,
        source: DataSource,
        *,
        resolution: int = 64,
        width: int = 128,
        batch_size: int = 32,
        label_smoothing: float = 0.0,
        spatial_dropout: str = "none",
        dropout_from_epoch: int | None = None,
        dropout_until_epoch: int | None = None,
        lr_decay_from: int | None = None,
        cache: str = "memory",
        workers: int | None = None,
        **options: Any,
    ) -> None:
        seed = int(options.get("seed", 0))
        if lr_decay_from is not None and lr_decay_from < 1:
            raise ConfigError(f"lr_decay_from: expected an epoch of 1 or more, found {lr_decay_from}.")
        self.lr_decay_from = lr_decay_from
        torch.manual_seed(seed)  # the networks' initial weights
        gen = DCGANGenerator(resolution=resolution, width=width, channels=source.channels,
                             spatial_dropout=spatial_dropout in ("generator", "both"))  # fmt: skip
        disc = DCGANDiscriminator(resolution=resolution, width=width, channels=source.channels,
                                  spatial_dropout=spatial_dropout in ("discriminator", "both"))  # fmt: skip
        batches = ImageBatches(source, resolutions=(resolution,), batch_size=batch_size, seed=seed,
                               cache=cache, workers=workers, rows=_my_rows(batch_size))  # fmt: skip
        self.label_smoothing = float(label_smoothing)
        if dropout_from_epoch is not None and dropout_until_epoch is not None:
            raise ConfigError(
                f"dropout_from_epoch={dropout_from_epoch} and dropout_until_epoch={dropout_until_epoch}: "
                "these are the paper's two readings of one schedule; give one of them."
            )
        self.dropout_from_epoch, self.dropout_until_epoch = dropout_from_epoch, dropout_until_epoch
        self.options = {"label_smoothing": self.label_smoothing, "spatial_dropout": spatial_dropout,
                        "dropout_from_epoch": dropout_from_epoch}  # fmt: skip
        if dropout_until_epoch is not None:  # recorded when used; older files stay as they were
            self.options["dropout_until_epoch"] = dropout_until_epoch
        if lr_decay_from is not None:
            self.options["lr_decay_from"] = lr_decay_from
        super().__init__(gen, disc, batches, **options)
        self._grid_z = torch.randn(GRID_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(seed + 1))

    # noise and labels are drawn for the whole global batch, then this process's rows are
    # kept: the random stream does not depend on the number of processes
    def generator_input(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        z = torch.randn(self.batches.batch_size, LATENT_SIZE, generator=self.noise)
        return z[self.batches.rows]

    def real_labels(self, n: int) -> torch.Tensor:
        if not self.label_smoothing:
            return torch.ones(n)
        d = self.label_smoothing
        labels = 1.0 - d + 2.0 * d * torch.rand(self.batches.batch_size, generator=self.noise)
        return labels[self.batches.rows]

    def learning_rate(self, epoch: int) -> float:
        """2e-4, falling linearly from epoch ``lr_decay_from`` to zero after the last epoch."""
        start = self.lr_decay_from
        if start is None or epoch + 1 < start:
            return LEARNING_RATE
        return LEARNING_RATE * (self.epochs - epoch) / max(1, self.epochs - start + 1)

    def on_epoch_start(self, epoch: int) -> None:
        on = (self.dropout_from_epoch is not None and epoch + 1 >= self.dropout_from_epoch) or (
            self.dropout_until_epoch is not None and epoch + 1 <= self.dropout_until_epoch
        )
        self.discriminator.final_dropout.p = 0.5 if on else 0.0

    def grid_input(self) -> torch.Tensor:
        return self._grid_z

    def selection_images(self, n: int) -> torch.Tensor:
        return self._in_batches(fixed_noise(n, LATENT_SIZE, self.seed))

    def metadata(self) -> dict[str, Any]:
        return {"stage": "dcgan", "generator": self.generator.config,
                "discriminator": self.discriminator.config, "options": self.options}  # fmt: skip


class RefinerTrainer(GANTrainer):
    """Stage II: a refiner on pairs of real images at its input and output resolutions.

    Parameters
    ----------
    refiner : Refiner
        The refiner (e.g. StackGAN Stage-II).
    source : DataSource
        Real images; each is downscaled to both resolutions and flipped identically.
    batch_size : int, optional
        Default: the refiner's own (64 for StackGAN).
    cache, workers
        Passed to :class:`~gangal_core.data.ImageBatches`.
    **options
        Passed to :class:`GANTrainer`.
    """

    def __init__(
        self,
        refiner: Refiner,
        source: DataSource,
        *,
        batch_size: int | None = None,
        cache: str = "memory",
        workers: int | None = None,
        **options: Any,
    ) -> None:
        seed = int(options.get("seed", 0))
        torch.manual_seed(seed)
        self.refiner = refiner
        self.stage = refiner.name
        batches = ImageBatches(
            source,
            resolutions=(refiner.input_resolution, refiner.output_resolution),
            batch_size=batch_size or refiner.batch_size,
            seed=seed,
            cache=cache,
            workers=workers,
            rows=_my_rows(batch_size or refiner.batch_size),
        )
        super().__init__(refiner.build_generator(), refiner.build_discriminator(), batches,
                         betas=refiner.betas, **options)  # fmt: skip
        self._grid_batch = next(batches.epoch(0))[0][:GRID_SIZE].clone()

    def generator_input(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return batch[0]

    def generator_loss(self, fake_logits, fake, real):
        return self.refiner.generator_loss(fake_logits, fake, real)

    def learning_rate(self, epoch: int) -> float:
        return self.refiner.learning_rate(epoch)

    def grid_input(self) -> torch.Tensor:
        return self._grid_batch

    def selection_images(self, n: int) -> torch.Tensor:
        """The validation images at the input resolution, refined (compared at the output's)."""
        inputs = self.selection.images(self.refiner.input_resolution)[:n]
        return self._in_batches(torch.from_numpy(inputs))

    def metadata(self) -> dict[str, Any]:
        return {"stage": self.refiner.name, "refiner": self.refiner.name, "config": self.refiner.config()}
