"""The work behind ``gangal pretrain``, ``gangal calibrate`` and ``gangal emulate``.

Each function takes the command's validated options (:mod:`gangal_core.config`), resolves
them (the registered simulator, ``--range`` and ``--truth`` strings) and calls the Python API
(:mod:`.api`), which does the work and writes the files; errors name the command's flags
(:data:`FLAGS`).  What is left here is what the terminal shows.
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

from gangal_core.config import CalibrateConfig, CheckConfig, EmulateConfig, PretrainConfig
from gangal_core.errors import ConfigError
from gangal_core.runtime import distributed
from gangal_core.runtime.api import command_line_names
from gangal_core.runtime.devices import resolve_device

from .api import CHECKPOINT, EMULATOR_FILE, calibrate, pretrain

__all__ = ["CHECKPOINT", "FLAGS", "run_calibrate", "run_check", "run_emulate", "run_pretrain"]

#: How ``gangal pretrain`` and ``gangal calibrate`` spell the Python API's arguments.
FLAGS = {
    "simulator": "--simulator",
    "out": "--out",
    "resume": "--resume",
    "device": "--device",
    "precision": "--precision",
    "ranges": "--range",
    "recipe": "--recipe",
    "pretrain_recipe": "--pretrain-recipe",
    "discriminator_input": "--discriminator-input",
    "emulator": "--emulator",
    "true_images": "--true-data",
    "true_params": "--true-params",
    "truth": "--truth",
    "n_true": "--n-true",
    "budget": "--budget",
    "bank": "--bank",
    "bank_parameters": "--bank-parameters",
    "rounds": "--rounds",
    "first_bank": "--first-bank",
    "likelihood_fit": "--likelihood-fit",
    "validation": "--validation",
}


def _simulator(cfg: PretrainConfig | CalibrateConfig) -> tuple[Any, dict[str, tuple[float, float]]]:
    """The simulator (registered, from a file, or declared by ``--simulator-spec``) and the ``--range``s."""
    from gangal_core.plugins import get_registry
    from gangal_core.simulation.simulator import parse_ranges
    from gangal_core.simulation.spec import load_simulator_spec

    if cfg.simulator_spec is not None:
        sim = load_simulator_spec(cfg.simulator_spec)
    else:
        sim = get_registry().simulator(cfg.simulator)
    return sim, parse_ranges(cfg.range, sim)


def _costly(cfg: PretrainConfig | CalibrateConfig) -> dict[str, Any]:
    """The options of a costly or external simulator, as the Python API takes them."""
    return {"budget": cfg.budget, "bank": cfg.bank, "bank_parameters": cfg.bank_parameters,
            "validation": cfg.validation}  # fmt: skip


def _progress(cfg: Any, progress: bool) -> bool:
    """``--progress`` from the options when they hold it, else the caller's ``progress``."""
    return bool(getattr(cfg, "progress", progress))


def run_pretrain(cfg: PretrainConfig, *, progress: bool = True, console: Console | None = None) -> Path:
    """``gangal pretrain``: train an emulator and write ``OUT/emulator.safetensors``."""
    console = console or Console()
    with command_line_names(FLAGS):
        sim, ranges = _simulator(cfg)
        emu = pretrain(
            sim, out=cfg.out, ranges=ranges, iterations=cfg.iterations, batch_size=cfg.batch_size,
            recipe=cfg.recipe, emulator_arch=cfg.emulator_arch, critic_arch=cfg.critic_arch, seed=cfg.seed,
            checkpoint_every=cfg.checkpoint_every, resume=cfg.resume, device=cfg.device,
            precision=cfg.precision, progress=_progress(cfg, progress), **_costly(cfg),
        )  # fmt: skip
    path = cfg.out / EMULATOR_FILE
    if not distributed.current().is_main:
        return path
    console.print(
        f"Pretrained a {emu.arch!r} emulator of {sim.name} "
        f"({cfg.recipe} recipe, {cfg.iterations} iterations, "
        f"{emu.info['seconds']:.0f} s): {path}",
        highlight=False,
    )
    return path


