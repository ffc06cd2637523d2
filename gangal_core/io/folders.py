"""The one place an output folder is checked and made, for every command.

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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gangal_core.runtime.api import ArgumentError, arg

__all__ = ["prepare_output_folder"]


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
