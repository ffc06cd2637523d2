"""The population fit by the emulator's likelihood, and its correction by simulations.

A toy whose likelihood is known exactly: a 4x4 image whose pixels are a fixed linear map of
two parameters plus white noise.  Its "emulator" is that map (optionally drawn too faint), so
the tests can say what the fit must find.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pytest
import torch

from gangal_core import Parameter, Simulator
from gangal_core.calibration.emulator import TrainedEmulator
from gangal_core.calibration.likelihood import (
    MAX_CORRECTION,
    MIN_EFFECTIVE_DRAWS,
    MIN_LOCAL_EFFECTIVE_DRAWS,
    estimator_calibration,
    fit_population,
    fit_population_per_image,
    likelihood_refinement,
    population_for_rounds,
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
    """The toy's exact likelihood, its signal multiplied by ``gain`` (1: exact; or one per parameter)."""

    name = "linear-toy"

    def __init__(self, image_shape, n_parameters, *, gain: float | list[float] = 1.0, noise: float = 0.3):
        super().__init__(image_shape, n_parameters, gain=gain, noise=noise)
        self.gain, self.noise = torch.as_tensor(gain), noise

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = ((self.gain * u) @ MAP).reshape(-1, *SHAPE)
        return mean, torch.full_like(mean, self.noise)


def _emulator(*, gain: float | list[float] = 1.0, noise: float = 0.3) -> TrainedEmulator:
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


def test_weights_floored_out_of_the_slow_exponential_change_no_figure(monkeypatch) -> None:
    """Log-weights more than -EXP_FLOOR below an image's largest are floored (exp is 10-30x
    slower below float32's normal range): the fit is the one without the floor."""
    from gangal_core.calibration import likelihood

    _, images = _true_set(MEAN, STD, 400, seed=4, noise=0.1)
    start = (np.array([0.0, 0.0]), np.array([0.4, 0.4]))
    floored, shared = fit_population(_emulator(noise=0.1), images, *start, draws=3000, seed=2)
    loglik = likelihood._log_likelihood(_emulator(noise=0.1), images, shared.unit)
    below = loglik - loglik.amax(1, keepdim=True) < likelihood.EXP_FLOOR
    assert below.float().mean() > 0.5  # most weights are floored
    monkeypatch.setattr(likelihood, "EXP_FLOOR", float("-inf"))
    exact, _ = fit_population(_emulator(noise=0.1), images, *start, shared=shared)
    for field in ("mean", "std", "mean_err", "std_err"):
        np.testing.assert_allclose(getattr(floored, field), getattr(exact, field), rtol=1e-6)
    assert floored.effective_draws == pytest.approx(exact.effective_draws, rel=1e-6)


def test_sharp_images_are_fitted_image_by_image() -> None:
    params, images = _true_set(MEAN, STD, 800, seed=2, noise=0.01)
    sharp = _emulator(noise=0.01)
    # draws shared by all images would rest on a handful per image: the screen says so
    assert screen_effective_draws(sharp, images, np.array(MEAN), np.array(STD)) < MIN_EFFECTIVE_DRAWS
    # each image's own draws, from a wrong and too-wide start
    fit = fit_population_per_image(sharp, images, np.array([0.3, 0.1]), np.array([0.4, 0.3]), seed=1)
    assert fit.trusted() and fit.effective_draws >= 3 * MIN_LOCAL_EFFECTIVE_DRAWS, fit.effective_draws
    drawn_mean, drawn_std = params.mean(0).numpy(), params.std(0).numpy()
    assert np.all(np.abs(fit.mean - drawn_mean) < 3 * fit.mean_err + 1e-3), (fit.mean, drawn_mean)
    assert np.all(np.abs(fit.std - drawn_std) < 3 * fit.std_err + 1e-3), (fit.std, drawn_std, fit.std_err)
    # sharp images pin the population down to about its own sampling error
    assert np.all(fit.mean_err < 1.5 * drawn_std / np.sqrt(800))


