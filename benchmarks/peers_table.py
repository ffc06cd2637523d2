"""Tabulate gangal vs sbi from ``benchmarks/run_peers.sh``'s outputs (markdown, for RESULTS.md).

    python benchmarks/peers_table.py [--out benchmarks/out/peers] [--json benchmarks/out/peers/peers.json]

Every figure is measured against the population truth the true images were drawn from (the
same for both tools): ``|dmu|/sigma = |mean - true_mean| / true_std`` and
``sigma ratio = std / true_std``.  gangal's rows carry its standard errors in units of
``true_std``; the verdict per parameter says whether gangal's error is no larger than the
better sbi aggregate's ("yes"), larger but within two of gangal's standard errors ("tie"), or
larger ("no").
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

CASES = ("circle-table2", "polynomial-table1", "circle-lowsignal", "circle-misspecified")
AGGREGATES = {"posterior_means": "sbi: posterior means", "pooled_samples": "sbi: pooled samples"}


def gangal_row(doc: dict[str, Any], truth: dict[str, tuple[float, float]]) -> dict[str, Any]:
    opts = doc["options"]
    calls = opts["iterations"] * opts["batch_size"] if opts["discriminator_input"] == "simulated" else 0
    if opts.get("emulator") is None:
        calls += opts["pretrain_iterations"] * opts["batch_size"]
    check = doc.get("predictive_check")
    if check:
        calls += check["n_test"] + check["n_train"]
    params = {}
    for name, (mu, sd) in truth.items():
        v = doc["parameters"][name]
        params[name] = {
            "dmu_over_sigma": abs(v["mean"] - mu) / sd,
            "sigma_ratio": v["std"] / sd,
            "mean_err_over_sigma": v["mean_err"] / sd,
            "std_err_over_sigma": v["std_err"] / sd,
        }
    return {
        "method": "gangal calibrate (default)",
        "seconds": doc["seconds"],
        "simulator_calls": calls,
        "parameters": params,
        "predictive_auc": doc.get("predictive_auc"),
        "predictive_flagged": check["flagged"] if check else None,
    }


def sbi_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, label in AGGREGATES.items():
        params = {
            name: {k: v[key][k] for k in ("dmu_over_sigma", "sigma_ratio")}
            for name, v in doc["parameters"].items()
        }
        rows.append(
            {
                "method": label,
                "seconds": doc["seconds"]["total"],
                "simulator_calls": doc["simulator_calls"],
                "parameters": params,
            }
        )
    return rows


def verdicts(gangal: dict[str, Any], sbi: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per parameter and figure: is gangal at least as accurate as the better sbi aggregate?"""
    out: dict[str, dict[str, str]] = {}
    for name, g in gangal["parameters"].items():
        best_dmu = min(r["parameters"][name]["dmu_over_sigma"] for r in sbi)
        best_ratio = min(abs(r["parameters"][name]["sigma_ratio"] - 1) for r in sbi)

        def judge(ours: float, theirs: float, err: float) -> str:
            return "yes" if ours <= theirs else ("tie" if ours <= theirs + 2 * err else "no")

        out[name] = {
            "mean": judge(g["dmu_over_sigma"], best_dmu, g["mean_err_over_sigma"]),
            "spread": judge(abs(g["sigma_ratio"] - 1), best_ratio, g["std_err_over_sigma"]),
        }
    return out


def markdown(case: str, rows: list[dict[str, Any]], verdict: dict[str, dict[str, str]] | None) -> str:
    names = list(rows[0]["parameters"])
    head = "| method | " + " | ".join(f"{n}: \\|dmu\\|/σ, σ ratio" for n in names) + " | wall s | sim calls |"
    lines = [f"**{case}**", "", head, "|---" * (len(names) + 3) + "|"]
    for r in rows:
        cells = []
        for n in names:
            p = r["parameters"][n]
            if "mean_err_over_sigma" in p:
                cells.append(
                    f"{p['dmu_over_sigma']:.3f}±{p['mean_err_over_sigma']:.3f}, "
                    f"{p['sigma_ratio']:.3f}±{p['std_err_over_sigma']:.3f}"
                )
            else:
                cells.append(f"{p['dmu_over_sigma']:.3f}, {p['sigma_ratio']:.3f}")
        lines.append(
            f"| {r['method']} | " + " | ".join(cells) + f" | {r['seconds']:.0f} | {r['simulator_calls']:,} |"
        )
    if verdict:
        lines.append(
            "| gangal at least as accurate? | "
            + " | ".join(f"mean {verdict[n]['mean']}, spread {verdict[n]['spread']}" for n in names)
            + " | | |"
        )
    auc = [r for r in rows if r.get("predictive_auc") is not None]
    if auc:
        flag = " (flagged)" if auc[0]["predictive_flagged"] else ""
        lines += ["", f"gangal's predictive check: held-out AUC {auc[0]['predictive_auc']:.3f}{flag}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/peers"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    summary = {}
    for case in CASES:
        sbi_path = args.out / f"{case}-sbi.json"
        if not sbi_path.exists():
            continue
        sbi_doc = json.loads(sbi_path.read_text())
        truth = {n: (v["true_mean"], v["true_std"]) for n, v in sbi_doc["parameters"].items()}
        rows = sbi_rows(sbi_doc)
        verdict = None
        g_path = args.out / f"{case}-gangal" / "calibration.json"
        if g_path.exists():
            g = gangal_row(json.loads(g_path.read_text()), truth)
            verdict = verdicts(g, rows)
            rows.append(g)
        summary[case] = {"rows": rows, "verdict": verdict, "sbi_sampling": sbi_doc.get("sampling")}
        print(markdown(case, rows, verdict))
    path = args.json or args.out / "peers.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
