"""Where and how work runs: devices and precision, processes under torchrun, memory limits.

- :mod:`.devices`: ``--device auto|cpu|cuda[:N]|mps`` and ``--precision float32|bf16``.
- :mod:`.distributed`: data-parallel training across processes (``torchrun``).
- :mod:`.limits`: refusing, before any work, a count that could never fit in memory.
"""
