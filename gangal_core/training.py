"""The one training loop of gangal: progress, checkpoints, resume, Ctrl-C, the metrics file.

A :class:`TrainingLoop` runs ``step(iteration) -> {loss name: value}`` for a number of
iterations.  Every ``checkpoint_every`` iterations, and when interrupted, it writes the
state it is given to a checkpoint atomically; with ``resume`` it starts from that
checkpoint.  Ctrl-C saves and raises :class:`Interrupted`, which the command line reports
with how to resume.  Every :data:`LOG_EVERY` iterations (and at the last) the losses go to
the progress display and, beside the checkpoint, to ``metrics.csv``
(:mod:`gangal_core.io.metrics`).

:class:`Trainer` is the template every trainer follows (pretraining recipes, calibration
recipes, the chain's stages): it owns the registry of networks, optimisers, schedules and
random streams, the one checkpoint format, and the loop; a subclass supplies only
:meth:`Trainer.step` (its losses) and what the finished run makes (:meth:`Trainer.result`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gangal_core.errors import GangalError
from gangal_core.io.checkpoint import CheckpointError, save_checkpoint
from gangal_core.io.checkpoint import load_checkpoint as read_checkpoint
from gangal_core.io.metrics import MetricsLog, metrics_path
from gangal_core.runtime.devices import check_precision
from gangal_core.runtime.distributed import current as current_shard
from gangal_core.runtime.progress import progress_bar

__all__ = [
    "LOG_EVERY",
    "Interrupted",
    "LossHistory",
    "Trainer",
    "TrainingLoop",
    "load_checkpoint",
    "r1_penalty",
]

#: Iterations between two updates of the progress display and two rows of ``metrics.csv``
#: (the last iteration is always logged too).
LOG_EVERY = 10


class Interrupted(GangalError):
    """Training stopped by Ctrl-C after saving a checkpoint."""

    exit_code = 130


class LossHistory:
    """Loss values every ``every`` iterations, for the loss-curve plot."""

    def __init__(self, every: int = 10) -> None:
        self.every = int(every)
        self.iterations: list[int] = []
        self.values: dict[str, list[float]] = {}

    def add(self, iteration: int, losses: dict[str, float]) -> None:
        if iteration % self.every:
            return
        self.iterations.append(int(iteration))
        for key, value in losses.items():
            self.values.setdefault(key, []).append(float(value))

    def state_dict(self) -> dict[str, Any]:
        return {"every": self.every, "iterations": list(self.iterations), "values": dict(self.values)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.every = int(state["every"])
        self.iterations = [int(i) for i in state["iterations"]]
        self.values = {k: [float(v) for v in vs] for k, vs in state["values"].items()}


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :class:`TrainingLoop` (safetensors + JSON, no pickle).

    Returns ``{"iteration": int, "seconds": float, "state": tree}``; raises
    :class:`~gangal_core.checkpoint.CheckpointError` naming the file if it is not one.
    """
    state, _ = read_checkpoint(path)
    if not isinstance(state, dict) or "state" not in state or "iteration" not in state:
        raise CheckpointError(f"checkpoint {path} cannot be read: it is not a training checkpoint.")
    return state


