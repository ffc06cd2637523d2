"""Table III: simulator vs emulator image production time, on this machine, beside the paper's.

    python benchmarks/table3_speed.py --emulator circle=RUN/emulator --emulator polynomial=EMU_DIR

Each emulator folder is one written by ``gangal pretrain`` (or ``gangal calibrate``'s
``RUN/emulator``).  For 10k, 100k and 1M images it times, in memory (no file writes; the
paper's Table III likewise times production):

- the simulator, ``simulate`` in chunks of 8192 with its own torch generator;
- the emulator, ``TrainedEmulator.emulate`` (batches of 8192, no autograd), noise included.

Each figure is the best of ``--repeats`` runs (default 3), after one warm-up run of 10k.
Writes ``benchmarks/out/table3_speed.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from gangal_core.calibration.emulator import load_emulator
from gangal_core.plugins import get_registry

PAPER = {  # seconds, Table III (simulator and CPU emulator: Intel CPU; GPU emulator: V100)
    "polynomial": {
        "simulator": (2.143, 21.368, 213.798),
        "emulator_cpu": (6.539, 66.536, 672.633),
        "emulator_gpu": (1.625, 4.901, 36.656),
    },
    "circle": {
        "simulator": (47.367, 471.842, 4773.626),
        "emulator_cpu": (6.540, 66.541, 671.628),
        "emulator_gpu": (1.623, 4.907, 36.671),
    },
}
SIZES = (10_000, 100_000, 1_000_000)


def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--emulator", action="append", required=True, help="SIMULATOR=EMULATOR_DIR")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "table3_speed.json")
    args = parser.parse_args()
    rows = []
    for item in args.emulator:
        name, _, folder = item.partition("=")
        sim = get_registry().simulator(name)
        emu = load_emulator(Path(folder))
        for n in SIZES:
            gen = torch.Generator().manual_seed(0)
            params = sim.sample_uniform(n, generator=gen)

            def run_sim(params=params, gen=gen, sim=sim):
                for i in range(0, params.shape[0], 8192):
                    sim.simulate(params[i : i + 8192], generator=gen)

            def run_emu(params=params, gen=gen, emu=emu):
                emu.emulate(params, generator=gen, precision=args.precision)

            if n == SIZES[0]:
                run_sim(), run_emu()  # warm-up
            t_sim, t_emu = _time(run_sim, args.repeats), _time(run_emu, args.repeats)
            rows.append(
                {
                    "simulator": name,
                    "n": n,
                    "simulator_s": t_sim,
                    "emulator_s": t_emu,
                    "emulator_images_per_s": n / t_emu,
                }
            )
            print(
                f"{name:>10} {n:>9,}  simulator {t_sim:8.3f} s   emulator {t_emu:8.3f} s "
                f"({n / t_emu:,.0f} images/s)",
                flush=True,
            )
    machine = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "rows": rows, "paper": PAPER}, indent=2))
    print(
        "\n| case | images | simulator (here) | emulator CPU (here) | emulator images/s | "
        "paper simulator | paper emulator CPU | paper emulator V100 |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        k = SIZES.index(r["n"])
        p = PAPER[r["simulator"]]
        print(
            f"| {r['simulator']} | {r['n']:,} | {r['simulator_s']:.3f} s | {r['emulator_s']:.3f} s | "
            f"{r['emulator_images_per_s']:,.0f} | {p['simulator'][k]:,} s | {p['emulator_cpu'][k]:,} s | "
            f"{p['emulator_gpu'][k]:,} s |"
        )


if __name__ == "__main__":
    main()
