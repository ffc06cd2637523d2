"""The Python API is the command line's path: docs/python-api.md runs, and errors name arguments.

The docs page is a notebook; its code blocks run here in order, in one namespace, in a
scratch folder, with the page's own tiny settings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import gangal_core
from gangal_core.cli import app
from gangal_core.errors import ConfigError
from gangal_core.runtime.api import ArgumentError, arg, command_line_names

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_the_python_api_page_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _code_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    namespace: dict[str, object] = {}
    for k, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name}, code block {k + 1}", "exec"), namespace)
    assert (tmp_path / "calibration-run" / "calibration.json").is_file()
    assert not (tmp_path / "calibration-run" / "parameters.png").exists()  # plots=False


def test_every_command_has_its_function() -> None:
    for name in ("pretrain", "calibrate", "train", "sample", "evaluate"):
        assert callable(getattr(gangal_core, name))
    # the training functions keep their names and signatures in the calibration package
    from gangal_core import calibration

    assert calibration.calibrate.__module__ == "gangal_core.calibration.gan"
    assert gangal_core.calibrate.__module__ == "gangal_core.calibration.api"


def test_an_argument_error_names_the_argument_or_the_flag() -> None:
    message = f"{arg('true_params')} /x.csv: 3 rows, but {arg('true_images')} has 4 images."
    error = ArgumentError(message)
    assert str(error) == "true_params /x.csv: 3 rows, but true_images has 4 images."
    with pytest.raises(ConfigError) as info, command_line_names({"true_params": "--true-params"}):
        raise error
    assert str(info.value) == "--true-params /x.csv: 3 rows, but true_images has 4 images."
    resume = ArgumentError(f"Pass {arg('resume', python='resume=True')}.")
    assert str(resume) == "Pass resume=True."


@pytest.mark.parametrize(
    ("call", "python", "flag"),
    [
        ({"true_images": np.zeros((4, 1, 5, 5), np.float32)}, "true_images: expected images of shape", None),
        ({"true_images": np.full((4, 1, 28, 28), np.nan, np.float32)}, "true_images: the images contain NaN",
         None),
        ({"true_images": None, "true_params": np.zeros((4, 4))}, "true_params describes true_images", None),
        ({"true_images": torch.zeros(4, 1, 28, 28), "truth": {"m": (1, 0.1)}},
         "truth builds a true set; it cannot be combined with true_images", None),
        ({"true_images": None, "truth": {"m": (1, -1)}}, "truth 'm=1,-1': need a finite mean", None),
        ({"true_images": None, "recipe": "fancy"}, "recipe: expected one of default, paper", None),
        ({"true_images": None, "emulator": 3}, "emulator: expected a TrainedEmulator", None),
        ({"true_images": None, "resume": True}, "resume=True continues the run in out", None),
    ],
)  # fmt: skip
def test_calibrate_names_python_arguments(call, python, flag) -> None:
    with pytest.raises(ConfigError) as info:
        gangal_core.calibrate("polynomial", progress=False, **call)
    assert str(info.value).startswith(python), str(info.value)
    assert "\x00" not in str(info.value) and "--" not in str(info.value).split(":")[0]


def test_the_command_line_names_its_flags_for_the_same_mistake(tmp_path) -> None:
    np.save(tmp_path / "true.npy", np.zeros((4, 1, 28, 28), np.float32))
    (tmp_path / "true.csv").write_text("m,x0,c,xsteps\n1,10,0.5,9\n")
    args = ["calibrate", "-s", "polynomial", "--true-data", str(tmp_path / "true.npy"), "--true-params",
            str(tmp_path / "true.csv"), "-o", str(tmp_path / "run"), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"--true-params {tmp_path / 'true.csv'}: 1 rows, but --true-data has 4 images." in text


def test_out_none_writes_nothing_and_a_folder_with_a_run_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    emulator = gangal_core.pretrain("polynomial", iterations=2, batch_size=8, progress=False)
    options = {"emulator": emulator, "n_true": 40, "iterations": 2, "batch_size": 8, "n_samples": 20,
               "predictive_check": False, "progress": False}  # fmt: skip
    result = gangal_core.calibrate("polynomial", None, **options)
    assert list(tmp_path.iterdir()) == []
    assert result.options["iterations"] == 2 and result.options["emulator"] == "TrainedEmulator"
    gangal_core.calibrate("polynomial", None, out="run", plots=False, **options)
    with pytest.raises(ConfigError, match=r"^out run: already holds a run. Pass resume=True"):
        gangal_core.calibrate("polynomial", None, out="run", **options)
    doc = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert doc["true_data"] == {"source": "reference truth", "n_images": 40}
