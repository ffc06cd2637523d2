"""Pretraining: teach an emulator E to mimic the simulator T over the declared ranges (Fig. 3a).

Recipes:

- ``"likelihood"`` (default): E's per-pixel mean and standard deviation maximise the
  Gaussian likelihood of simulated images.  This is a distributional term: for a
  stochastic simulator E learns the noise as well as the mean image.  It reaches a usable
  emulator in minutes on a CPU (``benchmarks/RESULTS.md``).
- ``"paper"``: the paper's adversarial Siamese pretraining (eq. 1): the Siamese network S
  learns to tell simulated from emulated images of the same parameters (label smoothing,
  random label flips, SGD), and E learns to fool it (Adam).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from gangal_core.errors import ConfigError
from gangal_core.runtime.devices import autocast, check_precision, to_device
from gangal_core.runtime.distributed import current as current_shard
from gangal_core.simulation.simulator import Simulator, call_simulator
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
from .networks import ImageScale, ParameterEstimator, Siamese

__all__ = ["PRETRAIN_RECIPES", "pretrain"]


PRETRAIN_RECIPES = ("likelihood", "paper")


# --------------------------------------------------------------------------- pretraining
def pretrain(
    simulator: Simulator,
    *,
    iterations: int = 4000,
    batch_size: int = 256,
    recipe: str = "likelihood",
    emulator_arch: str = "conv",
    emulator_options: dict[str, Any] | None = None,
    critic_arch: str = "conv",
    critic_options: dict[str, Any] | None = None,
    learning_rate: float = 2e-3,
    label_flip: float = 0.05,
    estimate_parameters: bool = True,
    seed: int = 0,
    checkpoint: Path | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    progress: bool = True,
    registry: Any = None,
    device: str | torch.device = "cpu",
    precision: str = "float32",
) -> TrainedEmulator:
    """Pretrain an emulator of ``simulator`` over its declared parameter ranges (Fig. 3a).

    Parameters
    ----------
    simulator : Simulator
        The simulator T to mimic.
    iterations : int, optional
        Minibatches of training (default 4000).
    batch_size : int, optional
        Parameter sets per minibatch, drawn uniformly over the ranges (default 256).
    recipe : {"likelihood", "paper"}, optional
        ``"likelihood"`` (default) maximises the Gaussian likelihood of simulated images;
        ``"paper"`` is the adversarial Siamese pretraining of eq. 1.  See the module docs.
    emulator_arch, critic_arch : str, optional
        Registered architectures (``gangal plugins`` lists them); the critic is used by the
        ``"paper"`` recipe's Siamese network.
    emulator_options, critic_options : dict, optional
        Keyword options of the architectures.
    learning_rate : float, optional
        Peak Adam learning rate of the emulator (default 2e-3, one-cycle schedule) for the
        likelihood recipe; the paper recipe uses 2e-4.
    label_flip : float, optional
        Fraction of the Siamese labels flipped (paper recipe; default 0.05).
    estimate_parameters : bool, optional
        Also train a :class:`~gangal_core.networks.ParameterEstimator` (a ``critic_arch``
        critic) to read the parameters off simulated images (default True); calibration starts
        its discriminator from it.
    seed : int, optional
        Seeds the parameter draws, the simulator's noise and the network initialisation.
    checkpoint : Path, optional
        Checkpoint file; written every ``checkpoint_every`` iterations and on Ctrl-C.
    resume : bool, optional
        Continue from ``checkpoint``.
    progress : bool, optional
        Show a progress bar.
    registry : Registry, optional
        Where architectures are looked up (default: the installed plugins).
    device : str or torch.device, optional
        Where the networks train (default the CPU); simulation stays on the CPU.
    precision : {"float32", "bf16"}, optional
        ``"bf16"`` runs forward passes under bfloat16 autocast (mixed precision).

    Returns
    -------
    TrainedEmulator
    """
    if recipe not in PRETRAIN_RECIPES:
        raise ConfigError(f"--recipe: expected one of {', '.join(PRETRAIN_RECIPES)}, found {recipe!r}.")
    check_positive(iterations=iterations, batch_size=batch_size)
    shard = current_shard()
    block, rows, my_seeds = shard.blocks(batch_size)
    n_blocks = batch_size // block
    dev = torch.device(device)
    precision = check_precision(precision, dev)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    P = len(simulator.parameters)
    arch = network_class(registry, "emulator", emulator_arch)
    network = arch(tuple(simulator.image_shape), P, **(emulator_options or {})).to(dev)
    pilot = call_simulator(
        simulator,
        simulator.sample_uniform(4096, generator=gen),
        generator=gen,
        where="the pretraining pilot batch",
    )
    emu = TrainedEmulator(
        network=network,
        scale=ImageScale.fit(pilot),
        simulator=simulator.name,
        parameters=parameter_table(simulator),
        arch=emulator_arch,
    )

    def simulate_rows(u: torch.Tensor) -> torch.Tensor:
        """This process's rows, simulated with one seed per block drawn from the shared stream."""
        return simulate_blocks(simulator, emu, u, block_seeds(n_blocks, gen)[my_seeds], block)

    history = LossHistory()
    models: dict[str, torch.nn.Module] = {"emulator": network}
    estimator = None
    if estimate_parameters:
        critic_cls = network_class(registry, "critic", critic_arch)
        estimator = ParameterEstimator(critic_cls(tuple(simulator.image_shape), **(critic_options or {})), P)
        estimator.to(dev)
        models["estimator"] = estimator
        opt_est = torch.optim.Adam(estimator.parameters(), lr=1e-3)
        sched_est = torch.optim.lr_scheduler.OneCycleLR(opt_est, max_lr=2e-3, total_steps=iterations)

    def train_estimator(x: torch.Tensor, u: torch.Tensor, losses: dict[str, float]) -> None:
        if estimator is None:
            return
        with autocast(dev, precision):
            loss = F.mse_loss(estimator(x).float(), u)
        opt_est.zero_grad(set_to_none=True)
        loss.backward()
        shard.average_gradients(estimator.parameters())
        opt_est.step()
        sched_est.step()
        losses["estimator"] = loss.item()

    if recipe == "likelihood":
        opt_e = torch.optim.Adam(network.parameters(), lr=learning_rate)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt_e, max_lr=learning_rate, total_steps=iterations)
        optimisers: dict[str, Any] = {"emulator": opt_e, "schedule": sched}
        mse_scale = float(emu.scale.normalise(pilot).var()) or 1.0  # error relative to the image variance

        def step(i: int) -> dict[str, float]:
            u = (torch.rand(batch_size, P, generator=gen) * 2 - 1)[rows]
            x = to_device(simulate_rows(u), dev)
            u = to_device(u, dev)
            with autocast(dev, precision):
                mean, std = network(u)
            mean, std = mean.float(), std.float()
            # the mean regresses on the images (squared error: E[x | p]); the standard deviation
            # maximises the likelihood of the residuals around a fixed mean (Var[x | p]).  A joint
            # likelihood lets the network explain hard pixels away as noise and blurs the mean.
            mse = (x - mean).square().mean()
            nll = ((x - mean.detach()) / std).square().mul(0.5).add(std.log()).mean()
            opt_e.zero_grad(set_to_none=True)
            (mse / mse_scale + nll).backward()
            shard.average_gradients(network.parameters())
            opt_e.step()
            sched.step()
            losses = {"nll": nll.item(), "rmse": mse.item() ** 0.5}
            train_estimator(x, u, losses)
            history.add(i, losses)
            return losses

    else:
        critic = network_class(registry, "critic", critic_arch)(
            tuple(simulator.image_shape), **(critic_options or {})
        )
        siamese = Siamese(critic).to(dev)
        models["siamese"] = siamese
        opt_s = torch.optim.SGD(siamese.parameters(), lr=0.01, momentum=0.9)
        opt_e = torch.optim.Adam(network.parameters(), lr=2e-4, betas=(0.5, 0.999))
        optimisers = {"emulator": opt_e, "siamese": opt_s}

        def step(i: int) -> dict[str, float]:
            u = (torch.rand(batch_size, P, generator=gen) * 2 - 1)[rows]
            x1 = simulate_rows(u)
            x2 = simulate_rows(u)  # the same parameters again
            eps = torch.randn((batch_size, *simulator.image_shape), generator=gen)[rows]
            same = flip_labels(smoothed_labels(batch_size, 0.7, 1.2, gen), label_flip, gen)[rows]
            differ = flip_labels(smoothed_labels(batch_size, 0.0, 0.3, gen), label_flip, gen)[rows]
            u, x1, x2, eps, same, differ = (to_device(t, dev) for t in (u, x1, x2, eps, same, differ))
            with autocast(dev, precision):
                xe = network.sample(u, eps=eps)
                loss_s = F.binary_cross_entropy_with_logits(
                    siamese(x1, x2).float(), same
                ) + F.binary_cross_entropy_with_logits(siamese(x1, xe.detach()).float(), differ)
            opt_s.zero_grad(set_to_none=True)
            loss_s.backward()
            shard.average_gradients(siamese.parameters())
            opt_s.step()
            with autocast(dev, precision):
                logits = siamese(x1, xe).float()
            loss_e = F.binary_cross_entropy_with_logits(logits, torch.ones(u.shape[0], device=dev))
            opt_e.zero_grad(set_to_none=True)
            loss_e.backward()
            shard.average_gradients(network.parameters())
            opt_e.step()
            with torch.no_grad():
                rmse = (x1 - network(u)[0]).square().mean().sqrt().item()
            losses = {"siamese": loss_s.item(), "emulator": loss_e.item(), "rmse": rmse}
            train_estimator(x1, u, losses)
            history.add(i, losses)
            return losses

    if estimator is not None:
        optimisers.update({"estimator": opt_est, "estimator_schedule": sched_est})

    def load(state: dict[str, Any]) -> None:
        load_training_state(state, models, optimisers, gen, history)
        emu.scale = ImageScale(**state["extra"]["scale"])  # the run's own pixel scale, not a refit

    loop = TrainingLoop(
        step,
        state=lambda: training_state(models, optimisers, gen, history, extra={"scale": emu.scale.__dict__}),
        load_state=load,
        iterations=iterations,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        resume=resume,
        description=f"pretraining {simulator.name} emulator",
        progress=progress,
    )
    network.train()
    loop.run()
    for module in models.values():
        module.cpu().eval()  # a trained emulator lives on the CPU; calibrate moves it where it runs
        for p in module.parameters():
            p.requires_grad_(False)
    emu.estimator = estimator
    emu.info = {
        "recipe": recipe,
        "iterations": iterations,
        "batch_size": batch_size,
        "seed": seed,
        "seconds": round(loop.seconds, 2),
        "losses": history.state_dict(),
    }
    return emu
