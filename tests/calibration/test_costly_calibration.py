"""Calibrating costly and external simulators: a budget never passed, banks, declared simulators, check."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gangal_core import calibrate
from gangal_core.calibration import costly, likelihood, load_emulator
from gangal_core.calibration.likelihood import MIN_EFFECTIVE_DRAWS, likelihood_refinement
from gangal_core.calibration.rounds import (
    BURN_IN_ROUNDS,
    ITERATIONS,
    ITERATIONS_IN_ROUNDS,
    PRETRAIN_IN_ROUNDS,
    PRETRAIN_ITERATIONS,
    ROUNDS,
)
from gangal_core.cli import app
from gangal_core.training import load_checkpoint

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "external-simulator"
TINY = ["--iterations", "40", "--pretrain-iterations", "40", "--batch-size", "32", "--n-true", "300",
        "--n-samples", "300", "--no-progress"]  # fmt: skip

COUNTING = '''
import os
from gangal_core import Simulator
from gangal_circle import CircleSimulator


class CountingCircle(CircleSimulator):
    """The circle simulator, counting every image it makes in a file of its own."""

    def simulate(self, params, *, generator):
        with open(os.environ["COUNT_FILE"], "a") as fh:
            fh.write(f"{params.shape[0]}\\n")
        return super().simulate(params, generator=generator)
'''


def _run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def counting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    (tmp_path / "counting.py").write_text(COUNTING)
    count = tmp_path / "count.txt"
    monkeypatch.setenv("COUNT_FILE", str(count))
    return f"{tmp_path / 'counting.py'}:CountingCircle", count


def _made(count: Path) -> int:
    return sum(int(line) for line in count.read_text().split()) if count.exists() else 0


@pytest.fixture(autouse=True)
def _fewer_likelihood_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny runs: the likelihood fit after the rounds with 4,000 shared draws, not 30,000
    (its own tests, tests/calibration/test_likelihood_fit.py, check it in full)."""
    monkeypatch.setattr(costly, "likelihood_refinement", functools.partial(likelihood_refinement, draws=4000))


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory: pytest.TempPathFactory):
    """One run in rounds within a budget of 1,500, by a simulator counting its own images:
    ``(simulator, count file, run folder, CLI result)``, shared by the tests that read it."""
    folder = tmp_path_factory.mktemp("budget")
    (folder / "counting.py").write_text(COUNTING)
    count, simulator = folder / "count.txt", f"{folder / 'counting.py'}:CountingCircle"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COUNT_FILE", str(count))
        patch.setattr(costly, "likelihood_refinement", functools.partial(likelihood_refinement, draws=4000))
        result = _run("calibrate", "-s", simulator, "--budget", 1500, *TINY, "--out", folder / "run")
    return simulator, count, folder / "run", result


@pytest.mark.slow
def test_a_budget_is_never_passed_by_the_simulators_own_count(budget_run) -> None:
    _, count, run, result = budget_run
    assert result.exit_code == 0, result.output
    doc = json.loads((run / "calibration.json").read_text())
    made = _made(count) - 300  # the true set drawn from the reference truth stands for data: not counted
    assert made <= 1500 and doc["simulator_images"] == made == 1500
    assert doc["budget"] == 1500 and doc["simulator_seconds"] > 0
    plan = doc["simulation_plan"]
    assert plan["first_bank"] + sum(plan["rounds"]) + plan["predictive"] == 1500
    assert len(doc["rounds"]) == 1 + ROUNDS == 4  # the first bank's stage, then the default rounds
    assert doc["predictive_check"]["n_test"] == plan["predictive"] // 2
    emulator = load_emulator(run / "emulator")
    assert emulator.info["simulator_images"] == 1500 - plan["predictive"]
    assert "Simulator: 1,500 images of a budget of 1,500" in result.output
    # each stage's losses in a file named after its checkpoint: checkpoint-calibrate-2 -> metrics-calibrate-2
    checkpoints = sorted(run.glob("**/checkpoint*.safetensors"))
    assert "checkpoint-calibrate-2.safetensors" in [c.name for c in checkpoints]
    for checkpoint in checkpoints:
        assert checkpoint.with_name(checkpoint.stem.replace("checkpoint", "metrics") + ".csv").exists()
    # the best match mixes the generator's snapshots of every anchored round after the burn-in
    taken = [len(load_checkpoint(run / f"checkpoint-calibrate-{k}.safetensors")
                 ["state"]["extra"]["snapshots"]) for k in range(1, 1 + ROUNDS)]  # fmt: skip
    assert BURN_IN_ROUNDS == 1 and taken[0] == taken[1] > 0 and taken[2] == 2 * taken[0]


