"""--device and --precision: resolution, clear refusals, and every path on the CPU (GPU tests marked)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from gangal_core.cli import app
from gangal_core.errors import ConfigError
from gangal_core.runtime.devices import check_precision, resolve_device

TINY_CALIBRATE = [
    "calibrate", "--simulator", "circle", "--pretrain-iterations", "30", "--iterations", "30",
    "--batch-size", "32", "--n-true", "128", "--n-samples", "100", "--no-progress",
]  # fmt: skip
TINY_TRAIN = [
    "train", "--chain", "dcgan,stackgan", "--data", "synthetic", "--data-option", "n=16", "--epochs", "1,1",
    "--width", "4", "--batch-size", "8,8", "--no-progress",
]  # fmt: skip


def test_auto_picks_what_this_machine_has() -> None:
    device = resolve_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif not torch.backends.mps.is_available():
        assert device.type == "cpu"
    assert resolve_device("CPU") == torch.device("cpu")


def test_unknown_and_missing_devices_are_named() -> None:
    with pytest.raises(ConfigError, match=r"--device: expected one of auto, cpu, cuda, mps.*'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"--device cuda: no CUDA device is visible"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match=r"--precision: expected one of float32, bf16, found 'fp8'"):
        check_precision("fp8", torch.device("cpu"))
    assert check_precision("bfloat16", torch.device("cpu")) == "bf16"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cli_refuses_a_missing_gpu_before_writing_anything(tmp_path) -> None:
    result = CliRunner().invoke(app, [*TINY_CALIBRATE, "--device", "cuda", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "--device cuda: no CUDA device is visible" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_calibrate_in_mixed_precision_on_the_cpu(tmp_path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, [*TINY_CALIBRATE, "--device", "cpu", "--precision", "bf16", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "calibration.json").read_text())
    assert doc["options"]["precision"] == "bf16" and doc["options"]["device"] == "cpu"
    for p in doc["parameters"].values():
        assert p["std"] > 0 and abs(p["mean"] - p["true_mean"]) < 10 * p["true_std"]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_calibrate_on_a_gpu(tmp_path, precision) -> None:
    out = tmp_path / "run"
    args = [*TINY_CALIBRATE, "--device", "cuda", "--precision", precision, "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "calibration.json").read_text())
    assert all(p["std"] > 0 for p in doc["parameters"].values())


@pytest.mark.gpu
def test_train_and_sample_on_a_gpu(tmp_path) -> None:
    model = tmp_path / "model"
    result = CliRunner().invoke(app, [*TINY_TRAIN, "--device", "cuda", "--out", str(model)])
    assert result.exit_code == 0, result.output
    args = ["sample", "--model", str(model), "-n", "4", "--device", "cuda", "--out", str(tmp_path / "s")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s" / "samples.npy").exists()
