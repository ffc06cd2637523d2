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

from gangal_core.errors import ConfigError

__all__ = [
    "SIMULATION_BLOCK",
    "GlobalBatchNorm2d",
    "Shard",
    "current",
    "global_batch_norm",
    "process_device",
    "setup",
]

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


def process_device(device: torch.device) -> torch.device:
    """``device``, with a bare ``cuda`` under torchrun meaning this process's GPU (LOCAL_RANK)."""
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def setup(device: str = "cpu") -> Shard:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Uses the ``gloo`` backend on CPUs and ``nccl`` on CUDA devices.  Idempotent.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return current()


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes, differentiable: each process's gradient is summed back too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        torch.distributed.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """Batch normalisation over the global batch of every process, on any device.

    :class:`torch.nn.SyncBatchNorm` does this on GPUs only; this one sums each channel's
    count, sum and sum of squares over the processes with an autograd-aware all-reduce,
    so forward and backward see the statistics one process would see with the whole
    batch.  Outside training, or in one process, it is a plain ``BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or current().world_size == 1:
            return super().forward(x)
        c = x.shape[1]
        count = torch.full((1,), x.numel() / c, dtype=x.dtype, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([x.sum((0, 2, 3)), x.square().sum((0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean.square()).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
                self.num_batches_tracked.add_(1)
        y = (x - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def global_batch_norm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` with every ``BatchNorm2d`` normalising over the global batch (torchrun only)."""
    if current().world_size == 1:
        return module
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is torch.nn.BatchNorm2d:
            new = GlobalBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            global_batch_norm(child, device)
    return module
