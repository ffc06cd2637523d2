"""What ``gangal simulate`` does: a registered simulator, its options, a progress bar, the files."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console

from gangal_core.config import SimulateConfig
from gangal_core.errors import ConfigError
from gangal_core.plugins import get_registry
from gangal_core.runtime.progress import progress_bar

if TYPE_CHECKING:
    import numpy as np

    from gangal_core.simulation.engine import SimulationSummary
    from gangal_core.simulation.simulator import Simulator

__all__ = ["run_simulate"]


def run_simulate(cfg: SimulateConfig, *, console: Console | None = None) -> SimulationSummary:
    """Run ``gangal simulate`` with its validated options; returns :func:`run_simulation`'s summary."""
    console = console or Console()

    from gangal_core.simulation.engine import parse_shard, run_simulation
    from gangal_core.simulation.simulator import parse_ranges, with_ranges

    sim = get_registry().simulator(cfg.simulator)
    sim = with_ranges(sim, parse_ranges(cfg.range, sim))
    params = _parameters(cfg, sim) if cfg.params is not None else None
    n = cfg.n if cfg.n is not None else len(params)
    if params is not None and len(params) != n:
        raise ConfigError(
            f"-n {n} but --params {cfg.params} holds {len(params)} rows; give one or make them agree."
        )
    shard = parse_shard(cfg.shard) if cfg.shard is not None else None  # --shard "" is an error
    start = time.perf_counter()
    done = 0
    # a terminal gets a bar that vanishes when done; a log (Slurm, a pipe) gets progress lines
    with progress_bar(enabled=getattr(cfg, "progress", True), fields=("rate",), transient=True) as bar:
        task = bar.add_task(f"simulate {sim.name}", total=n, rate="")

        def advance(count: int) -> None:
            nonlocal done
            done += count
            rate = f"{done / max(time.perf_counter() - start, 1e-9):,.0f} img/s"
            bar.update(task, advance=count, rate=rate)

        result = run_simulation(
            sim,
            n=n,
            out=cfg.out,
            seed=cfg.seed,
            params=params,
            shard=shard,
            chunk_size=cfg.chunk_size,
            shard_size=cfg.shard_size,
            workers=cfg.workers,
            progress=advance,
            overwrite=cfg.overwrite,
        )
    seconds = time.perf_counter() - start
    written = result.written
    rate = f" ({written / seconds:,.0f} images/s)" if written else ""
    note = "" if written == n or shard else f"; {n - written} already there"
    console.print(
        f"Wrote {written} {sim.name} images to {cfg.out} in {seconds:.2f} s{rate}{note}.", highlight=False
    )
    return result


def _parameters(cfg: SimulateConfig, sim: Simulator) -> np.ndarray:
    """The rows of ``--params``, each inside the parameters' ranges unless ``--allow-out-of-range``."""
    from gangal_core.simulation.engine import check_parameter_ranges, read_parameter_csv

    params = read_parameter_csv(cfg.params, sim)
    if not cfg.allow_out_of_range:
        check_parameter_ranges(
            params, sim.parameters, path=cfg.params, bounds=f"the range simulator {sim.name!r} declares",
            remedy="Pass --allow-out-of-range to simulate such rows anyway, or give the run a wider "
            "range with --range NAME=LOW:HIGH.",
        )  # fmt: skip
    return params
