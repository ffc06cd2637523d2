"""The training loop both phases share: progress bar, checkpoints, resume, Ctrl-C.

A :class:`TrainingLoop` runs ``step(iteration) -> {loss name: value}`` for a number of
iterations.  Every ``checkpoint_every`` iterations, and when interrupted, it writes the
state it is given (networks, optimisers, random-number generator, loss history) to a
checkpoint atomically; with ``resume`` it starts from that checkpoint.  Ctrl-C saves and
raises :class:`Interrupted`, which the command line reports with how to resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gangal_core.errors import GangalError
from gangal_core.io.checkpoint import CheckpointError, save_checkpoint
from gangal_core.io.checkpoint import load_checkpoint as read_checkpoint
from gangal_core.runtime.distributed import current as current_shard
from gangal_core.runtime.progress import progress_bar

__all__ = ["Interrupted", "LossHistory", "TrainingLoop", "load_checkpoint"]


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
        Where checkpoints go; ``None`` disables them.
    checkpoint_every : int, optional
        Iterations between checkpoints (default 500).
    resume : bool, optional
        Start from ``checkpoint`` if it exists.
    description : str, optional
        Label of the progress bar.
    progress : bool, optional
        Show a rich progress bar (default True).
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
    ) -> None:
        self.step, self.state, self.load_state = step, state, load_state
        self.iterations = int(iterations)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.resume = resume
        self.description = description
        self.progress = progress
        self.start = 0
        self.seconds = 0.0  # wall time of this run's iterations, earlier sessions included

    def save(self, iteration: int) -> None:
        if self.checkpoint is None or not current_shard().is_main:  # one writer under torchrun
            return
        payload = {"iteration": int(iteration), "seconds": float(self.seconds), "state": self.state()}
        save_checkpoint(self.checkpoint, payload)

    def run(self) -> None:
        """Run to the end; raises :class:`Interrupted` (after saving) on Ctrl-C."""
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
        iteration = self.start
        began = time.perf_counter() - self.seconds
        bar = progress_bar(enabled=self.progress and current_shard().is_main, fields=("losses",))
        try:
            with bar:
                task = bar.add_task(self.description, total=self.iterations, completed=self.start, losses="")
                while iteration < self.iterations:
                    losses = self.step(iteration)
                    iteration += 1
                    self.seconds = time.perf_counter() - began
                    if iteration % 10 == 0 or iteration == self.iterations:
                        text = "  ".join(f"{k} {v:.3f}" for k, v in losses.items())
                        bar.update(task, completed=iteration, losses=text)
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
