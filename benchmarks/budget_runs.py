"""Reading back a ``benchmarks/run_budget.sh`` run folder, for the scripts that study one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gangal_core.calibration.emulator import TrainedEmulator, load_emulator
from gangal_core.plugins import get_registry
from gangal_core.simulation.simulator import Simulator, with_ranges


def load_run(run: Path, registry: Any = None) -> tuple[TrainedEmulator, Simulator, dict[str, Any]]:
    """The run's final emulator, its simulator and its ``calibration.json``.

    The simulator is the registered one the run calibrated, over the ranges the run declared
    (``--range``), not its own: a truth outside the latter (the low-signal circle's n and b)
    would otherwise be clamped into them.
    """
    registry = registry or get_registry()
    emulator = load_emulator(run / "emulator", registry=registry)
    doc = json.loads((run / "calibration.json").read_text(encoding="utf-8"))
    ranges = {p["name"]: (p["low"], p["high"]) for p in emulator.parameters}
    return emulator, with_ranges(registry.simulator(doc["simulator"]), ranges), doc
