"""The model-assisted GAN: train the generator G of parameters against the true images.

Eq. 2 and Fig. 3b of Alonso-Monsalve & Whitehead (2020).  The discriminator D sees the true
images against

- ``"simulated"`` images T(G(z)) (default; the paper's standard configuration), or
- ``"emulated"`` images E(G(z)) (no simulator calls in the loop).

G always learns through the frozen emulator.  With simulated images the generator's
images are the simulator's own in the forward pass, and the gradient is that of the
emulator: ``x = mu_E(p) + sd_E(p) * eps_hat`` with ``eps_hat = (T(p) - mu_E(p)) / sd_E(p)``
held fixed, which equals T(p) exactly and whose derivative in ``p`` is the emulator's.
So D judges only real simulator output, and an imperfect emulator bends the path of
training but not where it ends.

The result is the best-match parameter *distribution*: samples from G, whose mean and
standard deviation are the paper's best-match mu and sigma.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from gangal_core.errors import ConfigError
from gangal_core.runtime.devices import autocast, check_precision, to_device
from gangal_core.runtime.distributed import current as current_shard
from gangal_core.simulation.simulator import Simulator
from gangal_core.training import LossHistory, TrainingLoop

from .batches import (
    block_seeds,
    check_positive,
    flip_labels,
    load_training_state,
    network_class,
    simulate_blocks,
    smoothed_labels,
    training_state,
)
from .emulator import TrainedEmulator, parameter_table
from .networks import Discriminator, ParameterGenerator
from .result import CalibrationResult, snapshot_mixture

__all__ = ["DISCRIMINATOR_INPUTS", "TRAINING_RECIPES", "calibrate", "simulated_with_emulator_gradient"]


TRAINING_RECIPES = ("default", "paper")
DISCRIMINATOR_INPUTS = ("simulated", "emulated")


def calibrate(
    simulator: Simulator,
    emulator: TrainedEmulator,
    true_images: torch.Tensor,
    *,
    iterations: int = 3000,
    batch_size: int = 256,
    discriminator_input: str = "simulated",
    recipe: str = "default",
    critic_arch: str = "conv",
    critic_options: dict[str, Any] | None = None,
    learning_rate: float = 5e-4,
    minibatch_std: str = "features",
    minibatch_group: int = 16,
    discriminator_learning_rate: float | None = 1e-4,
    head_learning_rate: float = 1e-3,
    log_spread: bool = True,
    noise_size: int = 8,
    average_from: float = 0.5,
    snapshots: int = 20,
    label_flip: float = 0.05,
    n_samples: int = 10000,
    seed: int = 0,
    checkpoint: Path | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    progress: bool = True,
    registry: Any = None,
    device: str | torch.device = "cpu",
    precision: str = "float32",
) -> CalibrationResult:
    """Learn the distribution of simulator parameters that best matches the true images (eq. 2).

    Parameters
    ----------
    simulator : Simulator
        The simulator T.
    emulator : TrainedEmulator
        A pretrained emulator of ``simulator``; frozen here.
    true_images : torch.Tensor
        ``(n, *image_shape)`` true images in the simulator's pixel units.
    iterations : int, optional
        Minibatches of adversarial training (default 3000).
    batch_size : int, optional
        Images per minibatch of each kind (default 256, as in the paper).
    discriminator_input : {"simulated", "emulated"}, optional
        What D compares with the true images: T(G(z)) (default) or E(G(z)).
    recipe : {"default", "paper"}, optional
        ``"default"``: Adam for D and G, one-sided label smoothing (true labels 0.9) and a
        minibatch-spread feature in D.  ``"paper"``: SGD for D, Adam for G, labels drawn in
        0.7-1.2 (true) and 0.0-0.3 (generated) with random flips, no minibatch feature.
    critic_arch, critic_options :
        The discriminator's registered architecture and its options.
    learning_rate : float, optional
        Adam learning rate of G (and of D in the default recipe); default 5e-4.
    minibatch_std : {"mean", "features", "none"}, optional
        The discriminator's batch-spread feature (default recipe), see :class:`Discriminator`.
    noise_size : int, optional
        Length of the generator's noise vector z (default 8).
    average_from : float, optional
        The best-match samples come from ``snapshots`` copies of the generator taken evenly
        from this fraction of the iterations to the end (default 0.5), in equal numbers: the
        mixture averages out the generator's last oscillations.  (An average of the weights
        instead shrinks the spread: ``benchmarks/RESULTS.md``.)
    snapshots : int, optional
        Number of generator snapshots (default 20).
    label_flip : float, optional
        Fraction of labels flipped (paper recipe).
    n_samples : int, optional
        Best-match samples to draw at the end (default 10000).
    seed : int, optional
        Seeds everything random.
    checkpoint, checkpoint_every, resume, progress, registry, device, precision :
        As in :func:`pretrain`.

    Returns
    -------
    CalibrationResult
    """
    if recipe not in TRAINING_RECIPES:
        raise ConfigError(f"--recipe: expected one of {', '.join(TRAINING_RECIPES)}, found {recipe!r}.")
    if discriminator_input not in DISCRIMINATOR_INPUTS:
        raise ConfigError(
            f"--discriminator-input: expected one of {', '.join(DISCRIMINATOR_INPUTS)}, "
            f"found {discriminator_input!r}."
        )
    check_positive(iterations=iterations, batch_size=batch_size, n_samples=n_samples)
    _check_compatible(simulator, emulator, true_images)
    shard = current_shard()
    block, rows, my_seeds = shard.blocks(batch_size)
    n_blocks = batch_size // block
    dev = torch.device(device)
    precision = check_precision(precision, dev)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    P = len(emulator.parameters)
    E = (emulator.network if dev.type == "cpu" else copy.deepcopy(emulator.network).to(dev)).eval()
    true = emulator.scale.normalise(true_images.float())
    if dev.type == "cuda":
        true = true.pin_memory()
    d_options = {
        "minibatch_std": minibatch_std if recipe == "default" else "none",
        "group_size": minibatch_group,
    }
    est = emulator.estimator
    if recipe == "default" and est is not None and est.critic.name == critic_arch and critic_options is None:
        D = Discriminator.from_estimator(est, **d_options)
    else:
        critic_cls = network_class(registry, "critic", critic_arch)
        D = Discriminator(critic_cls(tuple(emulator.image_shape), **(critic_options or {})), **d_options)
    D.to(dev)
    G = ParameterGenerator(P, noise_size=noise_size).to(dev)
    taken: list[dict[str, torch.Tensor]] = []  # generator snapshots for the best-match mixture
    first = min(int(average_from * iterations), iterations - 1)
    snapshot_at = {int(v) for v in np.linspace(first, iterations - 1, max(1, snapshots)).round()}
    opt_g = torch.optim.Adam(G.parameters(), lr=learning_rate, betas=(0.5, 0.999))
    if recipe == "default":
        body = [p for name, p in D.named_parameters() if not name.startswith("head.")]
        opt_d: torch.optim.Optimizer = torch.optim.Adam(
            [{"params": body}, {"params": D.head.parameters(), "lr": head_learning_rate}],
            lr=discriminator_learning_rate or learning_rate,
            betas=(0.5, 0.999),
        )
    else:
        opt_d = torch.optim.SGD(D.parameters(), lr=0.01, momentum=0.9)

    def simulate_rows(u: torch.Tensor) -> torch.Tensor:
        """This process's rows, simulated with one seed per block drawn from the shared stream."""
        return simulate_blocks(simulator, emulator, u, block_seeds(n_blocks, gen)[my_seeds], block)

    history = LossHistory()
    local = rows.stop - rows.start
    ones = torch.ones(local, device=dev)

    def labels(real: bool) -> torch.Tensor:
        if recipe == "default":
            return torch.full((local,), 0.9 if real else 0.0, device=dev)
        y = smoothed_labels(batch_size, 0.7, 1.2, gen) if real else smoothed_labels(batch_size, 0.0, 0.3, gen)
        return to_device(flip_labels(y, label_flip, gen)[rows], dev)

    # every draw is of the whole global batch (then this process's rows): the random streams
    # do not depend on the number of processes (gangal_core.distributed)
    def step(i: int) -> dict[str, float]:
        x_true = to_device(true[torch.randint(0, true.shape[0], (batch_size,), generator=gen)[rows]], dev)
        u = G(to_device(torch.randn(batch_size, G.noise_size, generator=gen)[rows], dev))
        with autocast(dev, precision):
            mean, std = E(u)
        mean, std = mean.float(), std.float()
        if discriminator_input == "simulated":
            simulated = to_device(simulate_rows(u), dev)
            x_gen = simulated_with_emulator_gradient(mean, std, simulated)
        else:
            eps = torch.randn((batch_size, *mean.shape[1:]), generator=gen)[rows]
            x_gen = mean + std * to_device(eps, dev)
        with autocast(dev, precision):
            logits_true, logits_gen = D(x_true).float(), D(x_gen.detach()).float()
        loss_d = F.binary_cross_entropy_with_logits(
            logits_true, labels(True)
        ) + F.binary_cross_entropy_with_logits(logits_gen, labels(False))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        shard.average_gradients(D.parameters())
        opt_d.step()
        with autocast(dev, precision):
            logits = D(x_gen).float()
        loss_g = F.binary_cross_entropy_with_logits(logits, ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        shard.average_gradients(G.parameters())
        opt_g.step()
        if i in snapshot_at:
            taken.append({k: v.detach().clone() for k, v in G.state_dict().items()})
        losses = {"D": loss_d.item(), "G": loss_g.item()}
        history.add(i, losses)
        return losses

    models = {"generator": G, "discriminator": D}
    optimisers = {"generator": opt_g, "discriminator": opt_d}

    def load(state: dict[str, Any]) -> None:
        load_training_state(state, models, optimisers, gen, history)
        taken[:] = state["extra"]["snapshots"]

    loop = TrainingLoop(
        step,
        state=lambda: training_state(models, optimisers, gen, history, extra={"snapshots": taken}),
        load_state=load,
        iterations=iterations,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        resume=resume,
        description=f"calibrating {simulator.name}",
        progress=progress,
    )
    loop.run()
    final = copy.deepcopy(G.state_dict())
    parts = []
    with torch.no_grad():
        for k, state in enumerate(taken or [final]):
            G.load_state_dict(state)
            count = n_samples // len(taken or [final]) + (k < n_samples % len(taken or [final]))
            draws = G.sample(count, generator=gen)
            parts.append(emulator.to_physical(draws.cpu()).numpy().astype(np.float64))
        G.load_state_dict(final)
    low = np.array([p["low"] for p in emulator.parameters], dtype=np.float64)
    high = np.array([p["high"] for p in emulator.parameters], dtype=np.float64)
    samples, mean_err, std_err = snapshot_mixture(
        [p for p in parts if len(p)], n_true=int(true_images.shape[0]), low=low, high=high
    )
    G.cpu()
    return CalibrationResult(
        samples=samples,
        names=emulator.parameter_names,
        generator=G,
        losses=history.state_dict(),
        seconds=loop.seconds,
        mean_err=mean_err,
        std_err=std_err,
    )


def simulated_with_emulator_gradient(
    mean: torch.Tensor, std: torch.Tensor, simulated: torch.Tensor
) -> torch.Tensor:
    """Simulated images in the forward pass, the emulator's derivative in the backward pass.

    With ``eps = (simulated - mean) / std`` (the noise the Gaussian emulator would have needed
    to produce exactly these images) held fixed, ``mean + std * eps`` equals ``simulated`` and
    differentiates as the emulator does at that noise.  ``eps`` is clipped to +-8 for the
    gradient only, so a pixel the emulator gets badly wrong cannot dominate it.

    Parameters
    ----------
    mean, std : torch.Tensor
        The emulator's output for the parameters, differentiable.
    simulated : torch.Tensor
        The simulator's images for the same parameters, normalised; not differentiable.
    """
    eps = ((simulated - mean) / std).detach().clamp(-8, 8)
    x = mean + std * eps
    return x + (simulated - x).detach()


def _check_compatible(simulator: Simulator, emulator: TrainedEmulator, true_images: torch.Tensor) -> None:
    if emulator.simulator != simulator.name:
        raise ConfigError(
            f"--emulator: it was pretrained for simulator {emulator.simulator!r}, not {simulator.name!r}."
        )
    ours = parameter_table(simulator)
    if [(p["name"], p["low"], p["high"]) for p in ours] != [
        (p["name"], p["low"], p["high"]) for p in emulator.parameters
    ]:
        raise ConfigError(
            f"--emulator: its parameters {emulator.parameters} differ from simulator {simulator.name!r}'s "
            f"{ours}; pretrain it again."
        )
    if tuple(emulator.image_shape) != tuple(simulator.image_shape):
        raise ConfigError(
            f"--emulator: it makes images of shape {emulator.image_shape}, the simulator "
            f"{tuple(simulator.image_shape)}."
        )
    if true_images.ndim != 4 or tuple(true_images.shape[1:]) != tuple(simulator.image_shape):
        raise ConfigError(
            f"--true-data: expected images of shape {tuple(simulator.image_shape)}, "
            f"found {tuple(true_images.shape[1:])}."
        )
    if not torch.isfinite(true_images).all():
        raise ConfigError("--true-data: the images contain NaN or infinite values.")
    if true_images.shape[0] < 2:
        raise ConfigError(f"--true-data: need at least 2 images, found {true_images.shape[0]}.")
