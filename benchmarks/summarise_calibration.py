"""Markdown tables for RESULTS.md from ``benchmarks/out/calibration_tables.json``.

python benchmarks/summarise_calibration.py
"""

from __future__ import annotations

import json
from pathlib import Path

from calibration_tables import PAPER_BEST_MATCH

HERE = Path(__file__).parent


def main() -> None:
    runs = json.loads((HERE / "out" / "calibration_tables.json").read_text())
    for run in runs:
        doc = run["calibration"]
        name, seed, tag = run["simulator"], run["seed"], run["tag"] or "default"
        params = doc["parameters"]
        t = doc.get("timing_seconds", {})
        print(f"\n**{name}, seed {seed} ({tag})**: wall {run['wall_seconds']:.0f} s "
              f"(pretraining {t.get('pretrain', 0):.0f} s, training {t.get('training', 0):.0f} s); "
              f"**{'PASS' if run['pass'] else 'FAIL'}**\n")  # fmt: skip
        print("| | " + " | ".join(params) + " |")
        print("| --- |" + " ---: |" * len(params))
        rows = [("True mu", "true_mean"), ("True sigma", "true_std"), ("Best match mu", "mean"),
                ("Best match sigma", "std")]  # fmt: skip
        for label, key in rows:
            print(f"| {label} | " + " | ".join(f"{params[p][key]:.4g}" for p in params) + " |")
        dmu = [abs(params[p]["mean"] - params[p]["true_mean"]) / params[p]["true_std"] for p in params]
        ratio = [params[p]["std"] / params[p]["true_std"] for p in params]
        print("| \\|dmu\\|/sigma | " + " | ".join(f"{v:.3f}" for v in dmu) + " |")
        print("| sigma ratio | " + " | ".join(f"{v:.3f}" for v in ratio) + " |")
        if tag == "default" and name in PAPER_BEST_MATCH:
            paper = PAPER_BEST_MATCH[name]
            print("| paper best match mu | " + " | ".join(f"{paper[p][0]}" for p in params) + " |")
            print("| paper best match sigma | " + " | ".join(f"{paper[p][1]}" for p in params) + " |")


if __name__ == "__main__":
    main()
