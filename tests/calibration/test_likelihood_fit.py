"""The population fit by the emulator's likelihood, and its correction by simulations.

A toy whose likelihood is known exactly: a 4x4 image whose pixels are a fixed linear map of
two parameters plus white noise.  Its "emulator" is that map (optionally drawn too faint), so
the tests can say what the fit must find.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch

from gangal_core import Parameter, Simulator
from gangal_core.calibration.emulator import TrainedEmulator
from gangal_core.calibration.likelihood import (
    MIN_EFFECTIVE_DRAWS,
    fit_population,
    likelihood_refinement,
    screen_effective_draws,
)
from gangal_core.calibration.networks import Emulator, ImageScale

SHAPE = (1, 4, 4)
MAP = 0.6 * torch.stack([torch.ones(16), torch.tensor([1.0, -1.0] * 8)])  # orthogonal rows


class LinearSimulator(Simulator):
    """Pixels ``u @ MAP`` plus white noise of ``NOISE``, ``u`` the parameters on [-1, 1]."""

    name = "linear-toy"
    image_shape = SHAPE
    parameters = (Parameter("a", -1.0, 1.0), Parameter("c", -1.0, 1.0))
    NOISE: ClassVar[float] = 0.3

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        mean = params.float() @ MAP
        return (mean + self.NOISE * torch.randn(mean.shape, generator=generator)).reshape(-1, *SHAPE)


class LinearEmulator(Emulator):
    """The toy's exact likelihood, its signal multiplied by ``gain`` (1: exact)."""

    name = "linear-toy"

    def __init__(self, image_shape, n_parameters, *, gain: float = 1.0, noise: float = 0.3) -> None:
        super().__init__(image_shape, n_parameters, gain=gain, noise=noise)
        self.gain, self.noise = gain, noise

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (self.gain * u @ MAP).reshape(-1, *SHAPE)
        return mean, torch.full_like(mean, self.noise)


def _emulator(*, gain: float = 1.0, noise: float = 0.3) -> TrainedEmulator:
    params = [{"name": p.name, "low": p.low, "high": p.high, "unit": ""} for p in LinearSimulator.parameters]
    network = LinearEmulator(SHAPE, 2, gain=gain, noise=noise)
    return TrainedEmulator(network, ImageScale(offset=0.0, scale=1.0), "linear-toy", params, "linear-toy")


def _true_set(mean, std, n: int, *, seed: int, noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    params = torch.tensor(mean) + torch.tensor(std) * torch.randn(n, 2, generator=gen)
    sim = LinearSimulator()
    sim.NOISE = noise
    return params, sim.simulate(params, generator=gen)


MEAN, STD = [0.1, -0.2], [0.15, 0.1]


def test_the_fit_recovers_a_population_the_images_only_blur() -> None:
    params, images = _true_set(MEAN, STD, 1000, seed=1)
    # start from a wrong, too-wide guess: the fit must move to the truth
    fit, _ = fit_population(_emulator(), images, np.array([0.2, -0.1]), np.array([0.3, 0.2]), draws=5000)
    drawn_mean, drawn_std = params.mean(0).numpy(), params.std(0).numpy()
    assert fit.trusted() and fit.effective_draws > 100
    # within three of its own standard errors of the drawn parameters' mean and spread
    assert np.all(np.abs(fit.mean - drawn_mean) < 3 * fit.mean_err), (fit.mean, drawn_mean, fit.mean_err)
    assert np.all(np.abs(fit.std - drawn_std) < 3 * fit.std_err + 0.01), (fit.std, drawn_std, fit.std_err)
    # the errors are those of a deconvolution: larger than the spread over sqrt(n), not absurdly so
    assert np.all(fit.mean_err > drawn_std / np.sqrt(1000)) and np.all(fit.mean_err < 0.05)


def test_sharp_images_are_screened_out_before_any_fit() -> None:
    _, images = _true_set(MEAN, STD, 500, seed=2, noise=0.002)
    sharp = _emulator(noise=0.002)
    assert screen_effective_draws(sharp, images, np.array(MEAN), np.array(STD)) < MIN_EFFECTIVE_DRAWS
    samples = np.random.default_rng(0).normal(MEAN, STD, (2000, 2)).astype(np.float32)
    refined = likelihood_refinement(LinearSimulator(), sharp, images, samples, 500)
    assert refined.samples is None and refined.simulated is None
    assert not refined.record["adopted"] and "too sharply" in refined.record["reason"]


@pytest.mark.parametrize("gain", [0.8, 1.0])
def test_the_simulations_correct_an_emulator_that_draws_the_signal_too_faint(gain: float) -> None:
    params, images = _true_set(MEAN, STD, 1000, seed=3)
    emulator = _emulator(gain=gain)
    # the generator's best match: off in mean and spread, with a shape the refinement keeps
    rng = np.random.default_rng(4)
    samples = np.array([0.2, -0.3]) + np.array([0.25, 0.05]) * rng.standard_normal((5000, 2))
    samples = samples.astype(np.float32)
    refined = likelihood_refinement(LinearSimulator(), emulator, images, samples, 1000, seed=5, draws=5000)
    assert refined.record["adopted"], refined.record
    fit = refined.record["fit"]
    drawn_mean, drawn_std = params.mean(0).numpy(), params.std(0).numpy()
    mean, std = refined.samples.mean(0), refined.samples.std(0, ddof=1)
    if gain < 1:  # a faint emulator reads the population too wide, and the correction takes it out
        assert np.all(np.asarray(fit["std"]) > 1.1 * drawn_std)
    assert np.all(np.abs(mean - drawn_mean) < 3 * refined.mean_err), (mean, drawn_mean, refined.mean_err)
    assert np.all(np.abs(std - drawn_std) < 3 * refined.std_err + 0.01), (std, drawn_std, refined.std_err)
    assert refined.simulated.shape == (1000, *SHAPE)
    # the samples were moved and scaled, not replaced: their correlation is the generator's
    assert np.allclose(np.corrcoef(refined.samples.T), np.corrcoef(samples.T), atol=0.02)


def test_a_run_in_rounds_adopts_the_fit_and_checks_it_with_the_same_simulations() -> None:
    from gangal_core.calibration.budget import BudgetPlan
    from gangal_core.calibration.costly import CostlyRun, _refine, costly_predictive_check
    from gangal_core.calibration.result import CalibrationResult
    from gangal_core.simulation.budget import metered

    _, images = _true_set(MEAN, STD, 600, seed=6)
    meter = metered(LinearSimulator(), limit=400)
    samples = (np.array(MEAN) + 2 * np.array(STD) * np.random.default_rng(7).standard_normal((3000, 2)))
    result = CalibrationResult(samples.astype(np.float32), ("a", "c"), generator=None, losses={}, seconds=0.0)
    run = CostlyRun(meter, result, _emulator(), BudgetPlan(400, 0, (), 400), {})
    lines: list[str] = []
    _refine(run, images, seed=0, report=lines.append)
    assert run.record["likelihood_fit"]["adopted"] and "likelihood fit adopted" in lines[0]
    assert meter.images == 400 and run.check_images.shape == (400, *SHAPE)  # the plan's share, no more
    corrected = run.record["likelihood_fit"]["corrected"]
    assert np.allclose(run.result.mean, corrected["mean"], atol=1e-4)
    assert np.allclose(run.result.std, corrected["std"], rtol=0.01)
    assert run.result.std[0] < 0.7 * samples.std(0)[0]  # the generator's too-wide spread was taken in
    check = costly_predictive_check(run, images, None, seed=0)
    assert check is not None and check.n_test == 200 and meter.images == 400  # nothing simulated again
