"""The model-assisted GAN: train the generator G of parameters against the true images.

Eq. 2 and Fig. 3b of Alonso-Monsalve & Whitehead (2020).  The discriminator D sees the true
images against

- ``"simulated"`` images T(G(z)) (default; the paper's standard configuration), or
- ``"emulated"`` images E(G(z)) (no simulator calls in the loop), or
- ``"anchored"`` images: stored simulations T(G0(z)) of an earlier generator G0 at fixed
  noise ``z``, carried to G(z) by the emulator as below (:class:`Anchors`; calibration within
  a budget, :mod:`gangal_core.calibration.rounds`).

G always learns through the frozen emulator.  With simulated images the generator's
images are the simulator's own in the forward pass, and the gradient is that of the
emulator: ``x = mu_E(p) + sd_E(p) * eps_hat`` with ``eps_hat = (T(p) - mu_E(p)) / sd_E(p)``
held fixed, which equals T(p) exactly and whose derivative in ``p`` is the emulator's.
So D judges only real simulator output, and an imperfect emulator bends the path of
training but not where it ends.

The result is the best-match parameter *distribution*: samples from G, whose mean and
standard deviation are the paper's best-match mu and sigma.

Each training recipe is a trainer (:class:`~gangal_core.training.Trainer`) registered by
name in :data:`CALIBRATION`: ``"default"`` (:class:`DefaultCalibration`) and ``"paper"``
(:class:`PaperCalibration`) differ in D's optimiser, its labels and its minibatch feature;
what D sees is chosen by name from :data:`DISCRIMINATOR_IMAGES`.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from gangal_core.errors import ConfigError
from gangal_core.runtime.devices import autocast, to_device
from gangal_core.simulation.budget import MeteredSimulator
from gangal_core.simulation.simulator import Simulator
from gangal_core.training import Trainer, r1_penalty

from .batches import GlobalBatch, check_positive, choose, network_class, paper_labels
from .emulator import TrainedEmulator, parameter_table
from .networks import Discriminator, ParameterGenerator
from .result import CalibrationResult, snapshot_mixture

__all__ = [
    "CALIBRATION",
    "DISCRIMINATOR_IMAGES",
    "DISCRIMINATOR_INPUTS",
    "TRAINING_RECIPES",
    "Anchors",
    "CalibrationTrainer",
    "DefaultCalibration",
    "PaperCalibration",
    "anchored_images",
    "calibrate",
    "emulated_images",
    "simulated_images",
    "simulated_with_emulator_gradient",
]


@dataclass(frozen=True)
class Anchors:
    """Simulations of a generator's own parameters, to anchor D's input (``"anchored"``).

    With a simulation budget D cannot see fresh simulator images at every step.  Instead a
    round simulates the parameters ``G0(z)`` of the generator G0 it starts from, at noise
    ``z`` kept here; each step then shows D, for a draw of these ``z``, the stored image
    carried to G(z) by the emulator (:func:`anchored_images`): its smooth part moved by the
    emulator's change of mean, its residual scaled by the emulator's change of spread.  The
    images are the simulator's own (its noise, its fine detail) while G has not moved, and the
    emulator supplies only a local change and the gradient, so emulator errors that D could
    otherwise learn to spot cancel out.

    Attributes
    ----------
    noise : torch.Tensor
        ``(n, noise_size)`` the generator's inputs ``z``.
    parameters : torch.Tensor
        ``(n, P)`` physical parameters ``G0(z)`` that were simulated.
    images : torch.Tensor
        ``(n, C, H, W)`` their simulated images, in the simulator's pixel units.
    """

    noise: torch.Tensor
    parameters: torch.Tensor
    images: torch.Tensor


class CalibrationTrainer(Trainer):
    """Eq. 2: the generator G of parameters against a discriminator D of the true images.

    Each iteration D takes one step on true images against images of G's parameters (made
    by :data:`DISCRIMINATOR_IMAGES`), then G one step through the frozen emulator; copies
    of G are kept at the snapshot iterations for the best-match mixture (:meth:`result`).
    A recipe supplies D's labels (:meth:`labels`) and optimiser
    (:meth:`discriminator_optimiser`), and may start D otherwise (:meth:`new_discriminator`).

    Parameters
    ----------
    simulator, emulator, true_images, iterations, batch_size, discriminator_input,
    critic_arch, critic_options, learning_rate, minibatch_std, minibatch_group,
    discriminator_learning_rate, head_learning_rate, noise_size, average_from, snapshots,
    label_flip, n_samples, seed, registry, warm_start :
        As in :func:`calibrate`.
    anchors : Anchors, optional
        Stored simulations of G's own parameters, for ``discriminator_input="anchored"``.
    r1_gamma : float, optional
        Weight ``gamma`` of the R1 penalty ``gamma / 2 * E||grad D(x)||^2`` on D's true
        images (Mescheder et al. 2018); default 0, off.
    **options
        Passed to :class:`~gangal_core.training.Trainer` (``checkpoint``, ``resume``,
        ``device``...).
    """

    recipe = ""
    minibatch_feature = True  # whether D gets the minibatch-spread feature ``minibatch_std``

    def __init__(
        self,
        simulator: Simulator,
        emulator: TrainedEmulator,
        true_images: torch.Tensor,
        *,
        iterations: int = 3000,
        batch_size: int = 256,
        discriminator_input: str = "simulated",
        critic_arch: str = "conv",
        critic_options: dict[str, Any] | None = None,
        learning_rate: float = 5e-4,
        minibatch_std: str = "features",
        minibatch_group: int = 16,
        discriminator_learning_rate: float | None = 1e-4,
        head_learning_rate: float = 1e-3,
        noise_size: int = 8,
        average_from: float = 0.5,
        snapshots: int = 20,
        label_flip: float = 0.05,
        n_samples: int = 10000,
        seed: int = 0,
        registry: Any = None,
        warm_start: dict[str, Any] | None = None,
        anchors: Anchors | None = None,
        r1_gamma: float = 0.0,
        **options: Any,
    ) -> None:
        self.discriminator_images = choose(DISCRIMINATOR_IMAGES, discriminator_input, "--discriminator-input")
        if (discriminator_input == "anchored") != (anchors is not None):
            raise ConfigError('discriminator_input "anchored" needs anchors, and anchors need it.')
        check_positive(iterations=iterations, batch_size=batch_size, n_samples=n_samples)
        self.batch = GlobalBatch(batch_size)
        super().__init__(iterations=iterations, description=f"calibrating {simulator.name}", **options)
        self.simulator, self.emulator, self.registry = simulator, emulator, registry
        self.critic_arch, self.critic_options = critic_arch, critic_options
        self.learning_rate, self.label_flip, self.n_samples = learning_rate, label_flip, n_samples
        self.discriminator_learning_rate = discriminator_learning_rate
        self.head_learning_rate, self.r1_gamma = head_learning_rate, float(r1_gamma)
        torch.manual_seed(seed)
        self.random = self.generators["random"] = torch.Generator().manual_seed(seed)
        dev = self.device
        network = emulator.network if dev.type == "cpu" else copy.deepcopy(emulator.network).to(dev)
        self.emulator_network = network.eval()  # frozen: G learns through it
        true = emulator.scale.normalise(true_images.float())
        self.true = true.pin_memory() if dev.type == "cuda" else true
        minibatch_std = minibatch_std if self.minibatch_feature else "none"
        self.discriminator = self.new_discriminator(minibatch_std=minibatch_std, group_size=minibatch_group)
        self.discriminator.to(dev)
        self.generator = ParameterGenerator(len(emulator.parameters), noise_size=noise_size).to(dev)
        self.models.update(generator=self.generator, discriminator=self.discriminator)
        self.optimisers["generator"] = torch.optim.Adam(
            self.generator.parameters(), lr=learning_rate, betas=(0.5, 0.999)
        )
        self.optimisers["discriminator"] = self.discriminator_optimiser()
        if warm_start is not None:
            self.continue_from(warm_start)
        first = min(int(average_from * iterations), iterations - 1)
        self.snapshot_at = {int(v) for v in np.linspace(first, iterations - 1, max(1, snapshots)).round()}
        self.taken: list[dict[str, torch.Tensor]] = []  # generator snapshots for the best-match mixture
        self.ones = torch.ones(self.batch.local, device=dev)
        self.anchor_noise: torch.Tensor | None = None
        self.anchor_rows: torch.Tensor | None = None
        if anchors is not None:
            self._set_anchors(anchors)

    def _set_anchors(self, anchors: Anchors) -> None:
        dev = self.device
        self.anchor_noise = to_device(anchors.noise.float(), dev)
        images = to_device(self.emulator.scale.normalise(anchors.images.float()), dev)
        with torch.no_grad():
            u0 = to_device(self.emulator.to_unit(anchors.parameters.float()), dev)
            parts = [self.emulator_network(part) for part in u0.split(1024)]
        mean0, std0 = (torch.cat([p[i].float() for p in parts]) for i in (0, 1))
        self.anchor_eps = (images - mean0) / std0  # the noise that makes the emulator draw T(G0(z))

    def noise(self, n: int) -> torch.Tensor:
        """This process's rows of G's inputs for a step: fresh, or drawn from the anchors' ``z``."""
        if self.anchor_noise is None:
            z = torch.randn(n, self.generator.noise_size, generator=self.random)
            return to_device(z[self.batch.rows], self.device)
        rows = torch.randint(0, self.anchor_noise.shape[0], (n,), generator=self.random)[self.batch.rows]
        self.anchor_rows = to_device(rows, self.device)
        return self.anchor_noise[self.anchor_rows]

    def continue_from(self, state: dict[str, Any]) -> None:
        """Start G, D and their optimisers where another run left them (:meth:`networks_state`).

        The next round of a calibration in rounds continues the generator and discriminator
        of the last one, against an emulator refined in between.  G keeps this trainer's
        ``learning_rate``, not the one its optimiser's state was saved with.
        """
        for kind, registry in (("models", self.models), ("optimisers", self.optimisers)):
            for name, thing in registry.items():
                thing.load_state_dict(state[kind][name])
        for group in self.optimisers["generator"].param_groups:  # G's rate is this run's, not the last's
            group["lr"] = self.learning_rate

    def networks_state(self) -> dict[str, Any]:
        """G, D and their optimisers, for :meth:`continue_from` of a later run."""
        return {
            "models": {k: copy.deepcopy(m.state_dict()) for k, m in self.models.items()},
            "optimisers": {k: copy.deepcopy(o.state_dict()) for k, o in self.optimisers.items()},
        }

    # ---- what a recipe supplies ---------------------------------------------------------------
    def new_discriminator(self, **options: Any) -> Discriminator:
        """A fresh D on a ``critic_arch`` critic, with the :class:`Discriminator` ``options``."""
        critic_cls = network_class(self.registry, "critic", self.critic_arch)
        critic = critic_cls(tuple(self.emulator.image_shape), **(self.critic_options or {}))
        return Discriminator(critic, **options)

    @abstractmethod
    def discriminator_optimiser(self) -> torch.optim.Optimizer:
        """D's optimiser (called once D is built and on its device)."""

    @abstractmethod
    def labels(self, *, real: bool) -> torch.Tensor:
        """D's targets for this process's rows of true (``real``) or generated images."""

    # ---- the step -----------------------------------------------------------------------------
    def simulate(self, u: torch.Tensor) -> torch.Tensor:
        """This process's rows of parameters ``u``, simulated and normalised (on the CPU)."""
        return self.batch.simulate(self.simulator, self.emulator, u, self.random)

    def step(self, iteration: int) -> dict[str, float]:
        n, rows, dev, random = self.batch.size, self.batch.rows, self.device, self.random
        D, G = self.discriminator, self.generator
        x_true = to_device(self.true[torch.randint(0, self.true.shape[0], (n,), generator=random)[rows]], dev)
        x_true.requires_grad_(self.r1_gamma > 0)
        u = G(self.noise(n))
        with autocast(dev, self.precision):
            mean, std = self.emulator_network(u)
        x_gen = self.discriminator_images(self, u, mean.float(), std.float())
        with autocast(dev, self.precision):
            logits_true, logits_gen = D(x_true).float(), D(x_gen.detach()).float()
        loss_d = F.binary_cross_entropy_with_logits(
            logits_true, self.labels(real=True)
        ) + F.binary_cross_entropy_with_logits(logits_gen, self.labels(real=False))
        if self.r1_gamma > 0:
            loss_d = loss_d + self.r1_gamma / 2 * r1_penalty(logits_true, x_true)
        self.update("discriminator", loss_d)
        with autocast(dev, self.precision):
            logits = D(x_gen).float()
        loss_g = F.binary_cross_entropy_with_logits(logits, self.ones)
        self.update("generator", loss_g)
        if iteration in self.snapshot_at:
            self.taken.append({k: v.detach().clone() for k, v in G.state_dict().items()})
        return {"D": loss_d.item(), "G": loss_g.item()}

    def simulator_images(self, iteration: int) -> int | None:
        """A metered simulator's own count (a run within a budget); else one batch an iteration
        when D sees simulated images, and ``None`` when training calls no simulator."""
        if isinstance(self.simulator, MeteredSimulator):
            return self.simulator.images
        return iteration * self.batch.size if self.discriminator_images is simulated_images else None

    def extra_state(self) -> dict[str, Any]:
        return {"snapshots": self.taken}

    def load_extra_state(self, extra: dict[str, Any]) -> None:
        self.taken[:] = extra["snapshots"]

    # ---- the best match -----------------------------------------------------------------------
    def result(self) -> CalibrationResult:
        """``n_samples`` best-match parameter sets, in equal numbers from each generator snapshot."""
        G, emulator = self.generator, self.emulator
        final = copy.deepcopy(G.state_dict())
        states = self.taken or [final]
        parts = []
        with torch.no_grad():
            for k, state in enumerate(states):
                G.load_state_dict(state)
                count = self.n_samples // len(states) + (k < self.n_samples % len(states))
                draws = G.sample(count, generator=self.random)
                parts.append(emulator.to_physical(draws.cpu()).numpy().astype(np.float64))
            G.load_state_dict(final)
        low = np.array([p["low"] for p in emulator.parameters], dtype=np.float64)
        high = np.array([p["high"] for p in emulator.parameters], dtype=np.float64)
        samples, mean_err, std_err = snapshot_mixture(
            [p for p in parts if len(p)], n_true=int(self.true.shape[0]), low=low, high=high
        )
        G.cpu()
        return CalibrationResult(
            samples=samples,
            names=emulator.parameter_names,
            generator=G,
            losses=self.history.state_dict(),
            seconds=self.seconds,
            mean_err=mean_err,
            std_err=std_err,
        )