@pytest.mark.slow
def test_a_resumed_budget_run_simulates_nothing_twice(budget_run, tmp_path: Path, monkeypatch) -> None:
    simulator, _, finished, first = budget_run
    assert first.exit_code == 0, first.output
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = json.loads((run / "calibration.json").read_text())
    (run / "calibration.json").unlink()  # as if killed before the end
    count = tmp_path / "count.txt"
    monkeypatch.setenv("COUNT_FILE", str(count))
    result = _run("calibrate", "-s", simulator, "--budget", 1500, *TINY, "--out", run, "--resume")
    assert result.exit_code == 0, result.output
    doc = json.loads((run / "calibration.json").read_text())
    # the banks are read back; only the true set and the predictive check are made again
    assert _made(count) == 300 + doc["simulation_plan"]["predictive"]
    # and the record still counts the whole run's simulations, the stored banks' with their seconds
    assert doc["simulator_images"] == before["simulator_images"] == 1500
    assert doc["simulator_seconds"] >= 0.5 * before["simulator_seconds"] > 0
    ledgers = sorted((run / "simulations").glob("round-*.usage.json"))
    banked = sum(json.loads(f.read_text())["simulator_images"] for f in ledgers)
    assert banked == 1500 - doc["simulation_plan"]["predictive"]


def test_pretrain_within_a_budget_keeps_its_bank(counting, tmp_path: Path) -> None:
    simulator, count = counting
    result = _run("pretrain", "-s", simulator, "--budget", 600, "--iterations", 30, "--batch-size", 32,
                  "--no-progress", "--out", tmp_path / "emu")  # fmt: skip
    assert result.exit_code == 0, result.output
    emulator = load_emulator(tmp_path / "emu")
    assert _made(count) == emulator.info["simulator_images"] == 600
    assert emulator.info["bank"]["train"] == 540 and emulator.info["bank"]["held_out"] == 60
    assert (tmp_path / "emu" / "simulations" / "manifest.json").exists()  # reusable: --bank emu/simulations
    again = _run("pretrain", "-s", "circle", "--bank", tmp_path / "emu" / "simulations", "--iterations", 30,
                 "--batch-size", 32, "--no-progress", "--out", tmp_path / "emu2")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert load_emulator(tmp_path / "emu2").info["simulator_images"] == 0


def _program(*args: object) -> None:
    subprocess.run([sys.executable, str(EXAMPLE / "ring_program.py"), *map(str, args)], check=True)


