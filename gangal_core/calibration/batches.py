"""Simulated training batches shared by pretraining and calibration.

Simulator noise is seeded per block of a global batch, so a row's images do not depend on
how many processes share the batch (:mod:`gangal_core.runtime.distributed`).
"""

from __future__ import annotations

from typing import Any

import torch

from gangal_core.errors import ConfigError
from gangal_core.simulation.simulator import Simulator, call_simulator

from .emulator import TrainedEmulator

__all__ = []


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


def training_state(models, optimisers, gen, history, extra=None) -> dict[str, Any]:
    return {
        "models": {k: m.state_dict() for k, m in models.items()},
        "optimisers": {k: o.state_dict() for k, o in optimisers.items()},
        "generator": gen.get_state(),
        "torch": torch.get_rng_state(),
        "history": history.state_dict(),
        "extra": extra or {},
    }


def load_training_state(state, models, optimisers, gen, history) -> None:
    for k, m in models.items():
        m.load_state_dict(state["models"][k])
    for k, o in optimisers.items():
        o.load_state_dict(state["optimisers"][k])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    history.load_state_dict(state["history"])