class DefaultCalibration(CalibrationTrainer):
    """Adam for D and G, one-sided label smoothing (true labels 0.9), D's minibatch-spread feature.

    D starts as the emulator's parameter estimator when it has one of the same critic
    architecture (and no other critic options are asked for); D's new head learns at
    ``head_learning_rate``, the rest of D at ``discriminator_learning_rate``.
    """

    recipe = "default"

    def new_discriminator(self, **options: Any) -> Discriminator:
        est = self.emulator.estimator
        if est is not None and est.critic.name == self.critic_arch and self.critic_options is None:
            return Discriminator.from_estimator(est, **options)
        return super().new_discriminator(**options)

    def discriminator_optimiser(self) -> torch.optim.Optimizer:
        D = self.discriminator
        body = [p for name, p in D.named_parameters() if not name.startswith("head.")]
        return torch.optim.Adam(
            [{"params": body}, {"params": D.head.parameters(), "lr": self.head_learning_rate}],
            lr=self.discriminator_learning_rate or self.learning_rate,
            betas=(0.5, 0.999),
        )

    def labels(self, *, real: bool) -> torch.Tensor:
        return torch.full((self.batch.local,), 0.9 if real else 0.0, device=self.device)


class PaperCalibration(CalibrationTrainer):
    """The paper's recipe: SGD for D, labels in 0.7-1.2 (true) and 0.0-0.3 (generated), flips.

    A fraction ``label_flip`` of the labels is flipped; D has no minibatch feature.
    """

    recipe = "paper"
    minibatch_feature = False

    def discriminator_optimiser(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.discriminator.parameters(), lr=0.01, momentum=0.9)

    def labels(self, *, real: bool) -> torch.Tensor:
        y = paper_labels(self.batch.size, real=real, flip=self.label_flip, generator=self.random)
        return to_device(y[self.batch.rows], self.device)


