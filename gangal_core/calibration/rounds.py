"""Calibration within a simulation budget, from stored simulations, in rounds.

The paper's promise (Table III) is that the emulator stands in for a slow simulator.  Here the
simulator is called only to fill banks of simulations (:mod:`gangal_core.calibration.budget`
plans how many):

1. a first bank over the declared ranges, from which the emulator is pretrained for epochs
   (:func:`~gangal_core.calibration.pretraining.pretrain` with ``bank``);
2. the generator trains against the true images with the discriminator on emulated images
   E(G(z)), which cost no simulator calls;
3. each later round (continuing G from the last) simulates parameters drawn from the current
   best match, widened around its mean (and a share uniform over the ranges, in case the best
   match is still wrong), refines the emulator on every simulation so far, and continues the
   generator and discriminator.  The best match mixes the generator's snapshots from the whole
   of every later round but the first (:data:`BURN_IN_ROUNDS`), as a run without a budget
   mixes those of its second half: in the first anchored round the generator is still moving
   from the emulator's images to the simulator's, and its snapshots there stray from the later
   rounds' by up to a third of the truth's spread (``benchmarks/RESULTS.md``, issue 17);
4. a share of each later round's simulations are the generator's own parameters ``G0(z)`` at
   noise ``z`` kept for the round: D then sees these simulator images, moved by the emulator's
   change as G learns (``"anchored"`` input, :class:`~gangal_core.calibration.gan.Anchors`),
   so that what D compares with the true images are the simulator's images, not the emulator's;
5. where the images are faint, so that the likelihood fit after the rounds reads the population
   from the emulator (:func:`~gangal_core.calibration.likelihood.population_for_rounds`), that
   fit leads the later rounds instead of the generator: after the first round and after each
   refinement but the last, it is fitted on the refined emulator, and the next round simulates
   about its best match (half at it, half :func:`propose`).  The generator is not continued:
   on the low-signal circle its best match missed by up to a quarter of the truth's spread
   after the rounds, where the fit comes within a tenth, in a sixth of a stage's time
   (``benchmarks/RESULTS.md``, issue 17, session 30).

Every bank is written to the run folder as a ``gangal simulate`` shard folder and every stage
checkpoints, so a killed run resumes without simulating anything twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gangal_core.simulation.bank import SimulationBank, simulate_bank
from gangal_core.simulation.simulator import Simulator

from .batches import choose
from .budget import BudgetPlan
from .emulator import TrainedEmulator
from .gan import CALIBRATION, Anchors, CalibrationTrainer, check_compatible
from .pretraining import pretrain
from .result import CalibrationResult

__all__ = [
    "BURN_IN_ROUNDS",
    "ITERATIONS",
    "ITERATIONS_IN_ROUNDS",
    "PRETRAIN_IN_ROUNDS",
    "PRETRAIN_ITERATIONS",
    "ROUNDS",
    "RoundsResult",
    "calibrate_in_rounds",
    "propose",
    "round_iterations",
]

#: How much wider than the best match the next round's parameters are spread.
WIDEN = 2.0
#: The share of a round's parameters drawn uniformly over the declared ranges.
UNIFORM_SHARE = 0.2
#: The share of a round's simulations that are the generator's own draws (D's anchors).
ANCHOR_SHARE = 0.5
#: The first anchored rounds, whose snapshots stay out of the best match (burn-in); the last
#: round always counts.
BURN_IN_ROUNDS = 1
#: Emulator pretraining minibatches of a calibration without rounds (no budget, or a bank alone).
PRETRAIN_ITERATIONS = 4000
#: Rounds after the first bank when a budget is given and ``--rounds`` is not.
ROUNDS = 3
#: Generator minibatches of a calibration without rounds (no budget, or a bank alone).
ITERATIONS = 3000
#: Emulator pretraining minibatches of a run in rounds (each refinement: half as many).  The
#: rounds refine the emulator near the best match and anchor D on simulations, so it needs
#: less than an unbudgeted run's 4,000: with 3 rounds, 1,600 + 3 x 800 passed as often as
#: 4,000 + 2 x 2,000 with 2 rounds, in half the wall time (benchmarks/RESULTS.md, session 10);
#: since the population is read by the parameter estimator and the likelihood fit after the
#: rounds, 1,200 + 3 x 600 pass the bar on all three cases and seeds (session 28).
PRETRAIN_IN_ROUNDS = 1200
#: Generator minibatches over all the rounds of a run in rounds.  After the rounds the parameter
#: estimator and the likelihood fit read the population wherever they can be trusted, so the
#: generator's best match mostly places the rounds' simulations: half an unbudgeted run's 3,000
#: pass the bar on all three cases and seeds, in 240-353 s instead of 370-497 s on 2 cores
#: (benchmarks/RESULTS.md, session 28).
ITERATIONS_IN_ROUNDS = 1500


@dataclass
class RoundsResult:
    """What a calibration in rounds made: the best match, the final emulator and the simulations.

    Attributes
    ----------
    calibration : CalibrationResult
        The best match after the last round.
    emulator : TrainedEmulator
        The emulator refined on every simulation of the run.
    bank : SimulationBank
        Every simulation the run made (predictive check excepted).
    rounds : list of dict
        Per round: simulations made, the best-match mean and spread after it, seconds.
    """

    calibration: CalibrationResult
    emulator: TrainedEmulator
    bank: SimulationBank
    rounds: list[dict[str, Any]] = field(default_factory=list)


def round_iterations(iterations: int, rounds: int) -> list[int]:
    """Generator iterations per stage: ``iterations`` shared equally by the first and the later rounds."""
    share, extra = divmod(iterations, rounds + 1)
    return [max(1, share + (k < extra)) for k in range(rounds + 1)]


def propose(
    samples: np.ndarray,
    n: int,
    *,
    low: np.ndarray,
    high: np.ndarray,
    seed: int,
    widen: float = WIDEN,
    uniform_share: float = UNIFORM_SHARE,
) -> torch.Tensor:
    """Parameters for the next round: best-match samples spread ``widen`` times wider, some uniform.

    Parameters
    ----------
    samples : numpy.ndarray
        ``(m, P)`` best-match samples, physical units.
    n : int
        Parameter sets to draw.
    low, high : numpy.ndarray
        The declared ranges; draws are kept inside them (a draw outside is mirrored back in).
    seed : int
        Seeds the draws.
    widen, uniform_share : float, optional
        Spread factor around the best-match mean, and the share drawn uniformly instead.

    Returns
    -------
    torch.Tensor
        ``(n, P)`` float32 parameters.
    """
    rng = np.random.default_rng(seed)
    mean = samples.mean(axis=0)
    n_uniform = round(uniform_share * n)
    picked = samples[rng.integers(0, len(samples), n - n_uniform)]
    near = mean + widen * (picked - mean)
    uniform = low + rng.random((n_uniform, len(low))) * (high - low)
    draws = np.concatenate([near, uniform])
    width = high - low
    # mirror into [low, high] (a triangle wave), so edges are not over-filled as clipping would
    folded = np.mod(draws - low, 2 * width)
    draws = low + np.where(folded > width, 2 * width - folded, folded)
    return torch.from_numpy(rng.permutation(draws).astype(np.float32))


def calibrate_in_rounds(
    simulator: Simulator,
    true_images: torch.Tensor,
    plan: BudgetPlan,
    *,
    folder: Path | None = None,
    bank: SimulationBank | None = None,
    pretrain_options: dict[str, Any],
    calibrate_options: dict[str, Any],
    iterations: int = ITERATIONS_IN_ROUNDS,
    pretrain_iterations: int = PRETRAIN_IN_ROUNDS,
    refine_iterations: int | None = None,
    recipe: str = "default",
    seed: int = 0,
    resume: bool = False,
    report: Callable[[str], None] = lambda line: None,
    estimator_read: Callable[[TrainedEmulator, np.ndarray], bool] | None = None,
    population_fit: Callable[[TrainedEmulator, np.ndarray], np.ndarray | None] | None = None,
) -> RoundsResult:
    """Calibrate ``simulator`` against ``true_images`` spending simulations as ``plan`` says.

    Parameters
    ----------
    simulator : Simulator
        The simulator, usually :func:`~gangal_core.simulation.budget.metered` so that every
        image is counted; with ``bank`` and no rounds it is never called.
    true_images : torch.Tensor
        ``(n, C, H, W)`` true images.
    plan : BudgetPlan
        How many simulations the first bank and each round make (:func:`plan_budget`).
    folder : Path, optional
        The run folder: banks go to ``simulations/round-K``, checkpoints beside them.
    bank : SimulationBank, optional
        Stored simulations to start from instead of simulating a first bank.
    pretrain_options, calibrate_options : dict
        Keyword options of :func:`pretrain` and of the calibration trainer (``batch_size``,
        ``device``, ``progress``...).
    iterations : int, optional
        Generator iterations over all rounds (default :data:`ITERATIONS_IN_ROUNDS`;
        :func:`round_iterations` shares them).
    pretrain_iterations : int, optional
        Minibatches of the first pretraining (default :data:`PRETRAIN_IN_ROUNDS`).
    refine_iterations : int, optional
        Minibatches of each refinement of the emulator (default half of
        ``pretrain_iterations``).
    recipe : str, optional
        The calibration recipe.
    seed : int, optional
        Seeds every stage (each its own stream).
    resume : bool, optional
        Continue every stage from its checkpoint in ``folder``, and reuse its banks.
    report : callable, optional
        Called with one line of text after each stage (simulations spent, best match).
    estimator_read : callable, optional
        ``estimator_read(emulator, samples)``, asked before each refinement with the emulator
        and the best-match samples so far: whether the emulator's parameter estimator will be
        read after the rounds.  Where it says no, the refinement trains the emulator alone and
        the estimator stays as it was: only its first training starts the discriminator, and
        the emulator and the generator come out exactly as they would with it refined.
        Default: the estimator is refined in every round.
    population_fit : callable, optional
        ``population_fit(emulator, samples)``: the best match a likelihood fit reads from the
        emulator about ``samples`` (:func:`~gangal_core.calibration.likelihood.population_for_rounds`),
        or None where it would not (sharp images) or cannot be trusted.  Asked after the first
        round; where it answers, the later rounds are led by the fit instead of the generator:
        each round simulates about the fit's best match and refines the emulator, and the fit
        is made again on the refined emulator (but after the last round, which the likelihood
        refinement after the rounds fits).  The generator is not continued, and the run's best
        match is the last fit's.  Default: the generator leads every round.

    Returns
    -------
    RoundsResult
    """
    trainer_cls = choose(CALIBRATION, recipe, "--recipe")
    refine_iterations = refine_iterations or max(1, pretrain_iterations // 2)
    stage_iterations = round_iterations(iterations, len(plan.rounds))
    if bank is None:
        bank = simulate_bank(simulator, plan.first_bank, seed=seed, folder=_bank_folder(folder, 0))
    report(f"bank: {len(bank):,} simulations from {bank.source}")
    emulator = pretrain(simulator, bank=bank, iterations=pretrain_iterations, seed=seed,
                        checkpoint=_checkpoint(folder, "pretrain-0"), resume=resume,
                        **pretrain_options)  # fmt: skip
    check_compatible(simulator, emulator, true_images)
    low, high = (b.numpy().astype(np.float64) for b in simulator.bounds())
    trainer, samples, history, led = None, None, [], False
    for k, n_round in enumerate((0, *plan.rounds)):
        anchors, with_estimator = None, True
        if k > 0:
            drawn, params = _round_parameters(trainer, emulator, samples, n_round, low, high, seed + 7 * k,
                                              anchored=not led)  # fmt: skip
            new_bank = simulate_bank(simulator, n_round, seed=seed + k, params=params,
                                     folder=_bank_folder(folder, k))  # fmt: skip
            anchors = None if drawn is None else _stored_anchors(drawn, new_bank)
            bank = bank.concatenate(new_bank)
            with_estimator = emulator.estimator is not None and (
                estimator_read is None or estimator_read(emulator, samples))  # fmt: skip
            emulator = _refined(simulator, emulator, bank, with_estimator=with_estimator,
                                iterations=refine_iterations, seed=seed + k, resume=resume,
                                checkpoint=_checkpoint(folder, f"pretrain-{k}"),
                                options=pretrain_options)  # fmt: skip
        if not led:
            trainer, result = _generator_stage(
                trainer_cls, simulator, emulator, true_images, k, anchors=anchors, trainer=trainer,
                iterations=stage_iterations[k], seed=seed, folder=folder, resume=resume,
                options=calibrate_options,
            )  # fmt: skip
            samples = result.samples
        fitted = None
        if population_fit is not None and (led or k == 0) and k < len(plan.rounds):
            fitted = population_fit(emulator, samples)
            samples, led = (samples, led) if fitted is None else (fitted, True)
        history.append(_round_record(k, n_round if k else len(bank), result, fitted, samples,
                                     estimator_refined=with_estimator or emulator.estimator is None,
                                     generator_continued=k == 0 or not led))  # fmt: skip
        report(_round_line(history[-1], len(bank)))
    if led:  # the fit's best match; its errors come from the likelihood refinement after the rounds
        result = dataclasses.replace(result, samples=samples, mean_err=None, std_err=None)
    return RoundsResult(calibration=result, emulator=emulator, bank=bank, rounds=history)


def _generator_stage(
    trainer_cls: type[CalibrationTrainer],
    simulator: Simulator,
    emulator: TrainedEmulator,
    true_images: torch.Tensor,
    k: int,
    *,
    anchors: Anchors | None,
    iterations: int,
    seed: int,
    folder: Path | None,
    resume: bool,
    options: dict[str, Any],
    trainer: CalibrationTrainer | None = None,
) -> tuple[CalibrationTrainer, CalibrationResult]:
    """Round ``k``'s generator and discriminator, continued from ``trainer``'s (the last round's)."""
    warm = None if trainer is None else trainer.networks_state()
    earlier = trainer.taken if trainer is not None and k > 1 + BURN_IN_ROUNDS else []
    trainer = trainer_cls(simulator, emulator, true_images, iterations=iterations,
                          discriminator_input="emulated" if anchors is None else "anchored",
                          anchors=anchors, average_from=0.5 if k == 0 else 0.0,
                          seed=seed + 31 * k, warm_start=warm,
                          checkpoint=_checkpoint(folder, f"calibrate-{k}"), resume=resume,
                          **options)  # fmt: skip
    trainer.taken[:0] = earlier  # the best match mixes the anchored rounds after the burn-in
    return trainer, trainer.train()


def _round_record(
    k: int,
    simulations: int,
    generator: CalibrationResult,
    fitted: np.ndarray | None,
    samples: np.ndarray,
    *,
    estimator_refined: bool,
    generator_continued: bool,
) -> dict[str, Any]:
    """A round's entry in ``calibration.json``: its simulations and the best match after it, the
    likelihood fit's (``fitted``) or the generator's, and the generator's where it trained."""
    best = samples if fitted is None else fitted
    record = {"round": k, "simulations": simulations, "mean": best.mean(0).tolist(),
              "std": best.std(0, ddof=1).tolist()}  # fmt: skip
    if fitted is not None:
        record["best_match"] = "likelihood fit"
        if generator_continued:
            record["generator"] = {"mean": generator.mean.tolist(), "std": generator.std.tolist()}
    if not estimator_refined:
        record["estimator_refined"] = False
    if not generator_continued:
        record["generator_continued"] = False
    return record


def _round_line(record: dict[str, Any], bank: int) -> str:
    """A round's progress line: the bank, what was left as it was and why, the best match."""
    notes = []
    if record.get("estimator_refined") is False:
        notes.append("the parameter estimator kept as it was: nothing reads it on these images")
    if record.get("generator_continued") is False:
        notes.append("the generator not continued: the likelihood fit leads the rounds")
    kept = f" ({'; '.join(notes)})" if notes else ""
    which = "the likelihood fit's" if record.get("best_match") else "best-match"
    return f"round {record['round']}: {bank:,} simulations in the bank{kept}; {which} mean " + ", ".join(
        f"{v:.4g}" for v in record["mean"]
    )


def _refined(
    simulator: Simulator,
    emulator: TrainedEmulator,
    bank: SimulationBank,
    *,
    with_estimator: bool,
    iterations: int,
    seed: int,
    resume: bool,
    checkpoint: Path | None,
    options: dict[str, Any],
) -> TrainedEmulator:
    """``emulator`` refined on every simulation so far; its parameter estimator too, or kept."""
    refined = pretrain(simulator, bank=bank, start=emulator, iterations=iterations, seed=seed,
                       checkpoint=checkpoint, resume=resume, estimate_parameters=with_estimator,
                       **options)  # fmt: skip
    if not with_estimator:
        refined.estimator = emulator.estimator  # the emulator trains exactly as it would beside it
    return refined


def _round_parameters(
    trainer: CalibrationTrainer,
    emulator: TrainedEmulator,
    samples: np.ndarray,
    n: int,
    low: np.ndarray,
    high: np.ndarray,
    seed: int,
    *,
    anchored: bool = True,
) -> tuple[Anchors | None, torch.Tensor]:
    """A round's parameters: :data:`ANCHOR_SHARE` of G's own draws (D's anchors), the rest
    :func:`propose`.  Where not ``anchored`` (no generator stage follows), the same share is
    drawn from the best-match ``samples`` themselves instead of from G."""
    n_anchor = round(ANCHOR_SHARE * n)
    if not anchored:
        rows = np.random.default_rng([seed, 1]).integers(0, len(samples), n_anchor)
        own = torch.from_numpy(np.clip(samples[rows], low, high).astype(np.float32))
        return None, torch.cat([own, propose(samples, n - n_anchor, low=low, high=high, seed=seed)])
    G = trainer.generator
    z = torch.randn(n_anchor, G.noise_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        own = emulator.to_physical(G(z.to(next(G.parameters()).device)).float().cpu())
    own = torch.minimum(torch.maximum(own, torch.from_numpy(low).float()), torch.from_numpy(high).float())
    near = propose(samples, n - n_anchor, low=low, high=high, seed=seed)
    return Anchors(z, own, torch.empty(0)), torch.cat([own, near])


def _stored_anchors(anchors: Anchors, bank: SimulationBank) -> Anchors:
    """The anchors with their simulated images (the first rows of the round's ``bank``)."""
    n = anchors.noise.shape[0]
    return Anchors(anchors.noise, bank.parameters[:n], bank.images[:n])


def _bank_folder(folder: Path | None, k: int) -> Path | None:
    return None if folder is None else Path(folder) / "simulations" / f"round-{k}"


def _checkpoint(folder: Path | None, stage: str) -> Path | None:
    return None if folder is None else Path(folder) / f"checkpoint-{stage}.safetensors"
