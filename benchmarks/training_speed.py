"""Training speed of the built-in emulator: contiguous (NCHW) against channels-last layout.

    python benchmarks/training_speed.py [--rounds 3] [--simulators polynomial circle]

For each simulator it times ``pretrain`` (150 batches of 256, with the parameter estimator)
and ``calibrate`` (200 batches of 256, simulated discriminator input, a pretrained emulator)
with the emulator's forward pass in each layout.  The baseline is the forward pass gangal used
before (the same layers, NCHW tensors), swapped in for the run; the two layouts alternate,
``--rounds`` times each, so a slow spell of the machine hits both alike.  Figures are the
median milliseconds per training batch; the ratio is baseline over channels-last.

Writes ``benchmarks/out/training_speed.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from gangal_core.calibration.gan import calibrate
from gangal_core.calibration.networks import ConvEmulator
from gangal_core.calibration.pretraining import pretrain
from gangal_core.calibration.truth import make_true_set
from gangal_core.plugins import get_registry


def _contiguous_forward(self: ConvEmulator, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward pass before channels-last: the same layers on NCHW tensors."""
    c, h, w = self.image_shape
    x = self.mlp(u).view(-1, self.width, self.h0, self.w0)
    y = self.up(x)[..., :h, :w]
    return torch.tanh(y[:, :c]), F.softplus(y[:, c:]) + 1e-3


@contextmanager
def layout(name: str):
    original = ConvEmulator.forward
    if name == "contiguous":
        ConvEmulator.forward = _contiguous_forward
    try:
        yield
    finally:
        ConvEmulator.forward = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--simulators", nargs="+", default=["polynomial", "circle"])
    ap.add_argument("--pretrain-iterations", type=int, default=150)
    ap.add_argument("--calibrate-iterations", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/training_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    registry = get_registry()
    layouts = ("contiguous", "channels_last")
    results: dict[str, dict] = {}
    for name in args.simulators:
        sim = registry.simulator(name)
        n_cal = args.calibrate_iterations
        _, true = make_true_set(sim, dict(sim.reference_truth or {}), n=2000, seed=0)
        emulator = pretrain(sim, iterations=args.pretrain_iterations, progress=False, seed=1)
        times: dict[str, dict[str, list[float]]] = {k: {"pretrain": [], "calibrate": []} for k in layouts}
        for _ in range(args.rounds):
            for lay in layouts:
                with layout(lay):
                    t = time.perf_counter()
                    pretrain(sim, iterations=args.pretrain_iterations, progress=False)
                    times[lay]["pretrain"].append((time.perf_counter() - t) / args.pretrain_iterations)
                    t = time.perf_counter()
                    calibrate(sim, emulator, true, iterations=n_cal, n_samples=200, progress=False)
                    times[lay]["calibrate"].append((time.perf_counter() - t) / args.calibrate_iterations)
        results[name] = {
            lay: {stage: round(1e3 * statistics.median(v), 1) for stage, v in stages.items()}
            for lay, stages in times.items()
        }
        for stage in ("pretrain", "calibrate"):
            base, now = results[name]["contiguous"][stage], results[name]["channels_last"][stage]
            results[name][f"{stage}_speedup"] = round(base / now, 2)
    doc = {
        "command": "python benchmarks/training_speed.py " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items() if k != "out"
        ),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "results": results,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print("| simulator | stage | contiguous ms/batch | channels-last ms/batch | speed-up |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, r in results.items():
        for stage in ("pretrain", "calibrate"):
            print(
                f"| {name} | {stage} | {r['contiguous'][stage]} | {r['channels_last'][stage]} | "
                f"{r[f'{stage}_speedup']}x |"
            )


if __name__ == "__main__":
    main()
