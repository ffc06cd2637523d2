"""Do ``calibrate``'s standard errors cover the truth at their nominal rate?

Repeats the default circle calibration on fresh true sets (a new seed draws a new set of 10,000
true images from the paper's Table II truth, and new generator and discriminator weights), with
one pretrained emulator as the paper's workflow does (simulate and pretrain once, calibrate many
data sets).  For every run and parameter it forms ``z = (estimate - truth) / standard error`` for
the best-match mean and spread, and counts how often ``|z| < 1`` (nominal 68.3%) and
``|z| < 1.96`` (nominal 95%).

Command (2 cores, about 2.5 min per repeat)::

    python benchmarks/error_coverage.py --repeats 16 --first-seed 116 \\
        --emulator benchmarks/out/calibrate-circle-0/emulator --out benchmarks/out/coverage-iat

Runs already finished in ``--out`` are reused, so an interrupted benchmark continues where it
stopped.  The summary is written to ``OUT/coverage.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def run_one(emulator: Path, out: Path, seed: int, simulator: str) -> dict:
    doc_path = out / "calibration.json"
    if not doc_path.exists():
        cmd = [
            sys.executable, "-m", "gangal_core", "calibrate", "--simulator", simulator,
            "--emulator", str(emulator), "--out", str(out), "--seed", str(seed), "--no-progress",
            "--no-predictive-check",
        ]  # fmt: skip
        if out.exists():
            cmd.append("--resume")
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"seed {seed}: {time.perf_counter() - t:.0f} s", flush=True)
    return json.loads(doc_path.read_text())


def coverage(z: np.ndarray) -> dict[str, float]:
    z = np.abs(np.asarray(z))
    return {
        "n": int(z.size),
        "cover_68": round(float(np.mean(z < 1.0)), 3),
        "cover_95": round(float(np.mean(z < 1.96)), 3),
        "rms_z": round(float(np.sqrt(np.mean(z**2))), 3),
    }


def relative_error(runs: list[dict], names: list[str], key: str) -> float:
    """Median over runs and parameters of a standard error in units of the true spread."""
    values = [d["parameters"][n][key] / d["parameters"][n]["true_std"] for d in runs for n in names]
    return round(float(np.median(values)), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--emulator", type=Path, default=Path("benchmarks/out/calibrate-circle-0/emulator"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/coverage"))
    ap.add_argument("--simulator", default="circle")
    ap.add_argument("--repeats", type=int, default=16)
    ap.add_argument("--first-seed", type=int, default=100)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [
        run_one(args.emulator, args.out / f"seed-{s}", s, args.simulator)
        for s in range(args.first_seed, args.first_seed + args.repeats)
    ]
    names = list(runs[0]["parameters"])
    z_mean = {n: [] for n in names}
    z_std = {n: [] for n in names}
    dmu, ratio, seconds = [], [], []
    for doc in runs:
        seconds.append(doc["timing_seconds"]["training"])
        for n in names:
            v = doc["parameters"][n]
            z_mean[n].append((v["mean"] - v["true_mean"]) / v["mean_err"])
            z_std[n].append((v["std"] - v["true_std"]) / v["std_err"])
            dmu.append(abs(v["mean"] - v["true_mean"]) / v["true_std"])
            ratio.append(v["std"] / v["true_std"])
    summary = {
        "command": " ".join(["python", *sys.argv]),
        "repeats": len(runs),
        "seeds": [args.first_seed, args.first_seed + args.repeats - 1],
        "emulator": str(args.emulator),
        "mean": coverage(np.concatenate([z_mean[n] for n in names])),
        "std": coverage(np.concatenate([z_std[n] for n in names])),
        "per_parameter": {n: {"mean": coverage(z_mean[n]), "std": coverage(z_std[n])} for n in names},
        "mean_z": {
            "mean": round(float(np.mean(np.concatenate(list(z_mean.values())))), 3),
            "std": round(float(np.mean(np.concatenate(list(z_std.values())))), 3),
        },
        "dmu_over_sigma_max": round(float(np.max(dmu)), 3),
        "sigma_ratio_range": [round(float(np.min(ratio)), 3), round(float(np.max(ratio)), 3)],
        "median_mean_err_over_sigma": relative_error(runs, names, "mean_err"),
        "median_std_err_over_sigma": relative_error(runs, names, "std_err"),
        "training_seconds_median": round(float(np.median(seconds)), 1),
        "machine": f"{os.cpu_count()} cores",
    }
    tmp = args.out / "coverage.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, args.out / "coverage.json")
    print(json.dumps({k: summary[k] for k in ("repeats", "mean", "std", "mean_z")}, indent=2))
    for n in names:
        m, s = summary["per_parameter"][n]["mean"], summary["per_parameter"][n]["std"]
        print(f"{n:>8}: mean 68% {m['cover_68']:.2f} 95% {m['cover_95']:.2f} | "
              f"std 68% {s['cover_68']:.2f} 95% {s['cover_95']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
