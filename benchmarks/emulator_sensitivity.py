"""How strongly a calibration's emulator responds to each parameter, against the simulator.

    python benchmarks/emulator_sensitivity.py RUN [--points 64] [--seed 0]

RUN is a ``gangal calibrate`` folder (its ``emulator/`` and ``calibration.json``; the simulator
is the registered one the emulator names, with the ranges the emulator was trained over).  At
``--points`` parameter sets drawn from the true distribution recorded in ``calibration.json``,
each parameter in turn is moved by one true standard deviation either way, and the change of
the mean image is compared:

* the simulator's: the difference of two simulations drawn with the same random numbers, so
  that additive noise cancels (for a parameter that sets the noise level, what is left is
  the noise scaled, which no mean image follows: its gain is near 0 by construction);
* the emulator's: the difference of its mean images, in pixel units.

Per parameter it prints the gain ``<dE, dT> / <dT, dT>`` summed over the points (1: the
emulator moves its images as far as the simulator does; 0.6: only 60% as far, so a generator
trained through it must move that parameter 1/0.6 times as far to change the images as much)
and the cosine between the two changes (1: the same direction in image space).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from gangal_core.calibration.emulator import load_emulator
from gangal_core.plugins import get_registry
from gangal_core.simulation.simulator import with_ranges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    registry = get_registry()
    emulator = load_emulator(args.run / "emulator", registry=registry)
    ranges = {p["name"]: (p["low"], p["high"]) for p in emulator.parameters}
    simulator = with_ranges(registry.simulator(emulator.simulator), ranges)
    truth = json.loads((args.run / "calibration.json").read_text(encoding="utf-8"))["parameters"]
    names = list(emulator.parameter_names)
    mu = torch.tensor([truth[n]["true_mean"] for n in names])
    sigma = torch.tensor([truth[n]["true_std"] for n in names])
    rng = torch.Generator().manual_seed(args.seed)
    lo, hi = (b.float() for b in simulator.bounds())
    drawn = mu + sigma * torch.randn(args.points, len(names), generator=rng)
    points = torch.clamp(drawn, lo + sigma, hi - sigma)
    network = emulator.network.eval().for_inference()
    print(f"{args.run}: {args.points} points from the truth; each parameter moved by +-1 true sigma")
    print("| parameter | gain <dE,dT>/<dT,dT> | cosine | simulator change (RMS per image) |")
    print("| --- | ---: | ---: | ---: |")
    for j, name in enumerate(names):
        up, down = points.clone(), points.clone()
        up[:, j] += sigma[j]
        down[:, j] -= sigma[j]
        seed = args.seed + 1000 * (j + 1)
        with torch.no_grad():
            images = [
                simulator.simulate(x, generator=torch.Generator().manual_seed(seed)) for x in (up, down)
            ]  # the same random numbers for both
            d_t = (images[0] - images[1]).flatten(1)
            mean_up, _ = network(emulator.to_unit(up))
            mean_down, _ = network(emulator.to_unit(down))
        d_e = ((mean_up - mean_down).float() * emulator.scale.scale).flatten(1)
        energy = float(d_t.square().sum())
        rms = (energy / d_t.numel()) ** 0.5
        if rms < 1e-6:
            print(f"| {name} | - | - | 0 (moves no mean) |")
            continue
        gain = float((d_e * d_t).sum()) / energy
        cosine = float((d_e * d_t).sum() / (d_e.norm() * d_t.norm()).clamp_min(1e-12))
        print(f"| {name} | {gain:.3f} | {cosine:.3f} | {rms:.4g} |")


if __name__ == "__main__":
    main()
