"""The tiny chain trained once for every chain test that only reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cli import TINY, _invoke


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-stage chain (DCGAN 2 epochs, refiner 1) on 48 synthetic galaxies; tests must not write to it."""
    folder = tmp_path_factory.mktemp("chain") / "model"
    result = _invoke("train", *TINY, "--epochs", "2,1", "--out", folder)
    assert result.exit_code == 0, result.output
    return folder
