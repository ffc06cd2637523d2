"""Tables I and II: the default ``gangal calibrate`` on both built-in simulators, several seeds.

    python benchmarks/calibration_tables.py --simulator circle --simulator polynomial --seeds 0 1 2

Each run is the plain command line, timed from outside (start-up, pretraining, training and
plots included)::

    gangal calibrate --simulator NAME --seed S --out benchmarks/out/calibrate-NAME-S --no-progress

Extra arguments after ``--`` go to every run, e.g. ``-- --emulator EMU_DIR`` to time a
calibration with a pretrained emulator, or ``-- --truth r=7,0.4`` for another truth.  Writes
``benchmarks/out/calibration_tables.json`` (or ``--out``) and prints the paper-style rows with
the issue's bar: ``|mu_bm - mu_true| <= 0.15 sigma_true`` and ``0.75 <= sigma_bm/sigma_true <= 1.35``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

PAPER_BEST_MATCH = {  # Tables I and II: best-match (mu, sigma)
    "polynomial": {"m": (1.501, 0.266), "x0": (9.988, 0.418), "c": (0.512, 0.129), "xsteps": (9.003, 0.432)},
    "circle": {
        "x0": (18.082, 0.833),
        "y0": (18.035, 0.795),
        "r": (7.950, 0.411),
        "n": (0.152, 0.072),
        "b": (0.892, 0.083),
    },
}
HERE = Path(__file__).parent


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--simulator", action="append", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tag", default="", help="suffix of the run folders")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "calibration_tables.json")
    args = parser.parse_args(argv)
    results = json.loads(args.out.read_text()) if args.out.exists() else []
    for name in args.simulator:
        for seed in args.seeds:
            run = HERE / "out" / f"calibrate-{name}-{seed}{args.tag}"
            shutil.rmtree(run, ignore_errors=True)
            cmd = [
                "gangal",
                "calibrate",
                "--simulator",
                name,
                "--seed",
                str(seed),
                "--out",
                str(run),
                "--no-progress",
                *extra,
            ]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if proc.returncode:
                print(proc.stdout, proc.stderr, file=sys.stderr)
                raise SystemExit(f"{' '.join(cmd)} failed")
            doc = json.loads((run / "calibration.json").read_text())
            ok = True
            cells = []
            for p, v in doc["parameters"].items():
                dmu = abs(v["mean"] - v["true_mean"]) / v["true_std"]
                ratio = v["std"] / v["true_std"]
                ok &= dmu <= 0.15 and 0.75 <= ratio <= 1.35
                cells.append(f"{p} {v['mean']:.4g}/{v['std']:.3g} ({dmu:.2f}, {ratio:.2f})")
            print(
                f"{name} seed {seed}: wall {wall:.0f} s {'PASS' if ok else 'FAIL'}: " + "; ".join(cells),
                flush=True,
            )
            results.append(
                {
                    "simulator": name,
                    "seed": seed,
                    "tag": args.tag,
                    "extra_args": extra,
                    "wall_seconds": round(wall, 1),
                    "pass": bool(ok),
                    "calibration": doc,
                }
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
