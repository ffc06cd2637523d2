"""Options declared once: the typer commands derived from the models of ``gangal_core.config``.

The heavy run functions are replaced by recorders, so each test checks only what the command
line hands them: the validated options object.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from gangal_core import config
from gangal_core.cli import app
from gangal_core.config import flag_name
from gangal_core.runtime.devices import check_precision

MODELS = {
    "simulate": config.SimulateConfig,
    "pretrain": config.PretrainConfig,
    "calibrate": config.CalibrateConfig,
    "emulate": config.EmulateConfig,
    "train": config.TrainConfig,
    "sample": config.SampleConfig,
    "evaluate": config.EvaluateConfig,
}
#: Where each command's run function lives, and its name there.
RUNS = {
    "simulate": ("gangal_core.simulation.run", "run_simulate"),
    "pretrain": ("gangal_core.calibration.run", "run_pretrain"),
    "calibrate": ("gangal_core.calibration.run", "run_calibrate"),
    "emulate": ("gangal_core.calibration.run", "run_emulate"),
    "train": ("gangal_core.chain.run", "run_train"),
    "sample": ("gangal_core.chain.run", "run_sample"),
    "evaluate": ("gangal_core.evaluation.run", "run_evaluate"),
}
#: Enough options for each command to validate.
REQUIRED = {
    "simulate": ["-s", "circle", "-n", "3", "-o", "x.npy"],
    "pretrain": ["-s", "circle", "-o", "emulator"],
    "calibrate": ["-s", "circle"],
    "emulate": ["--emulator", "e", "--params", "p.csv", "-o", "x.npy"],
    "train": [],
    "sample": [],
    "evaluate": ["--real", "a.npy", "--generated", "b.npy", "-o", "evaluation"],
}
runner = CliRunner()


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Each command's run function replaced by one that records its arguments."""
    calls: dict[str, Any] = {}
    for command, (module, name) in RUNS.items():

        def record(cfg: Any, *, command: str = command, **kwargs: Any) -> None:
            calls[command] = (cfg, kwargs)

        monkeypatch.setattr(f"{module}.{name}", record)
    return calls


def _run(ran: dict[str, Any], command: str, *args: str) -> tuple[Any, dict[str, Any]]:
    result = runner.invoke(app, [command, *REQUIRED[command], *map(str, args)])
    assert result.exit_code == 0, result.output
    return ran[command]


def _help(command: str) -> str:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", sorted(MODELS))
def test_every_model_field_is_an_option_of_its_command(command: str) -> None:
    text = _help(command)
    for field in MODELS[command].model_fields:
        assert re.search(rf"(^|\s){re.escape(flag_name(MODELS[command], field))}(\s|$)", text, re.M), field
    assert "<bool>" not in text  # switches take no value, and say so by showing no type


@pytest.mark.parametrize(
    ("command", "choices"),
    [
        ("pretrain", "<likelihood|paper>"),
        ("calibrate", "<default|paper>"),
        ("calibrate", "<simulated|emulated>"),
        ("emulate", "<float32|bf16>"),
        ("sample", "<auto|ema|raw|best>"),
        ("train", "none, generator, discriminator, both"),
        ("train", "<64|128>"),
    ],
)
def test_help_lists_the_choices(command: str, choices: str) -> None:
    assert choices in _help(command)


@pytest.mark.parametrize("command", ["emulate", "pretrain", "calibrate", "train", "sample"])
def test_device_and_precision_mean_the_same_everywhere(ran, command: str) -> None:
    cfg, _ = _run(ran, command, "--device", "cpu", "--precision", "bf16")
    assert cfg.device == "cpu" and check_precision(cfg.precision, torch.device("cpu")) == "bf16"
    cfg, _ = _run(ran, command)
    assert cfg.device == "auto" and cfg.precision == "float32"


def test_evaluate_takes_a_device_but_no_precision(ran) -> None:
    """evaluate's networks-free measurements have no use for mixed precision; only the device."""
    assert _run(ran, "evaluate", "--device", "cpu")[0].device == "cpu"
    assert "--precision" not in _help("evaluate")


