"""``--simulator path/to/mysim.py:ClassName`` and ``package.module:ClassName``: no packaging needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gangal_core.cli import app
from gangal_core.errors import PluginError
from gangal_core.plugins import get_registry, load_simulator_class

MYSIM = '''
import torch
from gangal_core import Parameter, Simulator


class Blob(Simulator):
    name = "blob"
    image_shape = (1, 8, 8)
    parameters = (Parameter("a", 0.0, 1.0, unit="adu"),)

    def simulate(self, params, *, generator):
        noise = 0.01 * torch.randn(params.shape[0], 1, 8, 8, generator=generator)
        return params[:, :1, None, None].expand(-1, 1, 8, 8) + noise


class NotASimulator:
    pass
'''


@pytest.fixture
def mysim(tmp_path: Path) -> Path:
    path = tmp_path / "mysim.py"
    path.write_text(MYSIM)
    return path


def test_a_simulator_from_a_file_runs_through_the_command_line(mysim: Path, tmp_path: Path) -> None:
    out = tmp_path / "blob.npy"
    result = CliRunner().invoke(app, ["simulate", "-s", f"{mysim}:Blob", "-n", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    images, params = np.load(out), np.load(tmp_path / "blob.parameters.npy")
    assert images.shape == (20, 1, 8, 8)
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), params[:, 0], atol=0.01)


def test_a_simulator_from_an_importable_module() -> None:
    sim = get_registry().simulator("gangal_circle:CircleSimulator")
    assert sim.name == "circle" and type(sim) is load_simulator_class("gangal_circle:CircleSimulator")


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (":Blobb", r"has no class 'Blobb'; its Simulator classes are Blob\."),
        (":NotASimulator", "NotASimulator is not a valid gangal Simulator: .*not a subclass"),
        (":", "expected FILE.py:ClassName or package.module:ClassName"),
    ],
)
def test_bad_references_name_the_file_and_the_class(mysim: Path, suffix: str, message: str) -> None:
    with pytest.raises(PluginError, match=rf"--simulator .*mysim.py{suffix}: .*{message}"):
        load_simulator_class(f"{mysim}{suffix}")


def test_missing_and_broken_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"no such file .*nope.py"):
        load_simulator_class(f"{tmp_path / 'nope.py'}:Blob")
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(PluginError, match=r"importing .*broken.py failed: ModuleNotFoundError"):
        load_simulator_class(f"{tmp_path / 'broken.py'}:Blob")
    result = CliRunner().invoke(app, ["simulate", "-s", f"{tmp_path / 'broken.py'}:Blob", "-n", "2",
                                      "--out", str(tmp_path / "x.npy")])  # fmt: skip
    assert result.exit_code == 2 and "broken.py" in result.output and "Traceback" not in result.output