def simulated_images(
    trainer: CalibrationTrainer, u: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """T(G(z)) in the forward pass, the emulator's gradient in the backward pass (the default)."""
    return simulated_with_emulator_gradient(mean, std, to_device(trainer.simulate(u), trainer.device))


def emulated_images(
    trainer: CalibrationTrainer, u: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """E(G(z)): the emulator's own images, their noise drawn from the run's stream."""
    eps = torch.randn((trainer.batch.size, *mean.shape[1:]), generator=trainer.random)[trainer.batch.rows]
    return mean + std * to_device(eps, trainer.device)


def anchored_images(
    trainer: CalibrationTrainer, u: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Stored simulations T(G0(z)) carried to G(z) by the emulator (:func:`simulated_with_emulator_gradient`).

    ``mu_E(G(z)) + sd_E(G(z)) * eps`` with ``eps = (T(G0(z)) - mu_E(G0(z))) / sd_E(G0(z))``
    held fixed: the simulator's own
    image while G has not moved, its smooth part moved by the emulator's change of mean, its
    residual (noise, fine detail) scaled by the emulator's change of spread, so that
    parameters of the noise learn too.
    """
    eps = trainer.anchor_eps[trainer.anchor_rows]
    clipped = eps.clamp(-8, 8)  # as in simulated_with_emulator_gradient: for the gradient only
    return mean + std * clipped + (std * (eps - clipped)).detach()


#: The calibration recipes by name (``--recipe``).
CALIBRATION: dict[str, type[CalibrationTrainer]] = {"default": DefaultCalibration, "paper": PaperCalibration}
#: What D compares with the true images, by name (``--discriminator-input``):
#: ``images(trainer, u, mean, std)`` for G's parameters ``u`` and the emulator's ``mean``, ``std``.
DISCRIMINATOR_IMAGES: dict[str, Callable[..., torch.Tensor]] = {
    "simulated": simulated_images,
    "emulated": emulated_images,
    "anchored": anchored_images,
}
TRAINING_RECIPES = tuple(CALIBRATION)
DISCRIMINATOR_INPUTS = tuple(DISCRIMINATOR_IMAGES)


def calibrate(
    simulator: Simulator,
    emulator: TrainedEmulator,
    true_images: torch.Tensor,
    *,
    recipe: str = "default",
    **options: Any,
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
    trainer = choose(CALIBRATION, recipe, "--recipe")
    options.pop("log_spread", None)  # the discriminator always reads the spread on a log scale
    check_compatible(simulator, emulator, true_images)
    return trainer(simulator, emulator, true_images, **options).train()


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


def check_compatible(simulator: Simulator, emulator: TrainedEmulator, true_images: torch.Tensor) -> None:
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
