"""The likelihood fit alone, on finished calibrations: what it makes of their emulator and best match.

    python benchmarks/refit_saved.py RUN_FOLDER ...

A calibration within a budget ends with the likelihood fit (``gangal_core.calibration.likelihood``).
This runs that last stage again, with today's code, on runs that ``benchmarks/run_budget.sh``
finished: their final emulator (``RUN/emulator``), the generator's best match (``RUN/samples.csv``;
a run that adopted a fit wrote the fit's samples there, and is refused), and the same true
images (2,000 drawn from the reference truth with the run's seed; runs with ``--range`` are
refused, as the simulator's declared ranges would differ).
The fit's simulations are made afresh (2,000, the predictive check's share of a budget of
20,000).  Per run it prints what the fit adopted and the result against the Tables' bar, so a
change to the fit can be measured in minutes instead of rerunning the rounds.  The rounds
themselves are deterministic on one machine (a rerun of a seed gives the same best match), so
this is what a full rerun with today's fit gives, up to the six digits of ``samples.csv``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gangal_core.calibration.emulator import load_emulator
from gangal_core.calibration.likelihood import likelihood_refinement
from gangal_core.calibration.result import RECOVERY_BAR
from gangal_core.calibration.truth import make_true_set
from gangal_core.plugins import get_registry


def refit(folder: Path, *, n_true: int = 2000, n_simulations: int = 2000) -> str:
    doc = json.loads((folder / "calibration.json").read_text())
    if (doc.get("likelihood_fit") or {}).get("adopted") or doc["options"].get("range"):
        raise SystemExit(f"{folder}: adopted a fit already (samples.csv holds it) or changed the ranges")
    seed = doc["options"]["seed"]
    simulator = get_registry().simulator(doc["simulator"])
    truth = {name: (v["true_mean"], v["true_std"]) for name, v in doc["parameters"].items()}
    _, images = make_true_set(simulator, truth, n=n_true, seed=seed)
    samples = np.loadtxt(folder / "samples.csv", delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)
    started = time.perf_counter()
    refined = likelihood_refinement(simulator, load_emulator(folder / "emulator"), images, samples,
                                    n_simulations, seed=seed)  # fmt: skip
    seconds = time.perf_counter() - started
    final = samples if refined.samples is None else refined.samples
    mean, sd = np.array([v[0] for v in truth.values()]), np.array([v[1] for v in truth.values()])
    offset, ratio = (final.mean(0) - mean) / sd, final.std(0, ddof=1) / sd
    low, high = RECOVERY_BAR.ratio
    in_ratio = (low <= ratio) & (ratio <= high)
    passed = bool(np.all(np.abs(offset) <= RECOVERY_BAR.mean_tol) and np.all(in_ratio))
    rec = refined.record
    cells = ", ".join(f"{n} {abs(o):.3f}/{r:.2f}" for n, o, r in zip(truth, offset, ratio, strict=True))
    bias = ", ".join(f"{b:+.2f}" for b in rec.get("correction_in_spreads", []))
    adopted = f"none ({rec.get('reason')})"
    if rec["adopted"]:
        adopted = "all"
        if rec.get("method") == "per image":  # the per-image fit is skipped where the estimator reads all
            adopted = f"fit: {', '.join(rec.get('adopted_parameters', [])) or '-'}"
            adopted += f"; estimator: {', '.join(rec.get('estimator_parameters', [])) or '-'}"
    return (f"| {folder.name} | {rec.get('method', '-')} | {adopted} | {bias or '-'} | {cells} | "
            f"{'PASS' if passed else 'fail'} | {seconds:.0f} s |")


def main(folders: list[str]) -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    print("| run | fit | adopted for | emulator bias (spreads) | parameter |dmu|/sigma / sigma ratio | bar "
          "| fit time |")
    print("| --- | --- | --- | --- | --- | --- | ---: |")
    for folder in folders:
        print(refit(Path(folder)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
