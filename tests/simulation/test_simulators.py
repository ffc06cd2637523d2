"""Tests of the paper's two simulators against ground truth, and of check_simulator on broken ones."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest
import torch
from gangal_circle import RING_WIDTH, CircleSimulator
from gangal_polynomial import LINE_WIDTH, PolynomialSimulator

from gangal_core import Parameter, Simulator
from gangal_core.simulation.testing import SimulatorCheckError, check_simulator

SIMULATORS = [PolynomialSimulator, CircleSimulator]


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _params(sim: type[Simulator], n: int, *, with_bounds: bool = True) -> torch.Tensor:
    """``n`` uniform draws, plus the lower and upper ends of every range."""
    params = sim.sample_uniform(n, generator=_generator(1))
    if with_bounds:
        low, high = sim.bounds()
        params = torch.cat([params, low[None], high[None]])
    return params


def _centres() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``x[col]``, ``y[row]`` of a 28x28 image, ``y`` up."""
    return np.arange(28) + 0.5, 27.5 - np.arange(28)


# ---- the contract ----------------------------------------------------------------------------
@pytest.mark.parametrize("sim_class", SIMULATORS, ids=lambda c: c.name)
def test_builtins_pass_check_simulator(sim_class: type[Simulator]) -> None:
    check_simulator(sim_class(), batch_size=8)


@pytest.mark.parametrize("sim_class", SIMULATORS, ids=lambda c: c.name)
def test_shapes_and_dtypes(sim_class: type[Simulator]) -> None:
    sim = sim_class()
    params = sim.sample_uniform(5, generator=_generator())
    assert params.dtype == torch.float32 and params.shape == (5, len(sim.parameters))
    images = sim.simulate(params, generator=_generator())
    assert images.dtype == torch.float32
    assert images.shape == (5, 1, 28, 28) and sim.image_shape == (1, 28, 28)
    assert torch.isfinite(images).all()
    low, high = sim.bounds()
    assert ((params >= low) & (params <= high)).all()


REFERENCE_TRUTH = {
    "polynomial": {"m": (1.5, 0.3), "x0": (10.0, 0.5), "c": (0.5, 0.1), "xsteps": (9.0, 0.5)},
    "circle": {"x0": (18.0, 0.8), "y0": (18.0, 0.8), "r": (8.0, 0.5), "n": (0.15, 0.05), "b": (0.9, 0.05)},
}
PHYSICAL_FLOOR = {("circle", "n"): 0.0}  # a noise level cannot go below 0


@pytest.mark.parametrize("sim_class", SIMULATORS, ids=lambda c: c.name)
def test_reference_truth_is_the_papers_table(sim_class: type[Simulator]) -> None:
    truth = REFERENCE_TRUTH[sim_class.name]
    assert sim_class.reference_truth == truth
    assert sim_class.parameter_names() == tuple(truth)
    for p in sim_class.parameters:
        mean, std = truth[p.name]
        low = max(mean - 4 * std, PHYSICAL_FLOOR.get((sim_class.name, p.name), -math.inf))
        assert p.low <= low + 1e-9, (p.name, p.low, low)
        assert p.high >= mean + 4 * std - 1e-9, (p.name, p.high, mean + 4 * std)


# ---- ground truth: the rendering against a per-pixel reference -------------------------------
def _polynomial_reference(p: torch.Tensor) -> np.ndarray:
    """The class docstring's formula, pixel by pixel, in float64."""
    m, x0, c, xsteps = (float(v) for v in p)
    xs, ys = _centres()
    out = np.zeros((28, 28))
    for row, y in enumerate(ys):
        for col, x in enumerate(xs):
            coverage = min(max(min(x + 0.5, x0 + xsteps) - max(x - 0.5, x0), 0.0), 1.0)
            height = m * (x - x0) + c
            out[row, col] = coverage * math.exp(-((y - height) ** 2) / (2 * LINE_WIDTH**2 * (1 + m * m)))
    return out


def _circle_reference(p: torch.Tensor) -> np.ndarray:
    """``b exp(-(rho^2 - r^2)^2 / (8 r^2 w^2))`` pixel by pixel, in float64 (noise-free)."""
    x0, y0, r, _, b = (float(v) for v in p)
    xs, ys = _centres()
    out = np.zeros((28, 28))
    for row, y in enumerate(ys):
        for col, x in enumerate(xs):
            rho2 = (x - x0) ** 2 + (y - y0) ** 2
            out[row, col] = b * math.exp(-((rho2 - r * r) ** 2) / (8 * r * r * RING_WIDTH**2))
    return out


def test_polynomial_matches_the_per_pixel_formula() -> None:
    params = _params(PolynomialSimulator, 40)
    images = PolynomialSimulator().simulate(params, generator=_generator())
    for i, p in enumerate(params):
        np.testing.assert_allclose(images[i, 0].double().numpy(), _polynomial_reference(p), rtol=0, atol=1e-4)