def test_an_external_simulator_from_files_with_the_check_from_files(tmp_path: Path) -> None:
    _program("bank", tmp_path / "sims", 1200, 1)
    _program("truth", tmp_path / "obs", 300, 2)
    run = tmp_path / "run"
    spec, bank = EXAMPLE / "ring.toml", tmp_path / "sims" / "images.npy"  # parameters.csv beside it
    result = _run("calibrate", "--simulator-spec", spec, "--bank", bank, "--true-data",
                  tmp_path / "obs" / "images.npy", *TINY, "--out", run)  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((run / "calibration.json").read_text())
    assert doc["simulator"] == "ring" and doc["simulator_images"] == 0 and doc["bank"]["n_images"] == 1200
    assert doc["predictive_check_pending"] == {"parameters": "best_match_parameters.csv", "n_images": 300}
    assert "gangal check --run" in result.output
    _program("at", run / "best_match_parameters.csv", tmp_path / "best", 3)
    checked = _run("check", "--run", run, "--simulations", tmp_path / "best" / "images.npy")
    assert checked.exit_code == 0, checked.output
    doc = json.loads((run / "calibration.json").read_text())
    assert "predictive_check_pending" not in doc and 0 <= doc["predictive_auc"] <= 1
    assert doc["predictive_check"]["n_test"] == 150
    wrong = _run("check", "--run", run, "--simulations", tmp_path / "sims" / "images.npy")  # 1200, not 300
    not_a_run = _run("check", "--run", tmp_path / "sims", "--simulations", tmp_path / "best" / "images.npy")
    assert not_a_run.exit_code == 2 and "expected the folder of a `gangal calibrate" in not_a_run.output
    assert (
        wrong.exit_code == 2
        and "expected the folder of a `gangal calibrate --simulator-spec` run" in wrong.output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "circle", "--simulator-spec", EXAMPLE / "ring.toml"], "give --simulator or --simulator-spec"),
        (["--simulator-spec", EXAMPLE / "ring.toml"], "declared by a file, so gangal cannot call it"),
        (["--simulator-spec", EXAMPLE / "ring.toml", "--budget", 5000], "declared by a file"),
        (["-s", "circle", "--budget", 500], "--budget 500: too small"),
        (["-s", "circle", "--budget", 2000, "--emulator", "e"], "--emulator: a run with --budget or --bank"),
        (["-s", "circle", "--bank-parameters", "p.csv"], "--bank-parameters describes a --bank"),
        (["-s", "circle", "--bank", "missing.npy"], "missing.npy"),
    ],
)
def test_costly_options_are_checked(tmp_path: Path, args: list, message: str) -> None:
    observed = tmp_path / "observed.npy"
    np.save(observed, np.random.default_rng(0).random((50, 1, 28, 28), dtype=np.float32))
    quick = [*TINY[:6], "--no-progress"]
    result = _run("calibrate", *args, "--true-data", observed, *quick, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output


def test_the_bank_needs_its_parameters(tmp_path: Path) -> None:
    _program("bank", tmp_path / "sims", 50, 1)
    (tmp_path / "sims" / "parameters.csv").rename(tmp_path / "sims" / "table.csv")
    bank = tmp_path / "sims" / "images.npy"
    spec = EXAMPLE / "ring.toml"
    result = _run("pretrain", "--simulator-spec", spec, "--bank", bank, "--out", tmp_path / "emu")
    assert result.exit_code == 2 and "no parameter table found" in result.output
    images = np.load(tmp_path / "sims" / "images.npy")
    assert images.shape == (50, 1, 28, 28)


class _Planned(Exception):
    """Raised by the stand-in for the rounds once it has recorded what it was asked to do."""


@pytest.mark.parametrize(("rounds", "iterations", "pretrain_iterations"), [
    (None, ITERATIONS_IN_ROUNDS, PRETRAIN_IN_ROUNDS),  # a budget: three rounds, the generator's half
    (0, ITERATIONS, PRETRAIN_ITERATIONS),  # no rounds: an unbudgeted run's minibatches
])  # fmt: skip
def test_a_run_in_rounds_trains_the_generator_half_as_long_by_default(
    monkeypatch: pytest.MonkeyPatch, rounds: int | None, iterations: int, pretrain_iterations: int
) -> None:
    asked: dict = {}

    def planned(*args, **kwargs):
        asked.update(kwargs)
        raise _Planned

    monkeypatch.setattr(costly, "calibrate_in_rounds", planned)
    with pytest.raises(_Planned):
        calibrate("circle", n_true=50, budget=2000, rounds=rounds, progress=False)
    assert (asked["iterations"], asked["pretrain_iterations"]) == (iterations, pretrain_iterations)
    assert ITERATIONS_IN_ROUNDS < ITERATIONS and PRETRAIN_IN_ROUNDS < PRETRAIN_ITERATIONS
    asked.clear()
    with pytest.raises(_Planned):  # what a user asks for is what the stages share
        calibrate("circle", n_true=50, budget=2000, rounds=rounds, iterations=7, pretrain_iterations=9,
                  progress=False)  # fmt: skip
    assert (asked["iterations"], asked["pretrain_iterations"]) == (7, 9)


@pytest.mark.parametrize(("refine", "screen", "read"), [
    (False, 1.0, False),  # no likelihood refinement after the rounds: nothing reads the estimator
    (True, MIN_EFFECTIVE_DRAWS - 1, True),  # sharp images: the per-image path reads it
    (True, MIN_EFFECTIVE_DRAWS, False),  # faint images: the shared-draws fit, which does not
])  # fmt: skip
def test_the_estimator_is_refined_where_the_likelihood_refinement_will_read_it(
    monkeypatch: pytest.MonkeyPatch, refine: bool, screen: float, read: bool
) -> None:
    asked = []

    def screened(emulator, images, centre, spread, *, seed, draws):
        asked.append((centre, spread, seed))
        return screen

    monkeypatch.setattr(likelihood, "screen_effective_draws", screened)
    samples = np.random.default_rng(0).normal(size=(100, 3))
    assert costly._estimator_read(torch.zeros(4, 1, 8, 8), None, samples, seed=5, refine=refine) is read
    assert len(asked) == int(refine)
    if refine:  # the screen of the best match, as the refinement makes it
        np.testing.assert_allclose(asked[0][0], samples.mean(0))
        np.testing.assert_allclose(asked[0][1], samples.std(0, ddof=1))
        assert asked[0][2] == 5


@pytest.mark.parametrize("refine", [False, True])
def test_the_fit_leads_the_rounds_only_where_the_likelihood_refinement_will_run(
    monkeypatch: pytest.MonkeyPatch, refine: bool
) -> None:
    asked = []

    def fit(emulator, images, samples, *, seed):
        asked.append(seed)
        return samples + 1

    monkeypatch.setattr(costly, "population_for_rounds", fit)
    samples = np.zeros((10, 2))
    found = costly._population_fit(torch.zeros(4, 1, 8, 8), None, samples, seed=7, refine=refine)
    assert asked == ([7] if refine else [])
    assert (found is None) is not refine
