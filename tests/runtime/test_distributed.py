"""Data-parallel calibration under torchrun: 2 CPU processes (gloo) against one process.

Tolerance: with the same global batch the two runs differ only in the order of
floating-point sums (each process averages its half, an all-reduce averages the halves),
so the emulator weights agree to 1e-4 relative and every best-match mean and spread to
0.01 sigma_true (measured: 2e-6 and 3e-4 sigma_true).  The chained GAN's DCGAN agrees to
1e-4 (measured 4.5e-6); its 16-layer refiner, whose Adam steps amplify rounding, to 5e-2
(measured 0.5-2.5%, the same size as one process run with 1 and then 2 threads: 0.9-2.8%).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gangal_core.errors import ConfigError
from gangal_core.runtime.distributed import SIMULATION_BLOCK, Shard
from tests.background import BackgroundRun, finish, start

ARGS = [
    "calibrate", "--simulator", "circle", "--pretrain-iterations", "40", "--iterations", "40",
    "--batch-size", "64", "--n-true", "256", "--n-samples", "200", "--checkpoint-every", "20",
    "--no-progress",
]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _single(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gangal_core", *ARGS, "--out", str(out), *extra]


def _torchrun(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "gangal_core", *ARGS, "--out", str(out), *extra,
    ]  # fmt: skip


def _run(cmd: list[str]) -> None:
    finish(start(cmd, _env()))


def _assert_close_runs(a: Path, b: Path) -> None:
    ta = load_file(a / "emulator" / "emulator.safetensors")
    tb = load_file(b / "emulator" / "emulator.safetensors")
    for k in ta:
        scale = ta[k].abs().max().clamp_min(1e-12)
        assert ((ta[k] - tb[k]).abs().max() / scale).item() < 1e-4, k
    pa = json.loads((a / "calibration.json").read_text())["parameters"]
    pb = json.loads((b / "calibration.json").read_text())["parameters"]
    for name, p in pa.items():
        for key in ("mean", "std"):
            assert abs(p[key] - pb[name][key]) < 0.01 * p["true_std"], (name, key, p[key], pb[name][key])


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """The one-process run, started in the background beside the first two-process run:
    call the fixture for its folder."""
    out = tmp_path_factory.mktemp("single") / "run"
    run = BackgroundRun(_single(out), _env(), out)
    yield run
    run.stop()


def test_a_batch_is_split_in_whole_simulation_blocks() -> None:
    assert Shard(0, 1).blocks(64) == (SIMULATION_BLOCK, slice(0, 64), slice(0, 2))
    assert Shard(1, 2).blocks(64) == (SIMULATION_BLOCK, slice(32, 64), slice(1, 2))
    assert Shard(0, 1).blocks(50) == (50, slice(0, 50), slice(0, 1))  # one block: one seed
    with pytest.raises(ConfigError, match=r"--batch-size 96: cannot be shared by 2 processes.*of 64"):
        Shard(0, 2).blocks(96)


def test_gradients_are_averaged_only_across_processes() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    Shard(0, 1).average_gradients([p])  # one process: untouched, no process group needed
    assert torch.equal(p.grad, torch.full((3,), 2.0))


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(single_run, tmp_path) -> None:
    out = tmp_path / "ddp"
    _run(_torchrun(out))
    single = single_run()
    _assert_close_runs(single, out)

    def files(folder: Path) -> list[str]:
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    assert files(out) == files(single)  # rank 1 wrote nothing of its own


@pytest.mark.slow
def test_a_checkpoint_from_two_processes_resumes_in_one(single_run, tmp_path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _torchrun(out),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    checkpoint = out / "checkpoint.safetensors"  # the calibration phase's, after pretraining
    while not checkpoint.exists():
        assert proc.poll() is None, "the 2-process run ended before its first calibration checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
    proc.wait()
    assert not (out / "calibration.json").exists()
    _run(_single(out, "--resume"))
    _assert_close_runs(single_run(), out)


TRAIN = [
    "train", "--chain", "dcgan,stackgan", "--data", "synthetic", "--data-option", "n=32", "--epochs", "2,1",
    "--width", "4", "--batch-size", "8,8", "--label-smoothing", "0.3", "--no-progress",
]  # fmt: skip


@pytest.mark.slow
def test_chain_training_in_two_processes_matches_one(tmp_path) -> None:
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    one = start([sys.executable, "-m", "gangal_core", *TRAIN, "--out", str(single)], _env())
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
          "-m", "gangal_core", *TRAIN, "--out", str(ddp)])  # fmt: skip
    finish(one)
    for stage, tolerance in (("dcgan", 1e-4), ("stackgan", 5e-2)):
        for name in ("generator", "generator-ema", "discriminator"):
            a = load_file(single / stage / f"{name}.safetensors")
            b = load_file(ddp / stage / f"{name}.safetensors")
            for k in a:
                if a[k].is_floating_point():
                    # relative L2 per tensor: the largest element's error over the tensor's largest
                    # is ruled by biases near zero (5.3% on one machine, whose worst L2 was 2.7%)
                    scale = a[k].norm().clamp_min(1e-12)
                    assert ((a[k] - b[k]).norm() / scale).item() < tolerance, (stage, name, k)


def test_global_batch_norm_is_plain_batch_norm_in_one_process() -> None:
    from gangal_core.runtime.distributed import global_batch_norm

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3))
    assert global_batch_norm(net, torch.device("cpu")) is net
    assert type(net[1]) is torch.nn.BatchNorm2d