def test_a_round_is_led_by_the_fit_on_faint_images_only() -> None:
    """The best match that leads a round where the images are faint is drawn from the
    shared-draws fit's population, without the correlations of the samples it started from;
    on sharp images there is none."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((2000, 2))
    z[:, 1] = 0.8 * z[:, 0] + 0.6 * z[:, 1]  # a generator's spurious correlation, 0.8
    samples = np.array([0.2, -0.1]) + np.array([0.3, 0.2]) * z  # wrong and too wide too
    _, faint = _true_set(MEAN, STD, 1000, seed=1)
    led = population_for_rounds(_emulator(), faint, samples, seed=4, draws=5000)
    fit, _ = fit_population(_emulator(), faint, samples.mean(0), samples.std(0, ddof=1), seed=4, draws=5000)
    assert led is not None and led.shape == samples.shape and np.all(np.abs(led) <= 1)
    np.testing.assert_allclose(led.mean(0), fit.mean, atol=4 * float(fit.std.max()) / np.sqrt(len(led)))
    np.testing.assert_allclose(led.std(0, ddof=1), fit.std, rtol=0.1)
    assert abs(np.corrcoef(led.T)[0, 1]) < 0.1  # the fit models no correlation: none is invented
    assert np.all(np.abs(fit.mean - np.array(MEAN)) < 4 * fit.mean_err)  # and it moved to the truth
    _, sharp = _true_set(MEAN, STD, 800, seed=2, noise=0.01)
    assert population_for_rounds(_emulator(noise=0.01), sharp, samples, seed=4, draws=5000) is None


def _sharp_simulator() -> LinearSimulator:
    sim = LinearSimulator()
    sim.NOISE = 0.01
    return sim


def test_sharp_images_keep_the_generator_where_the_emulator_is_off() -> None:
    """Parameter ``a`` drawn right, ``c`` 25% too faint: the fit is taken for ``a`` only."""
    params, images = _true_set(MEAN, STD, 800, seed=8, noise=0.01)
    emulator = _emulator(gain=[1.0, 0.8], noise=0.01)
    rng = np.random.default_rng(9)
    samples = np.array([0.2, -0.15]) + np.array([0.25, 0.12]) * rng.standard_normal((4000, 2))
    samples = samples.astype(np.float32)
    refined = likelihood_refinement(_sharp_simulator(), emulator, images, samples, 600, seed=3)
    record = refined.record
    assert record["method"] == "per image" and record["adopted"], record
    assert record["adopted_parameters"] == ["a"], record
    bias = np.abs(record["correction_in_spreads"])
    assert bias[0] <= MAX_CORRECTION < bias[1]
    a, c = refined.samples[:, 0], refined.samples[:, 1]
    drawn = params[:, 0].numpy()
    assert abs(a.mean() - drawn.mean()) < 3 * refined.mean_err[0] + 1e-3
    assert abs(a.std(ddof=1) - drawn.std()) < 3 * refined.std_err[0] + 1e-3
    # c is the generator's, untouched; its errors are left for the caller to fill
    assert np.allclose(c, samples[:, 1]) and np.isnan(refined.mean_err[1])
    # the simulations were drawn from the generator's best match: the predictive check's images
    assert refined.simulated.shape == (600, *SHAPE)


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
    samples = np.array(MEAN) + 2 * np.array(STD) * np.random.default_rng(7).standard_normal((3000, 2))
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


def test_a_run_says_which_parameters_rest_on_the_generator_alone() -> None:
    from gangal_core.calibration.budget import BudgetPlan
    from gangal_core.calibration.costly import CostlyRun, _refine
    from gangal_core.calibration.result import CalibrationResult
    from gangal_core.simulation.budget import metered

    _, images = _true_set(MEAN, STD, 600, seed=10, noise=0.01)
    meter = metered(_sharp_simulator(), limit=400)
    samples = np.array(MEAN) + np.array(STD) * np.random.default_rng(11).standard_normal((3000, 2))
    result = CalibrationResult(samples.astype(np.float32), ("a", "c"), generator=None, losses={}, seconds=0.0,
                               mean_err=np.array([0.5, 0.25]), std_err=np.array([0.5, 0.25]))  # fmt: skip
    run = CostlyRun(meter, result, _emulator(gain=[1.0, 0.8], noise=0.01), BudgetPlan(400, 0, (), 400), {})
    lines: list[str] = []
    _refine(run, images, seed=0, report=lines.append)
    assert "best match in c (the emulator's bias" in lines[0] and "adopted for a (" in lines[1], lines
    # a's errors are the fit's; c keeps the generator's
    assert run.result.mean_err[0] < 0.1 and run.result.mean_err[1] == 0.25 and run.result.std_err[1] == 0.25
    assert meter.images == 400 and run.record["likelihood_fit"]["adopted_parameters"] == ["a"]


def test_the_per_image_search_gives_the_same_answer_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from gangal_core.calibration import likelihood

    params, images = _true_set(MEAN, STD, 300, seed=12, noise=0.01)
    emulator = _emulator(noise=0.01)
    x, start = likelihood._normalised(emulator, images), torch.zeros(300, 2)
    whole = likelihood._best_parameters(emulator, x, start, steps=150)
    cov = likelihood._laplace_covariance(emulator, whole)
    monkeypatch.setattr(likelihood, "_image_chunks", lambda n, pixels: torch.arange(n).split(64))
    assert torch.allclose(likelihood._best_parameters(emulator, x, start, steps=150), whole, atol=1e-6)
    assert torch.allclose(likelihood._laplace_covariance(emulator, whole), cov, rtol=1e-4)
    # each image's maximum likelihood is its own parameters, to about the noise over the signal
    assert (whole - params).abs().max() < 0.02
    assert emulator.network.training  # the search leaves the network's mode as it found it


def test_a_sharp_fit_taken_for_no_parameter_still_checks_the_best_match_with_its_simulations() -> None:
    from gangal_core.calibration.budget import BudgetPlan
    from gangal_core.calibration.costly import CostlyRun, _refine, costly_predictive_check
    from gangal_core.calibration.result import CalibrationResult
    from gangal_core.simulation.budget import metered

    _, images = _true_set(MEAN, STD, 600, seed=13, noise=0.01)
    meter = metered(_sharp_simulator(), limit=400)
    samples = np.array(MEAN) + np.array(STD) * np.random.default_rng(14).standard_normal((3000, 2))
    samples = samples.astype(np.float32)
    result = CalibrationResult(samples, ("a", "c"), generator=None, losses={}, seconds=0.0)
    run = CostlyRun(meter, result, _emulator(gain=[0.7, 0.7], noise=0.01), BudgetPlan(400, 0, (), 400), {})
    _refine(run, images, seed=0, report=lambda line: None)
    record = run.record["likelihood_fit"]
    assert not record["adopted"] and record["adopted_parameters"] == [], record
    assert "every parameter" in record["reason"]
    assert np.array_equal(run.result.samples, samples)  # the generator's best match stands
    check = costly_predictive_check(run, images, None, seed=0)
    assert check is not None and meter.images == 400  # checked with the fit's simulations, none made again


class LinearEstimator(torch.nn.Module):
    """Reads the toy's parameters off its images by least squares, ``scale`` times, plus ``noise``."""

    def __init__(self, *, scale: float | list[float] = 1.0, noise: float = 0.0) -> None:
        super().__init__()
        self.scale, self.noise = torch.as_tensor(scale), noise
        self.weight = torch.nn.Parameter(torch.linalg.pinv(MAP))  # (16, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        u = self.scale * (images.flatten(1) @ self.weight)
        gen = torch.Generator().manual_seed(int(images.shape[0]))  # noise of its own, repeatable
        return u + self.noise * torch.randn(u.shape, generator=gen)


