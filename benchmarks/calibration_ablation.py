"""One calibration through the library API with chosen keyword options (the design trials).

    python benchmarks/calibration_ablation.py circle --pretrain 4000 --iterations 3000 --seed 0 \
        --options '{"minibatch_std": "none"}'

Pretrains (or reuses ``benchmarks/out/ablation-emulator-SIM-PRETRAIN``), builds the reference
true set (10,000 images), runs :func:`gangal_core.calibration.calibrate` with ``--options`` as
keyword arguments and prints ``|dmu|/sigma`` and the sigma ratio per parameter.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gangal_core import calibration as cal
from gangal_core.plugins import get_registry


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("simulator")
    parser.add_argument("--pretrain", type=int, default=4000)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--options", default="{}", help="JSON keyword options of calibrate()")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sim = get_registry().simulator(args.simulator)
    folder = Path(__file__).parent / "out" / f"ablation-emulator-{args.simulator}-{args.pretrain}"
    if (folder / cal.EMULATOR_FILE).exists():
        emu = cal.load_emulator(folder)
    else:
        emu = cal.pretrain(sim, iterations=args.pretrain, seed=args.seed, progress=False)
        cal.save_emulator(emu, folder)
    truth = dict(sim.reference_truth)
    _, true = cal.make_true_set(sim, truth, n=10000, seed=args.seed)
    options = json.loads(args.options)
    start = time.perf_counter()
    result = cal.calibrate(
        sim, emu, true, iterations=args.iterations, seed=args.seed, progress=False, **options
    )
    doc = cal.summarise(result, simulator=sim.name, truth=truth, seconds=time.perf_counter() - start)
    rec = cal.recovery(doc)
    print(args.simulator, options, f"{doc['seconds']:.0f} s", "PASS" if cal.within_bar(doc) else "FAIL")
    print("  |dmu|/sigma", " ".join(f"{k}={v['dmu_over_sigma']:.2f}" for k, v in rec.items()))
    print("  sigma ratio", " ".join(f"{k}={v['sigma_ratio']:.2f}" for k, v in rec.items()))


if __name__ == "__main__":
    main()
