"""The work behind ``gangal pretrain``, ``gangal calibrate`` and ``gangal emulate``.

Each function takes the command's validated options (:mod:`gangal_core.config`), does the
work through the library API and writes its files atomically.
"""

from __future__ import annotations

import json
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from gangal_core.config import CalibrateConfig, EmulateConfig, PretrainConfig
from gangal_core.errors import ConfigError
from gangal_core.io.atomic import atomic_open, atomic_write_json
from gangal_core.runtime import distributed

from .truth import parse_truth

__all__ = ["run_calibrate", "run_emulate", "run_pretrain"]

CHECKPOINT = "checkpoint.safetensors"


def _simulator(cfg: Any) -> Any:
    """The registered simulator, with the run's ``--range`` overrides."""
    from gangal_core.plugins import get_registry
    from gangal_core.simulation.simulator import parse_ranges, with_ranges

    sim = get_registry().simulator(cfg.simulator)
    return with_ranges(sim, parse_ranges(cfg.range, sim))


def _device(name: str) -> Any:
    """``--device`` resolved; under torchrun each process takes the GPU of its local rank."""
    from gangal_core.runtime.devices import resolve_device

    return distributed.process_device(resolve_device(name))


def _prepare_folder(folder: Path, *, resume: bool, finished: str, option: str = "--out") -> None:
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {folder}: exists and is not a folder.")
    if not resume and ((folder / CHECKPOINT).exists() or (folder / finished).exists()):
        raise ConfigError(
            f"{option} {folder}: already holds a run. Pass --resume to continue it, "
            f"or choose another {option}."
        )
    folder.mkdir(parents=True, exist_ok=True)


def run_pretrain(cfg: PretrainConfig, *, progress: bool = True, console: Console | None = None) -> Path:
    """``gangal pretrain``: train an emulator and write ``OUT/emulator.safetensors``."""

    console = console or Console()
    device = _device(cfg.device)
    shard = distributed.setup(device)
    sim = _simulator(cfg)
    _prepare_folder(cfg.out, resume=cfg.resume, finished="emulator.safetensors")
    emu, path = _pretrain_into(
        cfg.out, sim, cfg, iterations=cfg.iterations, recipe=cfg.recipe, progress=progress
    )
    if not shard.is_main:
        return path
    console.print(
        f"Pretrained a {emu.arch!r} emulator of {sim.name} "
        f"({cfg.recipe} recipe, {cfg.iterations} iterations, "
        f"{emu.info['seconds']:.0f} s): {path}",
        highlight=False,
    )
    return path


def _pretrain_into(
    folder: Path,
    sim: Any,
    cfg: PretrainConfig | CalibrateConfig,
    *,
    iterations: int,
    recipe: str,
    progress: bool,
) -> tuple[Any, Path]:
    """Pretrain (or resume pretraining) into ``folder``: weights, checkpoint and plots."""
    from .emulator import save_emulator
    from .pretraining import pretrain

    emu = pretrain(
        sim,
        iterations=iterations,
        batch_size=cfg.batch_size,
        recipe=recipe,
        emulator_arch=cfg.emulator_arch,
        critic_arch=cfg.critic_arch,
        seed=cfg.seed,
        checkpoint=folder / CHECKPOINT,
        checkpoint_every=cfg.checkpoint_every,
        resume=cfg.resume,
        progress=progress,
        device=_device(cfg.device),
        precision=cfg.precision,
    )
    path = folder / "emulator.safetensors"
    if not distributed.current().is_main:  # under torchrun only rank 0 writes
        return emu, path
    _emulator_plots(sim, emu, folder, seed=cfg.seed)
    # the weights last: their presence means the folder is complete (a resumed run that finds
    # them skips pretraining, so a kill between them and the plots must not lose the plots)
    path = save_emulator(emu, folder)
    return emu, path


def _emulator_plots(sim: Any, emu: Any, folder: Path, *, seed: int) -> None:
    from .report import plot_emulator_vs_simulator, plot_losses

    plot_emulator_vs_simulator(folder / "emulator.png", sim, emu, seed=seed)
    if emu.info.get("losses"):
        plot_losses(
            folder / "pretrain-losses.png", emu.info["losses"], title=f"pretraining ({emu.info['recipe']})"
        )