def test_circle_without_noise_matches_the_per_pixel_formula() -> None:
    params = _params(CircleSimulator, 40)
    params[:, 3] = 0.0  # n: no noise
    images = CircleSimulator().simulate(params, generator=_generator())
    for i, p in enumerate(params):
        np.testing.assert_allclose(images[i, 0].double().numpy(), _circle_reference(p), rtol=0, atol=1e-4)


def test_polynomial_is_exactly_zero_outside_its_extent() -> None:
    params = _params(PolynomialSimulator, 100)
    images = PolynomialSimulator().simulate(params, generator=_generator())
    assert not torch.isnan(images).any()
    xs, _ = _centres()
    for i, (_, x0, _, xsteps) in enumerate(params.tolist()):
        outside = (xs + 0.5 <= x0) | (xs - 0.5 >= x0 + xsteps)
        assert outside.any()
        assert (images[i, 0][:, torch.from_numpy(outside)] == 0).all()


def test_circle_is_exactly_zero_far_outside_the_ring() -> None:
    params = _params(CircleSimulator, 100)
    params[:, 3] = 0.0
    images = CircleSimulator().simulate(params, generator=_generator())
    assert not torch.isnan(images).any()
    xs, ys = _centres()
    for i, (x0, y0, r, _, _) in enumerate(params.tolist()):
        rho = np.hypot(xs[None, :] - x0, ys[:, None] - y0)
        far = torch.from_numpy(rho > r + 6 * RING_WIDTH * 2)  # 12 ring widths outside
        assert far.any()
        assert (images[i, 0][far] == 0).all()


def test_circle_of_zero_brightness_is_zero_not_nan() -> None:
    images = CircleSimulator().simulate(torch.tensor([[18.0, 18.0, 8.0, 0.0, 0.0]]), generator=_generator())
    assert torch.equal(images, torch.zeros(1, 1, 28, 28))


# ---- physics --------------------------------------------------------------------------------
def test_circle_noise_far_from_the_ring_has_std_n() -> None:
    n_noise, batch = 0.2, 400
    params = torch.tensor([[18.0, 18.0, 6.0, n_noise, 0.9]]).repeat(batch, 1)
    corners = (slice(0, 4), slice(-4, None))
    clean = CircleSimulator().simulate(torch.tensor([[18.0, 18.0, 6.0, 0.0, 0.9]]), generator=_generator())
    noisy = CircleSimulator().simulate(params, generator=_generator(3))
    samples = []
    for rows in corners:
        for cols in corners:
            assert (clean[0, 0, rows, cols] < 1e-6).all()  # the ring's light does not reach here
            samples.append(noisy[:, 0, rows, cols].reshape(-1))
    values = torch.cat(samples).double()
    assert len(values) == batch * 4 * 16
    assert abs(values.std().item() / n_noise - 1) < 0.05
    assert abs(values.mean().item()) < 5 * n_noise / math.sqrt(len(values))


def test_circle_brightest_pixel_lies_on_the_ring() -> None:
    params = _params(CircleSimulator, 50)
    params[:, 3] = 0.0
    images = CircleSimulator().simulate(params, generator=_generator())
    xs, ys = _centres()
    for i, (x0, y0, r, _, b) in enumerate(params.tolist()):
        row, col = divmod(int(images[i, 0].argmax()), 28)
        distance = math.hypot(xs[col] - x0, ys[row] - y0)
        assert abs(distance - r) <= math.sqrt(2) / 2 + 1e-6, (i, distance, r)
        assert images[i, 0].max().item() <= b * (1 + 1e-5)


def test_polynomial_peak_follows_the_line() -> None:
    params = _params(PolynomialSimulator, 100, with_bounds=False)
    images = PolynomialSimulator().simulate(params, generator=_generator()).double()
    xs, ys = _centres()
    y = torch.from_numpy(ys)
    checked = 0
    for i, (m, x0, c, xsteps) in enumerate(params.tolist()):
        for col, x in enumerate(xs):
            height = m * (x - x0) + c
            if not (x - 0.5 >= x0 and x + 0.5 <= x0 + xsteps and 3 <= height <= 25):
                continue  # only columns fully covered, with the whole profile inside the image
            column = images[i, 0, :, col]
            assert abs(ys[int(column.argmax())] - height) <= 0.5 + 1e-5
            assert abs((column * y).sum() / column.sum() - height) < 0.05
            # the line's cross-section is a Gaussian of width w across it: w sqrt(1 + m^2) along y
            light = math.sqrt(2 * math.pi) * LINE_WIDTH * math.sqrt(1 + m * m)
            assert column.sum().item() == pytest.approx(light, rel=0.02)
            checked += 1
    assert checked > 300