class TrainingLoop:
    """Run ``step`` for ``iterations``, with checkpoints, resume and a progress bar.

    Parameters
    ----------
    step : callable
        ``step(iteration) -> dict`` of float losses for the progress bar and history.
    state : callable
        ``state() -> dict`` of everything to save (tensors, state dicts, plain values).
    load_state : callable
        ``load_state(dict)``: the inverse of ``state``.
    iterations : int
        Total iterations of the run.
    checkpoint : Path, optional
        Where checkpoints go, and the metrics file beside them
        (:func:`~gangal_core.io.metrics.metrics_path`); ``None`` disables both.
    checkpoint_every : int, optional
        Iterations between checkpoints (default 500).
    resume : bool, optional
        Start from ``checkpoint`` if it exists.
    description : str, optional
        Label of the progress display.
    progress : bool, optional
        Show progress (default True): a bar on a terminal, lines in a log.
    note : callable, optional
        ``note(iteration) -> str``: text the progress display shows after the losses (the
        simulator images made so far, say).
    """

    def __init__(
        self,
        step: Callable[[int], dict[str, float]],
        *,
        state: Callable[[], dict[str, Any]],
        load_state: Callable[[dict[str, Any]], None],
        iterations: int,
        checkpoint: Path | None = None,
        checkpoint_every: int = 500,
        resume: bool = False,
        description: str = "training",
        progress: bool = True,
        note: Callable[[int], str] | None = None,
    ) -> None:
        self.step, self.state, self.load_state = step, state, load_state
        self.iterations = int(iterations)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.resume = resume
        self.description = description
        self.progress = progress
        self.note = note or (lambda iteration: "")
        self.start = 0
        self.seconds = 0.0  # wall time of this run's iterations, earlier sessions included
        writes = self.checkpoint is not None and current_shard().is_main  # one writer under torchrun
        self.metrics = MetricsLog(metrics_path(self.checkpoint)) if writes else None

    def save(self, iteration: int) -> None:
        if self.checkpoint is None or not current_shard().is_main:  # one writer under torchrun
            return
        if self.metrics is not None:  # the rows up to the checkpoint are on disk before it is
            self.metrics.flush(sync=True)
        payload = {"iteration": int(iteration), "seconds": float(self.seconds), "state": self.state()}
        save_checkpoint(self.checkpoint, payload)

    def run(self) -> None:
        """Run to the end; raises :class:`Interrupted` (after saving) on Ctrl-C."""
        self._restore()
        if self.metrics is not None:
            self.metrics.open(keep_until=self.start)  # the rows past the checkpoint come again
        try:
            self._loop()
        finally:
            if self.metrics is not None:
                self.metrics.flush()  # a run that fails keeps its rows up to the failure

    def _restore(self) -> None:
        """Clear what a killed save left; with ``resume``, load the checkpoint if there is one."""
        if self.checkpoint is not None and self.checkpoint.parent.is_dir() and current_shard().is_main:
            # a save killed half-way leaves its temporary file; the checkpoint itself is intact
            for part in self.checkpoint.parent.glob(f".{self.checkpoint.name}.*.part"):
                part.unlink(missing_ok=True)
        if self.resume and self.checkpoint is not None and self.checkpoint.exists():
            saved = load_checkpoint(self.checkpoint)
            try:  # a sound checkpoint of another run (another command, other options) does not fit
                self.load_state(saved["state"])
                self.start, self.seconds = int(saved["iteration"]), float(saved.get("seconds", 0.0))
            except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
                raise CheckpointError(
                    f"checkpoint {self.checkpoint} cannot be resumed: it does not hold the state of this "
                    f"run ({type(exc).__name__}: {exc}). Delete it (or choose another --out) to start afresh."
                ) from None

    def _loop(self) -> None:
        iteration = self.start
        began = time.perf_counter() - self.seconds
        bar = progress_bar(enabled=self.progress and current_shard().is_main, fields=("losses", "note"))
        try:
            with bar:
                task = bar.add_task(self.description, total=self.iterations, completed=self.start, losses="",
                                    note=self.note(self.start))  # fmt: skip
                while iteration < self.iterations:
                    losses = self.step(iteration)
                    iteration += 1
                    self.seconds = time.perf_counter() - began
                    if iteration % LOG_EVERY == 0 or iteration == self.iterations:
                        text = "  ".join(f"{k} {v:.3f}" for k, v in losses.items())
                        bar.update(task, completed=iteration, losses=text, note=self.note(iteration))
                        if self.metrics is not None:
                            self.metrics.add(iteration, self.seconds, losses)
                    if iteration % self.checkpoint_every == 0 and iteration < self.iterations:
                        self.save(iteration)
        except KeyboardInterrupt:
            self.save(iteration)
            where = f"; checkpoint {self.checkpoint}" if self.checkpoint is not None else ""
            raise Interrupted(
                f"interrupted at iteration {iteration} of {self.iterations}{where}. "
                "Run the same command with --resume to continue."
            ) from None
        self.save(iteration)


