"""``gangal_core.pretrain`` and ``gangal_core.calibrate``: the work of ``gangal pretrain`` and ``calibrate``.

The commands resolve their options (TOML files, the plugin registry, ``--range`` and
``--truth`` strings) and call these functions; a notebook calls them directly, with a
simulator instance or a registered name, and numpy or torch images.  Files are optional:
with ``out=None`` nothing is written.  Errors name the arguments (``true_images``); the
commands show their flags instead (``--true-data``, :mod:`gangal_core.runtime.api`).

The lower-level training functions, :func:`gangal_core.calibration.pretrain` and
:func:`gangal_core.calibration.calibrate`, train one network each and write nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from gangal_core.io.atomic import atomic_write_json
from gangal_core.io.folders import prepare_output_folder
from gangal_core.runtime import distributed
from gangal_core.runtime.api import (
    ArgumentError,
    arg,
    as_image_tensor,
    as_path,
    python_names,
    resolve_simulator,
)
from gangal_core.simulation.spec import callable_simulator

from .costly import costly_run_asked
from .emulator import TrainedEmulator
from .result import CalibrationResult
from .rounds import ITERATIONS, PRETRAIN_ITERATIONS

__all__ = ["calibrate", "pretrain"]

CHECKPOINT = "checkpoint.safetensors"
EMULATOR_FILE = "emulator.safetensors"


def pretrain(
    simulator: Any,
    *,
    out: str | Path | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    iterations: int = 4000,
    batch_size: int = 256,
    recipe: str = "likelihood",
    emulator_arch: str = "conv",
    critic_arch: str = "conv",
    seed: int = 0,
    checkpoint_every: int = 500,
    resume: bool = False,
    plots: bool = True,
    device: str = "auto",
    precision: str = "float32",
    progress: bool = True,
    budget: int | None = None,
    bank: Any = None,
    bank_parameters: str | Path | None = None,
    validation: float = 0.1,
) -> TrainedEmulator:
    """Pretrain an emulator of ``simulator``, as ``gangal pretrain`` does.

    Parameters
    ----------
    simulator : Simulator or str
        A simulator, or the name of a registered one.
    out : path-like, optional
        Folder for ``emulator.safetensors``, its checkpoint and its plots.  None: write nothing.
    ranges : dict, optional
        ``{name: (low, high)}`` replacing declared parameter ranges for this run.
    iterations, batch_size, recipe, emulator_arch, critic_arch, seed : optional
        As for :func:`gangal_core.calibration.pretrain` (``recipe``: ``"likelihood"`` or ``"paper"``).
    checkpoint_every : int, optional
        Iterations between checkpoints in ``out``.
    resume : bool, optional
        Continue the run in ``out``; a folder holding a run is refused otherwise.
    plots : bool, optional
        Write ``emulator.png`` and ``pretrain-losses.png`` into ``out`` (default True).
    device, precision : str, optional
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; ``"float32"`` or ``"bf16"``.
    progress : bool, optional
        Show a progress bar (default True).
    budget : int, optional
        Simulate a bank of this many images first (into ``out/simulations``) and train from it
        for epochs, instead of new simulations at every step; the emulator's metadata records
        ``simulator_images`` and ``simulator_seconds``.
    bank, bank_parameters : optional
        Stored simulations to train from instead (see :func:`calibrate`); no simulator calls.
    validation : float, optional
        The share of a bank held out to measure the emulator on (default 0.1).

    Returns
    -------
    TrainedEmulator
    """
    from .pretraining import PRETRAIN_RECIPES

    with python_names():
        dev = _device(device, precision)
        distributed.setup(dev)
        sim = resolve_simulator(simulator, ranges=ranges)
        _check_choice("recipe", recipe, PRETRAIN_RECIPES)
        folder = _output_folder(out, resume=resume, finished=EMULATOR_FILE)
        training = {"iterations": iterations, "batch_size": batch_size, "recipe": recipe,
                    "emulator_arch": emulator_arch, "critic_arch": critic_arch, "seed": seed,
                    "resume": resume, "checkpoint_every": checkpoint_every, "progress": progress,
                    "device": dev, "precision": precision}  # fmt: skip
        if budget is None and bank is None and callable_simulator(sim):
            return _pretrain_into(folder, sim, training, plots=plots)
        from .costly import pretrain_costly

        return pretrain_costly(sim, folder, training, budget=budget, bank=bank,
                               bank_parameters=bank_parameters, validation=validation)  # fmt: skip


def calibrate(
    simulator: Any,
    true_images: Any = None,
    *,
    true_params: Any = None,
    truth: Mapping[str, tuple[float, float]] | None = None,
    n_true: int = 10000,
    emulator: TrainedEmulator | str | Path | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    iterations: int | None = None,
    pretrain_iterations: int | None = None,
    batch_size: int = 256,
    recipe: str = "default",
    pretrain_recipe: str = "likelihood",
    discriminator_input: str = "simulated",
    emulator_arch: str = "conv",
    critic_arch: str = "conv",
    n_samples: int = 10000,
    predictive_check: bool = True,
    seed: int = 0,
    out: str | Path | None = None,
    plots: bool = True,
    checkpoint_every: int = 500,
    resume: bool = False,
    device: str = "auto",
    precision: str = "float32",
    progress: bool = True,
    options: Mapping[str, Any] | None = None,
    true_source: str | None = None,
    budget: int | None = None,
    bank: Any = None,
    bank_parameters: str | Path | None = None,
    rounds: int | None = None,
    first_bank: float = 0.6,
    likelihood_fit: bool = True,
    validation: float = 0.1,
) -> CalibrationResult:
    """Find the parameter distribution that best matches ``true_images``, as ``gangal calibrate`` does.

    Pretrains an emulator (unless given one), trains the generator through it, runs the
    predictive check and, with ``out``, writes ``calibration.json``, ``samples.csv``, ``samples.ecsv``
    and the plots (``corner.png`` among them).

    Parameters
    ----------
    simulator : Simulator or str
        A simulator, or the name of a registered one.
    true_images : numpy.ndarray, torch.Tensor or path-like, optional
        ``(n, C, H, W)`` true images in the simulator's pixel units, or a file or folder of
        them.  None: a true set of ``n_true`` images drawn from ``truth`` (a closure test).
    true_params : numpy.ndarray or path-like, optional
        ``(n, P)`` parameters of ``true_images`` when known (or a CSV of them): the truth.
    truth : dict, optional
        ``{name: (mean, std)}`` replacing the simulator's reference truth, for a true set
        drawn here; cannot be combined with ``true_images``.
    n_true : int, optional
        Images in a true set drawn from the truth (default 10000).
    emulator : TrainedEmulator or path-like, optional
        A pretrained emulator (or its folder or file); by default one is pretrained first
        (into ``out/emulator``), with ``pretrain_iterations`` (default 4000, or 1200 when
        rounds refine the emulator), ``pretrain_recipe``, ``emulator_arch`` and ``critic_arch``.
    ranges : dict, optional
        ``{name: (low, high)}`` replacing declared parameter ranges (to pretrain over).
    iterations : int, optional
        Generator minibatches: default 3000, or 1500 over all the rounds of a run in rounds,
        where the parameter estimator and the likelihood fit then read the population
        (:mod:`gangal_core.calibration.rounds`).
    batch_size, recipe, discriminator_input, critic_arch, n_samples, seed : optional
        As for :func:`gangal_core.calibration.calibrate`.
    predictive_check : bool, optional
        Run the classifier two-sample test of true images against simulations at the best
        match (default True); it needs at least 40 true images.
    out : path-like, optional
        Run folder.  None: write nothing (no checkpoints either).
    plots : bool, optional
        Write the plots into ``out`` (default True).
    checkpoint_every, resume, device, precision, progress : optional
        As for :func:`pretrain`.
    options, true_source : optional
        What ``calibration.json`` records as the run's options (default: these arguments) and
        as the source of the true images (default: the path, the array's type, or "reference
        truth"); the command line records its own.
    budget : int, optional
        The most simulator images the run may make: the first bank, the rounds and the
        predictive check all count (a true set drawn from the truth does not).  The
        discriminator then sees emulated images; see :mod:`gangal_core.calibration.rounds`.
    bank : SimulationBank or path-like, optional
        Stored simulations to pretrain from instead of simulating a first bank (a ``gangal
        simulate`` output, or images with a parameter CSV: ``bank_parameters``).
    rounds : int, optional
        Rounds of simulations near the best match after the first bank (default 3 with a
        budget and a simulator gangal can call, else 0).
    first_bank : float, optional
        The first bank's share of the budget the predictive check leaves (default 0.6).
    likelihood_fit : bool, optional
        In rounds, refine the best match by the emulator's likelihood, corrected by the
        predictive check's simulations, where the fit can be trusted: with draws shared by all
        images when they are faint; when they are sharp, by the emulator's parameter estimator
        where it reads a parameter sharply, else by each image's own draws for the parameters
        the emulator draws without bias (default True;
        :mod:`gangal_core.calibration.likelihood`).
    validation : float, optional
        The share of the simulations held out to measure the emulator on (default 0.1).

    Returns
    -------
    CalibrationResult
        With the run's record filled in: :meth:`~CalibrationResult.to_dict` is ``calibration.json``.
    """
    recorded = _recorded(locals()) if options is None else dict(options)  # first: locals() = the arguments
    started = time.perf_counter()
    with python_names():
        dev = _device(device, precision)
        shard = distributed.setup(dev)
        sim = resolve_simulator(simulator, ranges=ranges)
        if ranges and emulator is not None:
            raise ArgumentError(
                f"{arg('ranges')} sets the ranges to pretrain over; an {arg('emulator')} was pretrained "
                "over its own ranges. Drop one of them."
            )
        _check_calibrate_choices(recipe, pretrain_recipe, discriminator_input)
        folder = _output_folder(out, resume=resume, finished="calibration.json")
        run = {"batch_size": batch_size, "critic_arch": critic_arch, "seed": seed, "resume": resume,
               "checkpoint_every": checkpoint_every, "progress": progress, "device": dev,
               "precision": precision}  # fmt: skip
        pretraining = {**run, "iterations": pretrain_iterations, "recipe": pretrain_recipe,
                       "emulator_arch": emulator_arch}  # fmt: skip
        if costly_run_asked(budget, bank, sim):
            pretraining["validation"] = validation
        else:
            pretraining["iterations"] = pretrain_iterations or PRETRAIN_ITERATIONS
        training = {**run, "iterations": iterations, "recipe": recipe,
                    "discriminator_input": discriminator_input, "n_samples": n_samples}  # fmt: skip
        timing: dict[str, float] = {}
        with _timed(timing, "true_set"):
            true = _true_set(sim, true_images, true_params, truth, n_true=n_true, seed=seed,
                             source=true_source)  # fmt: skip
        if costly_run_asked(budget, bank, sim):
            costly = {"budget": budget, "bank": bank, "bank_parameters": bank_parameters, "rounds": rounds,
                      "first_bank": first_bank, "predictive_check": predictive_check,
                      "likelihood_fit": likelihood_fit}  # fmt: skip
            trained = _costly_training(emulator, sim, true, folder, pretraining, training, costly, timing)
        else:
            trained = _standard_training(emulator, sim, true, folder, pretraining, training, timing, plots)
        result = dataclasses.replace(
            trained.result, simulator=sim.name, units=tuple(p.unit for p in sim.parameters), truth=true.truth,
            timing=timing, true_data=true.info, emulator=trained.emulator,
            emulator_source=trained.emulator_source, options=recorded, simulation=trained.simulation,
        )  # fmt: skip
        if not shard.is_main:  # under torchrun only rank 0 writes; every process holds the same result
            return result
        if folder is not None:
            with _timed(timing, "report"):
                _write_report(folder, trained.plot_simulator, trained.emulator, result, true, plots=plots,
                              seed=seed, recipe=recipe)  # fmt: skip
        if predictive_check:
            with _timed(timing, "predictive_check"):
                result.predictive = trained.check(result, true.images, folder, seed)
        result.run_seconds = time.perf_counter() - started
        if folder is not None:
            atomic_write_json(folder / "calibration.json", result.to_dict())
    return result


# ---- the steps ---------------------------------------------------------------------------------
class _Trained(NamedTuple):
    """What either way of training gives the rest of :func:`calibrate`."""

    result: CalibrationResult
    emulator: TrainedEmulator
    emulator_source: str | None
    simulation: dict[str, Any] | None  # what the simulator cost (the costly way)
    plot_simulator: Any  # what the plots simulate with
    check: Callable[..., Any]  # (result, true images, folder, seed) -> PredictiveCheck or None


def _standard_training(emulator: Any, sim: Any, true: _TrueSet, folder: Path | None, pretraining: dict,
                       training: dict, timing: dict[str, float], plots: bool) -> _Trained:  # fmt: skip
    """Pretrain (or load) the emulator, then train the generator with fresh simulations."""
    from .predictive import check_best_match

    with _timed(timing, "pretrain"):
        emu, source = _emulator(emulator, sim, folder, pretraining, plots=plots)
    with _timed(timing, "training"):
        result = _train_generator(sim, emu, true.images, folder, training)

    def check(result: CalibrationResult, images: torch.Tensor, folder: Path | None, seed: int) -> Any:
        return check_best_match(sim, result.samples, images, seed=seed)

    return _Trained(result, emu, source, None, sim, check)


def _costly_training(emulator: Any, sim: Any, true: _TrueSet, folder: Path | None, pretraining: dict,
                     training: dict, costly: dict, timing: dict[str, float]) -> _Trained:  # fmt: skip
    """Within a budget, from a bank, in rounds (:mod:`.costly`); plots drawn from the emulator."""
    from .costly import calibrate_costly, costly_predictive_check, emulated_stand_in

    if emulator is not None:
        raise ArgumentError(f"{arg('emulator')}: a run with {arg('budget')} or {arg('bank')} "
                            "pretrains its own emulator from its simulations; drop one.")  # fmt: skip
    with _timed(timing, "training"):
        run = calibrate_costly(sim, true.images, folder, pretraining, training, **costly)

    def check(result: CalibrationResult, images: torch.Tensor, folder: Path | None, seed: int) -> Any:
        run.result = result
        return costly_predictive_check(run, images, folder, seed=seed)

    source = None if folder is None else str(folder / "emulator")
    return _Trained(run.result, run.emulator, source, run.record, emulated_stand_in(run.emulator, sim), check)


def _device(name: str, precision: str) -> torch.device:
    """``device`` resolved (under torchrun, this process's GPU) and ``precision`` checked for it."""
    from gangal_core.runtime.devices import check_precision, resolve_device

    device = distributed.process_device(resolve_device(name, option=arg("device")))
    check_precision(precision, device, option=arg("precision"))
    return device


def _check_choice(argument: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ArgumentError(f"{arg(argument)}: expected one of {', '.join(choices)}, found {value!r}.")


def _check_calibrate_choices(recipe: str, pretrain_recipe: str, discriminator_input: str) -> None:
    from .gan import DISCRIMINATOR_INPUTS, TRAINING_RECIPES
    from .pretraining import PRETRAIN_RECIPES

    _check_choice("recipe", recipe, TRAINING_RECIPES)
    _check_choice("pretrain_recipe", pretrain_recipe, PRETRAIN_RECIPES)
    _check_choice("discriminator_input", discriminator_input, DISCRIMINATOR_INPUTS)


def _output_folder(out: str | Path | None, *, resume: bool, finished: str) -> Path | None:
    """The run folder, checked and made; None (write nothing) without ``out``."""
    if out is None:
        if resume:
            raise ArgumentError(
                f"{arg('resume', python='resume=True')} continues the run in {arg('out')}; give the folder."
            )
        return None
    return prepare_output_folder(out, run_files=(CHECKPOINT, finished), resume=resume)


@contextlib.contextmanager
def _timed(timing: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timing[key] = time.perf_counter() - start


def _recorded(arguments: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments as ``calibration.json`` records them: JSON values, data by its kind."""

    def plain(value: Any) -> Any:
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, (np.ndarray, torch.Tensor)):
            return f"{type(value).__module__}.{type(value).__name__} of shape {list(value.shape)}"
        return getattr(value, "name", None) or type(value).__name__  # a simulator, an emulator

    return {k: plain(v) for k, v in arguments.items() if k not in ("options", "true_source")}


def _pretrain_into(
    folder: Path | None, sim: Any, training: dict[str, Any], *, plots: bool
) -> TrainedEmulator:
    """Pretrain (or resume pretraining) into ``folder``: checkpoint, plots, then the weights."""
    from .emulator import save_emulator
    from .pretraining import pretrain as train_emulator

    emu = train_emulator(sim, checkpoint=folder / CHECKPOINT if folder else None, **training)
    if folder is None or not distributed.current().is_main:  # under torchrun only rank 0 writes
        return emu
    if plots:
        _emulator_plots(sim, emu, folder, seed=training["seed"])
    # the weights last: their presence means the folder is complete (a resumed run that finds
    # them skips pretraining, so a kill between them and the plots must not lose the plots)
    save_emulator(emu, folder)
    return emu


def _emulator_plots(sim: Any, emu: TrainedEmulator, folder: Path, *, seed: int) -> None:
    from .report import plot_emulator_vs_simulator, plot_losses

    plot_emulator_vs_simulator(folder / "emulator.png", sim, emu, seed=seed)
    if emu.info.get("losses"):
        plot_losses(
            folder / "pretrain-losses.png", emu.info["losses"], title=f"pretraining ({emu.info['recipe']})"
        )


def _emulator(
    emulator: Any, sim: Any, folder: Path | None, pretraining: dict[str, Any], *, plots: bool
) -> tuple[TrainedEmulator, str | None]:
    """The emulator to train through, and where it came from: given, reloaded, or pretrained now."""
    from .emulator import load_emulator

    if isinstance(emulator, TrainedEmulator):
        return emulator, None
    path = as_path(emulator)
    if path is not None:
        return load_emulator(path), str(path)
    if emulator is not None:
        raise ArgumentError(
            f"{arg('emulator')}: expected a TrainedEmulator or its folder, found {type(emulator).__name__}."
        )
    if folder is None:
        return _pretrain_into(None, sim, pretraining, plots=False), None
    sub = folder / "emulator"
    if pretraining["resume"] and (sub / EMULATOR_FILE).exists():
        return load_emulator(sub), str(sub)
    sub.mkdir(parents=True, exist_ok=True)
    return _pretrain_into(sub, sim, pretraining, plots=plots), str(sub)


def _train_generator(
    sim: Any, emu: TrainedEmulator, true_images: torch.Tensor, folder: Path | None, training: dict[str, Any]
) -> CalibrationResult:
    """The generator trained through ``emu`` (:func:`gangal_core.calibration.calibrate`)."""
    from .gan import calibrate as train_generator

    training = {**training, "iterations": training["iterations"] or ITERATIONS}
    return train_generator(
        sim, emu, true_images, checkpoint=folder / CHECKPOINT if folder else None, **training
    )


def _write_report(folder: Path, sim: Any, emu: TrainedEmulator, result: CalibrationResult, true: _TrueSet,
                  *, plots: bool, seed: int, recipe: str) -> None:  # fmt: skip
    """``samples.csv``, ``samples.ecsv`` and, with ``plots``, the parameter, corner, image and loss plots."""
    from .report import plot_corner, plot_generated_vs_true, plot_losses, plot_parameters, write_samples

    write_samples(folder, result, descriptions=[p.description for p in sim.parameters])
    if not plots:
        return
    ranges = [(p["low"], p["high"]) for p in emu.parameters]
    truth = {"true_params": true.params, "truth": true.truth, "ranges": ranges, "units": result.units}
    plot_parameters(folder / "parameters.png", result.names, result.samples, **truth)
    plot_corner(folder / "corner.png", result.names, result.samples, **truth)
    plot_generated_vs_true(folder / "generated.png", sim, result.samples, true.images, seed=seed)
    plot_losses(folder / "losses.png", result.losses, title=f"calibration of {sim.name} ({recipe} recipe)")


# ---- the true set ------------------------------------------------------------------------------
class _TrueSet(NamedTuple):
    images: torch.Tensor
    params: np.ndarray | None  # (n, P) float64, when known
    truth: dict[str, tuple[float, float]] | None
    info: dict[str, Any]  # calibration.json's "true_data"


def _true_set(sim: Any, true_images: Any, true_params: Any, truth: Any, *, n_true: int, seed: int,
              source: str | None) -> _TrueSet:  # fmt: skip
    """True images, their parameters and truth when known, and where they came from."""
    if true_images is None:
        if true_params is not None:
            raise ArgumentError(
                f"{arg('true_params')} describes {arg('true_images')}; give both, or neither."
            )
        return _drawn_true_set(sim, truth, n_true=n_true, seed=seed, source=source)
    if truth:
        raise ArgumentError(
            f"{arg('truth')} builds a true set; it cannot be combined with {arg('true_images')}."
        )
    path = as_path(true_images)
    if path is not None:
        from gangal_core.io.images import read_images

        images = torch.from_numpy(
            read_images(path, expected_shape=tuple(sim.image_shape), what=arg("true_images"))
        )
    else:
        images = as_image_tensor(true_images, argument="true_images", shape=tuple(sim.image_shape))
    if images.shape[0] < 2:
        raise ArgumentError(f"{arg('true_images')}: need at least 2 images, found {images.shape[0]}.")
    params = None if true_params is None else _true_params(sim, true_params, len(images))
    known = None
    if params is not None:
        known = {n: (float(params[:, j].mean()), float(params[:, j].std(ddof=1)))
                 for j, n in enumerate(sim.parameter_names())}  # fmt: skip
    where = source or (
        str(path) if path is not None else f"{type(true_images).__module__}.{type(true_images).__name__}"
    )
    return _TrueSet(images, params, known, {"source": where, "n_images": int(images.shape[0])})


def _true_params(sim: Any, true_params: Any, n_images: int) -> np.ndarray:
    """The true images' parameters, ``(n, P)`` float64, from a CSV or an array."""
    path = as_path(true_params)
    if path is not None:
        from gangal_core.simulation.engine import read_parameter_csv

        params = read_parameter_csv(path, sim, option=arg("true_params")).astype(np.float64)
    else:
        params = np.asarray(
            true_params.cpu() if isinstance(true_params, torch.Tensor) else true_params, dtype=np.float64
        )
        if params.ndim != 2 or params.shape[1] != len(sim.parameters) or not np.isfinite(params).all():
            raise ArgumentError(
                f"{arg('true_params')}: expected finite values of shape (n, {len(sim.parameters)}), "
                f"found shape {params.shape}."
            )
    if len(params) != n_images:
        where = f" {path}" if path is not None else ""
        raise ArgumentError(
            f"{arg('true_params')}{where}: {len(params)} rows, "
            f"but {arg('true_images')} has {n_images} images."
        )
    return params


def _drawn_true_set(sim: Any, truth: Any, *, n_true: int, seed: int, source: str | None) -> _TrueSet:
    """A true set drawn from the reference truth, with ``truth``'s overrides (a closure test)."""
    from gangal_core.runtime.limits import check_fits_in_memory

    from .truth import make_true_set, parse_truth

    names = sim.parameter_names()
    full = dict(sim.reference_truth or {})
    full.update(parse_truth(truth or (), names))
    missing = [n for n in names if n not in full]
    if missing:
        raise ArgumentError(
            f"simulator {sim.name!r} has no reference truth for {', '.join(missing)}: "
            f"give {arg('true_images')} PATH (true images) or {arg('truth')} NAME=MEAN,STD "
            "for every parameter."
        )
    full = {n: full[n] for n in names}
    per_image = (int(np.prod(sim.image_shape)) + len(names)) * 4
    check_fits_in_memory(arg("n_true"), n_true, per_image, f"{sim.name} images and their parameters")
    params, images = make_true_set(sim, full, n=n_true, seed=seed)
    where = source or ("reference truth" + (" with the given truth" if truth else ""))
    return _TrueSet(images, params.numpy().astype(np.float64), full, {"source": where, "n_images": n_true})
