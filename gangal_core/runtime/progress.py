"""The one progress display every long command uses.

:func:`progress_bar` gives a rich progress bar on standard error, or a stand-in that shows
nothing (``--no-progress``, a process other than torchrun's first, a simulation whose standard
error is not a terminal); both answer ``add_task``, ``update`` and ``advance`` alike, so the
work never asks which it has.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NoProgress", "progress_bar"]


class NoProgress:
    """A progress bar that shows nothing: the same methods as :class:`rich.progress.Progress`."""

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: object, **kwargs: object) -> int:
        return 0

    def update(self, *args: object, **kwargs: object) -> None:
        return None

    def advance(self, *args: object, **kwargs: object) -> None:
        return None


def progress_bar(*, enabled: bool = True, fields: tuple[str, ...] = (), transient: bool = False) -> Any:
    """A progress bar on standard error, or :class:`NoProgress` when ``enabled`` is false.

    Parameters
    ----------
    enabled : bool, optional
        Show anything at all (default True).
    fields : tuple of str, optional
        Task fields shown as text after the times, e.g. ``("losses",)``; every ``add_task`` must
        give them.
    transient : bool, optional
        Remove the bar when it finishes (default False: the last state stays on screen).

    Returns
    -------
    rich.progress.Progress or NoProgress
        The columns: description, bar, done/total, elapsed, remaining, then ``fields``.
    """
    if not enabled:
        return NoProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *(TextColumn(f"{{task.fields[{name}]}}") for name in fields),
        console=Console(stderr=True),
        transient=transient,
    )