def run_calibrate(
    cfg: CalibrateConfig, *, progress: bool = True, console: Console | None = None
) -> dict[str, Any]:
    """``gangal calibrate``: pretrain if needed, train the generator, write results and plots."""
    console = console or Console()
    with command_line_names(FLAGS):
        sim, ranges = _simulator(cfg)
        result = calibrate(
            sim, cfg.true_data, true_params=cfg.true_params, truth=cfg.truth, n_true=cfg.n_true,
            emulator=cfg.emulator, ranges=ranges, iterations=cfg.iterations,
            pretrain_iterations=cfg.pretrain_iterations, batch_size=cfg.batch_size, recipe=cfg.recipe,
            pretrain_recipe=cfg.pretrain_recipe, discriminator_input=cfg.discriminator_input,
            emulator_arch=cfg.emulator_arch, critic_arch=cfg.critic_arch, n_samples=cfg.n_samples,
            predictive_check=cfg.predictive_check, seed=cfg.seed, out=cfg.out,
            checkpoint_every=cfg.checkpoint_every, resume=cfg.resume, device=cfg.device,
            precision=cfg.precision, progress=_progress(cfg, progress),
            options=json.loads(cfg.model_dump_json()),
            true_source=None if cfg.true_data else "reference truth" + (" with --truth" if cfg.truth else ""),
            rounds=cfg.rounds, first_bank=cfg.first_bank, likelihood_fit=cfg.likelihood_fit, **_costly(cfg),
        )  # fmt: skip
    if not distributed.current().is_main:  # under torchrun only rank 0 writes and prints
        return {}
    doc = result.to_dict()
    _print_calibration(console, cfg, doc, predictive_check=cfg.predictive_check)
    return doc


def _print_calibration(console: Console, cfg: CalibrateConfig, doc: dict[str, Any], *,
                       predictive_check: bool) -> None:  # fmt: skip
    """The table, the predictive check's verdict and where the files went."""
    from .predictive import skip_reason
    from .report import calibration_table

    skipped = skip_reason(doc["true_data"]["n_images"]) if predictive_check else None
    if skipped:
        console.print(skipped)
    console.print(calibration_table(doc))
    check = doc.get("predictive_check")
    if check is not None:
        _print_verdict(console, check)
    timing = doc["timing_seconds"]
    phases = (f"pretraining {timing['pretrain']:.0f} s, " if "pretrain" in timing else "") + (
        f"training {timing['training']:.0f} s"
    )
    if "simulator_images" in doc:
        limit = f" of a budget of {doc['budget']:,}" if doc.get("budget") else ""
        console.print(f"Simulator: {doc['simulator_images']:,} images{limit}, "
                      f"{doc['simulator_seconds']:.1f} s inside it.", highlight=False)  # fmt: skip
    if "predictive_check_pending" in doc:
        pending = doc["predictive_check_pending"]
        console.print(
            f"Predictive check: simulate the {pending['n_images']} parameter sets in "
            f"{cfg.out}/{pending['parameters']} with your simulator, then run "
            f"`gangal check --run {cfg.out} --simulations YOUR_IMAGES`.", highlight=False
        )
    console.print(
        f"Wrote {cfg.out}/calibration.json, samples.csv, samples.ecsv and plots in {doc['seconds']:.0f} s "
        f"({phases}).",
        highlight=False,
    )


def _print_verdict(console: Console, check: dict[str, Any]) -> None:
    verdict = (
        "[bold yellow]clearly above 0.5: the true images are told apart from simulations at the "
        "best match. The simulator may not describe these images (misspecification) or the "
        "calibration has not converged; see docs/calibration.md, 'Predictive check'.[/]"
        if check["flagged"]
        else "[green]consistent with indistinguishable (0.5)[/]"
    )
    console.print(
        f"Predictive check: held-out AUC {check['auc']:.3f} ± {check['auc_err']:.3f} "
        f"({check['n_test']} + {check['n_test']} test images): {verdict}"
    )


