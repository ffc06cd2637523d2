"""The work behind ``gangal evaluate``: measure two image sets and compare them.

:func:`run_evaluate` resolves the options (``--real-option KEY=VALUE`` strings) and calls
:func:`gangal_core.evaluate` (:mod:`.api`), which does the work and writes the files; errors
name the command's flags (:data:`FLAGS`).  What is left here is what the terminal shows.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from gangal_core.config import EvaluateConfig
from gangal_core.runtime.api import command_line_names

from .api import evaluate, load_image_set, reduce_band

__all__ = ["FLAGS", "load_image_set", "reduce_band", "run_evaluate", "summary_table"]

#: How ``gangal evaluate`` spells the Python API's arguments.
FLAGS = {
    "real": "--real",
    "generated": "--generated",
    "out": "--out",
    "evaluator": "--evaluator",
    "method": "--method",
    "band": "--band",
    "device": "--device",
}


def run_evaluate(
    cfg: EvaluateConfig, *, progress: bool = True, console: Console | None = None
) -> dict[str, Any]:
    """``gangal evaluate``: measurements, comparison, closest match, plots and ``evaluation.json``."""
    from gangal_core.data.sources import parse_data_options

    console = console or Console()
    with command_line_names(FLAGS):
        result = evaluate(
            cfg.real, cfg.generated, out=cfg.out, evaluator=cfg.evaluator, method=cfg.method, n=cfg.n,
            band=cfg.band, seed=cfg.seed, workers=cfg.workers, n_closest=cfg.n_closest,
            resolution=cfg.resolution, real_options=parse_data_options(cfg.real_option),
            generated_options=parse_data_options(cfg.generated_option),
            device=getattr(cfg, "device", "cpu"), progress=bool(getattr(cfg, "progress", progress)),
        )  # fmt: skip
    doc = result.to_dict()
    console.print(summary_table(doc, result.units))
    console.print(
        f"Wrote {cfg.out}/evaluation.json, measurements_real.csv, measurements_generated.csv, "
        f"histograms.png, closest_match.png and closest_distances.png in {doc['seconds']:.0f} s.",
        highlight=False,
    )
    return doc


def summary_table(doc: dict[str, Any], units: dict[str, str]) -> Table:
    """The printed comparison: per quantity, KS, Wasserstein and the two medians."""
    table = Table(title="real vs generated")
    for column in ("quantity", "KS", "p", "Wasserstein", "W / std(real)", "median real", "median generated"):
        table.add_column(column, justify="right" if column != "quantity" else "left")

    def fmt(x: Any, spec: str = ".3g") -> str:
        return "-" if x is None else format(x, spec)

    for q, e in doc["quantities"].items():
        unit = f" ({units[q]})" if units.get(q) else ""
        table.add_row(f"{q}{unit}", fmt(e["ks_statistic"], ".3f"), fmt(e["ks_pvalue"], ".2g"),
                      fmt(e["wasserstein"]), fmt(e["wasserstein_over_real_std"], ".3f"),
                      fmt(e["real"]["median"]), fmt(e["generated"]["median"]))  # fmt: skip
    fr, cm = doc["failure_rate"], doc["closest_match"]
    table.caption = (
        f"fit failures: real {fr['real']:.1%}, generated {fr['generated']:.1%}.  "
        f"Closest match (L1, centre crop): median generated->real {cm['median_generated_to_real']:.4f}, "
        f"real->real {cm['median_real_to_real']:.4f} "
        f"(ratio {cm['ratio_of_medians']:.2f})"
    )
    return table
