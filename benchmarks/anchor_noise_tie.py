"""Does the generator, in an anchored round, tie its parameters to the anchors' fixed noise?

    python benchmarks/anchor_noise_tie.py RUN SEED

For a budget run of the circle simulator (``benchmarks/run_budget.sh``, default 3 rounds), and
for each anchored round K: rebuilds the anchors' generator inputs (``rounds._round_parameters``
draws them from seed ``SEED + 7 K``), checks that the generator saved after round K-1 maps them
to the stored bank's first rows, and compares them with the generator saved after round K.
Per parameter it prints the correlation, over the anchors, between the generator's move of the
parameter during the round and the anchor's noise projected on the derivative of the noiseless
image with respect to that parameter (the circle's noise parameter ``n`` set to 0).  A strong
negative correlation would mean the generator learned to cancel each anchor's noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from gangal_core.calibration.emulator import load_emulator
from gangal_core.calibration.networks import ParameterGenerator
from gangal_core.calibration.rounds import ANCHOR_SHARE
from gangal_core.io.checkpoint import load_checkpoint
from gangal_core.plugins import get_registry
from gangal_core.simulation.bank import load_bank


def generator_after(run: Path, k: int, n_parameters: int) -> ParameterGenerator:
    state = load_checkpoint(run / f"checkpoint-calibrate-{k}.safetensors")[0]["state"]["models"]["generator"]
    generator = ParameterGenerator(n_parameters, noise_size=state["net.0.weight"].shape[1])
    generator.load_state_dict(state)
    return generator.eval()


def noiseless(simulator, params: torch.Tensor, noise_index: int) -> torch.Tensor:
    quiet = params.clone()
    quiet[:, noise_index] = 0.0
    return simulator.simulate(quiet, generator=torch.Generator().manual_seed(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("seed", type=int)
    args = parser.parse_args()
    registry = get_registry()
    simulator = registry.simulator("circle")
    emulator = load_emulator(args.run / "emulator", registry=registry)
    names = list(emulator.parameter_names)
    noise_index = names.index("n")
    k = 1
    while (args.run / f"checkpoint-calibrate-{k}.safetensors").is_file():
        bank = load_bank(args.run / "simulations" / f"round-{k}", simulator)
        before, after = generator_after(args.run, k - 1, len(names)), generator_after(args.run, k, len(names))
        n = round(ANCHOR_SHARE * len(bank))
        z = torch.randn(n, before.noise_size, generator=torch.Generator().manual_seed(args.seed + 7 * k))
        with torch.no_grad():
            p0, p1 = emulator.to_physical(before(z)), emulator.to_physical(after(z))
        stored = bank.parameters[:n].float()
        if not torch.allclose(p0, stored, rtol=1e-3, atol=1e-4):
            raise SystemExit(f"round {k}: the anchors' inputs do not reproduce the stored bank")
        clean = noiseless(simulator, p0, noise_index)
        residual = bank.images[:n].float() - clean
        print(f"round {k} ({n} anchors):")
        for j, name in enumerate(names):
            if j == noise_index:
                continue
            step = 1e-3 * float(p0[:, j].std() + 1e-9)
            moved = p0.clone()
            moved[:, j] += step
            derivative = ((noiseless(simulator, moved, noise_index) - clean) / step).flatten(1)
            norm = derivative.square().sum(1).clamp_min(1e-12)
            projected = (residual.flatten(1) * derivative).sum(1) / norm
            move = (p1 - p0)[:, j]
            corr = np.corrcoef(move.numpy(), projected.numpy())[0, 1]
            print(f"  {name}: correlation {corr:+.3f}; spread of the move {move.std():.4g}")
        k += 1


if __name__ == "__main__":
    main()
