"""Model-assisted GAN calibration (Alonso-Monsalve & Whitehead 2020, sections III-VI).

Two phases:

1. :func:`pretrain` teaches an emulator E to mimic the simulator T over the declared
   parameter ranges (Fig. 3a).  Recipes:

   - ``"likelihood"`` (default): E's per-pixel mean and standard deviation maximise the
     Gaussian likelihood of simulated images.  This is a distributional term: for a
     stochastic simulator E learns the noise as well as the mean image.  It reaches a usable
     emulator in minutes on a CPU (``benchmarks/RESULTS.md``).
   - ``"paper"``: the paper's adversarial Siamese pretraining (eq. 1): the Siamese network S
     learns to tell simulated from emulated images of the same parameters (label smoothing,
     random label flips, SGD), and E learns to fool it (Adam).

2. :func:`calibrate` trains the generator G of parameters against the true images (eq. 2,
   Fig. 3b).  The discriminator D sees the true images against

   - ``"simulated"`` images T(G(z)) (default; the paper's standard configuration), or
   - ``"emulated"`` images E(G(z)) (no simulator calls in the loop).

   G always learns through the frozen emulator.  With simulated images the generator's
   images are the simulator's own in the forward pass, and the gradient is that of the
   emulator: ``x = mu_E(p) + sd_E(p) * eps_hat`` with ``eps_hat = (T(p) - mu_E(p)) / sd_E(p)``
   held fixed, which equals T(p) exactly and whose derivative in ``p`` is the emulator's.
   So D judges only real simulator output, and an imperfect emulator bends the path of
   training but not where it ends.

The result is the best-match parameter *distribution*: samples from G, whose mean and standard
deviation are the paper's best-match mu and sigma.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from torch.nn import functional as F

from .atomic import atomic_open
from .devices import autocast, check_precision, to_device
from .distributed import current as current_shard
from .errors import ConfigError, PluginError
from .networks import (
    Discriminator,
    Emulator,
    ImageScale,
    ParameterEstimator,
    ParameterGenerator,
    Siamese,
)
from .simulator import Simulator, call_simulator, simulate_in_chunks
from .training import LossHistory, TrainingLoop
from .weights import load_checked

__all__ = [
    "PRETRAIN_RECIPES",
    "TRAINING_RECIPES",
    "CalibrationResult",
    "TrainedEmulator",
    "calibrate",
    "load_emulator",
    "make_true_set",
    "pretrain",
    "save_emulator",
    "simulated_with_emulator_gradient",
]

PRETRAIN_RECIPES = ("likelihood", "paper")
TRAINING_RECIPES = ("default", "paper")
DISCRIMINATOR_INPUTS = ("simulated", "emulated")
EMULATOR_FILE = "emulator.safetensors"
FORMAT = "gangal-emulator/1"


# --------------------------------------------------------------------------- the emulator
@dataclass
class TrainedEmulator:
    """A pretrained emulator with everything needed to use it without the simulator.

    Attributes
    ----------
    network : Emulator
        The network (normalised parameters to normalised image distribution).
    scale : ImageScale
        Pixel normalisation fitted to the simulator's images.
    simulator : str
        Registry name of the simulator it mimics.
    parameters : list of dict
        ``{"name", "low", "high", "unit"}`` per parameter, in the simulator's order.
    arch : str
        Registry name of the emulator architecture.
    info : dict
        How it was trained (recipe, iterations, seconds, seed, losses).
    estimator : ParameterEstimator, optional
        A critic trained alongside to estimate parameters from simulated images; calibration
        starts its discriminator from it.
    """

    network: Emulator
    scale: ImageScale
    simulator: str
    parameters: list[dict[str, Any]]
    arch: str
    info: dict[str, Any] = field(default_factory=dict)
    estimator: ParameterEstimator | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.network.image_shape

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p["name"] for p in self.parameters)

    def _bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        lo = torch.tensor([p["low"] for p in self.parameters], dtype=torch.float32)
        hi = torch.tensor([p["high"] for p in self.parameters], dtype=torch.float32)
        return lo, hi

    def to_unit(self, params: torch.Tensor) -> torch.Tensor:
        """Physical parameters to ``[-1, 1]`` (each declared range mapped linearly)."""
        lo, hi = self._bounds()
        return 2 * (params - lo) / (hi - lo) - 1

    def to_physical(self, u: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_unit`."""
        lo, hi = self._bounds()
        return lo + (u + 1) / 2 * (hi - lo)

    @torch.inference_mode()
    def emulate(
        self,
        params: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        batch_size: int = 1024,
        precision: str = "float32",
    ) -> torch.Tensor:
        """Emulated images, in the simulator's pixel units, for physical ``params`` ``(n, P)``.

        Runs a copy of the network laid out for inference (:meth:`Emulator.for_inference`) in
        batches of ``batch_size`` (1024 is fastest on our 2-core CPU: Table III).
        ``precision="bfloat16"`` runs the network in bfloat16 (autocast): about twice as fast
        on CPUs with bfloat16 units, at an error of about 0.002 RMS (0.04 at worst) in
        normalised pixel units, below a typical emulator's own error; images stay float32.
        """
        if precision not in ("float32", "bfloat16"):
            raise ConfigError(f"--precision: expected float32 or bfloat16, found {precision!r}.")
        self.network.eval()
        fast = self.network.for_inference()
        out = torch.empty((params.shape[0], *self.image_shape), dtype=torch.float32)
        for start in range(0, params.shape[0], batch_size):
            u = self.to_unit(params[start : start + batch_size].float())
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                mean, std = fast(u)
            chunk = out[start : start + u.shape[0]]
            torch.randn(chunk.shape, generator=generator, out=chunk)
            chunk.mul_(std).add_(mean).mul_(self.scale.scale).add_(self.scale.offset)
        return out


