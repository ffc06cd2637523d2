"""The one progress display every long command uses.

:func:`progress_bar` gives one of three displays on standard error, all answering
``add_task``, ``update`` and ``advance`` alike, so the work never asks which it has:

- a rich progress bar when standard error is a terminal (or a notebook);
- :class:`LineProgress`, plain lines a batch system's log keeps, when it is not (a Slurm job,
  ``2> run.log``, a pipe): one line when a task starts, then one every :data:`LINE_INTERVAL`
  seconds or every :data:`LINE_STEP` of the work, whichever comes first, and one at the end;
- :class:`NoProgress`, which shows nothing (``--no-progress``, a process other than
  torchrun's first).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["LINE_INTERVAL", "LINE_PREFIX", "LINE_STEP", "LineProgress", "NoProgress", "progress_bar"]

#: Seconds between two progress lines of a task at most (while it advances).
LINE_INTERVAL = 30.0
#: A progress line also whenever a task passes another multiple of this share of its total.
LINE_STEP = 0.05
#: What every progress line starts with, to grep a log for.
LINE_PREFIX = "[gangal]"


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


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float
    fields: dict[str, Any]
    started: float  # clock time of add_task
    first: float  # completed at add_task: the rate counts only this session's work
    printed_at: float = 0.0  # clock time of the last line
    printed: float | None = None  # completed at the last line


class LineProgress:
    """Progress as plain lines on a stream, for logs: the methods of :class:`rich.progress.Progress`.

    A line looks like::

        [gangal] calibrating circle: 1500/3000 (50%) | D 1.210  G 0.830 | 2:01 elapsed, ETA 2:01

    the description, done/total, the task's ``fields`` (those not empty, in order), the time
    since the task was added and the time left at this session's rate.  A line is written
    when a task is added, when it has advanced for ``interval`` seconds or past another
    multiple of ``step`` of its total since the last line, when it completes, and at the end
    of the ``with`` block if it advanced after its last line.  Nothing runs between calls, so
    a fast loop pays one clock reading per update.

    Parameters
    ----------
    fields : tuple of str, optional
        Task fields written after done/total, e.g. ``("losses",)``.
    stream : file-like, optional
        Where lines go (default: standard error as it is when a line is written).
    interval : float, optional
        Seconds between lines at most (default :data:`LINE_INTERVAL`).
    step : float, optional
        Share of the total between lines at most (default :data:`LINE_STEP`).
    clock : callable, optional
        Seconds from any origin (default :func:`time.monotonic`); tests pass a fake.
    """

    def __init__(
        self,
        fields: tuple[str, ...] = (),
        *,
        stream: IO[str] | None = None,
        interval: float | None = None,
        step: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.fields = tuple(fields)
        self.stream = stream
        self.interval = LINE_INTERVAL if interval is None else float(interval)
        self.step = LINE_STEP if step is None else float(step)
        self.clock = clock or time.monotonic
        self.tasks: dict[int, _Task] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for task in self.tasks.values():
            if task.printed != task.completed:
                self._print(task)

    def add_task(self, description: str, *, total: float | None = None, completed: float = 0,
                 **fields: Any) -> int:  # fmt: skip
        """Start a task and write its first line; returns its id for :meth:`update`."""
        now = self.clock()
        task_id = len(self.tasks)
        task = _Task(description, total, completed, dict(fields), started=now, first=completed)
        self.tasks[task_id] = task
        self._print(task)
        return task_id

    def update(
        self,
        task_id: int,
        *,
        completed: float | None = None,
        advance: float | None = None,
        total: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        """Change a task as :meth:`rich.progress.Progress.update` does; write a line when one is due."""
        task = self.tasks[task_id]
        if total is not None:
            task.total = total
        if description is not None:
            task.description = description
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        task.fields.update((k, v) for k, v in fields.items() if k in self.fields)
        if self._due(task):
            self._print(task)

    def advance(self, task_id: int, advance: float = 1) -> None:
        """Add ``advance`` to a task's completed work."""
        self.update(task_id, advance=advance)

    def _due(self, task: _Task) -> bool:
        if task.completed == task.printed:
            return False
        if self.clock() - task.printed_at >= self.interval:
            return True
        if not task.total:
            return False
        if task.completed >= task.total:
            return True
        share = task.total * self.step
        return int(task.completed / share + 1e-9) > int((task.printed or 0) / share + 1e-9)

    def _print(self, task: _Task) -> None:
        now = self.clock()
        task.printed_at, task.printed = now, task.completed
        stream = self.stream or sys.stderr
        stream.write(self.line(task, now) + "\n")
        stream.flush()

    def line(self, task: _Task, now: float) -> str:
        """The line of ``task`` at clock time ``now``."""
        done, total = task.completed, task.total
        head = f"{LINE_PREFIX} {task.description}: {_count(done)}"
        if total:
            head += f"/{_count(total)} ({int(100 * min(done / total, 1))}%)"
        parts = [head, *(str(task.fields[k]) for k in self.fields if task.fields.get(k))]
        elapsed = now - task.started
        times = f"{_duration(elapsed)} elapsed"
        if total and done >= total:
            times += ", done"
        elif total and done > task.first and elapsed > 0:
            times += f", ETA {_duration((total - done) * elapsed / (done - task.first))}"
        return " | ".join([*parts, times])


def _count(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_bar(*, enabled: bool = True, fields: tuple[str, ...] = (), transient: bool = False) -> Any:
    """The progress display on standard error: a rich bar, :class:`LineProgress` or :class:`NoProgress`.

    A terminal (or a Jupyter notebook) gets the rich bar; any other standard error (a batch
    system's log file, a pipe) gets :class:`LineProgress`, whose lines a log keeps.

    Parameters
    ----------
    enabled : bool, optional
        Show anything at all (default True); False gives :class:`NoProgress`.
    fields : tuple of str, optional
        Task fields shown as text after the times, e.g. ``("losses",)``; every ``add_task`` must
        give them.
    transient : bool, optional
        Remove the bar when it finishes (default False: the last state stays on screen); lines
        stay in a log either way.

    Returns
    -------
    rich.progress.Progress or LineProgress or NoProgress
        The bar's columns: description, bar, done/total, elapsed, remaining, then ``fields``.
    """
    if not enabled:
        return NoProgress()
    from rich.console import Console

    console = Console(stderr=True)
    if not (console.is_terminal or console.is_jupyter):
        return LineProgress(fields)
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
        console=console,
        transient=transient,
    )