@pytest.mark.parametrize("command", ["simulate", "pretrain", "calibrate", "train", "sample", "evaluate"])
def test_progress_is_an_option_of_every_long_command(ran, command: str) -> None:
    assert _run(ran, command)[0].progress is True
    cfg, kwargs = _run(ran, command, "--no-progress")
    assert cfg.progress is False and kwargs.get("progress", False) is False


def test_bfloat16_is_still_taken_as_bf16() -> None:
    assert (
        config.EmulateConfig(emulator="e", params="p.csv", out="x.npy", precision="bfloat16").precision
        == "bf16"
    )
    result = runner.invoke(app, ["emulate", *REQUIRED["emulate"], "--precision", "BF16"])
    assert result.exit_code == 2 and "expected one of float32, bf16, found 'BF16'" in result.output


def test_choices_reach_the_run_as_plain_strings(ran) -> None:
    cfg, _ = _run(ran, "calibrate", "--recipe", "paper", "--discriminator-input", "emulated")
    assert type(cfg.recipe) is str and cfg.recipe == "paper" and cfg.discriminator_input == "emulated"
    assert type(cfg.precision) is str and "progress" not in cfg.model_dump()


def test_repeatable_and_comma_options(ran) -> None:
    cfg, _ = _run(
        ran, "train", "--chain", "dcgan", "--width", "8", "--data-option", "n=4", "--data-option", "a=1,2"
    )
    assert cfg.chain == ("dcgan",) and cfg.width == (8,) and cfg.data_option == ("n=4", "a=1,2")
    cfg, _ = _run(ran, "calibrate", "--range", "r=5:11", "--truth", "r=7,1")
    assert cfg.range == ("r=5:11",) and cfg.truth == ("r=7,1",)


def test_only_typed_flags_override_the_config_file(ran, tmp_path: Path) -> None:
    toml = tmp_path / "options.toml"
    toml.write_text(
        '[train]\nseed = 3\nout = "from-file"\nwidth = [8, 4]\n[sample]\nn = 5\n', encoding="utf-8"
    )
    cfg, _ = _run(ran, "train", "--config", toml)
    assert (cfg.seed, cfg.out, cfg.width) == (3, Path("from-file"), (8, 4))
    cfg, _ = _run(ran, "train", "--config", toml, "--seed", "4", "--width", "16")
    assert (cfg.seed, cfg.out, cfg.width) == (4, Path("from-file"), (16,))
    assert _run(ran, "sample", "--config", toml)[0].n == 5


def test_calibrate_out_defaults_to_the_simulator_name(ran, tmp_path: Path) -> None:
    assert _run(ran, "calibrate")[0].out == Path("calibrate-circle")
    toml = tmp_path / "options.toml"
    toml.write_text('out = "mine"\n', encoding="utf-8")
    assert _run(ran, "calibrate", "--config", toml)[0].out == Path("mine")
    assert _run(ran, "calibrate", "-o", "typed")[0].out == Path("typed")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["pretrain", "--recipe", "fast"],
            "Invalid value for '--recipe': expected one of likelihood, paper, found 'fast'",
        ),
        (
            ["train", "--resolution", "32"],
            "Invalid value for '--resolution': expected one of 64, 128, found '32'",
        ),
        (
            ["pretrain", "-s", "circle", "-o", "e", "--iterations", "0"],
            "--iterations: Input should be greater",
        ),
        (
            ["simulate", "-s", "circle", "-n", "0", "-o", "x.npy"],
            "-n: Input should be greater than or equal to 1, found 0",
        ),
        (["pretrain"], "--simulator: required; --out: required"),
    ],
)
def test_bad_values_name_the_option_the_expected_and_the_found(ran, args: list[str], message: str) -> None:
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in " ".join(result.output.replace("│", " ").split()), result.output


def test_a_config_file_error_names_the_key(tmp_path: Path) -> None:
    toml = tmp_path / "options.toml"
    toml.write_text('simulator = "circle"\nout = "e"\nrecipe = "fast"\n', encoding="utf-8")
    result = runner.invoke(app, ["pretrain", "--config", str(toml)], terminal_width=200)
    assert result.exit_code == 2
    assert "recipe: Input should be 'likelihood' or 'paper', found 'fast'" in result.output
