"""The tiny synthetic chain the CLI tests train: its options and a runner for ``gangal``."""

from __future__ import annotations

from typer.testing import CliRunner

from gangal_core.cli import app

runner = CliRunner()
TINY = ["--data", "synthetic", "--data-option", "n=48", "--width", "4", "--batch-size", "16,16",
        "--no-progress"]  # fmt: skip


def _invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])
