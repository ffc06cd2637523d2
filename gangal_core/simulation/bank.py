"""Simulation banks: stored simulations an emulator trains from, instead of calling the simulator.

A costly simulator is run once, often on a cluster and often by a program gangal cannot call
(C++, Fortran); its images and their parameters are then reused by every pretraining and
calibration.  A bank is read from

- a ``gangal simulate`` output: a ``.npy`` file with its ``.parameters.npy`` and ``.json``
  sidecars, an ``.npz`` or FITS file holding its parameters, or a folder of safetensors shards
  with ``manifest.json`` (a Slurm array's output);
- any images :func:`~gangal_core.io.images.read_images` reads (a FITS or PNG folder, ``.npy``,
  ``.npz``...) and a parameter CSV whose header names the simulator's parameters, one row per
  image in the order the images are read (files sorted by name).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gangal_core.errors import ConfigError

from .simulator import Simulator

__all__ = ["SimulationBank", "load_bank", "simulate_bank"]

NPY_FORMAT = "gangal-simulation-npy"


@dataclass
class SimulationBank:
    """Simulations: physical parameters ``(n, P)`` and their images ``(n, C, H, W)``, float32.

    Attributes
    ----------
    parameters : torch.Tensor
        One row per image, columns in the simulator's parameter order.
    images : torch.Tensor
        The simulator's images, in its pixel units.
    source : str
        Where they came from, for messages and metadata.
    """

    parameters: torch.Tensor
    images: torch.Tensor
    source: str = ""

    def __post_init__(self) -> None:
        if self.parameters.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"{self.parameters.shape[0]} parameter rows for {self.images.shape[0]} images"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def split(self, fraction: float, *, seed: int) -> tuple[SimulationBank, SimulationBank]:
        """A seeded random split: ``(train, held out)``, ``fraction`` of the rows held out."""
        n_out = round(len(self) * fraction)
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        held, kept = order[:n_out], order[n_out:]
        return self.take(kept), self.take(held)

    def take(self, rows: torch.Tensor) -> SimulationBank:
        """The bank of the given rows."""
        return SimulationBank(self.parameters[rows], self.images[rows], self.source)

    def concatenate(self, other: SimulationBank) -> SimulationBank:
        """This bank followed by ``other``."""
        return SimulationBank(
            torch.cat([self.parameters, other.parameters]),
            torch.cat([self.images, other.images]),
            " + ".join(s for s in (self.source, other.source) if s),
        )


def load_bank(
    path: str | Path, simulator: Simulator, *, parameters: str | Path | None = None, option: str = "--bank"
) -> SimulationBank:
    """Read a simulation bank for ``simulator`` (see the module's description of the layouts).

    Parameters
    ----------
    path : path-like
        A ``gangal simulate`` output (``.npy``, ``.npz``, FITS or a shard folder), or images in
        any format gangal reads.
    simulator : Simulator
        The simulator the bank must match: parameter names and image shape.
    parameters : path-like, optional
        The parameter table (CSV, ECSV or FITS) of plain images.  By default ``parameters.csv``
        (or ``parameters.ecsv``) inside an image folder; beside an image file ``NAME.EXT``,
        ``NAME.csv``, ``NAME.ecsv``, ``parameters.csv`` or ``parameters.ecsv``, the first found.
    option : str, optional
        The option named in error messages.

    Returns
    -------
    SimulationBank
        Parameter columns in the simulator's order, whatever the file's order.

    Raises
    ------
    ConfigError
        The files are missing or unreadable, or do not match the simulator.
    """
    from gangal_core.io.images import MANIFEST_NAME, read_images, read_simulation_folder

    path = Path(path)
    names = list(simulator.parameter_names())
    if path.is_dir() and (path / MANIFEST_NAME).is_file() and parameters is None:
        images, params, found = read_simulation_folder(path, what=f"{option} images")
        params = _reorder(params, found, names, path, option)
    elif path.suffix == ".npy" and path.with_suffix(".json").is_file() and parameters is None:
        images, params = _read_simulate_npy(path, names, option)
    elif parameters is None and _simulated_file(path):
        images, params = _read_simulate_file(path, names, option)
    else:
        images = _check_shape(read_images(path, what=f"{option} images"), simulator, path, option)
        params = _read_parameter_table(_parameter_file(path, parameters, option), simulator, option)
    _check_shape(images, simulator, path, option)
    if len(params) != len(images):
        raise ConfigError(
            f"{option} {path}: {len(images)} images but {len(params)} parameter rows; "
            "each image needs one row, in the order the images are read (files sorted by name)."
        )
    if not np.isfinite(params).all():
        raise ConfigError(f"{option} {path}: the parameters hold NaN or infinite values.")
    return SimulationBank(
        torch.from_numpy(np.ascontiguousarray(params, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)),
        str(path),
    )


def _check_shape(images: np.ndarray, simulator: Simulator, path: Path, option: str) -> np.ndarray:
    if tuple(images.shape[1:]) != tuple(simulator.image_shape):
        raise ConfigError(
            f"{option} {path}: images of shape {tuple(images.shape[1:])}, but simulator "
            f"{simulator.name!r} makes {tuple(simulator.image_shape)}."
        )
    return images


def _reorder(params: np.ndarray, found: list[str], names: list[str], path: Path, option: str) -> np.ndarray:
    if sorted(found) != sorted(names):
        raise ConfigError(
            f"{option} {path}: simulated with parameters {', '.join(found)}, but the simulator's are "
            f"{', '.join(names)}."
        )
    return params[:, [found.index(n) for n in names]]


def _read_simulate_npy(path: Path, names: list[str], option: str) -> tuple[np.ndarray, np.ndarray]:
    sidecar = path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
        if not isinstance(meta, dict) or meta.get("format") != NPY_FORMAT:
            raise ValueError(f"expected format {NPY_FORMAT!r}")
        found = [str(n) for n in meta["parameter_names"]]
        params = np.load(path.parent / str(meta["parameters_file"]), allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{option} {path}: its sidecar {sidecar.name} does not describe a `gangal simulate` run ({exc})."
        ) from None
    from gangal_core.io.images import read_images

    images = read_images(path, what=f"{option} images")
    return images, _reorder(np.asarray(params, dtype=np.float32), found, names, path, option)


def _simulated_file(path: Path) -> bool:
    """An ``.npz`` or FITS file written by ``gangal simulate``."""
    from gangal_core.io.writers import file_format, read_file_description

    found = read_file_description(path) if file_format(path) in ("npz", "fits") else None
    return found is not None and str(found.get("format", "")).startswith("gangal-simulation-")


def _read_simulate_file(path: Path, names: list[str], option: str) -> tuple[np.ndarray, np.ndarray]:
    from gangal_core.io.images import read_images
    from gangal_core.io.writers import read_file_parameters

    try:
        params, found = read_file_parameters(path)
    except ValueError as exc:
        raise ConfigError(f"{option} {path}: a `gangal simulate` file, but it holds {exc}.") from None
    images = read_images(path, what=f"{option} images")
    return images, _reorder(params, found, names, path, option)


def _parameter_file(path: Path, parameters: str | Path | None, option: str) -> Path:
    if parameters is not None:
        return Path(parameters)
    # a CSV first, as before ECSV tables were read; then its ECSV sibling (which carries units)
    stems = [path / "parameters"] if path.is_dir() else [path.with_suffix(""), path.parent / "parameters"]
    guesses = [stem.with_name(stem.name + suffix) for stem in stems for suffix in (".csv", ".ecsv")]
    found = next((g for g in guesses if g.is_file()), None)
    if found is None:
        raise ConfigError(
            f"{option} {path}: no parameter table found (looked for {', '.join(map(str, guesses))}). "
            "Give the images' parameters as a CSV, ECSV or FITS table whose columns name the simulator's "
            "parameters, one row per image (--bank-parameters)."
        )
    return found


def _read_parameter_table(path: Path, simulator: Simulator, option: str) -> np.ndarray:
    from .engine import read_parameter_csv

    if not path.is_file():
        raise ConfigError(f"{option} parameters {path}: no such file.")
    return read_parameter_csv(path, simulator, option=f"{option} parameters")


def simulate_bank(
    simulator: Simulator,
    n: int,
    *,
    seed: int,
    params: torch.Tensor | None = None,
    folder: str | Path | None = None,
) -> SimulationBank:
    """Simulate a bank of ``n`` images, uniform over the ranges or at ``params``.

    Parameters
    ----------
    simulator : Simulator
        What to run (a :func:`~gangal_core.simulation.budget.metered` one counts the images).
    n : int
        Images to make.
    seed : int
        Seeds the parameter draws and the simulator's noise.
    params : torch.Tensor, optional
        ``(n, P)`` physical parameters; by default drawn uniformly over the declared ranges.
    folder : path-like, optional
        Write the simulations there as a ``gangal simulate`` shard folder, reusable as a
        ``--bank``; a run killed half-way keeps its finished shards, and calling again with
        the same arguments makes only the missing ones.  ``None``: in memory only.

    Returns
    -------
    SimulationBank
    """
    if folder is None:
        gen = torch.Generator().manual_seed(seed)
        if params is None:
            params = simulator.sample_uniform(n, generator=gen)
        from .simulator import simulate_in_chunks

        images = simulate_in_chunks(simulator, params, generator=gen, where="a bank of simulations")
        return SimulationBank(params.float(), images, "memory")
    from .engine import run_simulation

    values = None if params is None else params.numpy()
    spent = getattr(simulator, "seconds", 0.0)
    summary = run_simulation(simulator, n=n, out=folder, seed=seed, params=values, chunk_size=256,
                             shard_size=1024)  # fmt: skip
    _account(simulator, Path(folder), summary.written, summary.skipped or 0, spent)
    return load_bank(folder, simulator)


def _account(simulator: Simulator, folder: Path, written: int, reused: int, spent_before: float) -> None:
    """Keep a bank folder's simulator cost beside it, and count a resumed bank's stored images.

    A run resumed after a kill reads back the shards an earlier process made: a metered
    simulator (:class:`~gangal_core.simulation.budget.MeteredSimulator`) counts them against
    its budget and in ``simulator_images``, with the seconds the ledger
    ``<folder>.usage.json`` recorded when the bank was finished.  Shards of a bank the kill
    interrupted are timed at the rate of the images made in this call.
    """
    from gangal_core.io.atomic import atomic_write_json

    ledger = folder.with_name(folder.name + ".usage.json")
    made = getattr(simulator, "seconds", 0.0) - spent_before
    seconds = made
    if reused:
        earlier = reused * made / written if written else _ledger_seconds(ledger)
        if hasattr(simulator, "count_stored"):
            simulator.count_stored(reused, seconds=earlier)
        seconds += earlier
    atomic_write_json(ledger, {"simulator_images": written + reused, "simulator_seconds": round(seconds, 3)})


def _ledger_seconds(ledger: Path) -> float:
    """The simulator seconds a finished bank's ledger recorded (0 without a readable one)."""
    try:
        return float(json.loads(ledger.read_text())["simulator_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