def save_emulator(emulator: TrainedEmulator, folder: Path) -> Path:
    """Write ``folder/emulator.safetensors``: weights plus metadata to rebuild it alone."""
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "simulator": emulator.simulator,
        "parameters": emulator.parameters,
        "image_shape": list(emulator.image_shape),
        "arch": emulator.arch,
        "options": emulator.network.options,
        "scale": {"offset": emulator.scale.offset, "scale": emulator.scale.scale},
        "info": emulator.info,
    }
    state = {k: v.detach().contiguous() for k, v in emulator.network.state_dict().items()}
    if emulator.estimator is not None:
        critic = emulator.estimator.critic
        meta["estimator"] = {"arch": critic.name, "options": critic.options}
        est_state = emulator.estimator.state_dict()
        state.update({f"estimator.{k}": v.detach().contiguous() for k, v in est_state.items()})
    path = folder / EMULATOR_FILE
    with atomic_open(path, "wb") as fh:
        fh.write(save(state, metadata={"gangal": json.dumps(meta)}))
    return path


PositiveStrictInt = Annotated[StrictInt, Field(gt=0)]


class _ParameterEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: StrictStr
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> _ParameterEntry:
        if not self.low < self.high:
            raise ValueError(f"parameter {self.name!r}: low {self.low} is not below high {self.high}")
        return self


class _NetworkEntry(BaseModel):
    arch: StrictStr
    options: dict[str, Any]


class _ScaleEntry(BaseModel):
    offset: float = Field(allow_inf_nan=False)
    scale: float = Field(gt=0, allow_inf_nan=False)


class _EmulatorMetadata(BaseModel):
    """What :func:`save_emulator` writes; a file's metadata is checked against it before use."""

    format: Literal["gangal-emulator/1"]
    simulator: StrictStr
    parameters: list[_ParameterEntry] = Field(min_length=1)
    image_shape: tuple[PositiveStrictInt, PositiveStrictInt, PositiveStrictInt]
    arch: StrictStr
    options: dict[str, Any]
    scale: _ScaleEntry
    info: dict[str, Any] = Field(default_factory=dict)
    estimator: _NetworkEntry | None = None


