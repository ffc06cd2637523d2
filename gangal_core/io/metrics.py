"""A training run's losses as a CSV file, readable while the run goes on and after a kill.

Every training run with a checkpoint writes ``metrics.csv`` beside it (``metrics-STAGE.csv``
beside ``checkpoint-STAGE.safetensors``): a header ``iteration,seconds,LOSS...`` and one row
per logged iteration.  Rows are kept in memory and appended in whole lines every
:data:`FLUSH_SECONDS`, before every checkpoint (then ``fsync``'ed) and at the end, so a killed
run leaves a valid CSV up to its last flush.  A resumed run first drops the rows past its
checkpoint's iteration, which it is about to compute again, so no iteration appears twice.

Unlike gangal's other files it is appended to, not replaced: rewriting a growing history on
every flush would cost more than the rows.  The truncation on resume is an atomic rewrite.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from .atomic import atomic_open

__all__ = ["FLUSH_SECONDS", "MetricsLog", "metrics_path"]

#: Seconds between two appends to the file at most (rows wait in memory in between).
FLUSH_SECONDS = 30.0
#: The first columns of every metrics file; the losses follow, by name.
COLUMNS = ("iteration", "seconds")


def metrics_path(checkpoint: str | os.PathLike) -> Path:
    """The metrics file beside ``checkpoint``: ``checkpoint-X.safetensors`` gives ``metrics-X.csv``.

    ``checkpoint.safetensors`` gives ``metrics.csv``; a checkpoint named otherwise,
    ``NAME.safetensors``, gives ``NAME-metrics.csv``.
    """
    checkpoint = Path(checkpoint)
    stem = checkpoint.stem
    name = "metrics" + stem.removeprefix("checkpoint") if stem.startswith("checkpoint") else f"{stem}-metrics"
    return checkpoint.with_name(f"{name}.csv")


class MetricsLog:
    """Rows of ``iteration, seconds, losses...`` appended to a CSV file.

    Parameters
    ----------
    path : path-like
        The CSV file; its folder must exist by :meth:`open`.
    flush_seconds : float, optional
        Seconds between appends at most (default :data:`FLUSH_SECONDS`).
    clock : callable, optional
        Seconds from any origin (default :func:`time.monotonic`).
    """

    def __init__(
        self, path: str | os.PathLike, *, flush_seconds: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.flush_seconds = FLUSH_SECONDS if flush_seconds is None else float(flush_seconds)
        self.clock = clock or time.monotonic
        self.header: list[str] | None = None  # known from the file, or from the first row
        self.pending: list[list[str]] = []
        self.flushed_at = self.clock()

    def open(self, *, keep_until: int) -> None:
        """Start the log: keep the file's rows up to iteration ``keep_until`` (0: start afresh)."""
        for part in self.path.parent.glob(f".{self.path.name}.*.part"):  # a rewrite killed half-way
            part.unlink(missing_ok=True)
        self.header, self.pending = None, []
        self.flushed_at = self.clock()
        if keep_until <= 0 or not self.path.exists():
            self.path.unlink(missing_ok=True)
            return
        header, rows, whole = self._read(keep_until)
        if header is None:
            self.path.unlink()
            return
        self.header = header
        if not whole:  # rows past the checkpoint, or a last line cut short: rewrite without them
            with atomic_open(self.path, "w") as fh:
                fh.write(_csv([header, *rows]))

    def _read(self, keep_until: int) -> tuple[list[str] | None, list[list[str]], bool]:
        """The file's header (None if it is not a metrics file), its rows up to ``keep_until``,
        and whether those are the whole file."""
        text = self.path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        complete = [line for line in lines if line.endswith("\n")]
        parsed = list(csv.reader(complete))
        if not parsed or tuple(parsed[0][: len(COLUMNS)]) != COLUMNS:
            return None, [], False
        header, rows = parsed[0], []
        for row in parsed[1:]:
            if len(row) == len(header) and row[0].isdigit() and int(row[0]) <= keep_until:
                rows.append(row)
        return header, rows, len(rows) == len(parsed) - 1 and len(complete) == len(lines)

    def add(self, iteration: int, seconds: float, losses: Mapping[str, float]) -> None:
        """One row; appended to the file with the rows before it when a flush is due."""
        if self.header is None:
            self.header = [*COLUMNS, *losses]
        values = {"iteration": str(int(iteration)), "seconds": f"{seconds:.3f}"}
        values.update((k, repr(float(v))) for k, v in losses.items())
        self.pending.append([values.get(name, "") for name in self.header])
        if self.clock() - self.flushed_at >= self.flush_seconds:
            self.flush()

    def flush(self, *, sync: bool = False) -> None:
        """Append the waiting rows in one write (``sync``: and ``fsync`` the file)."""
        self.flushed_at = self.clock()
        if not self.pending and not sync:
            return
        new = not self.path.exists()
        rows = ([self.header] if new and self.header else []) + self.pending
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8", newline="") as fh:
            fh.write(_csv(rows))
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        self.pending = []


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