def _true_set(cfg: CalibrateConfig, sim: Any) -> tuple[torch.Tensor, np.ndarray | None, dict | None, dict]:
    """True images, their parameters when known, the truth (mu, sigma) when known, and provenance."""
    from gangal_core.io.images import read_images
    from gangal_core.simulation.engine import read_parameter_csv

    from .truth import make_true_set

    names = sim.parameter_names()
    if cfg.true_data is not None:
        if cfg.truth:
            raise ConfigError("--truth builds a true set; it cannot be combined with --true-data.")
        images = torch.from_numpy(
            read_images(cfg.true_data, expected_shape=tuple(sim.image_shape), what="--true-data")
        )
        params = truth = None
        if cfg.true_params is not None:
            params = read_parameter_csv(cfg.true_params, sim, option="--true-params").astype(np.float64)
            if len(params) != images.shape[0]:
                raise ConfigError(
                    f"--true-params {cfg.true_params}: {len(params)} rows, "
                    f"but --true-data has {images.shape[0]} images."
                )
            truth = {
                n: (float(params[:, j].mean()), float(params[:, j].std(ddof=1))) for j, n in enumerate(names)
            }
        return images, params, truth, {"source": str(cfg.true_data), "n_images": int(images.shape[0])}
    if cfg.true_params is not None:
        raise ConfigError("--true-params describes --true-data; give both, or neither.")
    truth = dict(sim.reference_truth or {})
    truth.update(parse_truth(cfg.truth, names))
    missing = [n for n in names if n not in truth]
    if missing:
        raise ConfigError(
            f"simulator {sim.name!r} has no reference truth for {', '.join(missing)}: give --true-data PATH "
            f"(true images) or --truth NAME=MEAN,STD for every parameter."
        )
    truth = {n: truth[n] for n in names}
    from gangal_core.runtime.limits import check_fits_in_memory

    per_image = (int(np.prod(sim.image_shape)) + len(names)) * 4
    check_fits_in_memory("--n-true", cfg.n_true, per_image, f"{sim.name} images and their parameters")
    params, images = make_true_set(sim, truth, n=cfg.n_true, seed=cfg.seed)
    source = "reference truth" + (" with --truth" if cfg.truth else "")
    return images, params.numpy().astype(np.float64), truth, {"source": source, "n_images": cfg.n_true}


def run_calibrate(
    cfg: CalibrateConfig, *, progress: bool = True, console: Console | None = None
) -> dict[str, Any]:
    """``gangal calibrate``: pretrain if needed, train the generator, write results and plots."""
    from .emulator import load_emulator
    from .gan import calibrate
    from .report import (
        calibration_table,
        plot_generated_vs_true,
        plot_losses,
        plot_parameters,
        write_samples_csv,
    )
    from .result import summarise

    started = time.perf_counter()
    console = console or Console()
    device = _device(cfg.device)
    shard = distributed.setup(device)
    sim = _simulator(cfg)
    if cfg.range and cfg.emulator is not None:
        raise ConfigError(
            "--range sets the ranges to pretrain over; an --emulator was pretrained over its own "
            "ranges. Drop one of them."
        )
    _prepare_folder(cfg.out, resume=cfg.resume, finished="calibration.json")
    timing: dict[str, float] = {}

    t = time.perf_counter()
    true_images, true_params, truth, true_info = _true_set(cfg, sim)
    timing["true_set"] = time.perf_counter() - t

    t = time.perf_counter()
    if cfg.emulator is not None:
        emu = load_emulator(cfg.emulator)
        emulator_path = cfg.emulator
    else:
        folder = cfg.out / "emulator"
        emulator_path = folder
        if cfg.resume and (folder / "emulator.safetensors").exists():
            emu = load_emulator(folder)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            emu, _ = _pretrain_into(
                folder,
                sim,
                cfg,
                iterations=cfg.pretrain_iterations,
                recipe=cfg.pretrain_recipe,
                progress=progress,
            )
    timing["pretrain"] = time.perf_counter() - t

    t = time.perf_counter()
    result = calibrate(
        sim,
        emu,
        true_images,
        iterations=cfg.iterations,
        batch_size=cfg.batch_size,
        recipe=cfg.recipe,
        discriminator_input=cfg.discriminator_input,
        critic_arch=cfg.critic_arch,
        n_samples=cfg.n_samples,
        seed=cfg.seed,
        checkpoint=cfg.out / CHECKPOINT,
        checkpoint_every=cfg.checkpoint_every,
        resume=cfg.resume,
        progress=progress,
        device=device,
        precision=cfg.precision,
    )
    timing["training"] = time.perf_counter() - t
    if not shard.is_main:  # under torchrun only rank 0 writes; every process holds the same result
        return {}

    t = time.perf_counter()
    write_samples_csv(cfg.out / "samples.csv", result.names, result.samples)
    ranges = [(p["low"], p["high"]) for p in emu.parameters]
    plot_parameters(cfg.out / "parameters.png", result.names, result.samples, true_params=true_params,
                    truth=truth, ranges=ranges)  # fmt: skip
    plot_generated_vs_true(cfg.out / "generated.png", sim, result.samples, true_images, seed=cfg.seed)
    plot_losses(
        cfg.out / "losses.png", result.losses, title=f"calibration of {sim.name} ({cfg.recipe} recipe)"
    )
    timing["report"] = time.perf_counter() - t

    check = None
    if cfg.predictive_check:
        t = time.perf_counter()
        check = _predictive_check(sim, result.samples, true_images, seed=cfg.seed, console=console)
        timing["predictive_check"] = time.perf_counter() - t

    seconds = time.perf_counter() - started
    doc = summarise(
        result,
        simulator=sim.name,
        truth=truth,
        seconds=seconds,
        extra={
            "timing_seconds": {k: round(v, 2) for k, v in timing.items()},
            "true_data": true_info,
            "emulator": str(emulator_path),
            "options": json.loads(cfg.model_dump_json()),
        },
    )
    if check is not None:
        doc["predictive_auc"] = round(check.auc, 4)
        doc["predictive_check"] = check.as_dict()
    atomic_write_json(cfg.out / "calibration.json", doc)
    console.print(calibration_table(doc))
    if check is not None:
        verdict = (
            "[bold yellow]clearly above 0.5: the true images are told apart from simulations at the "
            "best match. The simulator may not describe these images (misspecification) or the "
            "calibration has not converged; see docs/calibration.md, 'Predictive check'.[/]"
            if check.flagged
            else "[green]consistent with indistinguishable (0.5)[/]"
        )
        console.print(
            f"Predictive check: held-out AUC {check.auc:.3f} ± {check.auc_err:.3f} "
            f"({check.n_test} + {check.n_test} test images): {verdict}"
        )
    console.print(
        f"Wrote {cfg.out}/calibration.json, samples.csv and plots in {seconds:.0f} s "
        f"(pretraining {timing['pretrain']:.0f} s, training {timing['training']:.0f} s).",
        highlight=False,
    )
    return doc