class Trainer(ABC):
    """A training run: what it trains, its one checkpoint format, and the loop (template method).

    A subclass registers what it trains in :attr:`models`, :attr:`optimisers`,
    :attr:`schedulers` and :attr:`generators` (by name; a network and its optimiser share
    the name, so :meth:`update` finds both), and supplies :meth:`step` (one iteration's
    losses) and :meth:`result` (what the finished run makes).  Saving, resuming, the loss
    history and the loop live here, as in sbi's trainers and the chain's ``GANTrainer``.

    The checkpoint state (:meth:`state`) is the same for every trainer::

        models      {name: state dict}       networks (and the chain's moving average)
        optimisers  {name: state dict}
        schedulers  {name: state dict}       learning-rate schedules
        generators  {name: RNG state}        the run's torch.Generator streams
        torch       CPU RNG state            dropout, weight initialisation
        cuda        CUDA RNG state           only when the run trains on a CUDA device
        history     LossHistory state
        extra       {...}                    what :meth:`extra_state` adds

    Parameters
    ----------
    iterations : int
        Total iterations of the run.
    checkpoint : Path, optional
        Checkpoint file; ``None``: no checkpoints.  The losses of every :data:`LOG_EVERY`-th
        iteration go to a CSV file beside it (``metrics.csv`` beside ``checkpoint.safetensors``,
        ``metrics-X.csv`` beside ``checkpoint-X.safetensors``).
    checkpoint_every : int, optional
        Iterations between checkpoints (default 500).
    resume : bool, optional
        Start from ``checkpoint`` if it exists.
    progress : bool, optional
        Show progress with the losses: a bar on a terminal, lines in a log.
    description : str, optional
        Label of the progress display.
    device : str or torch.device, optional
        Where the networks train (default the CPU).
    precision : {"float32", "bf16"}, optional
        ``"bf16"``: forward passes under bfloat16 autocast.
    history_every : int, optional
        Iterations between the loss values kept for the loss plot (default 10).
    """

    def __init__(
        self,
        *,
        iterations: int,
        checkpoint: Path | None = None,
        checkpoint_every: int = 500,
        resume: bool = False,
        progress: bool = True,
        description: str = "training",
        device: str | torch.device = "cpu",
        precision: str = "float32",
        history_every: int = 10,
    ) -> None:
        self.device = torch.device(device)
        self.precision = check_precision(precision, self.device)
        self.shard = current_shard()
        self.iterations = int(iterations)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every, self.resume = checkpoint_every, resume
        self.progress, self.description = progress, description
        self.models: dict[str, Any] = {}  # anything with state_dict / load_state_dict
        self.optimisers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        self.generators: dict[str, torch.Generator] = {}
        self.history = LossHistory(every=history_every)
        self.seconds = 0.0  # wall time of the iterations, earlier sessions included

    # ---- what a trainer supplies --------------------------------------------------------------
    @abstractmethod
    def step(self, iteration: int) -> dict[str, float]:
        """One iteration; returns its losses (for the progress bar and the history)."""

    def result(self) -> Any:
        """What the finished run makes (called by :meth:`train` after the loop)."""
        return None

    def before_training(self) -> None:
        """Hook run before the loop (training modes, the dropout seed); by default nothing."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Run-specific values the checkpoint keeps beside the registered objects."""
        return {}

    def load_extra_state(self, extra: dict[str, Any]) -> None:
        """The inverse of :meth:`extra_state`; by default nothing to restore."""
        return None

    def simulator_images(self, iteration: int) -> int | None:
        """Simulator images the run has made by the end of ``iteration`` iterations, all sessions
        together, for the progress display; by default ``None``: the trainer does not count them."""
        return None

    # ---- what the base does -------------------------------------------------------------------
    def update(self, name: str, loss: torch.Tensor) -> None:
        """One optimiser step of network ``name`` on ``loss`` (gradients averaged over processes).

        The optimiser registered as ``name`` steps, then its schedule if one is registered.
        """
        optimiser = self.optimisers[name]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.shard.average_gradients(self.models[name].parameters())
        optimiser.step()
        if name in self.schedulers:
            self.schedulers[name].step()

    def state(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue the run exactly (the format above)."""
        state: dict[str, Any] = {
            "models": {k: m.state_dict() for k, m in self.models.items()},
            "optimisers": {k: o.state_dict() for k, o in self.optimisers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "generators": {k: g.get_state() for k, g in self.generators.items()},
            "torch": torch.get_rng_state(),
        }
        if self.device.type == "cuda":  # dropout on the GPU draws from the device's own stream
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        state["history"] = self.history.state_dict()
        state["extra"] = self.extra_state()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """The inverse of :meth:`state`."""
        for kind, registry in (("models", self.models), ("optimisers", self.optimisers),
                               ("schedulers", self.schedulers)):  # fmt: skip
            for name, thing in registry.items():
                thing.load_state_dict(state[kind][name])
        for name, generator in self.generators.items():
            generator.set_state(state["generators"][name])
        torch.set_rng_state(state["torch"])
        if self.device.type == "cuda" and "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], self.device)
        self.history.load_state_dict(state["history"])
        self.load_extra_state(state["extra"])

    def fit(self) -> None:
        """Run the loop to the last iteration: resume, checkpoints, Ctrl-C (:class:`TrainingLoop`)."""
        loop = TrainingLoop(
            self._iterate,
            state=self.state,
            load_state=self.load_state,
            iterations=self.iterations,
            checkpoint=self.checkpoint,
            checkpoint_every=self.checkpoint_every,
            resume=self.resume,
            description=self.description,
            progress=self.progress,
            note=self._progress_note,
        )
        try:
            loop.run()
        finally:
            self.seconds = loop.seconds

    def train(self) -> Any:
        """Train to the last iteration (from the checkpoint with ``resume``); returns :meth:`result`."""
        self.before_training()
        self.fit()
        return self.result()

    def _progress_note(self, iteration: int) -> str:
        images = self.simulator_images(iteration)
        return "" if images is None else f"{images:,} simulator images"

    def _iterate(self, iteration: int) -> dict[str, float]:
        losses = self.step(iteration)
        self.history.add(iteration, losses)
        return losses


def r1_penalty(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """``E ||grad_x D(x)||^2`` over a batch: the R1 gradient penalty without its ``gamma / 2``.

    Shared by the chained GAN (``--r1``) and the calibration trainer (``r1_gamma``).

    ``images`` must require gradients and ``logits`` be the discriminator's output for them;
    the result keeps the graph, so it can be added to the discriminator's loss.
    """
    (grad,) = torch.autograd.grad(logits.float().sum(), images, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()
