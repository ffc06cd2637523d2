"""Pretraining: teach an emulator E to mimic the simulator T over the declared ranges (Fig. 3a).

Each recipe is a trainer (:class:`~gangal_core.training.Trainer`) registered by name in
:data:`PRETRAINING`:

- ``"likelihood"`` (default, :class:`LikelihoodPretraining`): E's per-pixel mean and
  standard deviation maximise the Gaussian likelihood of simulated images.  This is a
  distributional term: for a stochastic simulator E learns the noise as well as the mean
  image.  It reaches a usable emulator in minutes on a CPU (``benchmarks/RESULTS.md``).
- ``"paper"`` (:class:`SiamesePretraining`): the paper's adversarial Siamese pretraining
  (eq. 1): the Siamese network S learns to tell simulated from emulated images of the same
  parameters (label smoothing, random label flips, SGD), and E learns to fool it (Adam).

Both share :class:`Pretraining`: the parameter draws, the simulated batches and the
parameter estimator trained beside the emulator.

From a bank of stored simulations (:class:`~gangal_core.simulation.bank.SimulationBank`), the
likelihood recipe trains for epochs over the fixed set instead of simulating new batches: a
seeded part of the bank is held out, the emulator's loss on it is measured through training,
and the emulator keeps the weights that fit the held-out simulations best (early stopping, the
regularisation a fixed set needs).  The Siamese recipe needs two simulations of the same
parameters, which a bank does not hold.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from typing import Any

import torch
from torch.nn import functional as F

from gangal_core.errors import ConfigError
from gangal_core.runtime.devices import autocast, to_device
from gangal_core.simulation.bank import SimulationBank
from gangal_core.simulation.budget import MeteredSimulator
from gangal_core.simulation.simulator import Simulator, call_simulator
from gangal_core.training import Trainer

from .batches import GlobalBatch, check_positive, choose, network_class, paper_labels
from .emulator import TrainedEmulator, parameter_table
from .networks import ImageScale, ParameterEstimator, Siamese

__all__ = ["PRETRAINING", "PRETRAIN_RECIPES", "LikelihoodPretraining", "Pretraining", "SiamesePretraining",
           "pretrain"]  # fmt: skip


#: Images the pixel scale is fitted to (simulated, or the first of a bank).
PILOT_IMAGES = 4096


class Pretraining(Trainer):
    """What every pretraining recipe shares; a recipe supplies :meth:`train_emulator`.

    Each iteration draws a global batch of parameter sets uniformly over the ranges, lets
    the recipe train the emulator on them, then trains the parameter estimator (if any) on
    the recipe's simulated images of the same parameters.

    Parameters
    ----------
    simulator : Simulator
        The simulator T to mimic.
    iterations, batch_size, emulator_arch, emulator_options, critic_arch, critic_options,
    learning_rate, label_flip, estimate_parameters, seed, registry, bank, validation, held_out,
    start :
        As in :func:`pretrain`.
    **options
        Passed to :class:`~gangal_core.training.Trainer` (``checkpoint``, ``resume``,
        ``device``...).
    """

    recipe = ""
    #: whether a recipe needs two simulations of the same parameters (no bank then)
    needs_repeat_simulations = False
    #: held-out losses measured this many times over a run from a bank
    validations = 40

    def __init__(
        self,
        simulator: Simulator,
        *,
        iterations: int = 4000,
        batch_size: int = 256,
        emulator_arch: str = "conv",
        emulator_options: dict[str, Any] | None = None,
        critic_arch: str = "conv",
        critic_options: dict[str, Any] | None = None,
        learning_rate: float = 2e-3,
        label_flip: float = 0.05,
        estimate_parameters: bool = True,
        seed: int = 0,
        registry: Any = None,
        bank: SimulationBank | None = None,
        validation: float = 0.1,
        held_out: SimulationBank | None = None,
        start: TrainedEmulator | None = None,
        **options: Any,
    ) -> None:
        check_positive(iterations=iterations, batch_size=batch_size)
        self.batch = GlobalBatch(batch_size)
        self.bank, self.held_out = self._split_bank(bank, validation, seed, held_out)
        description = f"pretraining {simulator.name} emulator"
        super().__init__(iterations=iterations, description=description, **options)
        self.simulator, self.seed, self.registry = simulator, seed, registry
        self.critic_arch, self.critic_options = critic_arch, critic_options or {}
        self.learning_rate, self.label_flip = learning_rate, label_flip
        torch.manual_seed(seed)
        self.random = self.generators["random"] = torch.Generator().manual_seed(seed)
        if start is None:
            self.emulator, self.pilot = self._new_emulator(emulator_arch, emulator_options or {})
        else:
            self.emulator, self.pilot = self._continued_emulator(start)
        self.network = self.models["emulator"] = self.emulator.network
        self.estimator: ParameterEstimator | None = None
        if start is not None and start.estimator is not None and estimate_parameters:
            self.estimator = copy.deepcopy(start.estimator).to(self.device).requires_grad_(True).train()
        elif estimate_parameters:
            self.estimator = ParameterEstimator(self.new_critic(), len(simulator.parameters)).to(self.device)
        if self.estimator is not None:
            self.models["estimator"] = self.estimator
            self.optimisers["estimator"] = optimiser = torch.optim.Adam(self.estimator.parameters(), lr=1e-3)
            self.schedulers["estimator"] = torch.optim.lr_scheduler.OneCycleLR(
                optimiser, max_lr=2e-3, total_steps=iterations
            )

    def _split_bank(
        self, bank: SimulationBank | None, validation: float, seed: int, held_out: SimulationBank | None
    ) -> tuple[SimulationBank | None, SimulationBank | None]:
        if bank is None:
            if held_out is not None:
                raise ConfigError("held_out: simulations to measure on, but no bank to train from.")
            return None, None
        if self.needs_repeat_simulations:
            raise ConfigError(
                f"--pretrain-recipe {self.recipe}: this recipe compares two simulations of the same "
                "parameters, which stored simulations do not hold; pretrain from a bank or a budget with "
                "the likelihood recipe."
            )
        if not 0 <= validation < 1:
            raise ConfigError(f"--validation: expected a share in [0, 1), found {validation}.")
        if held_out is None:
            train, held = bank.split(validation, seed=seed + 104729)  # not the training stream
        else:
            train, held = bank, _like(held_out, bank)
        if len(train) < 2:
            raise ConfigError(f"--bank {bank.source}: {len(bank)} simulations are too few to train from.")
        self.drawn, self.best_loss, self.best_state = 0, float("inf"), None
        self.held_out_losses: dict[str, list[float]] = {"iterations": [], "loss": [], "rmse": []}
        return train, (held if len(held) else None)

    def _new_emulator(self, arch: str, options: dict[str, Any]) -> tuple[TrainedEmulator, torch.Tensor]:
        """A fresh emulator, its pixel scale fitted to a pilot batch of images (returned too).

        The pilot batch is simulated, or the first images of the bank.
        """
        simulator = self.simulator
        network = network_class(self.registry, "emulator", arch)(
            tuple(simulator.image_shape), len(simulator.parameters), **options
        ).to(self.device)
        pilot = self._pilot()
        emu = TrainedEmulator(network=network, scale=ImageScale.fit(pilot), simulator=simulator.name,
                              parameters=parameter_table(simulator), arch=arch)  # fmt: skip
        return emu, pilot

    def _continued_emulator(self, start: TrainedEmulator) -> tuple[TrainedEmulator, torch.Tensor]:
        """A trainable copy of ``start``, with its pixel scale: refining keeps the same units."""
        if start.simulator != self.simulator.name or start.image_shape != tuple(self.simulator.image_shape):
            raise ConfigError(f"--emulator: pretrained for {start.simulator!r}, not {self.simulator.name!r}.")
        network = copy.deepcopy(start.network).to(self.device).requires_grad_(True)
        emu = TrainedEmulator(network=network, scale=start.scale, simulator=start.simulator,
                              parameters=start.parameters, arch=start.arch)  # fmt: skip
        return emu, self._pilot()

    def _pilot(self) -> torch.Tensor:
        """Images to fit the pixel scale to: the bank's first, or a simulated pilot batch."""
        if self.bank is not None:
            return self.bank.images[:PILOT_IMAGES]
        simulator = self.simulator
        return call_simulator(
            simulator,
            simulator.sample_uniform(PILOT_IMAGES, generator=self.random),
            generator=self.random,
            where="the pretraining pilot batch",
        )

    def simulator_images(self, iteration: int) -> int | None:
        """The pilot batch and every iteration's global batch (twice for a recipe that simulates
        each parameter set twice); from a bank, ``None`` (training calls no simulator) or, in a run
        within a budget, what the run's simulator has made so far."""
        if self.bank is not None:  # a metered simulator (a run within a budget) counts its own
            return self.simulator.images if isinstance(self.simulator, MeteredSimulator) else None
        per_iteration = self.batch.size * (2 if self.needs_repeat_simulations else 1)
        return PILOT_IMAGES + iteration * per_iteration

    def new_critic(self) -> torch.nn.Module:
        """A freshly initialised ``critic_arch`` critic for the simulator's images."""
        critic_cls = network_class(self.registry, "critic", self.critic_arch)
        return critic_cls(tuple(self.simulator.image_shape), **self.critic_options)

    def simulate(self, u: torch.Tensor) -> torch.Tensor:
        """This process's rows of parameters ``u``, simulated and normalised."""
        return self.batch.simulate(self.simulator, self.emulator, u, self.random)

    # ---- what a recipe supplies ---------------------------------------------------------------
    @abstractmethod
    def train_emulator(
        self, u: torch.Tensor, images: torch.Tensor | None = None
    ) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        """One step of the emulator on this process's parameter rows ``u`` (normalised, CPU).

        ``images`` are their normalised simulations when they come from a bank (``None``:
        simulate them).  Returns the losses, and simulated images with their parameters (on
        the device) for the parameter estimator.
        """

    def held_out_loss(self, u: torch.Tensor, images: torch.Tensor) -> tuple[float, float]:
        """The recipe's loss and the RMSE of the emulator's mean on held-out simulations."""
        raise NotImplementedError

    # ---- the shared step ----------------------------------------------------------------------
    def step(self, iteration: int) -> dict[str, float]:
        u, images = self.draw()
        losses, images, u = self.train_emulator(u, images)
        if self.estimator is not None:
            losses["estimator"] = self.train_estimator(images, u)
        if self.held_out is not None and self._measures_at(iteration):
            self.measure_held_out(iteration)
        return losses

    def draw(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This process's rows of a global batch: parameters ``u`` in ``[-1, 1]``, and their images.

        Without a bank the parameters are uniform over the ranges and the images ``None`` (to
        simulate); from a bank, the next rows of a seeded shuffle of it, epoch after epoch.
        """
        n_parameters = len(self.simulator.parameters)
        if self.bank is None:
            u = torch.rand(self.batch.size, n_parameters, generator=self.random) * 2 - 1
            return u[self.batch.rows], None
        rows = self._bank_rows(self.batch.size)[self.batch.rows]
        u = self.emulator.to_unit(self.bank.parameters[rows])
        return u, self.emulator.scale.normalise(self.bank.images[rows])

    def _bank_rows(self, count: int) -> torch.Tensor:
        """Rows ``drawn .. drawn + count`` of the endless sequence of per-epoch shuffles of the bank."""
        n, parts = len(self.bank), []
        while count > 0:
            epoch, start = divmod(self.drawn, n)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            part = order[start : start + count]
            parts.append(part)
            self.drawn += len(part)
            count -= len(part)
        return torch.cat(parts)

    def _measures_at(self, iteration: int) -> bool:
        every = max(1, self.iterations // self.validations)
        return (iteration + 1) % every == 0 or iteration + 1 == self.iterations

    @torch.no_grad()
    def measure_held_out(self, iteration: int) -> None:
        """The loss on the held-out simulations; the best weights so far are kept."""
        held = self.held_out
        self.network.eval()
        loss, rmse = self.held_out_loss(
            to_device(self.emulator.to_unit(held.parameters), self.device),
            to_device(self.emulator.scale.normalise(held.images), self.device),
        )
        self.network.train()
        record = self.held_out_losses
        for key, value in (("iterations", iteration + 1), ("loss", loss), ("rmse", rmse)):
            record[key].append(value)
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()}

    def train_estimator(self, images: torch.Tensor, u: torch.Tensor) -> float:
        """One regression step of the parameter estimator: read ``u`` off the simulated ``images``."""
        with autocast(self.device, self.precision):
            loss = F.mse_loss(self.estimator(images).float(), u)
        self.update("estimator", loss)
        return loss.item()

    def extra_state(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"scale": self.emulator.scale.__dict__}
        if self.bank is not None:
            extra["bank"] = {"drawn": self.drawn, "best_loss": self.best_loss, "best_state": self.best_state,
                             "held_out": self.held_out_losses}  # fmt: skip
        return extra

    def load_extra_state(self, extra: dict[str, Any]) -> None:
        self.emulator.scale = ImageScale(**extra["scale"])  # the run's own pixel scale, not a refit
        if self.bank is not None:
            bank = extra["bank"]
            self.drawn, self.best_loss = int(bank["drawn"]), float(bank["best_loss"])
            self.best_state, self.held_out_losses = bank["best_state"], bank["held_out"]

    def before_training(self) -> None:
        self.network.train()

    def result(self) -> TrainedEmulator:
        """The trained emulator, on the CPU and frozen, with how it was trained in ``info``."""
        for module in self.models.values():
            module.cpu().eval()  # a trained emulator lives on the CPU; calibrate moves it where it runs
            for p in module.parameters():
                p.requires_grad_(False)
        self.emulator.estimator = self.estimator
        self.emulator.info = {
            "recipe": self.recipe,
            "iterations": self.iterations,
            "batch_size": self.batch.size,
            "seed": self.seed,
            "seconds": round(self.seconds, 2),
            "losses": self.history.state_dict(),
        }
        if self.bank is not None:
            self.emulator.info["bank"] = self._bank_info()
        return self.emulator

    def _bank_info(self) -> dict[str, Any]:
        """How the bank was used, and how well the kept emulator fits the held-out simulations."""
        info: dict[str, Any] = {"source": self.bank.source, "train": len(self.bank),
                                "held_out": 0 if self.held_out is None else len(self.held_out),
                                "epochs": round(self.drawn / len(self.bank), 2)}  # fmt: skip
        if self.best_state is not None:
            self.network.load_state_dict(self.best_state)  # early stopping: the best held-out fit
            record = self.held_out_losses
            best = record["loss"].index(min(record["loss"]))
            info.update(kept_iteration=record["iterations"][best], held_out_loss=record["loss"][best],
                        held_out_rmse=record["rmse"][best], held_out_curve=record)  # fmt: skip
        return info


class LikelihoodPretraining(Pretraining):
    """The mean regresses on simulated images, the standard deviation maximises their likelihood.

    Adam with a one-cycle schedule peaking at ``learning_rate``.
    """

    recipe = "likelihood"

    def __init__(self, simulator: Simulator, **options: Any) -> None:
        super().__init__(simulator, **options)
        optimiser = torch.optim.Adam(self.network.parameters(), lr=self.learning_rate)
        self.optimisers["emulator"] = optimiser
        self.schedulers["emulator"] = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=self.learning_rate, total_steps=self.iterations
        )
        # the squared error relative to the image variance
        self.mse_scale = float(self.emulator.scale.normalise(self.pilot).var()) or 1.0

    def train_emulator(
        self, u: torch.Tensor, images: torch.Tensor | None = None
    ) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        x = to_device(self.simulate(u) if images is None else images, self.device)
        u = to_device(u, self.device)
        mse, nll = self._losses(u, x)
        self.update("emulator", mse / self.mse_scale + nll)
        return {"nll": nll.item(), "rmse": mse.item() ** 0.5}, x, u

    def _losses(self, u: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.device, self.precision):
            mean, std = self.network(u)
        mean, std = mean.float(), std.float()
        # the mean regresses on the images (squared error: E[x | p]); the standard deviation
        # maximises the likelihood of the residuals around a fixed mean (Var[x | p]).  A joint
        # likelihood lets the network explain hard pixels away as noise and blurs the mean.
        mse = (x - mean).square().mean()
        nll = ((x - mean.detach()) / std).square().mul(0.5).add(std.log()).mean()
        return mse, nll

    def held_out_loss(self, u: torch.Tensor, images: torch.Tensor) -> tuple[float, float]:
        totals = torch.zeros(2, dtype=torch.float64)
        for start in range(0, u.shape[0], 1024):
            part = slice(start, start + 1024)
            mse, nll = self._losses(u[part], images[part])
            totals += torch.tensor([mse.item(), nll.item()], dtype=torch.float64) * len(u[part])
        mse, nll = (totals / u.shape[0]).tolist()
        return mse / self.mse_scale + nll, mse**0.5


class SiamesePretraining(Pretraining):
    """The paper's adversarial pretraining (eq. 1): a Siamese network S against the emulator E.

    S (a ``critic_arch`` critic, SGD) learns to tell two simulated images of the same
    parameters (labels drawn in 0.7-1.2) from a simulated and an emulated one (0.0-0.3),
    a fraction ``label_flip`` of the labels flipped; E (Adam, 2e-4) learns to fool it.
    """

    recipe = "paper"
    needs_repeat_simulations = True

    def __init__(self, simulator: Simulator, **options: Any) -> None:
        super().__init__(simulator, **options)
        self.siamese = self.models["siamese"] = Siamese(self.new_critic()).to(self.device)
        self.optimisers["siamese"] = torch.optim.SGD(self.siamese.parameters(), lr=0.01, momentum=0.9)
        self.optimisers["emulator"] = torch.optim.Adam(self.network.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def train_emulator(
        self, u: torch.Tensor, images: torch.Tensor | None = None
    ) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        n, rows, random, dev = self.batch.size, self.batch.rows, self.random, self.device
        x1 = self.simulate(u)
        x2 = self.simulate(u)  # the same parameters again
        eps = torch.randn((n, *self.simulator.image_shape), generator=random)[rows]
        same = paper_labels(n, real=True, flip=self.label_flip, generator=random)[rows]
        differ = paper_labels(n, real=False, flip=self.label_flip, generator=random)[rows]
        u, x1, x2, eps, same, differ = (to_device(t, dev) for t in (u, x1, x2, eps, same, differ))
        with autocast(dev, self.precision):
            xe = self.network.sample(u, eps=eps)
            loss_s = F.binary_cross_entropy_with_logits(
                self.siamese(x1, x2).float(), same
            ) + F.binary_cross_entropy_with_logits(self.siamese(x1, xe.detach()).float(), differ)
        self.update("siamese", loss_s)
        with autocast(dev, self.precision):
            logits = self.siamese(x1, xe).float()
        loss_e = F.binary_cross_entropy_with_logits(logits, torch.ones(u.shape[0], device=dev))
        self.update("emulator", loss_e)
        with torch.no_grad():
            rmse = (x1 - self.network(u)[0]).square().mean().sqrt().item()
        return {"siamese": loss_s.item(), "emulator": loss_e.item(), "rmse": rmse}, x1, u


def _like(held_out: SimulationBank, bank: SimulationBank) -> SimulationBank:
    """``held_out``, checked to hold simulations of the same shape as ``bank``'s."""
    ours, theirs = (int(held_out.parameters.shape[1]), tuple(held_out.images.shape[1:])), (
        int(bank.parameters.shape[1]), tuple(bank.images.shape[1:]))  # fmt: skip
    if ours != theirs:
        raise ConfigError(
            f"held_out: expected simulations like the bank's ({theirs[0]} parameters, images {theirs[1]}), "
            f"found {ours[0]} parameters and images {ours[1]}."
        )
    return held_out


#: The pretraining recipes by name (``--recipe``).
PRETRAINING: dict[str, type[Pretraining]] = {"likelihood": LikelihoodPretraining, "paper": SiamesePretraining}
PRETRAIN_RECIPES = tuple(PRETRAINING)


def pretrain(simulator: Simulator, *, recipe: str = "likelihood", **options: Any) -> TrainedEmulator:
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
    bank : SimulationBank, optional
        Stored simulations to train from instead of calling the simulator (likelihood recipe):
        ``iterations`` minibatches drawn epoch after epoch from a seeded shuffle.
    validation : float, optional
        The share of ``bank`` held out to measure the emulator on (default 0.1); the emulator
        keeps the weights with the lowest held-out loss.  ``0``: none held out, the last
        weights kept.
    held_out : SimulationBank, optional
        Simulations to measure the emulator on instead of a ``validation`` share of ``bank``
        (all of ``bank`` is then trained on): a validation set of your own, or, when refining
        an emulator on a bank that has grown, the simulations held out from it before.
    start : TrainedEmulator, optional
        Refine this emulator (and its parameter estimator) instead of starting afresh; its
        pixel scale is kept.  Calibration in rounds refines the emulator on every simulation
        made so far.
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
    return choose(PRETRAINING, recipe, "--recipe")(simulator, **options).train()
