"""What does a budget run's discriminator say about the parameters of its carried anchors?

    python benchmarks/anchor_sensitivity.py RUN SEED [--round K] [--anchors 1024]

In an anchored round D is shown the same stored simulations (the anchors) hundreds of times,
each carried by the emulator to the generator's current parameters; the generator learns
only from how D's verdict on these carried images changes with the parameters.  For round
K's anchors (default: the last round) and its final D, this prints D's mean logit with each
parameter moved alone by ``delta`` true sigmas (clamped into the run's ranges):

- ``carried``: the anchor carried to the moved parameters (what the generator is trained on);
- ``fresh``: a fresh simulation at the moved parameters (what the physics alone would give).

A ``carried`` row far below ``fresh`` means D knows the anchors by heart; a ``carried`` row
that hardly changes with delta means D's verdict, and so the generator's gradient, says
little about that parameter.  SEED is the run's ``--seed`` (its true set, for D's
construction only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from budget_runs import load_run

from gangal_core.calibration.gan import Anchors, DefaultCalibration, anchored_images
from gangal_core.calibration.rounds import ANCHOR_SHARE
from gangal_core.calibration.truth import make_true_set
from gangal_core.io.checkpoint import load_checkpoint
from gangal_core.simulation.bank import load_bank

DELTAS = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)


def mean_logit(trainer: DefaultCalibration, x: torch.Tensor) -> float:
    """D's mean logit over ``x`` (normalised) in whole batches of 256."""
    with torch.no_grad():
        parts = [trainer.discriminator(x[i : i + 256]) for i in range(0, len(x) // 256 * 256, 256)]
    return float(torch.cat(parts).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("seed", type=int)
    parser.add_argument("--round", type=int, default=None)
    parser.add_argument("--anchors", type=int, default=1024)
    args = parser.parse_args()
    emulator, simulator, doc = load_run(args.run)
    truth = {name: (v["true_mean"], v["true_std"]) for name, v in doc["parameters"].items()}
    k = args.round if args.round is not None else len(doc["rounds"]) - 1
    state = load_checkpoint(args.run / f"checkpoint-calibrate-{k}.safetensors")[0]["state"]
    bank = load_bank(args.run / "simulations" / f"round-{k}", simulator)
    n = min(args.anchors, round(ANCHOR_SHARE * len(bank)))
    params, images = bank.parameters[:n].float(), bank.images[:n].float()
    _, true_images = make_true_set(simulator, truth, n=256, seed=args.seed)
    anchors = Anchors(torch.zeros(n, 8), params, images)
    trainer = DefaultCalibration(simulator, emulator, true_images, iterations=1, progress=False,
                                 discriminator_input="anchored", anchors=anchors)  # fmt: skip
    trainer.discriminator.load_state_dict(state["models"]["discriminator"])
    trainer.discriminator.eval()
    trainer.anchor_rows = torch.arange(n)
    lo = torch.tensor([p["low"] for p in emulator.parameters])
    hi = torch.tensor([p["high"] for p in emulator.parameters])
    names = [p["name"] for p in emulator.parameters]
    print(f"{args.run}, round {k}'s first {n} anchors and D after it;")
    print("D's mean logit, each parameter moved alone by delta true sigmas:")
    print("| parameter | images | " + " | ".join(f"{d:+.2f}" for d in DELTAS) + " |")
    print("| --- | --- |" + " ---: |" * len(DELTAS))
    noise = torch.Generator().manual_seed(4321)
    for j, name in enumerate(names):
        rows = {"carried": [], "fresh": []}
        for delta in DELTAS:
            moved = params.clone()
            moved[:, j] = (moved[:, j] + delta * truth[name][1]).clamp(lo[j], hi[j])
            with torch.no_grad():
                mean, std = trainer.emulator_network(emulator.to_unit(moved))
                carried = anchored_images(trainer, None, mean.float(), std.float())
            fresh = emulator.scale.normalise(simulator.simulate(moved, generator=noise).float())
            rows["carried"].append(mean_logit(trainer, carried))
            rows["fresh"].append(mean_logit(trainer, fresh))
        for kind, values in rows.items():
            print(f"| {name} | {kind} | " + " | ".join(f"{v:+.3f}" for v in values) + " |")


if __name__ == "__main__":
    main()
