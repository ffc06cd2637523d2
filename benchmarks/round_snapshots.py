"""Which generator snapshots of a calibration in rounds make the best match?

A budget run (``benchmarks/run_budget.sh``) keeps its last generator stage's checkpoint,
``checkpoint-calibrate-K``, and with it every snapshot its best match mixed (20 per round).
This script draws from each snapshot again and prints, against the truth in
``calibration.json``, each anchored round alone and the mixtures that leave rounds out::

    python benchmarks/round_snapshots.py RUN [RUN ...] [--per-snapshot 2000]

Cells are ``|dmu|/sigma_true / sigma ratio`` with the Tables' bar (``|dmu| <= 0.15 sigma``,
ratio in 0.75-1.35).  The draws are new, so a mixture of all the snapshots a run mixed
differs from its ``calibration.json`` by sampling noise (about 0.01 sigma).  Only runs made
before the burn-in rule (``gangal_core.calibration.rounds.BURN_IN_ROUNDS``) hold the first
anchored round's snapshots; later runs hold the rounds their best match mixed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from gangal_core.calibration.emulator import load_emulator
from gangal_core.calibration.networks import ParameterGenerator
from gangal_core.calibration.result import snapshot_mixture
from gangal_core.training import load_checkpoint

BAR, RATIO = 0.15, (0.75, 1.35)
SNAPSHOTS = 20  # the calibration trainer's default, per round


def snapshot_draws(run: Path, per_snapshot: int, seed: int = 0) -> list[np.ndarray]:
    """``per_snapshot`` best-match draws (physical units) from each snapshot of the run's last stage."""
    last = max(int(p.stem.rsplit("-", 1)[1]) for p in run.glob("checkpoint-calibrate-*.safetensors"))
    state = load_checkpoint(run / f"checkpoint-calibrate-{last}.safetensors")["state"]
    snapshots = state["extra"]["snapshots"]
    emulator = load_emulator(run / "emulator")
    first = next(v for k, v in snapshots[0].items() if k.endswith("weight"))
    G = ParameterGenerator(len(emulator.parameters), noise_size=first.shape[1], hidden=first.shape[0])
    random = torch.Generator().manual_seed(seed)
    draws = []
    for state in snapshots:
        G.load_state_dict(state)
        with torch.no_grad():
            draws.append(emulator.to_physical(G.sample(per_snapshot, generator=random)).numpy())
    return [d.astype(np.float64) for d in draws]


def row(label: str, parts: list[np.ndarray], truth: tuple[np.ndarray, np.ndarray], names: list[str],
        bounds: tuple[np.ndarray, np.ndarray]) -> str:  # fmt: skip
    """One table row: each parameter's offset and spread ratio, and the verdict."""
    samples, _, _ = snapshot_mixture(parts, n_true=2000, low=bounds[0], high=bounds[1])
    offset = (samples.mean(0) - truth[0]) / truth[1]
    ratio = samples.std(0, ddof=1) / truth[1]
    ok = bool(np.all(np.abs(offset) <= BAR) and np.all((ratio >= RATIO[0]) & (ratio <= RATIO[1])))
    cells = ", ".join(f"{n} {abs(d):.3f}/{r:.2f}" for n, d, r in zip(names, offset, ratio, strict=True))
    return f"| {label} | {cells} | {'**PASS**' if ok else 'fail'} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--per-snapshot", type=int, default=2000)
    args = parser.parse_args()
    print("| run, snapshots of | |dmu|/sigma / sigma ratio | bar |\n| --- | --- | --- |")
    for run in args.runs:
        doc = json.loads((run / "calibration.json").read_text())
        names = list(doc["parameters"])
        truth = tuple(np.array([doc["parameters"][n][k] for n in names]) for k in ("true_mean", "true_std"))
        emulator = load_emulator(run / "emulator")
        bounds = tuple(np.array([p[k] for p in emulator.parameters], dtype=float) for k in ("low", "high"))
        parts = snapshot_draws(run, args.per_snapshot)
        rounds = len(doc["simulation_plan"]["rounds"])
        held = len(parts) // SNAPSHOTS  # the anchored rounds whose snapshots the checkpoint holds
        start = 1 + rounds - held
        for k in range(held):
            cut = parts[k * SNAPSHOTS : (k + 1) * SNAPSHOTS]
            print(row(f"{run.name}, round {start + k} alone", cut, truth, names, bounds))
        print(row(f"{run.name}, all it mixed", parts, truth, names, bounds))
        if start == 1 and held > 1:
            print(row(f"{run.name}, rounds 2-{rounds}", parts[SNAPSHOTS:], truth, names, bounds))
            late = parts[SNAPSHOTS // 2 :]
            print(row(f"{run.name}, round 1's second half, rounds 2-{rounds}", late, truth, names, bounds))


if __name__ == "__main__":
    main()
