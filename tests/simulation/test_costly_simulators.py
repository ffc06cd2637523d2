"""Costly and external simulators: metering against a budget, banks of stored simulations, TOML specs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from gangal_core.errors import ConfigError, PluginError, SimulationRefused
from gangal_core.plugins import get_registry
from gangal_core.simulation.bank import load_bank
from gangal_core.simulation.budget import BudgetExceeded, metered
from gangal_core.simulation.engine import run_simulation
from gangal_core.simulation.simulator import call_simulator
from gangal_core.simulation.spec import load_simulator_spec

SPEC = """
name = "ring"
image_shape = [1, 28, 28]
description = "a ring drawn by an external program"

[[parameters]]
name = "r"
low = 6.0
high = 10.0
unit = "px"
description = "ring radius"

[[parameters]]
name = "b"
low = 0.7
high = 1.1

[reference_truth]
r = [8.0, 0.5]
b = [0.9, 0.05]
"""


def test_metered_simulator_counts_times_and_refuses_past_its_limit() -> None:
    sim = metered(get_registry().simulator("polynomial"), limit=100)
    gen = torch.Generator().manual_seed(0)
    images = call_simulator(sim, sim.sample_uniform(64, generator=gen), generator=gen)
    assert images.shape == (64, *sim.image_shape)
    assert sim.images == 64 and sim.remaining == 36 and sim.seconds > 0
    with pytest.raises(BudgetExceeded, match=r"budget of 100 images is spent \(64 made\); 64 more"):
        call_simulator(sim, sim.sample_uniform(64, generator=gen), generator=gen)
    assert sim.images == 64  # a refused call makes nothing
    call_simulator(sim, sim.sample_uniform(36, generator=gen), generator=gen)
    assert sim.usage()["simulator_images"] == 100 and sim.usage()["budget"] == 100


def test_metered_simulator_makes_the_same_images_as_the_simulator() -> None:
    plain = get_registry().simulator("circle")
    sim = metered(plain)
    params = plain.sample_uniform(16, generator=torch.Generator().manual_seed(1))
    a = plain.simulate(params, generator=torch.Generator().manual_seed(2))
    b = sim.simulate(params, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and sim.parameter_names() == plain.parameter_names() and sim.remaining is None


def test_a_simulators_own_failure_is_still_a_plugin_error() -> None:
    class Broken(type(get_registry().simulator("circle"))):
        def simulate(self, params, *, generator):
            raise RuntimeError("boom")

    broken = metered(Broken(), limit=10)
    with pytest.raises(PluginError, match="raised RuntimeError"):
        call_simulator(broken, torch.zeros(4, 5), generator=torch.Generator())
    assert broken.images == 0 and broken.remaining == 10  # images never made are not spent


def test_spec_declares_a_simulator_that_cannot_be_called(tmp_path: Path) -> None:
    (tmp_path / "ring.toml").write_text(SPEC)
    sim = load_simulator_spec(tmp_path / "ring.toml")
    assert sim.name == "ring" and sim.image_shape == (1, 28, 28)
    assert sim.parameter_names() == ("r", "b") and sim.parameters[0].unit == "px"
    assert sim.reference_truth == {"r": (8.0, 0.5), "b": (0.9, 0.05)}
    with pytest.raises(SimulationRefused, match=r"declared by .*ring.toml.*--bank"):
        call_simulator(sim, torch.zeros(2, 2), generator=torch.Generator())


HEAD = "name = 'x'\nimage_shape = [1, 8, 8]\n"
ONE = "[[parameters]]\nname='a'\nlow=0\nhigh=1\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'\nimage_shape = [1, 8]\n" + ONE, "image_shape"),
        (HEAD + "[[parameters]]\nname='a'\nlow=2\nhigh=1\n", "low must be below"),
        (HEAD + "[[parameters]]\nname='a b'\nlow=0\nhigh=1\n", "identifier"),
        (HEAD, "parameters: Field required"),
        (HEAD + "colour = 1\n" + ONE, "colour"),
        (HEAD + ONE + "[reference_truth]\na = [5, 1]\n", "outside the declared range"),
        ("name = [", "not a valid TOML file"),
    ],
)
def test_bad_specs_are_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(ConfigError, match=rf"--simulator-spec .*bad.toml: .*{message}"):
        load_simulator_spec(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="cannot read it"):
        load_simulator_spec(tmp_path / "missing.toml")


def test_bank_from_gangal_simulate_npy_and_shards(tmp_path: Path) -> None:
    sim = get_registry().simulator("circle")
    run_simulation(sim, n=50, out=tmp_path / "a.npy", seed=3)
    run_simulation(sim, n=50, out=tmp_path / "shards", seed=3, chunk_size=16, shard_size=32)
    a = load_bank(tmp_path / "a.npy", sim)
    b = load_bank(tmp_path / "shards", sim)
    assert len(a) == len(b) == 50 and a.images.shape == (50, 1, 28, 28)
    lo, hi = sim.bounds()
    assert ((a.parameters >= lo) & (a.parameters <= hi)).all()
    np.testing.assert_array_equal(a.images, np.load(tmp_path / "a.npy"))
    train, held = a.split(0.2, seed=0)
    assert len(train) == 40 and len(held) == 10
    assert len(train.concatenate(held)) == 50


def _external_bank(folder: Path, n: int = 12, order: tuple[str, ...] = ("b", "r")) -> np.ndarray:
    """Images and a parameter CSV as a program outside gangal would write them."""
    rng = np.random.default_rng(0)
    params = np.column_stack([rng.uniform(6, 10, n), rng.uniform(0.7, 1.1, n)])  # r, b
    folder.mkdir()
    images = rng.random((n, 1, 28, 28)).astype(np.float32)
    np.save(folder / "images.npy", images)
    with open(folder / "images.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(order)
        for r, b in params:
            writer.writerow([{"r": r, "b": b}[k] for k in order])
    return params


def test_bank_from_plain_images_and_a_parameter_csv(tmp_path: Path) -> None:
    (tmp_path / "ring.toml").write_text(SPEC)
    sim = load_simulator_spec(tmp_path / "ring.toml")
    params = _external_bank(tmp_path / "sims")
    bank = load_bank(tmp_path / "sims" / "images.npy", sim)  # images.csv found beside it
    np.testing.assert_allclose(bank.parameters.numpy(), params, rtol=1e-6)  # columns reordered to r, b
    assert bank.images.shape == (12, 1, 28, 28)


def test_bank_mismatches_are_named(tmp_path: Path) -> None:
    (tmp_path / "ring.toml").write_text(SPEC)
    sim = load_simulator_spec(tmp_path / "ring.toml")
    _external_bank(tmp_path / "sims")
    images, table = tmp_path / "sims" / "images.npy", tmp_path / "sims" / "other.csv"
    (tmp_path / "sims" / "images.csv").rename(table)
    with pytest.raises(ConfigError, match=r"--bank .*images.npy: no parameter table found"):
        load_bank(images, sim)
    rows = table.read_text().splitlines()
    (tmp_path / "sims" / "short.csv").write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(ConfigError, match="12 images but 11 parameter rows"):
        load_bank(images, sim, parameters=tmp_path / "sims" / "short.csv")
    circle = get_registry().simulator("circle")
    with pytest.raises(ConfigError, match="header must name the parameters"):
        load_bank(images, circle, parameters=table)
    run_simulation(circle, n=10, out=tmp_path / "c.npy", seed=0)
    with pytest.raises(ConfigError, match="simulated with parameters x0, y0, r, n, b"):
        load_bank(tmp_path / "c.npy", get_registry().simulator("polynomial"))
    (tmp_path / "small.toml").write_text(SPEC.replace("[1, 28, 28]", "[1, 8, 8]"))
    small = load_simulator_spec(tmp_path / "small.toml")
    with pytest.raises(ConfigError, match=r"shape \(1, 28, 28\), but simulator 'ring' makes \(1, 8, 8\)"):
        load_bank(images, small, parameters=table)
