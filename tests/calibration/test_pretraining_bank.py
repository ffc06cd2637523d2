"""Pretraining from a bank of stored simulations: no simulator calls, held-out fit, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gangal_core.calibration import pretrain
from gangal_core.errors import ConfigError
from gangal_core.plugins import get_registry
from gangal_core.simulation.bank import SimulationBank
from gangal_core.simulation.budget import metered
from gangal_core.training import Interrupted

TINY = {"iterations": 24, "batch_size": 32, "progress": False, "seed": 5}


@pytest.fixture(scope="module")
def bank() -> SimulationBank:
    sim = get_registry().simulator("polynomial")
    gen = torch.Generator().manual_seed(0)
    params = sim.sample_uniform(400, generator=gen)
    return SimulationBank(params, sim.simulate(params, generator=gen), "fixture")


def test_a_bank_is_trained_from_without_calling_the_simulator(bank: SimulationBank) -> None:
    never = metered(get_registry().simulator("polynomial"), limit=0)  # any call is refused
    emu = pretrain(never, bank=bank, **TINY)
    info = emu.info["bank"]
    assert never.images == 0
    assert info["train"] == 360 and info["held_out"] == 40
    assert info["epochs"] == pytest.approx(24 * 32 / 360, abs=0.01)
    curve = info["held_out_curve"]
    assert len(curve["loss"]) == 24 and curve["iterations"][-1] == 24  # measured every iteration here
    best = curve["loss"].index(min(curve["loss"]))
    assert info["kept_iteration"] == curve["iterations"][best] and info["held_out_loss"] == min(curve["loss"])
    assert 0 < info["held_out_rmse"] < 1
    assert emu.estimator is not None  # the parameter estimator learns from the bank too


def test_the_kept_weights_fit_the_held_out_simulations_best(bank: SimulationBank) -> None:
    """The emulator returned is the one of the lowest held-out loss, not the last one."""
    emu = pretrain(get_registry().simulator("polynomial"), bank=bank, **TINY)
    _, held = bank.split(0.1, seed=5 + 104729)  # the split pretrain makes
    u = emu.to_unit(held.parameters)
    x = emu.scale.normalise(held.images)
    with torch.no_grad():
        mean, _ = emu.network(u)
    rmse = float((x - mean).square().mean().sqrt())
    assert rmse == pytest.approx(emu.info["bank"]["held_out_rmse"], rel=1e-4)


def test_no_held_out_part_keeps_the_last_weights(bank: SimulationBank) -> None:
    emu = pretrain(get_registry().simulator("polynomial"), bank=bank, validation=0, **TINY)
    assert emu.info["bank"]["held_out"] == 0 and "kept_iteration" not in emu.info["bank"]


def test_the_siamese_recipe_needs_repeated_simulations(bank: SimulationBank) -> None:
    with pytest.raises(ConfigError, match=r"--pretrain-recipe paper: .* two simulations of the same"):
        pretrain(get_registry().simulator("polynomial"), bank=bank, recipe="paper", **TINY)
    with pytest.raises(ConfigError, match="--validation"):
        pretrain(get_registry().simulator("polynomial"), bank=bank, validation=1.0, **TINY)


def test_pretraining_from_a_bank_resumes_exactly(bank: SimulationBank, tmp_path: Path, interrupt_at) -> None:
    sim = get_registry().simulator("polynomial")
    whole = pretrain(sim, bank=bank, **TINY)
    checkpoint = tmp_path / "checkpoint.safetensors"
    interrupt_at(13)
    with pytest.raises(Interrupted):
        pretrain(sim, bank=bank, checkpoint=checkpoint, checkpoint_every=5, **TINY)
    interrupt_at(None)
    resumed = pretrain(sim, bank=bank, checkpoint=checkpoint, resume=True, **TINY)
    for a, b in zip(resumed.network.state_dict().values(), whole.network.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed.info["bank"]["held_out_curve"] == whole.info["bank"]["held_out_curve"]


def test_given_held_out_simulations_are_measured_on_and_all_of_bank_trained_on(bank: SimulationBank) -> None:
    train, held = bank.split(0.25, seed=11)
    emu = pretrain(get_registry().simulator("polynomial"), bank=train, held_out=held, **TINY)
    info = emu.info["bank"]
    assert info["train"] == len(train) and info["held_out"] == len(held) == 100
    u, x = emu.to_unit(held.parameters), emu.scale.normalise(held.images)
    with torch.no_grad():
        rmse = float((x - emu.network(u)[0]).square().mean().sqrt())
    assert rmse == pytest.approx(info["held_out_rmse"], rel=1e-4)  # measured on these, not a split of train
    with pytest.raises(ConfigError, match=r"held_out: .* no bank to train from"):
        pretrain(get_registry().simulator("polynomial"), held_out=held, **TINY)
    cropped = SimulationBank(held.parameters, held.images[..., :-1])
    with pytest.raises(ConfigError, match=r"held_out: expected simulations like the bank's .* found"):
        pretrain(get_registry().simulator("polynomial"), bank=train, held_out=cropped, **TINY)
