"""Calibration of costly and external simulators: the path ``calibrate`` takes with a budget or a bank.

:func:`gangal_core.calibrate` comes here when it is given ``budget`` or ``bank``, or a simulator
declared by a TOML file (:mod:`gangal_core.simulation.spec`) that gangal cannot call.  The
simulator is metered (:func:`~gangal_core.simulation.budget.metered`): every image counts
against the budget and the counts are written to ``calibration.json`` and the emulator's
metadata.  The work itself is :func:`~gangal_core.calibration.rounds.calibrate_in_rounds`.

For a simulator gangal cannot call, the predictive check is done in two steps: the run writes
``best_match_parameters.csv``; the user simulates those parameters with their own program;
``gangal check`` then computes the check from the files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gangal_core.runtime import distributed
from gangal_core.runtime.api import ArgumentError, arg, as_path
from gangal_core.simulation.bank import SimulationBank, load_bank, simulate_bank
from gangal_core.simulation.budget import MeteredSimulator, metered
from gangal_core.simulation.simulator import Simulator
from gangal_core.simulation.spec import callable_simulator

from .budget import BudgetPlan, plan_budget, plan_for_bank
from .emulator import TrainedEmulator
from .likelihood import FROM_BEST_MATCH, images_are_sharp, likelihood_refinement, population_for_rounds
from .predictive import MIN_IMAGES, PREDICTIVE_IMAGES, PredictiveCheck, check_best_match, predictive_check
from .result import CalibrationResult
from .rounds import (
    ITERATIONS,
    ITERATIONS_IN_ROUNDS,
    PRETRAIN_IN_ROUNDS,
    PRETRAIN_ITERATIONS,
    ROUNDS,
    calibrate_in_rounds,
)

__all__ = ["BEST_MATCH_FILE", "CostlyRun", "calibrate_costly", "costly_predictive_check", "costly_run_asked",
           "emulated_stand_in", "pretrain_costly"]

#: The best-match parameters a user simulates for the predictive check of a declared simulator.
BEST_MATCH_FILE = "best_match_parameters.csv"
_SHARED_KEYS = ("batch_size", "critic_arch", "progress", "device", "precision", "checkpoint_every")
_PRETRAIN_KEYS = (*_SHARED_KEYS, "emulator_arch", "recipe", "validation")
_TRAIN_KEYS = (*_SHARED_KEYS, "n_samples")


@dataclass
class CostlyRun:
    """A calibration within a budget: the metered simulator, what it found, and its record.

    Attributes
    ----------
    simulator : MeteredSimulator
        The simulator with its counts (the predictive check adds to them).
    result : CalibrationResult
        The best match.
    emulator : TrainedEmulator
        The emulator refined on every simulation of the run.
    plan : BudgetPlan
        How the budget was split.
    record : dict
        ``calibration.json``'s account of the simulations (updated by the predictive check).
    check_images : torch.Tensor, optional
        Images the likelihood refinement (:mod:`.likelihood`) simulated from its fit before
        the correction, which the predictive check then uses instead of simulating again.
    """

    simulator: MeteredSimulator
    result: CalibrationResult
    emulator: TrainedEmulator
    plan: BudgetPlan
    record: dict[str, Any]
    check_images: torch.Tensor | None = None


def calibrate_costly(
    simulator: Simulator,
    true_images: torch.Tensor,
    folder: Path | None,
    pretraining: dict[str, Any],
    training: dict[str, Any],
    *,
    budget: int | None,
    bank: Any,
    bank_parameters: str | Path | None,
    rounds: int | None,
    first_bank: float,
    predictive_check: bool,
    likelihood_fit: bool = True,
) -> CostlyRun:
    """Calibrate within ``budget`` simulator images, from ``bank`` and/or new simulations in rounds.

    ``pretraining`` and ``training`` are :func:`gangal_core.calibrate`'s options of the two
    phases; the discriminator always sees emulated images here.  With ``likelihood_fit``, a
    run in rounds with a predictive check then refines its best match by the emulator's
    likelihood (:func:`~.likelihood.likelihood_refinement`), with the check's simulations.
    """
    can_call = callable_simulator(simulator)
    rounds = (ROUNDS if budget is not None and can_call else 0) if rounds is None else rounds
    stored = _bank(bank, simulator, bank_parameters)
    if not can_call and (stored is None or rounds):
        raise ArgumentError(
            f"simulator {simulator.name!r} is declared by a file, so gangal cannot call it: give "
            f"{arg('bank')} (its stored simulations) and no {arg('rounds')}."
        )
    check = predictive_check and can_call
    if stored is None:
        if budget is None:
            raise ArgumentError(f"give {arg('budget')} (simulations gangal may make) or {arg('bank')}.")
        plan = plan_budget(budget, rounds=rounds, first_bank=first_bank, predictive_check=check)
    else:
        plan = plan_for_bank(budget, rounds=rounds, predictive_check=check)
    meter = metered(simulator, limit=budget)
    refine = bool(likelihood_fit and rounds and plan.predictive >= MIN_IMAGES)
    run = calibrate_in_rounds(
        meter, true_images, plan, folder=folder, bank=stored,
        pretrain_options={k: pretraining[k] for k in _PRETRAIN_KEYS},
        calibrate_options={k: training[k] for k in _TRAIN_KEYS},
        iterations=training["iterations"] or (ITERATIONS_IN_ROUNDS if plan.rounds else ITERATIONS),
        pretrain_iterations=_pretrain_iterations(pretraining, plan),
        recipe=training["recipe"], seed=training["seed"], resume=training["resume"],
        report=_reporter(meter, enabled=training["progress"]),
        estimator_read=partial(_estimator_read, true_images, seed=training["seed"], refine=refine),
        population_fit=partial(_population_fit, true_images, seed=training["seed"], refine=refine),
    )  # fmt: skip
    run.emulator.info.update(meter.usage())
    if folder is not None:
        _save_emulator(run.emulator, folder / "emulator")
    bank_record = None if stored is None else {"source": stored.source, "n_images": len(stored)}
    record = {**meter.usage(), "simulation_plan": plan.to_dict(), "rounds": run.rounds, "bank": bank_record}
    costly = CostlyRun(meter, run.calibration, run.emulator, plan, record)
    if refine:
        report = _reporter(meter, enabled=training["progress"])
        _refine(costly, true_images, seed=training["seed"], report=report)
    return costly


def _estimator_read(
    true_images: torch.Tensor, emulator: TrainedEmulator, samples: np.ndarray, *, seed: int, refine: bool
) -> bool:
    """Whether the likelihood refinement (``refine``: it will run) will read the emulator's parameter
    estimator: only where the images pin each parameter set down (:func:`~.likelihood.images_are_sharp`)."""
    return refine and images_are_sharp(emulator, true_images, samples, seed=seed)[0]


def _population_fit(
    true_images: torch.Tensor, emulator: TrainedEmulator, samples: np.ndarray, *, seed: int, refine: bool
) -> np.ndarray | None:
    """Where the likelihood refinement (``refine``: it will run) will read the population from
    shared draws (faint images), the best match its fit reads now, to lead the rounds
    (:func:`~.likelihood.population_for_rounds`); else None."""
    return population_for_rounds(emulator, true_images, samples, seed=seed) if refine else None


def _refine(run: CostlyRun, true_images: torch.Tensor, *, seed: int, report: Any) -> None:
    """The likelihood refinement of ``run``'s best match, its simulations kept for the check."""
    n = min(int(true_images.shape[0]), run.plan.predictive)
    samples = run.result.samples
    refined = likelihood_refinement(run.simulator, run.emulator, true_images, samples, n, seed=seed)
    run.record["likelihood_fit"] = refined.record
    run.check_images = refined.simulated
    kept = _kept_by_generator(refined.record, run.result.names)
    if kept:
        report(f"the best match in {kept} is the generator's alone: neither the parameter estimator nor "
               "the emulator's likelihood reads it reliably; more iterations train the generator longer "
               f"(--iterations, default {ITERATIONS_IN_ROUNDS:,} in rounds)")  # fmt: skip
    if refined.samples is None:
        report(f"likelihood fit not adopted: {refined.record['reason']}")
        return
    # a parameter the per-image fit left to the generator keeps the generator's errors
    mean_err = _filled(refined.mean_err, run.result.mean_err)
    std_err = _filled(refined.std_err, run.result.std_err)
    run.result = dataclasses.replace(run.result, samples=refined.samples, mean_err=mean_err, std_err=std_err)
    report(f"{_adopted(refined.record)}; best-match mean " + ", ".join(f"{v:.4g}" for v in run.result.mean))


