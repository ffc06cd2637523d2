"""Retrain a budget run's emulator stages from its stored banks, and measure each one's gain.

    python benchmarks/emulator_bank_gain.py RUN [--batch-size 256] [--iterations 1600]
        [--learning-rate 2e-3] [--refinements 3] [--split-once] [--seed 0]

RUN is a ``benchmarks/run_budget.sh`` folder: its banks ``simulations/round-K`` and the truth in
``calibration.json``.  The emulator is pretrained on round 0's bank as a run in rounds pretrains
it (``--iterations`` minibatches of ``--batch-size``, a tenth held out), then refined on every
later bank in turn (half as many minibatches), and after each stage its gain per parameter is
printed (``emulator_sensitivity.gains``: how far its mean image moves per true sigma at 64 points
from the truth, against the simulator; 1 = as far).  The banks are the run's own, so every
variant sees the same simulations and only the emulator's training differs.

The defaults are gangal's (``rounds.PRETRAIN_IN_ROUNDS`` minibatches of 256; each refinement
holds out a fresh tenth of the grown bank, seeded as ``pretrain`` seeds it).  ``--split-once``
splits each bank once instead, so that a refinement is measured only on simulations no stage
trained on.  No generator is trained: this measures the emulator alone, in about a minute per
stage.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from budget_runs import load_run
from emulator_sensitivity import gains

from gangal_core.calibration.pretraining import pretrain
from gangal_core.calibration.rounds import PRETRAIN_IN_ROUNDS
from gangal_core.simulation.bank import load_bank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=PRETRAIN_IN_ROUNDS)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--refinements", type=int, default=3)
    parser.add_argument("--split-once", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    _, simulator, doc = load_run(args.run)
    names = [p.name for p in simulator.parameters]
    mu = torch.tensor([doc["parameters"][n]["true_mean"] for n in names])
    sigma = torch.tensor([doc["parameters"][n]["true_std"] for n in names])
    options = {"batch_size": args.batch_size, "learning_rate": args.learning_rate, "progress": False,
               "estimate_parameters": False}  # fmt: skip
    print(f"{args.run}: {vars(args)}")
    bank, emulator = load_bank(args.run / "simulations" / "round-0", simulator), None
    train, held = bank.split(0.1, seed=args.seed + 104729)  # as pretrain splits it
    for k in range(args.refinements + 1):
        if k > 0:
            new = load_bank(args.run / "simulations" / f"round-{k}", simulator)
            bank = bank.concatenate(new)
            if args.split_once:
                new_train, new_held = new.split(0.1, seed=args.seed + k + 104729)
                train, held = train.concatenate(new_train), held.concatenate(new_held)
            else:
                train, held = bank.split(0.1, seed=args.seed + k + 104729)
        started = time.perf_counter()
        emulator = pretrain(simulator, bank=train, held_out=held, validation=0, start=emulator,
                            iterations=args.iterations // (2 if k else 1), seed=args.seed + k,
                            **options)  # fmt: skip
        seconds = time.perf_counter() - started
        found = gains(emulator, simulator, mu, sigma)
        shown = "  ".join(f"{n} {g[0]:.3f}" for n, g in found.items() if g is not None)
        kept = emulator.info["bank"].get("kept_iteration")
        print(f"stage {k}: {len(train):,} trained on, {seconds:.0f} s, kept iteration {kept}; gains {shown}",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
