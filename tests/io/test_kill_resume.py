"""SIGKILL at random moments, and in the middle of a checkpoint save, then ``--resume``.

Real subprocesses run the real command line.  A run killed any number of times and resumed
must end with the same emulator weights, the same generator weights and the same
calibration (bit for bit: same seed, same CPU, same thread count) as a run never killed,
and a kill in the middle of a save must leave the previous checkpoint readable.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gangal_core.io.checkpoint import load_checkpoint
from tests.background import BackgroundRun, finish, start

HELPER = Path(__file__).parent / "helpers" / "slow_save.py"
CALIBRATE = [
    "calibrate", "--simulator", "circle", "--pretrain-iterations", "60", "--iterations", "60",
    "--batch-size", "32", "--n-true", "256", "--n-samples", "200", "--checkpoint-every", "7",
    "--no-progress",
]  # fmt: skip
TRAIN = [
    "train", "--chain", "dcgan", "--data", "synthetic", "--data-option", "n=48", "--epochs", "4",
    "--width", "4", "--batch-size", "8", "--sample-every", "2", "--no-progress",
]  # fmt: skip


def _env() -> dict[str, str]:
    # the same thread count in every run: floating-point sums must happen in the same order
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _gangal(args: list[str], out: Path, *, resume: bool = False) -> list[str]:
    return [sys.executable, "-m", "gangal_core", *args, "--out", str(out), *(["--resume"] if resume else [])]


def _run(cmd: list[str]) -> None:
    finish(start(cmd, _env()))


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def _assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, f"{a.name}: tensors differ from the uninterrupted run: {different[:5]}"


def _assert_same_calibration(a: Path, b: Path) -> None:
    _assert_same_tensors(a / "emulator" / "emulator.safetensors", b / "emulator" / "emulator.safetensors")
    assert (a / "samples.csv").read_bytes() == (b / "samples.csv").read_bytes()
    pa = json.loads((a / "calibration.json").read_text())["parameters"]
    pb = json.loads((b / "calibration.json").read_text())["parameters"]
    assert pa == pb
    for f in ("parameters.png", "generated.png", "losses.png", "emulator/emulator.png"):
        assert (b / f).exists(), f
    for f in ("metrics.csv", "emulator/metrics.csv"):  # every row once, the losses of a straight run
        assert _metrics_without_seconds(a / f) == _metrics_without_seconds(b / f), f


def _metrics_without_seconds(path: Path) -> list[list[str]]:
    return [row[:1] + row[2:] for row in (line.split(",") for line in path.read_text().splitlines())]


def _checkpoint_stamps(out: Path) -> dict[Path, int]:
    return {f: f.stat().st_mtime_ns for f in out.rglob("checkpoint.safetensors") if f.exists()}


def _kill_at_random_then_finish(args, out: Path, rng: random.Random, *, kills: int):
    """Start, SIGKILL at a random moment, resume; ``kills`` times, then let it finish.

    The first kill comes 0.5-3 s after the start (often before any checkpoint); each later
    one a random 0-1.5 s after the process writes a checkpoint of its own, so every kill
    lands in the middle of real work (sometimes during a save) and each attempt progresses.
    """
    landed = resumed_from_checkpoint = 0  # kills; attempts that started from a checkpoint
    for attempt in range(kills + 1):
        had_checkpoint = bool(_checkpoint_stamps(out)) if out.exists() else False
        before = _checkpoint_stamps(out) if out.exists() else {}
        proc = subprocess.Popen(
            _gangal(args, out, resume=attempt > 0),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if attempt < kills:
            delay = rng.uniform(0.5, 3.0)
            if attempt > 0:
                while proc.poll() is None and (not out.exists() or _checkpoint_stamps(out) == before):
                    time.sleep(0.02)
                delay = rng.uniform(0.0, 1.5)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                landed += 1
                resumed_from_checkpoint += had_checkpoint
                continue
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        resumed_from_checkpoint += had_checkpoint
        break
    return landed, resumed_from_checkpoint


@pytest.fixture(scope="module")
def reference_calibration(tmp_path_factory):
    """A calibration never killed, run in the background: call the fixture for its folder."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run = BackgroundRun(_gangal(CALIBRATE, out), _env(), out)
    yield run
    run.stop()


