"""Where a simulation run goes: one file (``.npy``, ``.npz``, FITS) or a folder of shards.

The suffix of ``--out`` says which: ``.npy``, ``.npz``, ``.fits`` (``.fit``, ``.fts``) write one
file (:mod:`gangal_core.io.writers`), a name without a suffix (or an existing folder) a folder of
safetensors shards; any other suffix is refused, so ``--out rings.h5`` never becomes a folder of
that name.  An output holding this very run is resumed (a folder) or written again (a file); one
holding another run, or files gangal did not write, is refused, unless ``--overwrite`` replaces
a file.

A file is made from ``.npy`` files the engine streams next to it under hidden names: an ``.npy``
output takes them by renaming, an ``.npz`` or FITS file is packed from them in bounded memory.
Either appears, complete, only at the end; until then a file it replaces is as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gangal_core.errors import ConfigError
from gangal_core.io.atomic import atomic_write_json
from gangal_core.io.folders import prepare_output_file, prepare_output_folder, run_differences
from gangal_core.io.images import MANIFEST_NAME
from gangal_core.io.writers import describe_file_formats, file_format, image_file_parts, write_image_file
from gangal_core.runtime.api import command_line_names

if TYPE_CHECKING:
    from .engine import SimulationSummary

__all__ = ["output_kind", "pack_output", "prepare_output", "remove_staging", "staging_path"]

FLAGS = {"out": "--out", "overwrite": "--overwrite"}


def output_kind(out: Path) -> str | None:
    """``"npy"``, ``"npz"`` or ``"fits"`` for a file output, None for a folder of shards.

    Parameters
    ----------
    out : Path
        The run's ``--out``.

    Returns
    -------
    str or None
        The file format its suffix names (case-insensitively), or None for a folder.

    Raises
    ------
    ConfigError
        A suffix gangal does not write, on a path that is not an existing folder.
    """
    kind = file_format(out)
    if kind is None and out.suffix and not out.is_dir():
        raise ConfigError(
            f"--out {out}: the name ends in {out.suffix!r}, a format gangal simulate does not write. "
            f"Expected {describe_file_formats()}, or a folder of safetensors shards, whose new name has "
            "no suffix (an existing folder is taken whatever its name)."
        )
    return kind


def prepare_output(summary: SimulationSummary, *, overwrite: bool = False) -> None:
    """Check that ``summary.out`` may take this run, and write a folder's manifest.

    A folder holding this run is resumed; a file holding it is written again; another run, or
    files gangal did not write, are refused, except that ``overwrite`` replaces a file.

    Parameters
    ----------
    summary : SimulationSummary
        The run, before anything is simulated.
    overwrite : bool, optional
        Let a file output that holds something else be replaced (``--overwrite``).

    Raises
    ------
    ConfigError
        Naming ``--out``, what it holds and how to go on.
    """
    key, out = summary.run_key(), summary.out
    if output_kind(out) is not None:
        with command_line_names(FLAGS):
            prepare_output_file(out, overwrite=overwrite, description=summary.to_dict(), identity=list(key),
                                holds="gangal simulation run")  # fmt: skip
        return

    def same_folder(folder: Path) -> None:
        try:
            found = json.loads((folder / MANIFEST_NAME).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"--out {folder}: {MANIFEST_NAME} is unreadable ({exc}); choose another --out."
            ) from exc
        diff = run_differences(found if isinstance(found, dict) else {}, key, list(key))
        if diff:
            never = "; --overwrite replaces a file, never a folder of shards" if overwrite else ""
            raise ConfigError(
                f"--out {folder} holds a different simulation run ({diff}). Re-run with the same options "
                f"to resume it, or choose another --out{never}."
            )

    with command_line_names(FLAGS):  # the engine speaks the command's language
        prepare_output_folder(out, run_files=(MANIFEST_NAME,), same_run=same_folder,
                              foreign="gangal simulation",
                              not_a_folder=f"; give a new folder, or {describe_file_formats()}")  # fmt: skip
    atomic_write_json(out / MANIFEST_NAME, summary.to_dict())


def staging_path(out: Path) -> Path:
    """The hidden ``.npy`` file the images of a file output are streamed to.

    Parameters
    ----------
    out : Path
        The output file.

    Returns
    -------
    Path
        ``.NAME.images.npy`` beside ``out``; the parameters go to ``.NAME.images.parameters.npy``.
    """
    return out.with_name(f".{out.name}.images.npy")


def pack_output(summary: SimulationSummary, staging: Path) -> None:
    """Make ``summary.out`` from the streamed ``staging`` files, which then go.

    An ``.npy`` output takes them by renaming, its description last; an ``.npz`` or FITS file is
    written from them.  Until then, a file that was there (``--overwrite``) is as it was.

    Parameters
    ----------
    summary : SimulationSummary
        The finished run; its :meth:`~SimulationSummary.to_dict` is the file's description.
    staging : Path
        :func:`staging_path` of ``summary.out``, complete.
    """
    try:
        if file_format(summary.out) == "npy":
            images, parameters, description = image_file_parts(summary.out)
            description.unlink(missing_ok=True)  # no description of an older run beside the new files
            os.replace(staging, images)
            os.replace(staging.with_suffix(".parameters.npy"), parameters)
            atomic_write_json(description, summary.to_dict())
            return
        images = np.load(staging, mmap_mode="r")
        parameters = np.load(staging.with_suffix(".parameters.npy"), mmap_mode="r")
        write_image_file(summary.out, images, parameters=parameters,
                         parameter_names=[p.name for p in summary.parameters],
                         parameter_units=[p.unit for p in summary.parameters],
                         description=summary.to_dict())  # fmt: skip
        del images, parameters  # the maps close before their files go
    finally:
        remove_staging(staging)


def remove_staging(staging: Path) -> None:
    """Remove the streamed files of a file output, whether the run finished or not.

    Parameters
    ----------
    staging : Path
        :func:`staging_path` of the output.
    """
    for part in (staging, staging.with_suffix(".parameters.npy")):
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
