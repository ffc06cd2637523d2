"""How well each emulator stage of a budget run draws the simulator's mean image near the truth.

    python benchmarks/emulator_near_truth.py RUN [RUN ...] [--draws 500] [--repeats 64]

For each run of ``benchmarks/run_budget.sh`` (it keeps every emulator stage as
``checkpoint-pretrain-K``), draws ``--draws`` parameter sets from the run's true distribution
(``calibration.json``: each parameter's true mean and sigma), and estimates the simulator's mean
image at each by averaging ``--repeats`` simulations.  Then, per emulator stage, it prints

- ``rms``: the RMS difference between the emulator's mean image and the simulator's, over the
  RMS of the simulator's mean image about each image's own mean (its signal);
- ``slope``: the least-squares slope of the emulator's mean image on the simulator's, each image
  about its own mean: below 1 the emulator's features are too faint or too blurred, above 1 too
  strong.

Both are corrected for the noise left in an average of ``--repeats`` simulations (its variance,
the simulator's per-pixel variance over ``repeats``, is subtracted from the sums of squares).

A calibration through the emulator inherits its errors near the truth; the anchored rounds see
the simulator's own images only where the generator stood when the round was simulated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from budget_runs import load_run

from gangal_core.io.checkpoint import load_checkpoint


def simulator_means(simulator, params: torch.Tensor, repeats: int, seed: int) -> tuple[torch.Tensor, float]:
    """The simulator's mean image at each row of ``params``, and its per-pixel noise."""
    g = torch.Generator().manual_seed(seed)
    total = total_sq = None
    for _ in range(repeats):
        x = simulator.simulate(params, generator=g).double()
        total = x if total is None else total + x
        total_sq = x * x if total_sq is None else total_sq + x * x
    mean = total / repeats
    var = (total_sq / repeats - mean * mean) * repeats / (repeats - 1)
    return mean.float(), float(var.clamp_min(0).mean().sqrt())


def stage_errors(run: Path, *, draws: int, repeats: int, seed: int = 5) -> list[str]:
    emulator, simulator, doc = load_run(run)  # over the run's own ranges (--range)
    names = emulator.parameter_names
    truth = doc["parameters"]
    mu = torch.tensor([truth[n]["true_mean"] for n in names])
    sd = torch.tensor([truth[n]["true_std"] for n in names])
    lo, hi = simulator.bounds()
    params = (mu + sd * torch.randn(draws, len(names), generator=torch.Generator().manual_seed(seed)))
    params = params.clamp(lo, hi)
    target, noise = simulator_means(simulator, params, repeats, seed + 1)
    left = noise**2 / repeats  # the variance of the average's own noise, per pixel
    centred_target = (target - target.mean((-2, -1), keepdim=True)).flatten(1)
    signal_sq = float(centred_target.square().mean()) - left
    lines = []
    stages = sorted(run.glob("checkpoint-pretrain-*.safetensors"), key=lambda p: int(p.stem.split("-")[-1]))
    for stage in stages:
        state = load_checkpoint(stage)[0]["state"]["models"]["emulator"]
        emulator.network.load_state_dict(state)
        with torch.no_grad():
            mean, _ = emulator.network.eval()(emulator.to_unit(params))
        mean = mean * emulator.scale.scale + emulator.scale.offset
        rms = (max(0.0, float((mean - target).square().mean()) - left) / signal_sq) ** 0.5
        centred = (mean - mean.mean((-2, -1), keepdim=True)).flatten(1)
        slope = float((centred * centred_target).mean()) / signal_sq
        name = stage.stem.removeprefix("checkpoint-")
        lines.append(f"{run.name} {name}: rms {rms:.3f} x signal, slope {slope:.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=64)
    args = parser.parse_args()
    for run in args.runs:
        if not (run / "calibration.json").is_file() or not list(run.glob("checkpoint-pretrain-*")):
            parser.error(f"{run} is not a finished budget run (calibration.json, checkpoint-pretrain-K)")
        print("\n".join(stage_errors(run, draws=args.draws, repeats=args.repeats)), flush=True)


if __name__ == "__main__":
    main()