@pytest.mark.slow
def test_calibrate_killed_at_random_moments_resumes_bit_for_bit(reference_calibration, tmp_path) -> None:
    out = tmp_path / "run"
    landed, resumed = _kill_at_random_then_finish(CALIBRATE, out, random.Random(20261123), kills=3)
    assert landed >= 2 and resumed >= 1, (landed, resumed)  # the kills really landed mid-run
    _assert_same_calibration(reference_calibration(), out)


def _kill_mid_save(args, out: Path, freeze_at: int, tmp_path: Path) -> Path:
    marker = tmp_path / f"saving-{freeze_at}"
    env = {**_env(), "GANGAL_TEST_FREEZE_SAVE": str(freeze_at), "GANGAL_TEST_MARKER": str(marker)}
    cmd = [sys.executable, str(HELPER), *args, "--out", str(out), *(["--resume"] if out.exists() else [])]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, f"the run ended before save {freeze_at}: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return Path(marker.read_text())


@pytest.mark.slow
def test_a_kill_in_the_middle_of_a_save_keeps_the_previous_checkpoint(
    reference_calibration, tmp_path
) -> None:
    out = tmp_path / "run"
    # pretraining saves at iterations 7, 14, ...: freeze the 3rd (iteration 21) half-written
    path = _kill_mid_save(CALIBRATE, out, 3, tmp_path)
    assert path == out / "emulator" / "checkpoint.safetensors"
    state, _ = load_checkpoint(path)  # the previous save, intact
    assert state["iteration"] == 14
    assert list(path.parent.glob(".checkpoint.safetensors.*.part"))  # the half-written one, not renamed
    # resumed, the process saves pretraining at 21, 28, ..., 56 and 60 (7 saves), then training
    # at 7 and 14: freeze the 9th, training's save at 14, over the one at 7
    path = _kill_mid_save(CALIBRATE, out, 9, tmp_path)
    assert path == out / "checkpoint.safetensors"
    state, _ = load_checkpoint(path)
    assert state["iteration"] == 7
    _run(_gangal(CALIBRATE, out, resume=True))
    _assert_same_calibration(reference_calibration(), out)
    assert not list(out.rglob("*.part")), "a finished run leaves no temporary files"


@pytest.mark.slow
def test_chain_training_killed_at_random_moments_resumes_bit_for_bit(tmp_path) -> None:
    reference = tmp_path / "reference"
    straight = start(_gangal(TRAIN, reference), _env())
    out = tmp_path / "run"
    landed, resumed = _kill_at_random_then_finish(TRAIN, out, random.Random(7), kills=3)
    finish(straight)
    assert landed >= 2 and resumed >= 1, (landed, resumed)
    for name in ("generator.safetensors", "generator-ema.safetensors"):
        files = sorted(reference.rglob(name))
        assert files, name
        for ref in files:
            _assert_same_tensors(ref, out / ref.relative_to(reference))


@pytest.mark.slow
def test_simulate_killed_mid_run_keeps_only_whole_shards_and_finishes_identically(tmp_path) -> None:
    args = ["simulate", "--simulator", "circle", "-n", "131072", "--seed", "3", "--shard-size", "8192"]
    reference = tmp_path / "reference"
    straight = start(_gangal(args, reference), _env())
    out = tmp_path / "run"
    proc = subprocess.Popen(_gangal(args, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(out.glob("shard-*.safetensors"))) < 3:
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finish(straight)
    shards = sorted(out.glob("shard-*.safetensors"))
    assert 3 <= len(shards) < 16, len(shards)  # killed mid-run
    for shard in shards:  # every file that looks finished is whole
        assert shard.read_bytes() == (reference / shard.name).read_bytes(), shard.name
    _run(_gangal(args, out))  # the same command again finishes the run
    finished = sorted(p.name for p in out.glob("shard-*.safetensors"))
    assert finished == sorted(p.name for p in reference.glob("shard-*.safetensors"))
    for name in finished:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
