"""Checks a plugin author runs against their own simulator, in their own tests.

Example
-------
>>> from gangal_core.testing import check_simulator
>>> check_simulator(MySimulator())          # doctest: +SKIP

Every failed check raises :class:`SimulatorCheckError` (an ``AssertionError``) whose
message names the simulator and says what is wrong.
"""

from __future__ import annotations

import torch

from .simulator import Simulator, validate_simulator_class

__all__ = ["SimulatorCheckError", "check_simulator"]


class SimulatorCheckError(AssertionError):
    """A simulator broke the :class:`gangal_core.Simulator` contract."""


def _fail(sim: object, message: str) -> None:
    raise SimulatorCheckError(f"simulator {getattr(sim, 'name', sim)!r}: {message}")


def _run(sim: Simulator, params: torch.Tensor, seed: int, what: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    before = params.clone()
    try:
        images = sim.simulate(params, generator=generator)
    except Exception as exc:
        _fail(sim, f"simulate() raised {type(exc).__name__}: {exc} (on {what})")
    if not torch.equal(params, before):
        _fail(sim, f"simulate() modified the params tensor it was given (on {what})")
    if not isinstance(images, torch.Tensor):
        _fail(sim, f"simulate() must return a torch.Tensor, returned {type(images).__name__} (on {what})")
    if images.device.type != "cpu":
        _fail(sim, f"simulate() must return a CPU tensor, returned one on {images.device} (on {what})")
    if images.dtype != torch.float32:
        _fail(sim, f"simulate() must return float32, returned {images.dtype} (on {what})")
    expected = (params.shape[0], *sim.image_shape)
    if tuple(images.shape) != expected:
        _fail(
            sim,
            f"simulate() returned shape {tuple(images.shape)}, expected (B, C, H, W) = {expected} "
            f"(on {what})",
        )
    bad = (~torch.isfinite(images)).sum().item()
    if bad:
        _fail(sim, f"simulate() returned {bad} NaN or infinite pixel values (on {what})")
    return images


def check_simulator(sim: Simulator, *, batch_size: int = 8, seed: int = 0) -> None:
    """Check that ``sim`` honours the Simulator contract.

    Checks, each failing with a message that names what is wrong: the class attributes
    (name, image shape, parameter ranges, reference truth) are valid; ``simulate``
    returns a float32 tensor of shape ``(B, C, H, W)`` with finite values at the
    lower and upper ends and the middle of the ranges and at random points; it does
    not modify its input; the same seed gives the same images; different parameters
    give different images.

    Parameters
    ----------
    sim : Simulator
        An instance of the simulator to check.
    batch_size : int, optional
        Images per trial batch.
    seed : int, optional
        Seed of the trial parameters and of the simulator's generator.

    Raises
    ------
    SimulatorCheckError
        On the first broken rule.
    """
    problems = validate_simulator_class(sim)
    if problems:
        _fail(sim, "; ".join(problems))
    low, high = (t.to(torch.float32) for t in sim.bounds())
    ones = torch.ones(batch_size, 1)
    trials = {
        "the lower ends of the ranges": low * ones,
        "the upper ends of the ranges": high * ones,
        "the middle of the ranges": (low + high) / 2 * ones,
        "random parameters": sim.sample_uniform(batch_size, generator=torch.Generator().manual_seed(seed)),
    }
    outputs = {what: _run(sim, params, seed, what) for what, params in trials.items()}
    again = _run(sim, trials["random parameters"], seed, "random parameters, second run")
    if not torch.equal(again, outputs["random parameters"]):
        _fail(
            sim,
            "the same parameters and the same generator seed gave different images; "
            "draw every random number from the `generator` argument",
        )
    for i, p in enumerate(sim.parameters):
        moved = trials["the middle of the ranges"].clone()
        moved[:, i] = p.low + 0.9 * (p.high - p.low)
        images = _run(sim, moved, seed, f"parameter {p.name!r} moved")
        if torch.equal(images, outputs["the middle of the ranges"]):
            _fail(
                sim,
                f"moving parameter {p.name!r} from the middle of [{p.low}, {p.high}] to 90% of it "
                "did not change the images; is the parameter used, and is its range right?",
            )