def load_emulator(path: Path, *, registry: Any = None) -> TrainedEmulator:
    """Load an emulator saved by :func:`save_emulator` (a folder or the ``.safetensors`` file).

    The metadata is checked, the networks it describes are compared with the tensors before
    any memory is given to them, and the weights must fit, be float32 and finite: every
    problem is a :class:`ConfigError` naming the file.
    """
    from safetensors import SafetensorError, safe_open

    from .plugins import get_registry

    path = Path(path)
    file = path / EMULATOR_FILE if path.is_dir() else path
    if not file.exists():
        raise ConfigError(
            f"--emulator {path}: no {EMULATOR_FILE} there. Make one with `gangal pretrain --out {path}`."
        )
    try:
        with safe_open(str(file), framework="pt") as fh:
            meta_text = (fh.metadata() or {}).get("gangal")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConfigError(f"--emulator {file}: not a readable safetensors file ({exc}).") from exc
    try:
        raw = json.loads(meta_text or "")
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise ValueError(f"found format {found!r}")
        meta = _EmulatorMetadata.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise ConfigError(f"--emulator {file}: its gangal metadata is damaged ({problems}).") from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(
            f"--emulator {file}: not a gangal emulator (expected metadata format {FORMAT!r}; {exc})."
        ) from None
    registry = registry or get_registry()
    try:
        arch = registry.get("emulator", meta.arch).obj
        critic_cls = registry.get("critic", meta.estimator.arch).obj if meta.estimator else None
    except PluginError as exc:
        raise ConfigError(f"--emulator {file}: {exc}") from None
    n_params = len(meta.parameters)

    def build() -> dict[str, torch.nn.Module]:
        networks = {"": arch(meta.image_shape, n_params, **meta.options)}
        if meta.estimator is not None:
            critic = critic_cls(meta.image_shape, **meta.estimator.options)
            networks["estimator."] = ParameterEstimator(critic, n_params)
        return networks

    networks = load_checked(
        file, build, label=f"--emulator {file}", ignore=() if meta.estimator else ("estimator.",)
    )
    for module in networks.values():
        module.eval().requires_grad_(False)
    return TrainedEmulator(
        network=networks[""],
        scale=ImageScale(offset=meta.scale.offset, scale=meta.scale.scale),
        simulator=meta.simulator,
        parameters=[p.model_dump() for p in meta.parameters],
        arch=meta.arch,
        info=meta.info,
        estimator=networks.get("estimator."),
    )


def _parameter_table(simulator: Simulator) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "low": float(p.low), "high": float(p.high), "unit": p.unit}
        for p in simulator.parameters
    ]


def _network_class(registry: Any, kind: str, name: str) -> type:
    from .plugins import get_registry

    return (registry or get_registry()).get(kind, name).obj


