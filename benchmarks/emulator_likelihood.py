"""The likelihood refinement replayed on finished runs: what it would have made of their best match.

    python benchmarks/emulator_likelihood.py RUN [RUN ...] [--n-true 2000]

Each RUN is a ``gangal calibrate --budget`` folder of ``benchmarks/run_budget.sh``
(``benchmarks/out/budget/CASE-BUDGET-sSEED``): its final emulator, its best-match samples and the
case's true images (rebuilt by ``peers_sbi.true_set`` from the folder's name) go through
:func:`gangal_core.calibration.likelihood.likelihood_refinement`, with as many simulations as
the run's plan kept for the predictive check.  Printed per run: the run's best match, the
emulator-likelihood fit, and the corrected fit (adopted or not, and why), as ``dmu/sigma``
(signed) and sigma ratio per parameter, with the bar's verdict.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
from peers_sbi import true_set

from gangal_core.calibration.emulator import load_emulator
from gangal_core.calibration.likelihood import likelihood_refinement
from gangal_core.calibration.result import RECOVERY_BAR


def cells(names, mean, std, truth) -> tuple[str, bool]:
    out, ok = [], True
    for j, name in enumerate(names):
        m, s = truth[name]
        d, r = (mean[j] - m) / s, std[j] / s
        ok &= RECOVERY_BAR.mean_ok(abs(d)) and RECOVERY_BAR.ratio_ok(r)
        out.append(f"{name} {d:+.3f}/{r:.2f}")
    return ", ".join(out), ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--n-true", type=int, default=2000)
    args = parser.parse_args()
    print("| run | run's best match | likelihood fit (effective draws) | corrected | adopted | s |")
    print("| --- | --- | --- | --- | --- | ---: |")
    for run in args.runs:
        case, seed = re.fullmatch(r"(.+)-\w+-s(\d+)", run.name).groups()
        _, images, truth, sim = true_set(case, args.n_true, int(seed))
        names = sim.parameter_names()
        doc = json.loads((run / "calibration.json").read_text())
        samples = np.loadtxt(run / "samples.csv", delimiter=",", skiprows=1)
        started = time.perf_counter()
        refined = likelihood_refinement(sim, load_emulator(run / "emulator"), images, samples,
                                        doc["simulation_plan"]["predictive"], seed=int(seed))  # fmt: skip
        seconds = time.perf_counter() - started
        rec = refined.record
        base, base_ok = cells(names, samples.mean(0), samples.std(0, ddof=1), truth)
        fit = f"not fitted (screen: {rec['screen_effective_draws']:.0f})"
        if "fit" in rec:
            fit, _ = cells(names, rec["fit"]["mean"], rec["fit"]["std"], truth)
            fit += f" ({rec['fit']['effective_draws']:.0f})"
        corrected = "-"
        if "corrected" in rec:
            corrected, ok = cells(names, rec["corrected"]["mean"], rec["corrected"]["std"], truth)
            corrected += f" ({rec['correction']['effective_draws']:.0f}) " + ("PASS" if ok else "fail")
        verdict = "yes" if rec["adopted"] else f"no: {rec.get('reason', '')}"
        print(f"| {run.name} | {base} {'PASS' if base_ok else 'fail'} | {fit} | {corrected} | {verdict} "
              f"| {seconds:.0f} |")


if __name__ == "__main__":
    main()
