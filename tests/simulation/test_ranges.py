"""--range NAME=LOW:HIGH: a run's parameter ranges, for simulate, pretrain and calibrate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gangal_core.cli import app
from gangal_core.errors import ConfigError
from gangal_core.plugins import get_registry
from gangal_core.simulation.simulator import parse_ranges, with_ranges


def test_a_range_replaces_only_the_named_parameters() -> None:
    circle = get_registry().simulator("circle")
    ranged = with_ranges(circle, parse_ranges(["r=5:11", "b=0.5:1.5"], circle))
    assert [(p.name, p.low, p.high) for p in ranged.parameters if p.name in ("r", "b")] == [
        ("r", 5.0, 11.0),
        ("b", 0.5, 1.5),
    ]
    assert ranged.parameters[0] == circle.parameters[0] and ranged.name == "circle"
    draws = ranged.sample_uniform(4000, generator=torch.Generator().manual_seed(0))
    assert 5.0 <= draws[:, 2].min() and draws[:, 2].max() <= 11.0 and draws[:, 2].max() > 10.9
    same = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    p = draws[:3]
    assert torch.equal(ranged.simulate(p, generator=same[0]), circle.simulate(p, generator=same[1]))
    assert with_ranges(circle, {}) is circle


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("r=5", "expected NAME=LOW:HIGH"),
        ("r=a:b", "expected NAME=LOW:HIGH"),
        ("q=1:2", "'q' is not a parameter of 'circle'; its parameters are x0, y0, r, n, b"),
        ("r=11:5", "need finite LOW < HIGH, found 11 and 5"),
        ("r=nan:5", "need finite LOW < HIGH"),
    ],
)
def test_bad_ranges_are_named(item, message) -> None:
    with pytest.raises(ConfigError, match=rf"--range '{item}': .*{message}"):
        parse_ranges([item], get_registry().simulator("circle"))
    with pytest.raises(ConfigError, match="given twice"):
        parse_ranges(["r=1:2", "r=2:3"], get_registry().simulator("circle"))


def test_simulate_draws_within_the_run_ranges_and_records_them(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "rings"
    args = ["simulate", "--simulator", "circle", "-n", "300", "--range", "r=9:10", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameter_ranges"]["r"] == [9.0, 10.0]
    result = runner.invoke(app, [*args[:-4], "--range", "r=8:10", "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output  # not the same run: refused


def test_pretrain_saves_the_run_ranges_and_calibrate_refuses_a_mix(tmp_path) -> None:
    runner = CliRunner()
    emu = tmp_path / "emu"
    pretrain = ["pretrain", "--simulator", "circle", "--iterations", "5", "--batch-size", "32"]
    result = runner.invoke(app, [*pretrain, "--range", "r=6:10", "--no-progress", "--out", str(emu)])
    assert result.exit_code == 0, result.output
    from gangal_core.calibration.emulator import load_emulator

    ranges = {p["name"]: (p["low"], p["high"]) for p in load_emulator(emu).parameters}
    assert ranges["r"] == (6.0, 10.0)
    calibrate = ["calibrate", "--simulator", "circle", "--emulator", str(emu), "--range", "r=6:10"]
    result = runner.invoke(app, [*calibrate, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--range sets the ranges to pretrain over" in result.output
    assert not (tmp_path / "run").exists()
    assert np.isfinite(ranges["x0"]).all()