# ---- randomness and batching -----------------------------------------------------------------
def test_same_seed_same_images_different_seed_different_noise() -> None:
    sim = CircleSimulator()
    params = _params(CircleSimulator, 16)
    first = sim.simulate(params, generator=_generator(5))
    assert torch.equal(first, sim.simulate(params, generator=_generator(5)))
    other = sim.simulate(params, generator=_generator(6))
    assert not torch.equal(first, other)
    assert ((first - other).abs() > 0).float().mean() > 0.9  # noise differs in (nearly) every pixel


def test_polynomial_is_deterministic() -> None:
    sim = PolynomialSimulator()
    params = _params(PolynomialSimulator, 16)
    first = sim.simulate(params, generator=_generator(5))
    assert torch.equal(first, sim.simulate(params, generator=_generator(6)))


def test_polynomial_batch_equals_rows_one_by_one() -> None:
    sim = PolynomialSimulator()
    params = _params(PolynomialSimulator, 64)
    batch = sim.simulate(params, generator=_generator())
    rows = torch.cat([sim.simulate(params[i : i + 1], generator=_generator()) for i in range(len(params))])
    # the batched matrix product may round differently with the batch size: agree to float32 precision
    torch.testing.assert_close(batch, rows, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sim_class", SIMULATORS, ids=lambda c: c.name)
def test_simulate_does_not_modify_params(sim_class: type[Simulator]) -> None:
    params = _params(sim_class, 8)
    before = params.clone()
    sim_class().simulate(params, generator=_generator())
    assert torch.equal(params, before)


def test_circle_rejects_unphysical_parameters() -> None:
    with pytest.raises(ValueError, match="r must be > 0"):
        CircleSimulator().simulate(torch.tensor([[18.0, 18.0, -1.0, 0.1, 0.9]]), generator=_generator())


# ---- check_simulator catches broken simulators -------------------------------------------------
class Toy(Simulator):
    """A small, valid simulator: a ramp scaled by ``a``, a spot of height ``b``, and noise."""

    name = "toy"
    image_shape = (1, 4, 4)
    parameters = (Parameter("a", 0.0, 1.0), Parameter("b", 1.0, 2.0))

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        ramp = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
        images = params[:, 0, None, None, None] * ramp
        images[:, :, 1, 1] += params[:, 1, None]
        return images + 0.01 * torch.randn(images.shape, generator=generator)


class WrongDtype(Toy):
    def simulate(self, params, *, generator):
        return super().simulate(params, generator=generator).double()


class WrongShape(Toy):
    def simulate(self, params, *, generator):
        return super().simulate(params, generator=generator)[:, :, :, :3]


class MakesNaN(Toy):
    def simulate(self, params, *, generator):
        images = super().simulate(params, generator=generator)
        images[:, 0, 0, 0] = math.nan
        return images


class GlobalRandomness(Toy):
    def simulate(self, params, *, generator):
        return super().simulate(params, generator=generator) + torch.randn(len(params), 1, 4, 4)


class IgnoresB(Toy):
    def simulate(self, params, *, generator):
        params = params.clone()
        params[:, 1] = 1.5
        return super().simulate(params, generator=generator)


class MutatesInput(Toy):
    def simulate(self, params, *, generator):
        params[:, 0] += 1.0
        return super().simulate(params, generator=generator)


class Raises(Toy):
    def simulate(self, params, *, generator):
        raise RuntimeError("Geant4 crashed")


class ReturnsNumpy(Toy):
    def simulate(self, params, *, generator):
        return super().simulate(params, generator=generator).numpy()


class TruthOutsideRange(Toy):
    reference_truth: ClassVar = {"a": (3.0, 0.1)}


def test_check_simulator_passes_a_valid_toy() -> None:
    check_simulator(Toy())


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (WrongDtype, "must return float32, returned torch.float64"),
        (WrongShape, "returned shape (8, 1, 4, 3), expected (B, C, H, W) = (8, 1, 4, 4)"),
        (MakesNaN, "returned 8 NaN or infinite pixel values"),
        (GlobalRandomness, "same generator seed gave different images"),
        (IgnoresB, "moving parameter 'b'"),
        (MutatesInput, "modified the params tensor"),
        (Raises, "simulate() raised RuntimeError: Geant4 crashed"),
        (ReturnsNumpy, "must return a torch.Tensor, returned ndarray"),
        (TruthOutsideRange, "reference_truth['a'] mean 3.0 lies outside the declared range [0.0, 1.0]"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_check_simulator_names_the_problem(broken: type[Simulator], expected: str) -> None:
    with pytest.raises(SimulatorCheckError) as info:
        check_simulator(broken(), batch_size=8)
    message = str(info.value)
    assert message.startswith("simulator 'toy': "), message
    assert expected in message, message
    assert isinstance(info.value, AssertionError)
