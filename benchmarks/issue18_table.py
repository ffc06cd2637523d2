"""Tabulate the issue-18 runs (benchmarks/run_issue18.sh) against the issue's targets.

    python benchmarks/issue18_table.py [benchmarks/out/issue18]

One row per variant with an ``eval-heldout/evaluation.json``: the KS statistic and W/std of
each isophote quantity against the 200 held-out images, the generated images' fit failure
rate, the fraction of samples closer to a training image than the real-real 1st percentile
against that fraction for held-out images (the memorisation check: at most 2x), the
training wall time, and whether every target holds (KS <= 0.10, W/std <= 0.2, failures <= 1%,
memorisation ratio <= 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

QUANTITIES = ("ellipticity", "angle", "flux", "sma")
KS_TARGET, W_TARGET, FAIL_TARGET, MEMO_TARGET = 0.10, 0.2, 0.01, 2.0


def row(folder: Path) -> list[str] | None:
    held = folder / "eval-heldout" / "evaluation.json"
    if not held.is_file():
        return None
    doc = json.loads(held.read_text())
    train = folder / "eval-train" / "evaluation.json"
    below_train = (json.loads(train.read_text())["closest_match"]["fraction_generated_below_that"]
                   if train.is_file() else float("nan"))  # fmt: skip
    below_held = doc["closest_match"]["fraction_generated_below_that"]
    cells, ok = [folder.name], True
    for q in QUANTITIES:
        entry = doc["quantities"][q]
        ks, w = entry["ks_statistic"], entry["wasserstein_over_real_std"]
        ok &= ks is not None and ks <= KS_TARGET and w is not None and w <= W_TARGET
        cells.append(f"{ks:.3f} / {w:.3f}" if ks is not None and w is not None else "n/a")
    fail = doc["failure_rate"]["generated"]
    ratio = below_train / below_held if below_held else float("inf")
    ok &= fail <= FAIL_TARGET and ratio <= MEMO_TARGET
    time_file = folder / "time.txt"
    wall = time_file.read_text().split()[0] if time_file.is_file() else "-"
    cells += [f"{100 * fail:.1f}%", f"{100 * below_train:.1f}% / {100 * below_held:.1f}%", wall,
              "**PASS**" if ok else "fail"]  # fmt: skip
    return cells


def main(root: Path) -> None:
    header = ["variant", *(f"{q} KS / W/std" for q in QUANTITIES), "fit failures",
              "below real 1st pct: train / held-out", "train s", "targets"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        cells = row(folder)
        if cells:
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/out/issue18"))
