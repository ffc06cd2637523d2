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
from pathlib import Path

import torch
from budget_runs import load_run


def gains(emulator, simulator, mu: torch.Tensor, sigma: torch.Tensor, *, points: int = 64,
          seed: int = 0) -> dict[str, tuple[float, float, float] | None]:
    """Per parameter: (gain, cosine, RMS of the simulator's change per image), or None if it
    moves no mean; at ``points`` draws from N(mu, sigma), each parameter moved by +-sigma."""
    rng = torch.Generator().manual_seed(seed)
    lo, hi = (b.float() for b in simulator.bounds())
    drawn = mu + sigma * torch.randn(points, len(mu), generator=rng)
    at = torch.clamp(drawn, lo + sigma, hi - sigma)
    network = emulator.network.eval().for_inference()
    found: dict[str, tuple[float, float, float] | None] = {}
    for j, name in enumerate(emulator.parameter_names):
        up, down = at.clone(), at.clone()
        up[:, j] += sigma[j]
        down[:, j] -= sigma[j]
        common = seed + 1000 * (j + 1)
        with torch.no_grad():
            images = [
                simulator.simulate(x, generator=torch.Generator().manual_seed(common)) for x in (up, down)
            ]  # the same random numbers for both
            d_t = (images[0] - images[1]).flatten(1)
            mean_up, _ = network(emulator.to_unit(up))
            mean_down, _ = network(emulator.to_unit(down))
        d_e = ((mean_up - mean_down).float() * emulator.scale.scale).flatten(1)
        energy = float(d_t.square().sum())
        rms = (energy / d_t.numel()) ** 0.5
        if rms < 1e-6:
            found[name] = None
            continue
        gain = float((d_e * d_t).sum()) / energy
        cosine = float((d_e * d_t).sum() / (d_e.norm() * d_t.norm()).clamp_min(1e-12))
        found[name] = (gain, cosine, rms)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    emulator, simulator, doc = load_run(args.run)
    truth = doc["parameters"]
    names = list(emulator.parameter_names)
    mu = torch.tensor([truth[n]["true_mean"] for n in names])
    sigma = torch.tensor([truth[n]["true_std"] for n in names])
    print(f"{args.run}: {args.points} points from the truth; each parameter moved by +-1 true sigma")
    print("| parameter | gain <dE,dT>/<dT,dT> | cosine | simulator change (RMS per image) |")
    print("| --- | ---: | ---: | ---: |")
    for name, found in gains(emulator, simulator, mu, sigma, points=args.points, seed=args.seed).items():
        if found is None:
            print(f"| {name} | - | - | 0 (moves no mean) |")
        else:
            print(f"| {name} | {found[0]:.3f} | {found[1]:.3f} | {found[2]:.4g} |")


if __name__ == "__main__":
    main()
