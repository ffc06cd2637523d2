"""Tabulate calibrations within a budget against the paper's bar (markdown, for RESULTS.md).

    python benchmarks/budget_table.py [RUN_FOLDER ...]     # default: benchmarks/out/budget/*

Per run: wall time, the simulator's images (by gangal's count), and per parameter
``|dmu|/sigma`` and ``sigma ratio`` against the population truth the true images were drawn
from; PASS when every parameter is within the Tables' bar (``RECOVERY_BAR``: 0.15 and 0.75-1.35).
The last column says what the likelihood fit did (``calibration.json``'s ``likelihood_fit``):
"adopted" (for which parameters, when the per-image fit took only some) with the generator's
own best match (the last round it trained in) against the bar, "not adopted" with the reason, "skipped"
with the screen's effective draws per image (runs before the per-image fit), or "-" when the
run had none.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gangal_core.calibration.result import RECOVERY_BAR, recovery, within_bar


def row(folder: Path) -> str:
    doc = json.loads((folder / "calibration.json").read_text())
    rec = recovery(doc)
    cells = ", ".join(f"{k} {v['dmu_over_sigma']:.3f}/{v['sigma_ratio']:.2f}" for k, v in rec.items())
    verdict = "PASS" if within_bar(doc) else "fail"
    auc = doc.get("predictive_auc")
    made = doc.get("simulator_images")  # absent from a run without a budget: it simulates freely
    images = "unbudgeted" if made is None else f"{made:,}"
    return (f"| {folder.name} | {doc['seconds']:.0f} s | {images} | {cells} | "
            f"{'-' if auc is None else f'{auc:.3f}'} | {verdict} | {_likelihood_fit(doc)} |")


def _likelihood_fit(doc: dict) -> str:
    fit = doc.get("likelihood_fit")
    if fit is None:
        return "-"
    if not fit["adopted"]:
        return f"skipped ({fit['screen_effective_draws']:.0f} draws)" if "fit" not in fit else "not adopted"
    how = "adopted"
    if fit.get("method") == "per image":  # the per-image fit is skipped where the estimator reads all
        how = (f"per image: estimator for {', '.join(fit.get('estimator_parameters', [])) or 'none'}, "
               f"fit for {', '.join(fit.get('adopted_parameters', [])) or 'none'}")  # fmt: skip
    k, last = _generator_best(doc["rounds"])  # the generator's best match, before the fit
    pairs = zip(doc["parameters"].items(), last["mean"], last["std"], strict=True)
    before = {**doc, "parameters": {name: {**entry, "mean": m, "std": s} for (name, entry), m, s in pairs}}
    worst = max(v["dmu_over_sigma"] for v in recovery(before).values())
    which = "generator" if k == len(doc["rounds"]) - 1 else f"generator after round {k}"
    return f"{how} ({which}: {'PASS' if within_bar(before) else 'fail'}, worst mean {worst:.3f})"


def _generator_best(rounds: list[dict]) -> tuple[int, dict]:
    """The last round the generator trained in, and its best match (where the likelihood fit led
    the later rounds, the first round's generator, recorded under ``generator``)."""
    for k in range(len(rounds) - 1, -1, -1):
        entry = rounds[k]
        if "generator" in entry:
            return k, entry["generator"]
        if entry.get("generator_continued", True) and "best_match" not in entry:
            return k, entry
    raise ValueError("no round trained the generator")


def main(folders: list[str]) -> None:
    paths = [Path(f) for f in folders] or sorted(Path("benchmarks/out/budget").glob("*/"))
    print(f"bar: |dmu|/sigma <= {RECOVERY_BAR.mean_tol}, sigma ratio in {RECOVERY_BAR.ratio}\n")
    print("| run | wall | simulator images | parameter |dmu|/sigma / sigma ratio | predictive AUC | bar "
          "| likelihood fit |")
    print("| --- | ---: | ---: | --- | ---: | --- | --- |")
    for folder in paths:
        if (folder / "calibration.json").exists():
            print(row(folder))


if __name__ == "__main__":
    main(sys.argv[1:])
