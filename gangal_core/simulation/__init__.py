"""Simulators: the contract a Monte Carlo simulator fulfils, and running one at scale.

- :mod:`.simulator`: :class:`Simulator` and :class:`Parameter`, the contract a plugin implements,
  and the checked call every gangal command makes (:func:`call_simulator`).
- :mod:`.adapters`: a per-sample Python function made into a batched simulator.
- :mod:`.rendering`: fast, vectorised helpers for image simulators.
- :mod:`.testing`: checks a plugin author runs against their own simulator.
- :mod:`.engine`: many images written to ``.npy`` or safetensors shards, seeded per chunk.
- :mod:`.run`: what ``gangal simulate`` does.
"""

from .engine import SimulationPlan, chunk_generator, parse_shard, read_parameter_csv, run_simulation
from .simulator import Parameter, Simulator, call_simulator, simulate_in_chunks

__all__ = [
    "Parameter",
    "SimulationPlan",
    "Simulator",
    "call_simulator",
    "chunk_generator",
    "parse_shard",
    "read_parameter_csv",
    "run_simulation",
    "simulate_in_chunks",
]