def _with_estimator(emulator: TrainedEmulator, estimator: torch.nn.Module) -> TrainedEmulator:
    emulator.estimator = estimator
    return emulator


def _off_best_match(seed: int) -> np.ndarray:
    samples = np.array([0.2, -0.15]) + np.array([0.25, 0.12]) * np.random.default_rng(seed).standard_normal(
        (4000, 2)
    )
    return samples.astype(np.float32)


@pytest.mark.parametrize("shrunk", [True, False])
def test_the_estimator_reads_a_parameter_the_emulator_draws_too_faint(shrunk: bool) -> None:
    """``c`` drawn 25% too faint: the estimator (calibrated on the same simulations) reads ``c``;
    ``a`` too, unless it reads ``a`` at half its value, where the per-image fit takes ``a``.
    Either way both land on the drawn population."""
    params, images = _true_set(MEAN, STD, 800, seed=8, noise=0.01)
    estimator = LinearEstimator(scale=[0.5 if shrunk else 1.0, 1.0])
    emulator = _with_estimator(_emulator(gain=[1.0, 0.8], noise=0.01), estimator)
    samples = _off_best_match(9)
    refined = likelihood_refinement(_sharp_simulator(), emulator, images, samples, 600, seed=3)
    record = refined.record
    if shrunk:
        assert record["adopted_parameters"] == ["a"] and record["estimator_parameters"] == ["c"], record
        assert np.allclose(record["estimator"]["slope"], [0.5, 1.0], atol=0.01)
    else:  # the estimator reads both: the per-image fit is not run
        assert record["estimator_parameters"] == ["a", "c"] and "fit" not in record, record
    drawn_mean, drawn_std = params.mean(0).numpy(), params.std(0).numpy()
    mean, std = refined.samples.mean(0), refined.samples.std(0, ddof=1)
    assert np.all(np.isfinite(refined.mean_err)) and np.all(np.isfinite(refined.std_err))
    assert np.all(np.abs(mean - drawn_mean) < 3 * refined.mean_err + 1e-3), (
        mean,
        drawn_mean,
        refined.mean_err,
    )
    assert np.all(np.abs(std - drawn_std) < 3 * refined.std_err + 1e-3), (std, drawn_std, refined.std_err)
    assert abs(std[1] - samples[:, 1].std()) > 0.01  # c moved off the generator's too-wide spread


