"""Data-parallel training across processes with ``torch.distributed`` (``torchrun``).

Under ``torchrun --nproc-per-node N -m gangal_core calibrate ...`` every process holds the
same networks and the same random-number generator.  Each minibatch is drawn *whole* on
every process (parameters, noise, label draws: cheap), so the streams never depend on the
number of processes; each process then simulates, runs and differentiates only its share
of the rows, and the gradients are averaged across processes (an all-reduce) before each
optimiser step.  The result equals a single process's run with the same global batch up
to the order of floating-point sums.  The simulator's noise comes from one seed per block
of rows (:data:`SIMULATION_BLOCK`), drawn from the shared stream, so it too is the same
at every world size.

Only rank 0 writes files and shows progress; a checkpoint holds no trace of the world
size, so a run checkpointed at one size resumes at another.

Nothing here starts processes: ``torchrun`` (or Slurm's ``srun`` with the usual
``torch.distributed`` variables) does.  Without those variables gangal runs as one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .errors import ConfigError

__all__ = ["SIMULATION_BLOCK", "Shard", "current", "setup"]

SIMULATION_BLOCK = 32  # rows simulated with one seed; the unit of work a process takes


@dataclass(frozen=True)
class Shard:
    """This process's place in the job: ``rank`` of ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress (rank 0)."""
        return self.rank == 0

    def blocks(self, batch_size: int, *, option: str = "--batch-size") -> tuple[int, slice, slice]:
        """Split a global batch: ``(block, rows, blocks)`` of this process.

        ``block`` is the number of rows simulated per seed, ``rows`` this process's rows of
        the batch and ``blocks`` its seeds.  A batch of ``SIMULATION_BLOCK`` rows or fewer,
        or one not divisible by it, is one block (and then cannot be shared).
        """
        block = SIMULATION_BLOCK if batch_size % SIMULATION_BLOCK == 0 else batch_size
        n_blocks = batch_size // block
        if n_blocks % self.world_size:
            raise ConfigError(
                f"{option} {batch_size}: cannot be shared by {self.world_size} processes; use a multiple "
                f"of {SIMULATION_BLOCK * self.world_size} ({SIMULATION_BLOCK} rows per simulation seed)."
            )
        per = n_blocks // self.world_size
        first = self.rank * per
        return block, slice(first * block, (first + per) * block), slice(first, first + per)

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace each gradient by its mean over the processes (one all-reduce)."""
        if self.world_size == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def barrier(self) -> None:
        """Wait for every process (no-op for one)."""
        if self.world_size > 1:
            torch.distributed.barrier()


def current() -> Shard:
    """The running job's shard (rank 0 of 1 outside ``torch.distributed``)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Shard(torch.distributed.get_rank(), torch.distributed.get_world_size())
    return Shard()


def setup(device: str = "cpu") -> Shard:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Uses the ``gloo`` backend on CPUs and ``nccl`` on CUDA devices.  Idempotent.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return current()
