"""Has a budget run's discriminator memorised the images it was trained on?

    python benchmarks/discriminator_memory.py RUN SEED [--round K]

RUN is a ``benchmarks/run_budget.sh`` folder whose true set was drawn from the truth in
``calibration.json`` with ``--n-true 2000 --seed SEED``.  The discriminator saved after round K
(default: the last) scores, in batches of 256 as in training (its minibatch-spread feature
sees one kind of image at a time):

- the true images it was trained on, rebuilt exactly (``make_true_set``, same seed);
- as many fresh true images of the same truth (another seed);
- round K's anchors: the stored simulations it was shown, carried by the emulator, at the
  generator they were simulated for (so the stored image itself);
- fresh simulations at the same parameters (another noise seed).

If D judged only what the parameters do to the images, each pair would score alike.  A gap
means it has learned the particular images (their noise) of a set it saw hundreds of times,
and the generator is then trained against that memory as well as against the physics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from budget_runs import load_run

from gangal_core.calibration.gan import DefaultCalibration
from gangal_core.calibration.rounds import ANCHOR_SHARE
from gangal_core.calibration.truth import make_true_set
from gangal_core.io.checkpoint import load_checkpoint
from gangal_core.simulation.bank import load_bank


def scores(discriminator: torch.nn.Module, emulator, images: torch.Tensor) -> torch.Tensor:
    """D's logits for ``images`` in whole batches of 256 (a remainder is left out)."""
    x = emulator.scale.normalise(images.float())
    with torch.no_grad():
        return torch.cat([discriminator(x[i : i + 256]) for i in range(0, len(x) // 256 * 256, 256)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("seed", type=int)
    parser.add_argument("--round", type=int, default=None)
    args = parser.parse_args()
    emulator, simulator, doc = load_run(args.run)
    truth = {name: (v["true_mean"], v["true_std"]) for name, v in doc["parameters"].items()}
    k = args.round if args.round is not None else len(doc["rounds"]) - 1
    state = load_checkpoint(args.run / f"checkpoint-calibrate-{k}.safetensors")[0]["state"]
    _, trained_true = make_true_set(simulator, truth, n=2000, seed=args.seed)
    _, fresh_true = make_true_set(simulator, truth, n=2000, seed=args.seed + 1000)
    trainer = DefaultCalibration(simulator, emulator, trained_true, iterations=1, progress=False)
    trainer.discriminator.load_state_dict(state["models"]["discriminator"])
    discriminator = trainer.discriminator.eval()
    bank = load_bank(args.run / "simulations" / f"round-{k}", simulator)
    n = round(ANCHOR_SHARE * len(bank))
    fresh_anchors = simulator.simulate(bank.parameters[:n], generator=torch.Generator().manual_seed(12345))
    print(f"{args.run}, discriminator after round {k}:")
    print("| images | D's mean P(true) | mean logit |")
    print("| --- | ---: | ---: |")
    for name, images in (("true, trained on", trained_true), ("true, fresh", fresh_true),
                         (f"round {k}'s anchors, stored", bank.images[:n]),
                         ("their parameters, fresh noise", fresh_anchors)):  # fmt: skip
        s = scores(discriminator, emulator, images)
        print(f"| {name} | {float(torch.sigmoid(s).mean()):.3f} | {float(s.mean()):+.3f} |")


if __name__ == "__main__":
    main()
