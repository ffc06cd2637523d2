"""The one place an output folder or file is checked (and a folder made), for every command.

A command writes into a folder it may resume, extend or must not touch.  The rules differ a
little between commands, so they are arguments here rather than five copies:

==============  ===============================  ==============================================
command         the folder holds a run when...   and then
==============  ===============================  ==============================================
pretrain,       ``checkpoint.safetensors`` or    refused unless ``--resume``
calibrate       its finished file is there
train           it holds any file                refused unless ``--resume`` (continue, extend)
sample,         ``samples.npy`` /                always refused
evaluate        ``evaluation.json`` is there
simulate        ``manifest.json`` is there       resumed when the manifest describes the same
                                                 run; a folder of other files is refused
==============  ===============================  ==============================================

A run that fails leaves no empty folder behind (:func:`removing_empty_folders`, around every
command): the folders it made and left empty go, never one that was there before or holds anything.

A file output (``gangal simulate --out rings.fits``, ``gangal emulate --out x.npz``) is checked
by :func:`prepare_output_file`: one that exists is refused unless it holds this very run, or
``--overwrite`` says to replace it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gangal_core.runtime.api import ArgumentError, arg

from .writers import image_file_parts, read_file_description

__all__ = ["prepare_output_file", "prepare_output_folder", "removing_empty_folders", "run_differences"]


def prepare_output_folder(
    folder: str | Path,
    *,
    argument: str = "out",
    run_files: Sequence[str] | None = None,
    resume: bool | None = None,
    holds: str = "a run",
    resume_to: str = "continue it",
    same_run: Callable[[Path], None] | None = None,
    foreign: str | None = None,
    not_a_folder: str = "",
    create: bool = True,
) -> Path:
    """Check that ``folder`` may take this run's files, and make it.

    Parameters
    ----------
    folder : path-like
        The output folder.
    argument : str, optional
        The argument (``--out`` on the command line) named in messages.
    run_files : sequence of str, optional
        Files whose presence means the folder holds a run; by default any file at all.
    resume : bool, optional
        Whether to continue a run found there.  ``None``: the command cannot resume, so a
        folder holding a run is always refused.
    holds, resume_to : str, optional
        How the refusal describes what was found (``"a run"``, ``"files"``...) and what
        resuming does (``"continue it"``).
    same_run : callable, optional
        Given a folder holding a run, raises if it is not this run, and otherwise lets it be
        resumed (``gangal simulate``: the same options resume).  Replaces ``resume``.
    foreign : str, optional
        Refuse a folder that holds no run but other, visible files, saying it "holds no
        ``foreign``" (``"gangal simulation"``).
    not_a_folder : str, optional
        Added to the message for a path that exists and is not a folder.
    create : bool, optional
        Make the folder (default); False only checks.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    ArgumentError
        A :class:`~gangal_core.errors.ConfigError` naming ``argument``.
    """
    folder = Path(folder)
    name = arg(argument)
    if folder.exists() and not folder.is_dir():
        raise ArgumentError(f"{name} {folder}: exists and is not a folder{not_a_folder}.")
    held = folder.is_dir() and (
        any(folder.iterdir()) if run_files is None else any((folder / f).exists() for f in run_files)
    )
    if held and same_run is not None:
        same_run(folder)
    elif held and resume is None:
        raise ArgumentError(f"{name} {folder}: already holds {holds}; choose another {name}.")
    elif held and not resume:
        raise ArgumentError(
            f"{name} {folder}: already holds {holds}. Pass {arg('resume', python='resume=True')} to "
            f"{resume_to}, or choose another {name}."
        )
    elif not held and foreign is not None and folder.is_dir():
        if any(not p.name.startswith(".") for p in folder.iterdir()):  # .part files of a killed run
            raise ArgumentError(
                f"{name} {folder}: the folder is not empty and holds no {foreign}; choose another."
            )
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def prepare_output_file(
    path: str | Path,
    *,
    argument: str = "out",
    overwrite: bool = False,
    description: Mapping[str, Any] | None = None,
    identity: Sequence[str] = (),
    holds: str = "gangal output",
) -> Path:
    """Check that the image file ``path`` (and any sidecar of it) may be written.

    Parameters
    ----------
    path : path-like
        The output file: ``.npy`` (with its sidecars ``NAME.parameters.npy`` and ``NAME.json``),
        ``.npz`` or FITS (:func:`~gangal_core.io.writers.image_file_parts`).
    argument : str, optional
        The argument (``--out`` on the command line) named in messages.
    overwrite : bool, optional
        Replace whatever is there.
    description : mapping, optional
        The description this run writes with the file (its ``"format"`` included).  An existing
        file whose own description (:func:`~gangal_core.io.writers.read_file_description`) has
        the same format and the same ``identity`` fields holds this very run, and may be written
        again.  None: an existing file is always refused.
    identity : sequence of str, optional
        The fields of ``description`` that make the run (seed, sizes...).
    holds : str, optional
        What the run is, in messages (``"gangal simulation"``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ArgumentError
        A :class:`~gangal_core.errors.ConfigError` naming ``argument``: ``path`` is a folder, its
        folder does not exist, or it exists and holds another run or files gangal did not write.
    """
    path = Path(path)
    name = arg(argument)
    if path.is_dir():
        raise ArgumentError(
            f"{name} {path}: is a folder, but a name ending in {path.suffix} is one file; "
            f"choose another {name}."
        )
    if not path.parent.is_dir():
        raise ArgumentError(f"{name} {path}: the folder {path.parent} does not exist.")
    found = [p for p in image_file_parts(path) if p.exists()]
    if not found or overwrite:
        return path
    old = None if description is None else read_file_description(path)
    remedy = f"pass {arg('overwrite', python='overwrite=True')} to replace it, or choose another {name}."
    if old is None:
        what = "it" if found[0] == path else f"{found[0].name} beside it"
        unknown = "" if description is None else f", and holds no {holds} gangal wrote"
        raise ArgumentError(f"{name} {path}: {what} already exists{unknown}. P{remedy[1:]}")
    diff = run_differences(old, description, ["format", *identity])
    if diff:
        raise ArgumentError(
            f"{name} {path} holds a different {holds} ({diff}). Re-run with the same options to write it "
            f"again, {remedy}"
        )
    return path


def run_differences(old: Mapping[str, Any], new: Mapping[str, Any], fields: Sequence[str]) -> str:
    """``"seed: 0 there, 1 now, n: ..."``: how the run an output holds (``old``) differs from this one."""
    changed = [k for k in fields if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in changed)


@contextlib.contextmanager
def removing_empty_folders(*paths: str | os.PathLike | None) -> Iterator[None]:
    """If the block fails, remove each of ``paths`` that it made and left empty.

    Parameters
    ----------
    *paths : path-like or None
        Outputs of the block (folders, or files whose folders it may make); None is skipped.

    Notes
    -----
    Only what did not exist before the block can go: an output folder it made, the empty
    folders inside it, and the parent folders it made for it; each only while empty (a hidden
    file, a ``.part`` left by a killed write, counts as content).  A folder that was there
    before, or that holds anything, is never touched.
    """
    before = {Path(p): _nearest_existing(Path(p)) for p in paths if p is not None}
    try:
        yield
    except BaseException:
        for path, existed in before.items():
            if existed != path:
                _remove_empty(path, up_to=existed)
        raise


def _nearest_existing(path: Path) -> Path:
    """``path`` if it exists, else its nearest existing parent folder."""
    return next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()), Path.cwd())


def _remove_empty(path: Path, *, up_to: Path) -> None:
    """Remove the empty folders in and at ``path`` (made by the run), then its new parents below ``up_to``."""
    if not path.is_dir() or path.is_symlink():
        return
    for folder, _, _ in os.walk(path, topdown=False):  # deepest first; a symlink is not followed
        with contextlib.suppress(OSError):  # not empty: someone's files, kept
            os.rmdir(folder)
    for parent in path.parents:
        if parent == up_to or not parent.is_dir():
            break
        try:
            os.rmdir(parent)
        except OSError:
            break
