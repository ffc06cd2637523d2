"""gangal within a budget beside sbi NPE at the same number of simulations, case by case and seed by seed.

    python benchmarks/budget_vs_sbi.py GANGAL_FOLDER SBI_FOLDER [BUDGET]

``GANGAL_FOLDER`` holds ``CASE-BUDGET-sSEED/calibration.json`` (benchmarks/run_budget.sh);
``SBI_FOLDER`` holds ``CASE-sbi-sSEED.json`` (benchmarks/peers_sbi.py, the same true images).
Per run: the worst |dmu|/sigma and the sigma-ratio range over the parameters, the verdict
against the Tables' bar, and the wall time; sbi's by its posterior means (the population of
per-image estimates, its better aggregate on these cases) and its pooled samples.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gangal_core.calibration.result import RECOVERY_BAR, recovery, within_bar

CASES = ("circle-table2", "polynomial-table1", "circle-lowsignal")


def _summary(per_parameter: dict[str, tuple[float, float]]) -> tuple[str, bool]:
    worst = max(per_parameter, key=lambda k: per_parameter[k][0])
    ratios = [r for _, r in per_parameter.values()]
    ok = all(d <= RECOVERY_BAR.mean_tol and RECOVERY_BAR.ratio[0] <= r <= RECOVERY_BAR.ratio[1]
             for d, r in per_parameter.values())  # fmt: skip
    text = f"{worst} {per_parameter[worst][0]:.3f}, ratios {min(ratios):.2f}-{max(ratios):.2f}"
    return text, ok


def gangal_cell(path: Path) -> str:
    doc = json.loads(path.read_text())
    rec = recovery(doc)
    text, _ = _summary({k: (v["dmu_over_sigma"], v["sigma_ratio"]) for k, v in rec.items()})
    return f"{'**PASS**' if within_bar(doc) else 'fail'}: {text}; {doc['seconds']:.0f} s"


def sbi_cell(path: Path, aggregate: str) -> str:
    doc = json.loads(path.read_text())
    per = {k: (v[aggregate]["dmu_over_sigma"], v[aggregate]["sigma_ratio"])
           for k, v in doc["parameters"].items()}  # fmt: skip
    text, ok = _summary(per)
    return f"{'**PASS**' if ok else 'fail'}: {text}; {doc['seconds']['total']:.0f} s"


def main(gangal: Path, sbi: Path, budget: int) -> None:
    print("| case | seed | gangal (budget) | sbi NPE, posterior means | sbi NPE, pooled samples |")
    print("| --- | ---: | --- | --- | --- |")
    for case in CASES:
        for seed in range(3):
            g = gangal / f"{case}-{budget}-s{seed}" / "calibration.json"
            s = sbi / f"{case}-sbi-s{seed}.json"
            if not (g.is_file() or s.is_file()):
                continue
            cells = [gangal_cell(g) if g.is_file() else "not run",
                     sbi_cell(s, "posterior_means") if s.is_file() else "not run",
                     sbi_cell(s, "pooled_samples") if s.is_file() else "not run"]  # fmt: skip
            print(f"| {case} | {seed} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 20000)