def _simulate_normalised(
    simulator: Simulator, emu: TrainedEmulator, u: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    with torch.no_grad():
        images = call_simulator(
            simulator, emu.to_physical(u.detach().cpu()), generator=generator, where="a training batch"
        )
        return emu.scale.normalise(images)


def _block_seeds(n_blocks: int, generator: torch.Generator) -> torch.Tensor:
    """One simulator seed per block of a global batch, from the shared stream."""
    return torch.randint(0, 2**62, (n_blocks,), generator=generator)


def _simulate_blocks(
    simulator: Simulator, emu: TrainedEmulator, u: torch.Tensor, seeds: torch.Tensor, block: int
) -> torch.Tensor:
    """Normalised simulated images for this process's rows ``u``, ``block`` rows per seed.

    Each block's noise comes from its own seed, so the images of a row do not depend on how
    many processes share the batch (:mod:`gangal_core.distributed`).
    """
    parts = [
        _simulate_normalised(
            simulator, emu, u[j * block : (j + 1) * block], torch.Generator().manual_seed(int(seed))
        )
        for j, seed in enumerate(seeds.tolist())
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _flip(labels: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """The paper's random label flips: a fraction of labels y become 1 - y."""
    if fraction <= 0:
        return labels
    flip = torch.rand(labels.shape, generator=generator) < fraction
    return torch.where(flip, 1 - labels, labels)


def _smoothed(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


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
    _check_positive(iterations=iterations, batch_size=batch_size)
    shard = current_shard()
    block, rows, my_seeds = shard.blocks(batch_size)
    n_blocks = batch_size // block
    dev = torch.device(device)
    precision = check_precision(precision, dev)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    P = len(simulator.parameters)
    arch = _network_class(registry, "emulator", emulator_arch)
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
        parameters=_parameter_table(simulator),
        arch=emulator_arch,
    )

    def simulate_rows(u: torch.Tensor) -> torch.Tensor:
        """This process's rows, simulated with one seed per block drawn from the shared stream."""
        return _simulate_blocks(simulator, emu, u, _block_seeds(n_blocks, gen)[my_seeds], block)

    history = LossHistory()
    models: dict[str, torch.nn.Module] = {"emulator": network}
    estimator = None
    if estimate_parameters:
        critic_cls = _network_class(registry, "critic", critic_arch)
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
        critic = _network_class(registry, "critic", critic_arch)(
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
            same = _flip(_smoothed(batch_size, 0.7, 1.2, gen), label_flip, gen)[rows]
            differ = _flip(_smoothed(batch_size, 0.0, 0.3, gen), label_flip, gen)[rows]
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
        _load_state(state, models, optimisers, gen, history)
        emu.scale = ImageScale(**state["extra"]["scale"])  # the run's own pixel scale, not a refit

    loop = TrainingLoop(
        step,
        state=lambda: _state(models, optimisers, gen, history, extra={"scale": emu.scale.__dict__}),
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


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: expected a positive integer, found {value}.")


def _state(models, optimisers, gen, history, extra=None) -> dict[str, Any]:
    return {
        "models": {k: m.state_dict() for k, m in models.items()},
        "optimisers": {k: o.state_dict() for k, o in optimisers.items()},
        "generator": gen.get_state(),
        "torch": torch.get_rng_state(),
        "history": history.state_dict(),
        "extra": extra or {},
    }


def _load_state(state, models, optimisers, gen, history) -> None:
    for k, m in models.items():
        m.load_state_dict(state["models"][k])
    for k, o in optimisers.items():
        o.load_state_dict(state["optimisers"][k])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    history.load_state_dict(state["history"])


# --------------------------------------------------------------------------- true data
def make_true_set(
    simulator: Simulator,
    truth: dict[str, tuple[float, float]],
    *,
    n: int = 10000,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A true data set as in the paper: parameters drawn from independent Gaussians.

    Parameters
    ----------
    simulator : Simulator
        Makes the images.
    truth : dict
        ``{name: (mean, std)}`` for every parameter.
    n : int, optional
        Number of images (default 10000).
    seed : int, optional
        Seeds the parameter draws and the simulator's noise.

    Returns
    -------
    params, images : torch.Tensor
        ``(n, P)`` parameters and ``(n, *image_shape)`` images.  Draws outside a parameter's
        declared range are drawn again (a truncated Gaussian), since the simulator is only
        promised to work inside it.
    """
    names = simulator.parameter_names()
    missing = [k for k in names if k not in truth]
    if missing:
        raise ConfigError(f"the truth must give every parameter of {simulator.name!r}; missing {missing}.")
    gen = torch.Generator().manual_seed(seed + 7919)  # not the calibration's own stream
    mu = torch.tensor([truth[k][0] for k in names], dtype=torch.float32)
    sd = torch.tensor([truth[k][1] for k in names], dtype=torch.float32)
    lo, hi = simulator.bounds()
    params = mu + sd * torch.randn(n, len(names), generator=gen)
    for _ in range(100):
        bad = (params < lo) | (params > hi)
        if not bad.any():
            break
        redraw = mu + sd * torch.randn(params.shape, generator=gen)
        params = torch.where(bad, redraw, params)
    params = torch.minimum(torch.maximum(params, lo), hi)
    return params, simulate_in_chunks(simulator, params, generator=gen, where="the true set")


# --------------------------------------------------------------------------- training
@dataclass
class CalibrationResult:
    """What :func:`calibrate` found.

    Attributes
    ----------
    samples : numpy.ndarray
        ``(n_samples, P)`` best-match parameter samples from the generator, physical units.
    names : tuple of str
        Parameter names, the columns of ``samples``.
    generator : ParameterGenerator
        The generator at the end of training.
    losses : dict
        Loss history (``iterations`` and ``values``) for plotting.
    seconds : float
        Wall time of the training iterations.
    mean_err, std_err : numpy.ndarray or None
        ``(P,)`` standard errors of the best-match mean and spread of each parameter
        (:func:`snapshot_mixture`).
    """

    samples: np.ndarray
    names: tuple[str, ...]
    generator: ParameterGenerator
    losses: dict[str, Any]
    seconds: float
    mean_err: np.ndarray | None = None
    std_err: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        return self.samples.mean(0)

    @property
    def std(self) -> np.ndarray:
        return self.samples.std(0, ddof=1)


def autocorrelation_time(series: np.ndarray) -> np.ndarray:
    """Integrated autocorrelation time of each column of a ``(K, P)`` series, at least 1.

    ``tau = 1 + 2 * sum(rho_k)`` over the lags ``k`` before the first non-positive sample
    autocorrelation ``rho_k`` (the initial-positive truncation used for Markov chains; Geyer
    1992).  The variance of the series' mean is ``tau`` times its independent-sample value.
    A negative lag-1 correlation (an oscillation) gives 1: never fewer effective samples than
    there are snapshots' worth of evidence.
    """
    x = np.asarray(series, dtype=np.float64)
    k_max = x.shape[0] // 2
    dev = x - x.mean(0)
    c0 = (dev**2).mean(0)
    tau = np.ones(x.shape[1])
    for j in range(x.shape[1]):
        if c0[j] <= 0:
            continue
        for k in range(1, k_max):
            rho = float((dev[k:, j] * dev[:-k, j]).mean() / c0[j])
            if rho <= 0:
                break
            tau[j] += 2 * rho
    return tau


def snapshot_mixture(
    parts: list[np.ndarray],
    *,
    n_true: int,
    low: np.ndarray,
    high: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best-match samples from the generator snapshots, and standard errors of their mean and spread.

    Each snapshot's samples are moved to the common centre before they are pooled: the snapshots
    differ in location because the generator keeps oscillating around the equilibrium, and that
    oscillation is optimisation noise, not population spread (pooling them as they are inflates
    the spread by its variance, about 2% on the paper's cases: ``benchmarks/RESULTS.md``).
    Deviations are scaled by ``sqrt(n / (n - 1))`` so the within-snapshot variance stays unbiased.

    The standard errors add two independent parts in quadrature:

    * optimisation: the standard deviation of the ``K`` snapshots' means (spreads) over
      ``sqrt(K)``, times the square root of the series' integrated autocorrelation time
      (:func:`autocorrelation_time`), as for the mean of a Markov chain.  Snapshots in a row
      are treated as one correlated series, so the estimate keeps ``K - 1`` degrees of freedom
      where batch means over a few groups keep only a handful (and a noisy error estimate
      covers less than its nominal rate);
    * finite true set: ``s / sqrt(n_true)`` for the mean and ``s * sqrt((kurtosis - 1) / (4 n_true))``
      for the spread (``s / sqrt(2 n_true)`` for a Gaussian), the sampling error of a population
      estimated from ``n_true`` images.

    Parameters
    ----------
    parts : list of numpy.ndarray
        ``(n_k, P)`` samples of each snapshot, physical units, in the order they were taken.
    n_true : int
        Number of true images.
    low, high : numpy.ndarray
        The parameters' declared ranges; moved samples are kept inside them.

    Returns
    -------
    samples, mean_err, std_err : numpy.ndarray
        ``(sum n_k, P)`` samples and ``(P,)`` standard errors.  With fewer than two snapshots (or a
        snapshot of one sample) the samples are pooled as they are and the errors hold only the
        finite-true-set part.
    """
    parts = [np.asarray(p, dtype=np.float64) for p in parts]
    pooled = np.concatenate(parts)
    centre = pooled.mean(0)
    movable = len(parts) >= 2 and min(len(p) for p in parts) >= 2
    if movable:
        moved = [centre + (p - p.mean(0)) * np.sqrt(len(p) / (len(p) - 1)) for p in parts]
        samples = np.clip(np.concatenate(moved), low, high)
    else:
        samples = pooled
    s = samples.std(0, ddof=1)
    dev = samples - samples.mean(0)
    m2 = (dev**2).mean(0)
    kurtosis = np.divide((dev**4).mean(0), m2**2, out=np.full_like(m2, 3.0), where=m2 > 0)  # 3: Gaussian
    sampling_mean = s / np.sqrt(n_true)
    sampling_std = s * np.sqrt(np.maximum(kurtosis - 1.0, 0.0) / (4.0 * n_true))
    opt_mean = np.zeros_like(s)
    opt_std = np.zeros_like(s)
    if movable:
        k = len(parts)
        means = np.array([p.mean(0) for p in parts])
        stds = np.array([p.std(0, ddof=1) for p in parts])
        opt_mean = means.std(0, ddof=1) * np.sqrt(autocorrelation_time(means) / k)
        opt_std = stds.std(0, ddof=1) * np.sqrt(autocorrelation_time(stds) / k)
    return samples, np.hypot(opt_mean, sampling_mean), np.hypot(opt_std, sampling_std)


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
    _check_positive(iterations=iterations, batch_size=batch_size, n_samples=n_samples)
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
        critic_cls = _network_class(registry, "critic", critic_arch)
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
        return _simulate_blocks(simulator, emulator, u, _block_seeds(n_blocks, gen)[my_seeds], block)

    history = LossHistory()
    local = rows.stop - rows.start
    ones = torch.ones(local, device=dev)

    def labels(real: bool) -> torch.Tensor:
        if recipe == "default":
            return torch.full((local,), 0.9 if real else 0.0, device=dev)
        y = _smoothed(batch_size, 0.7, 1.2, gen) if real else _smoothed(batch_size, 0.0, 0.3, gen)
        return to_device(_flip(y, label_flip, gen)[rows], dev)

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
        _load_state(state, models, optimisers, gen, history)
        taken[:] = state["extra"]["snapshots"]

    loop = TrainingLoop(
        step,
        state=lambda: _state(models, optimisers, gen, history, extra={"snapshots": taken}),
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
    ours = _parameter_table(simulator)
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


def summarise(
    result: CalibrationResult,
    *,
    simulator: str,
    truth: dict[str, tuple[float, float]] | None,
    seconds: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``calibration.json`` document."""
    params: dict[str, dict[str, float]] = {}
    for j, name in enumerate(result.names):
        entry = {"mean": float(result.mean[j]), "std": float(result.std[j])}
        if result.mean_err is not None and result.std_err is not None:
            entry["mean_err"], entry["std_err"] = float(result.mean_err[j]), float(result.std_err[j])
        if truth is not None:
            entry["true_mean"], entry["true_std"] = (float(v) for v in truth[name])
        params[name] = entry
    doc = {
        "simulator": simulator,
        "parameters": params,
        "n_samples": int(result.samples.shape[0]),
        "seconds": round(float(seconds), 2),
    }
    if extra:
        doc.update(extra)
    return doc


def recovery(doc: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``|mu_bm - mu_true| / sigma_true`` and ``sigma_bm / sigma_true`` per parameter (truth known)."""
    out = {}
    for name, v in doc["parameters"].items():
        if "true_mean" in v and v["true_std"] > 0:
            out[name] = {
                "dmu_over_sigma": abs(v["mean"] - v["true_mean"]) / v["true_std"],
                "sigma_ratio": v["std"] / v["true_std"],
            }
    return out


def within_bar(
    doc: dict[str, Any], *, mean_tol: float = 0.15, ratio: tuple[float, float] = (0.75, 1.35)
) -> bool:
    """Whether every parameter meets the issue's recovery bar (needs the truth)."""
    rec = recovery(doc)
    return bool(rec) and all(
        r["dmu_over_sigma"] <= mean_tol and ratio[0] <= r["sigma_ratio"] <= ratio[1] for r in rec.values()
    )