def test_a_shrinking_estimator_is_not_taken() -> None:
    """An estimator that reads ``c`` at half its value fails the slope test: c stays the generator's."""
    _, images = _true_set(MEAN, STD, 800, seed=8, noise=0.01)
    emulator = _with_estimator(_emulator(gain=[1.0, 0.8], noise=0.01), LinearEstimator(scale=0.5))
    samples = _off_best_match(9)
    refined = likelihood_refinement(_sharp_simulator(), emulator, images, samples, 600, seed=3)
    assert refined.record["estimator_parameters"] == [] and refined.record["adopted_parameters"] == ["a"]
    assert np.allclose(refined.record["estimator"]["slope"], 0.5, atol=0.01)
    assert np.allclose(refined.samples[:, 1], samples[:, 1]) and np.isnan(refined.mean_err[1])


@pytest.mark.parametrize(("noise", "taken"), [(0.06, True), (0.2, False)])
def test_the_estimators_error_is_taken_out_of_the_spread(noise: float, taken: bool) -> None:
    """Estimates scattered by ``noise`` about the truth: the calibration takes that scatter out of
    the spread when it is small next to it, and declines when it is larger than the spread."""
    true_params, images = _true_set(MEAN, STD, 2000, seed=15, noise=0.01)
    sim_params = torch.tensor([0.15, -0.25]) + torch.tensor([0.2, 0.15]) * torch.randn(
        1500, 2, generator=torch.Generator().manual_seed(16)
    )
    sims = _sharp_simulator().simulate(sim_params, generator=torch.Generator().manual_seed(17))
    emulator = _with_estimator(_emulator(noise=0.01), LinearEstimator(noise=noise))
    found = estimator_calibration(emulator, images, sim_params, sims)
    assert found is not None and bool(found.taken.all()) is taken
    assert np.allclose(found.scatter, noise / sim_params.std(0).numpy(), rtol=0.1)
    if taken:
        drawn_mean, drawn_std = true_params.mean(0).numpy(), true_params.std(0).numpy()
        assert np.all(np.abs(found.mean - drawn_mean) < 3 * found.mean_err), (found.mean, drawn_mean)
        assert np.all(np.abs(found.std - drawn_std) < 3 * found.std_err), (
            found.std,
            drawn_std,
            found.std_err,
        )
        # without taking the scatter out the spread would be too wide by more than its error
        assert np.all(np.sqrt(drawn_std**2 + noise**2) - drawn_std > 2 * found.std_err)
    assert estimator_calibration(_emulator(noise=0.01), images, sim_params, sims) is None  # none to read with


