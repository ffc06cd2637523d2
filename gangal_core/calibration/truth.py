"""True data sets built from a known truth (closure tests, the paper's Tables I and II)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from gangal_core.errors import ConfigError
from gangal_core.runtime.api import ArgumentError, arg
from gangal_core.simulation.simulator import Simulator, simulate_in_chunks

__all__ = ["make_true_set", "parse_truth"]


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


def parse_truth(items: tuple[str, ...], names: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """``("r=8,0.5", ...)`` (``--truth``) to ``{"r": (8.0, 0.5)}``, with errors that name the bad item.

    A mapping ``{"r": (8, 0.5)}`` (the Python API's ``truth``) is checked the same way.
    """
    if isinstance(items, Mapping):
        items = tuple(f"{k}={_pair(v)}" for k, v in items.items())
    truth: dict[str, tuple[float, float]] = {}
    for item in items:
        name, _, rest = item.partition("=")
        name = name.strip()
        try:
            mean, std = (float(v) for v in rest.split(","))
        except ValueError:
            raise ArgumentError(f"{arg('truth')} {item!r}: expected NAME=MEAN,STD, e.g. r=8,0.5.") from None
        if name not in names:
            raise ArgumentError(
                f"{arg('truth')} {item!r}: {name!r} is not a parameter; "
                f"the parameters are {', '.join(names)}."
            )
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise ArgumentError(
                f"{arg('truth')} {item!r}: need a finite mean and a positive standard deviation."
            )
        truth[name] = (mean, std)
    return truth


def _pair(value: object) -> str:
    """``(8, 0.5)`` as ``"8,0.5"``, the form ``--truth`` takes."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ",".join(map(str, value))
    return str(value)
