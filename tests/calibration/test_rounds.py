"""Calibration in rounds: anchored discriminator input and each round's parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gangal_core.calibration import pretrain
from gangal_core.calibration.budget import plan_budget
from gangal_core.calibration.gan import Anchors, DefaultCalibration, anchored_images
from gangal_core.calibration.rounds import (
    ANCHOR_SHARE,
    _round_parameters,
    calibrate_in_rounds,
    propose,
    round_iterations,
)
from gangal_core.errors import ConfigError
from gangal_core.plugins import get_registry
from gangal_core.simulation.bank import SimulationBank

TINY = {"iterations": 4, "batch_size": 16, "progress": False, "seed": 3}


@pytest.fixture(scope="module")
def setting():
    sim = get_registry().simulator("polynomial")
    gen = torch.Generator().manual_seed(0)
    params = sim.sample_uniform(200, generator=gen)
    emulator = pretrain(sim, bank=SimulationBank(params, sim.simulate(params, generator=gen)), **TINY)
    true = sim.simulate(sim.sample_uniform(64, generator=gen), generator=gen)
    return sim, emulator, true


def _anchored_trainer(sim, emulator, true, n: int = 32) -> DefaultCalibration:
    first = DefaultCalibration(sim, emulator, true, discriminator_input="emulated", **TINY)
    z = torch.randn(n, first.generator.noise_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        own = emulator.to_physical(first.generator(z))
    anchors = Anchors(z, own, sim.simulate(own, generator=torch.Generator().manual_seed(2)))
    trainer = DefaultCalibration(sim, emulator, true, discriminator_input="anchored", anchors=anchors,
                                 warm_start=first.networks_state(), **TINY)  # fmt: skip
    trainer.anchors = anchors
    return trainer


def test_anchored_images_are_the_simulations_while_the_generator_has_not_moved(setting) -> None:
    sim, emulator, true = setting
    trainer = _anchored_trainer(sim, emulator, true)
    u = trainer.generator(trainer.noise(16))
    mean, std = trainer.emulator_network(u)
    x = anchored_images(trainer, u, mean, std)
    stored = emulator.scale.normalise(trainer.anchors.images)[trainer.anchor_rows]
    assert torch.allclose(x, stored, atol=1e-4)  # the simulator's own images, not the emulator's
    assert not torch.allclose(mean, stored, atol=1e-2)
    # ... and the generator learns through the emulator, mean and spread
    (grad,) = torch.autograd.grad(x.sum(), u, retain_graph=True)
    eps = trainer.anchor_eps[trainer.anchor_rows].clamp(-8, 8)
    (emulated,) = torch.autograd.grad((mean + std * eps).sum(), u)
    assert torch.allclose(grad, emulated)


def test_anchored_images_follow_the_emulators_change_of_mean_and_spread(setting) -> None:
    sim, emulator, true = setting
    trainer = _anchored_trainer(sim, emulator, true)
    z = trainer.noise(16)
    eps = trainer.anchor_eps[trainer.anchor_rows]
    with torch.no_grad():
        for p in trainer.generator.parameters():
            p.add_(0.05)  # G moves away from G0
        u = trainer.generator(z)
        mean, std = trainer.emulator_network(u)
        x = anchored_images(trainer, u, mean, std)
    assert torch.allclose(x, mean + std * eps, atol=1e-5)


def test_anchored_training_runs_and_draws_only_anchored_noise(setting) -> None:
    sim, emulator, true = setting
    trainer = _anchored_trainer(sim, emulator, true, n=8)
    result = trainer.train()
    assert np.isfinite(result.samples).all()
    z = trainer.noise(16)
    assert all(any(torch.equal(row, a) for a in trainer.anchor_noise) for row in z)


def test_anchors_and_the_anchored_input_go_together(setting) -> None:
    sim, emulator, true = setting
    with pytest.raises(ConfigError, match="anchored"):
        DefaultCalibration(sim, emulator, true, discriminator_input="anchored", **TINY)


def test_a_rounds_parameters_are_the_generators_own_then_widened_proposals(setting) -> None:
    sim, emulator, true = setting
    trainer = DefaultCalibration(sim, emulator, true, discriminator_input="emulated", **TINY)
    low, high = (b.numpy().astype(np.float64) for b in sim.bounds())
    samples = trainer.result().samples
    anchors, params = _round_parameters(trainer, emulator, samples, 101, low, high, 7)
    n_anchor = round(ANCHOR_SHARE * 101)
    assert params.shape == (101, 4) and anchors.noise.shape[0] == n_anchor
    with torch.no_grad():
        own = emulator.to_physical(trainer.generator(anchors.noise))
    assert torch.allclose(params[:n_anchor], own, atol=1e-5)
    lo, hi = torch.from_numpy(low).float(), torch.from_numpy(high).float()
    assert (params >= lo).all() and (params <= hi).all()


@pytest.mark.parametrize(("iterations", "rounds"), [(3000, 2), (3001, 2), (10, 0), (7, 3)])
def test_round_iterations_share_the_training_equally(iterations: int, rounds: int) -> None:
    stages = round_iterations(iterations, rounds)
    assert len(stages) == rounds + 1 and sum(stages) == iterations
    assert max(stages) - min(stages) <= 1


def test_the_progress_counts_a_metered_simulators_images_and_simulated_batches(setting) -> None:
    from gangal_core.simulation.budget import metered

    sim, emulator, true = setting
    meter = metered(sim, limit=100)
    meter.simulate(sim.sample_uniform(7, generator=torch.Generator()), generator=torch.Generator())
    within_budget = DefaultCalibration(meter, emulator, true, discriminator_input="emulated", **TINY)
    assert within_budget.simulator_images(3) == 7  # the meter's own count, whatever the iteration
    free = DefaultCalibration(sim, emulator, true, discriminator_input="simulated", **TINY)
    assert free.simulator_images(3) == 3 * 16
    emulated = DefaultCalibration(sim, emulator, true, discriminator_input="emulated", **TINY)
    assert emulated.simulator_images(3) is None


def test_the_r1_penalty_adds_to_ds_loss_and_changes_its_step(setting) -> None:
    sim, emulator, true = setting
    plain = DefaultCalibration(sim, emulator, true, discriminator_input="emulated", **TINY)
    r1 = DefaultCalibration(sim, emulator, true, discriminator_input="emulated", r1_gamma=10.0, **TINY)
    a, b = plain.step(0), r1.step(0)
    assert b["D"] > a["D"] + 1e-6  # the same images and D, plus gamma / 2 E|grad D|^2 > 0
    changed = [
        name
        for name, p in r1.discriminator.state_dict().items()
        if not torch.equal(p, plain.discriminator.state_dict()[name])
    ]
    assert changed  # D took another step than without the penalty


def test_a_continued_generator_learns_at_its_own_rate(setting) -> None:
    sim, emulator, true = setting
    first = DefaultCalibration(sim, emulator, true, discriminator_input="emulated", **TINY)
    first.train()
    slower = DefaultCalibration(sim, emulator, true, discriminator_input="emulated", learning_rate=2e-4,
                                warm_start=first.networks_state(), **TINY)  # fmt: skip
    assert [g["lr"] for g in slower.optimisers["generator"].param_groups] == [2e-4]
    assert slower.optimisers["generator"].state  # Adam's moments carried over all the same



def test_a_refinement_leaves_an_estimator_nothing_will_read_and_changes_nothing_else(setting) -> None:
    """Asked before each refinement whether the estimator will be read: where not, it stays as the
    first pretraining left it, and the emulator and the best match are those of a run refining it."""
    sim, _, true = setting
    plan = plan_budget(1400, rounds=2, first_bank=0.6, predictive_check=False)
    options = {"batch_size": 16, "progress": False}

    def run(estimator_read):
        return calibrate_in_rounds(sim, true, plan, pretrain_options=options,
                                   calibrate_options={**options, "n_samples": 200}, iterations=6,
                                   pretrain_iterations=4, seed=3, estimator_read=estimator_read)  # fmt: skip

    first: list[dict[str, torch.Tensor]] = []

    def never(emulator, samples: np.ndarray) -> bool:
        assert samples.shape == (200, len(sim.parameters))  # the best match so far
        first.append({k: v.clone() for k, v in emulator.estimator.state_dict().items()})
        return False

    kept, refined = run(never), run(None)
    assert len(first) == len(plan.rounds) == 2
    for name, value in kept.emulator.estimator.state_dict().items():
        assert torch.equal(value, first[0][name])
    ours, theirs = kept.emulator.estimator.state_dict(), refined.emulator.estimator.state_dict()
    assert not all(torch.equal(ours[name], theirs[name]) for name in ours)  # the refined one trained on
    theirs = refined.emulator.network.state_dict()
    for name, value in kept.emulator.network.state_dict().items():
        assert torch.equal(value, theirs[name])
    np.testing.assert_array_equal(kept.calibration.samples, refined.calibration.samples)
    assert [r.get("estimator_refined") for r in kept.rounds] == [None, False, False]
    assert all("estimator_refined" not in r for r in refined.rounds)


def test_a_fit_that_reads_the_population_leads_the_later_rounds(setting) -> None:
    """Where the likelihood fit reads the population (faint images), it is asked after the first
    round and after each refinement but the last: the rounds simulate about its best match,
    and the generator is not continued."""
    sim, _, true = setting
    plan = plan_budget(1400, rounds=2, first_bank=0.6, predictive_check=False)
    options = {"batch_size": 16, "progress": False}
    lines: list[str] = []

    def run(population_fit):
        return calibrate_in_rounds(sim, true, plan, pretrain_options=options,
                                   calibrate_options={**options, "n_samples": 200}, iterations=6,
                                   pretrain_iterations=4, seed=3, population_fit=population_fit,
                                   report=lines.append)  # fmt: skip

    asked, answered = [], []

    def fit(emulator, samples: np.ndarray) -> np.ndarray:
        asked.append(samples.copy())
        answered.append(0.5 * samples + 0.5 * samples.mean(0))  # a narrower population, in the ranges
        return answered[-1]

    led, generator = run(fit), run(None)
    assert len(asked) == len(plan.rounds)  # after round 0 and the refinement of round 1, not the last
    assert asked[0].mean(0).tolist() == generator.rounds[0]["mean"]  # the generator's round-0 best match
    assert generator.rounds[0]["mean"] == led.rounds[0]["generator"]["mean"]  # round 0 trains G alike
    np.testing.assert_array_equal(asked[1], answered[0])  # each fit starts from the last
    np.testing.assert_array_equal(led.calibration.samples, answered[1])
    assert led.calibration.mean_err is None  # errors come from the refinement after the rounds
    assert [r.get("best_match") for r in led.rounds] == ["likelihood fit", "likelihood fit", None]
    assert [r.get("generator_continued") for r in led.rounds] == [None, False, False]
    assert all("generator_continued" not in r for r in generator.rounds)
    # round 1 simulates the fit's best match itself (where G's own draws would be), and about it
    low, high = (b.numpy().astype(np.float64) for b in sim.bounds())
    first, n = plan.first_bank, plan.rounds[0]
    made = led.bank.parameters[first : first + n]
    n_own = round(ANCHOR_SHARE * n)
    best = torch.from_numpy(answered[0].astype(np.float32))
    assert all((best == row).all(1).any() for row in made[:n_own])
    assert torch.equal(made[n_own:], propose(answered[0], n - n_own, low=low, high=high, seed=3 + 7))
    assert len(led.bank) == len(generator.bank) == plan.first_bank + sum(plan.rounds)
    assert any("the likelihood fit leads the rounds" in line for line in lines)


def test_a_fit_that_does_not_answer_after_the_first_round_leaves_the_generator_to_lead(setting) -> None:
    sim, _, true = setting
    plan = plan_budget(1400, rounds=2, first_bank=0.6, predictive_check=False)
    options = {"batch_size": 16, "progress": False}
    asked = []

    def run(population_fit):
        return calibrate_in_rounds(sim, true, plan, pretrain_options=options,
                                   calibrate_options={**options, "n_samples": 200}, iterations=6,
                                   pretrain_iterations=4, seed=3, population_fit=population_fit)  # fmt: skip

    sharp, plain = run(lambda emulator, samples: asked.append(1)), run(None)
    assert asked == [1]  # asked once: after the first round the generator leads to the end
    np.testing.assert_array_equal(sharp.calibration.samples, plain.calibration.samples)
    assert sharp.rounds == plain.rounds


def test_a_run_led_by_the_fit_resumes_to_the_same_best_match_without_simulating(setting, tmp_path) -> None:
    sim, _, true = setting
    plan = plan_budget(1400, rounds=2, first_bank=0.6, predictive_check=False)
    options = {"batch_size": 16, "progress": False}

    def fit(emulator, samples: np.ndarray) -> np.ndarray:
        return 0.5 * samples + 0.5 * samples.mean(0)

    def run(simulator, resume: bool):
        return calibrate_in_rounds(simulator, true, plan, folder=tmp_path, pretrain_options=options,
                                   calibrate_options={**options, "n_samples": 200}, iterations=6,
                                   pretrain_iterations=4, seed=3, population_fit=fit,
                                   resume=resume)  # fmt: skip

    first = run(sim, resume=False)

    class NoCalls(type(sim)):
        def simulate(self, params, *, generator):
            raise AssertionError("a resumed run simulated again")

    again = run(NoCalls(), resume=True)
    np.testing.assert_array_equal(again.calibration.samples, first.calibration.samples)
    assert again.rounds == first.rounds
