"""Tests for gangal_core.adapters: per-sample functions as batched simulators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gangal_core import FunctionSimulator, Parameter, Simulator, simulator_from_function
from gangal_core.simulation.testing import check_simulator

PARAMETERS = (Parameter("x", 1.0, 7.0, unit="px"), Parameter("level", 0.0, 2.0))


def noisy_spot(params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian spot at column ``x`` on a flat ``level``, with noise, (1, 6, 8); module level to pickle."""
    yy, xx = np.mgrid[:6, :8]
    spot = np.exp(-((xx - params[0]) ** 2 + (yy - 3) ** 2) / 2) + params[1]
    return (spot + rng.normal(0.0, 0.1, spot.shape))[None]


def flat_spot(params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same spot as a 2-D ``(H, W)`` image."""
    return noisy_spot(params, rng)[0]


def _spot(func=noisy_spot, **options) -> FunctionSimulator:
    return simulator_from_function(func, name="spot", image_shape=(1, 6, 8), parameters=PARAMETERS, **options)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_and_the_simulator_contract() -> None:
    sim = _spot()
    assert isinstance(sim, Simulator)
    assert sim.parameter_names() == ("x", "level")
    params = sim.sample_uniform(5, generator=_generator())
    assert params.shape == (5, 2) and params.dtype == torch.float32
    images = sim.simulate(params, generator=_generator())
    assert images.shape == (5, 1, 6, 8) and images.dtype == torch.float32
    check_simulator(sim)


def test_each_sample_sees_its_params_and_an_rng_of_its_own() -> None:
    seen: list[tuple[np.ndarray, int]] = []

    def record(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seen.append((p, int(rng.integers(1 << 62))))
        return np.full((1, 2, 2), p[0])

    sim = simulator_from_function(record, name="rec", image_shape=(1, 2, 2), parameters=PARAMETERS)
    params = torch.tensor([[1.5, 0.0], [2.5, 1.0], [3.5, 2.0]])
    images = sim.simulate(params, generator=_generator())
    assert [p.dtype for p, _ in seen] == [np.float64] * 3
    np.testing.assert_array_equal(np.stack([p for p, _ in seen]), params.double().numpy())
    assert len({draw for _, draw in seen}) == 3  # independent streams
    np.testing.assert_array_equal(images[:, 0, 0, 0].numpy(), [1.5, 2.5, 3.5])


def test_same_seed_same_images() -> None:
    sim = _spot()
    params = sim.sample_uniform(6, generator=_generator())
    first = sim.simulate(params, generator=_generator(3))
    assert torch.equal(first, sim.simulate(params, generator=_generator(3)))
    assert not torch.equal(first, sim.simulate(params, generator=_generator(4)))


def test_images_do_not_depend_on_the_batch_split() -> None:
    # a sample's seed is drawn before work is split, so chunk_size changes nothing
    params = _spot().sample_uniform(10, generator=_generator())
    a = _spot(chunk_size=3).simulate(params, generator=_generator(9))
    b = _spot(chunk_size=64).simulate(params, generator=_generator(9))
    assert torch.equal(a, b)


@pytest.mark.slow
def test_workers_give_the_same_images_as_in_process() -> None:
    params = _spot().sample_uniform(40, generator=_generator())
    in_process = _spot(workers=0).simulate(params, generator=_generator(7))
    pooled = _spot(workers=2, chunk_size=8)
    try:
        assert torch.equal(pooled.simulate(params, generator=_generator(7)), in_process)
        assert pooled._pool is not None  # the work really went to the pool
    finally:
        pooled.close()
    assert pooled._pool is None


def test_2d_images_accepted_for_one_channel() -> None:
    params = _spot().sample_uniform(4, generator=_generator())
    flat = _spot(flat_spot).simulate(params, generator=_generator(2))
    assert flat.shape == (4, 1, 6, 8)
    assert torch.equal(flat, _spot().simulate(params, generator=_generator(2)))


def test_wrong_image_shape_is_a_clear_error() -> None:
    sim = simulator_from_function(
        lambda p, rng: np.zeros((5, 5)), name="bad", image_shape=(1, 6, 8), parameters=PARAMETERS
    )
    with pytest.raises(ValueError, match=r"returned an image of shape \(5, 5\), expected \(1, 6, 8\)"):
        sim.simulate(torch.ones(2, 2), generator=_generator())


def test_2d_image_for_several_channels_is_a_clear_error() -> None:
    sim = simulator_from_function(
        lambda p, rng: np.zeros((6, 8)), name="bad", image_shape=(2, 6, 8), parameters=PARAMETERS
    )
    with pytest.raises(ValueError, match=r"returned an image of shape \(6, 8\), expected \(2, 6, 8\)"):
        sim.simulate(torch.ones(2, 2), generator=_generator())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "two words"}, "name must be a non-empty string without spaces"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"image_shape": (6, 8)}, "image_shape must be a tuple of 3 positive ints"),
        ({"image_shape": (1, 0, 8)}, "image_shape must be a tuple of 3 positive ints"),
        ({"parameters": []}, "parameters must be a non-empty tuple"),
        ({"parameters": [PARAMETERS[0], PARAMETERS[0]]}, "parameter names must be unique"),
        ({"reference_truth": {"y": (1.0, 0.1)}}, "reference_truth names unknown parameter 'y'"),
        ({"workers": -1}, "workers must be >= 0"),
        ({"chunk_size": 0}, "chunk_size >= 1"),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, dict) else "",
)
def test_invalid_construction_is_a_value_error(options: dict, message: str) -> None:
    arguments = {"name": "spot", "image_shape": (1, 6, 8), "parameters": PARAMETERS, **options}
    with pytest.raises(ValueError, match=r"simulator_from_function|workers") as info:
        simulator_from_function(noisy_spot, **arguments)
    assert message in str(info.value)


def test_invalid_parameter_range_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"Parameter 'x': low must be below high, found low=2.0 high=1.0"):
        Parameter("x", 2.0, 1.0)
    with pytest.raises(ValueError, match=r"Parameter 'x': high must be a finite number"):
        Parameter("x", 0.0, float("inf"))
    with pytest.raises(ValueError, match="Python identifier"):
        Parameter("two words", 0.0, 1.0)