def run_check(cfg: CheckConfig, *, console: Console | None = None) -> dict[str, Any]:
    """``gangal check``: the predictive check from the user's simulations at the best match."""
    from gangal_core.io.atomic import atomic_write_json
    from gangal_core.io.images import read_images

    from .costly import BEST_MATCH_FILE
    from .predictive import MIN_IMAGES, predictive_check

    console = console or Console()
    doc_path = cfg.run / "calibration.json"
    try:
        doc = json.loads(doc_path.read_text())
        pending = doc["predictive_check_pending"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"--run {cfg.run}: expected the folder of a `gangal calibrate --simulator-spec` run, with "
            f"calibration.json naming {BEST_MATCH_FILE} ({type(exc).__name__}: {exc})."
        ) from None
    true_path = cfg.true_data or Path(doc["true_data"]["source"])
    if not true_path.exists():
        raise ConfigError(f"--true-data: the run's true images {true_path} are not there; give --true-data.")
    true = torch.from_numpy(read_images(true_path, what="--true-data"))
    simulated = torch.from_numpy(read_images(cfg.simulations, expected_shape=tuple(true.shape[1:]),
                                             what="--simulations"))  # fmt: skip
    if len(simulated) != pending["n_images"]:
        raise ConfigError(
            f"--simulations {cfg.simulations}: {len(simulated)} images, but {BEST_MATCH_FILE} holds "
            f"{pending['n_images']} parameter sets; simulate each row once, in order."
        )
    n = min(len(true), len(simulated))
    if n < MIN_IMAGES:
        raise ConfigError(
            f"--simulations: the check needs {MIN_IMAGES} images of each kind or more; found {n}."
        )
    result = predictive_check(true[:n], simulated[:n], seed=cfg.seed)
    doc.pop("predictive_check_pending")
    doc["predictive_auc"] = round(result.auc, 4)
    doc["predictive_check"] = {**result.as_dict(), "simulations": str(cfg.simulations)}
    atomic_write_json(doc_path, doc)
    _print_verdict(console, doc["predictive_check"])
    return doc


def run_emulate(cfg: EmulateConfig, *, console: Console | None = None) -> Path:
    """``gangal emulate``: images from a pretrained emulator for the parameters in a CSV."""
    from gangal_core.io.writers import describe_file_formats, file_format, write_image_file

    from .emulator import load_emulator

    console = console or Console()
    if file_format(cfg.out) is None:
        found = f"{cfg.out.suffix!r}" if cfg.out.suffix else "no suffix"
        raise ConfigError(f"--out {cfg.out}: expected {describe_file_formats()}; found {found}.")
    emu = load_emulator(cfg.emulator)
    params = _emulated_parameters(cfg, emu)
    description = _emulation_description(cfg, emu, params)
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    images = emu.emulate(torch.from_numpy(params), generator=gen, batch_size=cfg.batch_size,
                         precision=cfg.precision, device=resolve_device(cfg.device))  # fmt: skip
    seconds = time.perf_counter() - start
    write_image_file(cfg.out, images.numpy(), parameters=params, parameter_names=emu.parameter_names,
                     parameter_units=[p.get("unit", "") for p in emu.parameters],
                     description=description)  # fmt: skip
    console.print(
        f"Emulated {len(params)} {emu.simulator} images in {seconds:.2f} s "
        f"({len(params) / max(seconds, 1e-9):,.0f} images/s): {cfg.out}",
        highlight=False,
    )
    return cfg.out


def _emulated_parameters(cfg: EmulateConfig, emu: Any) -> np.ndarray:
    """The rows of ``--params``, each inside the ranges the emulator was trained on."""
    from gangal_core.simulation.engine import check_parameter_ranges, read_parameter_csv

    owner = types.SimpleNamespace(
        name=f"{emu.simulator} (emulated)", parameter_names=lambda: emu.parameter_names,
        parameters=[types.SimpleNamespace(unit=p.get("unit", "")) for p in emu.parameters],
    )  # fmt: skip
    params = read_parameter_csv(cfg.params, owner)
    ranges = [types.SimpleNamespace(**p) for p in emu.parameters]
    check_parameter_ranges(params, ranges, path=cfg.params, bounds="the range the emulator was trained on")
    return params


def _emulation_description(cfg: EmulateConfig, emu: Any, params: np.ndarray) -> dict[str, Any]:
    """What the output file says of the run; an existing ``--out`` of other options is refused."""
    import hashlib

    from gangal_core import __version__
    from gangal_core.io.folders import prepare_output_file
    from gangal_core.io.writers import file_format

    key = {"emulator": str(Path(cfg.emulator).resolve()), "simulator": emu.simulator, "n": len(params),
           "seed": cfg.seed, "precision": cfg.precision,
           "params_sha256": hashlib.sha256(params.tobytes()).hexdigest()}  # fmt: skip
    description = {"format": f"gangal-emulation-{file_format(cfg.out)}", "version": 1, **key,
                   "gangal_version": __version__}  # fmt: skip
    with command_line_names({"out": "--out", "overwrite": "--overwrite"}):
        prepare_output_file(cfg.out, overwrite=cfg.overwrite, description=description, identity=list(key),
                            holds="gangal emulation")  # fmt: skip
    return description