def _adopted(record: dict[str, Any]) -> str:
    """What the refinement took, and from where (the likelihood fit, the parameter estimator)."""
    parts = []
    if "fit" in record:
        which = record.get("adopted_parameters")
        which = f" for {', '.join(which) or 'none'}" if which is not None else ""
        parts.append(f"likelihood fit adopted{which} ({record['fit']['effective_draws']:.0f} effective draws "
                     "per image)")  # fmt: skip
    if record.get("estimator_parameters"):
        parts.append(f"{', '.join(record['estimator_parameters'])} read by the parameter estimator")
    return "; ".join(parts)


def _kept_by_generator(record: dict[str, Any], names: tuple[str, ...]) -> str:
    """The parameters neither the parameter estimator nor the per-image fit took, with the
    emulator's bias in spreads where the fit measured it."""
    if record.get("method") != "per image":
        return ""
    taken = set(record.get("adopted_parameters", [])) | set(record.get("estimator_parameters", []))
    bias = record.get("correction_in_spreads")
    return ", ".join(name if bias is None else f"{name} (the emulator's bias {bias[i]:+.2f} of its spread)"
                     for i, name in enumerate(names) if name not in taken)  # fmt: skip


def _filled(errors: np.ndarray, fallback: np.ndarray | None) -> np.ndarray | None:
    """``errors`` with its gaps (NaN) filled from ``fallback``; None where a gap has none."""
    if not np.isnan(errors).any():
        return errors
    return None if fallback is None else np.where(np.isnan(errors), fallback, errors)