def test_a_run_says_which_parameters_the_estimator_read() -> None:
    from gangal_core.calibration.budget import BudgetPlan
    from gangal_core.calibration.costly import CostlyRun, _refine
    from gangal_core.calibration.result import CalibrationResult
    from gangal_core.simulation.budget import metered

    _, images = _true_set(MEAN, STD, 600, seed=10, noise=0.01)
    meter = metered(_sharp_simulator(), limit=400)
    result = CalibrationResult(_off_best_match(11), ("a", "c"), generator=None, losses={}, seconds=0.0,
                               mean_err=np.array([0.5, 0.25]), std_err=np.array([0.5, 0.25]))  # fmt: skip
    emulator = _with_estimator(_emulator(gain=[1.0, 0.8], noise=0.01), LinearEstimator(scale=[0.5, 1.0]))
    run = CostlyRun(meter, result, emulator, BudgetPlan(400, 0, (), 400), {})
    lines: list[str] = []
    _refine(run, images, seed=0, report=lines.append)
    assert len(lines) == 1 and "adopted for a (" in lines[0], lines
    assert "c read by the parameter estimator" in lines[0]
    # c's errors are the estimator's, no longer the generator's
    assert run.result.mean_err[1] < 0.05 and run.result.std_err[1] < 0.05
    assert meter.images == 400 and run.record["likelihood_fit"]["estimator_parameters"] == ["c"]


def test_the_parameters_left_to_the_generator_are_named() -> None:
    from gangal_core.calibration.costly import _kept_by_generator

    record: dict = {"method": "per image", "estimator_parameters": ["a"], "adopted_parameters": []}
    assert _kept_by_generator(record, ("a", "c")) == "c"  # the per-image fit did not hold: no bias to give
    record["correction_in_spreads"] = [0.0, 0.3]
    assert _kept_by_generator(record, ("a", "c")) == "c (the emulator's bias +0.30 of its spread)"
    record["estimator_parameters"] = ["a", "c"]
    assert _kept_by_generator(record, ("a", "c")) == ""
    assert _kept_by_generator({"method": "shared draws"}, ("a", "c")) == ""  # faint images: all or nothing


def test_an_estimator_blind_to_a_parameter_is_refused_quietly() -> None:
    """An estimator that reads ``c`` as a constant has slope 0: nothing is divided by it into the
    answer, no warning is raised, and ``c`` goes to the per-image fit as if there were no estimator."""
    _, images = _true_set(MEAN, STD, 800, seed=8, noise=0.01)
    emulator = _with_estimator(_emulator(noise=0.01), LinearEstimator(scale=[1.0, 0.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refined = likelihood_refinement(_sharp_simulator(), emulator, images, _off_best_match(9), 600, seed=3)
    record = refined.record
    assert record["estimator_parameters"] == ["a"] and record["adopted_parameters"] == ["c"], record
    assert record["estimator"]["slope"][1] == 0.0 and np.all(np.isfinite(refined.samples))


@pytest.mark.parametrize(("screen", "expected"), [(1500.0, 3000), (300.0, 15_000), (100.0, 30_000)])
def test_a_rounds_fit_takes_the_draws_its_aim_needs(monkeypatch, screen: float, expected: int) -> None:
    """A round's fit takes ROUND_EFFECTIVE_DRAWS effective draws per image by the screen: fewer
    draws where the images are faint, never more than the final fit's nor fewer than the screen's."""
    from gangal_core.calibration import likelihood

    asked = []

    def fit(emulator, images, mean, std, *, seed, draws):
        asked.append(draws)
        return fit_population(emulator, images, mean, std, seed=seed, draws=500)

    monkeypatch.setattr(likelihood, "screen_effective_draws", lambda *args, **kwargs: screen)
    monkeypatch.setattr(likelihood, "fit_population", fit)
    _, faint = _true_set(MEAN, STD, 300, seed=1)
    samples = np.random.default_rng(0).normal(MEAN, STD, size=(200, 2))
    assert likelihood.ROUND_EFFECTIVE_DRAWS == 3 * MIN_EFFECTIVE_DRAWS
    population_for_rounds(_emulator(), faint, samples, seed=1, draws=30_000)
    assert asked == [expected]