#: Images of each kind in the predictive check (the true set is cut to this many at most).
PREDICTIVE_IMAGES = 4000


def _predictive_check(sim: Any, samples: np.ndarray, true_images: torch.Tensor, *, seed: int,
                      console: Console) -> Any:  # fmt: skip
    """The classifier two-sample test, or None (with a note) when the true set is too small for it."""
    from .predictive import MIN_IMAGES, predictive_check, simulate_best_match

    n = min(int(true_images.shape[0]), PREDICTIVE_IMAGES)
    if n < MIN_IMAGES:
        console.print(f"Predictive check skipped: it needs at least {MIN_IMAGES} true images, found {n}.")
        return None
    simulated = simulate_best_match(sim, samples, n, seed=seed)
    return predictive_check(true_images, simulated, seed=seed)


def run_emulate(cfg: EmulateConfig, *, console: Console | None = None) -> Path:
    """``gangal emulate``: images from a pretrained emulator for the parameters in a CSV."""
    from gangal_core.simulation.engine import read_parameter_csv

    from .emulator import load_emulator

    console = console or Console()
    if cfg.out.suffix != ".npy":
        raise ConfigError(f"--out {cfg.out}: expected a path ending in .npy.")
    if not cfg.out.parent.exists():
        raise ConfigError(f"--out {cfg.out}: the folder {cfg.out.parent} does not exist.")
    emu = load_emulator(cfg.emulator)
    owner = types.SimpleNamespace(
        name=f"{emu.simulator} (emulated)", parameter_names=lambda: emu.parameter_names
    )
    params = read_parameter_csv(cfg.params, owner)
    lo = np.array([p["low"] for p in emu.parameters])
    hi = np.array([p["high"] for p in emu.parameters])
    outside = (params < lo) | (params > hi)
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise ConfigError(
            f"--params {cfg.params}, line {row + 2}: "
            f"{emu.parameter_names[col]} = {params[row, col]:g} is outside "
            f"the range the emulator was trained on, [{lo[col]:g}, {hi[col]:g}]."
        )
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    images = emu.emulate(
        torch.from_numpy(params), generator=gen, batch_size=cfg.batch_size, precision=cfg.precision
    )
    seconds = time.perf_counter() - start
    with atomic_open(cfg.out, "wb") as fh:
        np.save(fh, images.numpy())
    console.print(
        f"Emulated {len(params)} {emu.simulator} images in {seconds:.2f} s "
        f"({len(params) / max(seconds, 1e-9):,.0f} images/s): {cfg.out}",
        highlight=False,
    )
    return cfg.out