def _pretrain_iterations(pretraining: dict[str, Any], plan: BudgetPlan) -> int:
    """The emulator's pretraining minibatches: as asked, else fewer when rounds refine it."""
    return pretraining["iterations"] or (PRETRAIN_IN_ROUNDS if plan.rounds else PRETRAIN_ITERATIONS)


def costly_run_asked(budget: int | None, bank: Any, simulator: Simulator) -> bool:
    """Whether a run takes the costly path: a budget, a bank, or a simulator gangal cannot call."""
    return budget is not None or bank is not None or not callable_simulator(simulator)


def pretrain_costly(
    simulator: Simulator,
    folder: Path | None,
    training: dict[str, Any],
    *,
    budget: int | None,
    bank: Any,
    bank_parameters: str | Path | None,
    validation: float,
) -> TrainedEmulator:
    """``gangal pretrain`` within a budget or from a bank: simulate (at most) ``budget`` images once,
    train for epochs over them, and record what the simulator cost in the emulator's metadata."""
    stored = _bank(bank, simulator, bank_parameters)
    if stored is None and not callable_simulator(simulator):
        raise ArgumentError(f"simulator {simulator.name!r} is declared by a file: give {arg('bank')}.")
    meter = metered(simulator, limit=budget)
    if stored is None:
        if budget is None:
            raise ArgumentError(f"give {arg('budget')} (simulations gangal may make) or {arg('bank')}.")
        where = None if folder is None else folder / "simulations"
        stored = simulate_bank(meter, budget, seed=training["seed"], folder=where)
    from .pretraining import pretrain as train_emulator

    emulator = train_emulator(meter, bank=stored, validation=validation,
                              checkpoint=None if folder is None else folder / "checkpoint.safetensors",
                              **training)  # fmt: skip
    emulator.info.update(meter.usage())
    if folder is not None and distributed.current().is_main:
        _save_emulator(emulator, folder)
    return emulator


def costly_predictive_check(
    run: CostlyRun, true_images: torch.Tensor, folder: Path | None, *, seed: int
) -> PredictiveCheck | None:
    """The predictive check within the plan's share, or the best match written for the user to simulate."""
    if not callable_simulator(run.simulator.inner):
        n = min(int(true_images.shape[0]), PREDICTIVE_IMAGES)
        if folder is not None and n >= MIN_IMAGES:
            _write_best_match(folder / BEST_MATCH_FILE, run.result, n, seed=seed)
            run.record["predictive_check_pending"] = {"parameters": BEST_MATCH_FILE, "n_images": n}
        return None
    check = None
    if run.check_images is not None:
        fit = run.record["likelihood_fit"]
        # simulated from a fit that was not adopted, they are not the best match's: no check
        if fit["adopted"] or fit["simulated_from"] == FROM_BEST_MATCH:
            check = predictive_check(true_images, run.check_images, seed=seed)
    elif run.plan.predictive:
        check = check_best_match(run.simulator, run.result.samples, true_images, seed=seed,
                                 limit=run.plan.predictive)  # fmt: skip
    run.record.update(run.simulator.usage())
    return check


def emulated_stand_in(emulator: TrainedEmulator, simulator: Simulator) -> Simulator:
    """A simulator that answers with the emulator's images: for plots that must not spend the budget."""

    class Emulated(Simulator):
        name = simulator.name
        image_shape = tuple(simulator.image_shape)
        parameters = tuple(simulator.parameters)

        def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
            return emulator.emulate(params, generator=generator)

    return Emulated()


def _reporter(meter: MeteredSimulator, *, enabled: bool) -> Any:
    """A line on standard error after each stage: what the simulator has cost so far."""
    if not enabled:
        return lambda line: None
    from rich.console import Console

    console = Console(stderr=True)
    limit = f" of {meter.limit:,}" if meter.limit is not None else ""

    def report(line: str) -> None:
        console.print(f"{line} (simulator: {meter.images:,}{limit} images, {meter.seconds:.1f} s)",
                      highlight=False)  # fmt: skip

    return report


def _bank(bank: Any, simulator: Simulator, parameters: str | Path | None) -> SimulationBank | None:
    if bank is None or isinstance(bank, SimulationBank):
        return bank
    path = as_path(bank)
    if path is None:
        found = type(bank).__name__
        raise ArgumentError(f"{arg('bank')}: expected a SimulationBank or a path, found {found}.")
    return load_bank(path, simulator, parameters=parameters, option=arg("bank"))


def _save_emulator(emulator: TrainedEmulator, folder: Path) -> None:
    from .emulator import save_emulator
    from .report import plot_losses

    folder.mkdir(parents=True, exist_ok=True)
    if emulator.info.get("losses"):
        plot_losses(folder / "pretrain-losses.png", emulator.info["losses"], title="pretraining (bank)")
    save_emulator(emulator, folder)


def _write_best_match(path: Path, result: CalibrationResult, n: int, *, seed: int) -> None:
    from .report import write_samples_csv

    rows = np.random.default_rng(seed).permutation(len(result.samples))[:n]
    write_samples_csv(path, result.names, result.samples[rows])
