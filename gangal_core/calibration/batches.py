"""Simulated training batches and other pieces shared by pretraining and calibration.

Simulator noise is seeded per block of a global batch, so a row's images do not depend on
how many processes share the batch (:mod:`gangal_core.runtime.distributed`).
"""

from __future__ import annotations

from typing import Any

import torch

from gangal_core.errors import ConfigError
from gangal_core.runtime.distributed import current as current_shard
from gangal_core.simulation.simulator import Simulator, call_simulator

from .emulator import TrainedEmulator

__all__ = []


def choose(recipes: dict[str, Any], name: str, option: str) -> Any:
    """The recipe registered as ``name``, or a :class:`ConfigError` naming ``option``."""
    if name not in recipes:
        raise ConfigError(f"{option}: expected one of {', '.join(recipes)}, found {name!r}.")
    return recipes[name]


class GlobalBatch:
    """This process's share of every global batch of ``size`` rows.

    Every random draw is of the whole global batch and then this process's :attr:`rows` are
    kept, so the random streams do not depend on the number of processes
    (:mod:`gangal_core.runtime.distributed`).
    """

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.block, self.rows, self._seeds = current_shard().blocks(self.size)
        self.local = self.rows.stop - self.rows.start

    def simulate(
        self, simulator: Simulator, emu: TrainedEmulator, u: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Normalised simulated images of this process's rows ``u``, one seed per block of the batch."""
        seeds = block_seeds(self.size // self.block, generator)[self._seeds]
        return simulate_blocks(simulator, emu, u, seeds, self.block)


def network_class(registry: Any, kind: str, name: str) -> type:
    from gangal_core.plugins import get_registry

    return (registry or get_registry()).get(kind, name).obj


def simulate_normalised(
    simulator: Simulator, emu: TrainedEmulator, u: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    with torch.no_grad():
        images = call_simulator(
            simulator, emu.to_physical(u.detach().cpu()), generator=generator, where="a training batch"
        )
        return emu.scale.normalise(images)


def block_seeds(n_blocks: int, generator: torch.Generator) -> torch.Tensor:
    """One simulator seed per block of a global batch, from the shared stream."""
    return torch.randint(0, 2**62, (n_blocks,), generator=generator)


def simulate_blocks(
    simulator: Simulator, emu: TrainedEmulator, u: torch.Tensor, seeds: torch.Tensor, block: int
) -> torch.Tensor:
    """Normalised simulated images for this process's rows ``u``, ``block`` rows per seed.

    Each block's noise comes from its own seed, so the images of a row do not depend on how
    many processes share the batch (:mod:`gangal_core.distributed`).
    """
    parts = [
        simulate_normalised(
            simulator, emu, u[j * block : (j + 1) * block], torch.Generator().manual_seed(int(seed))
        )
        for j, seed in enumerate(seeds.tolist())
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def flip_labels(labels: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """The paper's random label flips: a fraction of labels y become 1 - y."""
    if fraction <= 0:
        return labels
    flip = torch.rand(labels.shape, generator=generator) < fraction
    return torch.where(flip, 1 - labels, labels)


def smoothed_labels(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: expected a positive integer, found {value}.")


def paper_labels(n: int, *, real: bool, flip: float, generator: torch.Generator) -> torch.Tensor:
    """The paper's labels: drawn in 0.7-1.2 (real, or a same pair) or 0.0-0.3, a fraction flipped."""
    low, high = (0.7, 1.2) if real else (0.0, 0.3)
    return flip_labels(smoothed_labels(n, low, high, generator), flip, generator)
