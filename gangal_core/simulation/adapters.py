"""Adapt a per-sample simulator function into a batched :class:`Simulator`.

Many real simulators are external programs (C++, Fortran, Geant4...) driven one event
at a time.  :func:`simulator_from_function` wraps such a function
``f(params: np.ndarray, rng: np.random.Generator) -> np.ndarray`` so gangal can call it
in batches, optionally over a process pool.  Each sample gets its own seed, drawn
from the batch's ``torch.Generator`` before any work is handed out, so the images do
not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from .simulator import Parameter, Simulator, validate_simulator_class

__all__ = ["FunctionSimulator", "simulator_from_function"]

SampleFunction = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _run_samples(func: SampleFunction, params: np.ndarray, seeds: np.ndarray, shape: tuple) -> np.ndarray:
    out = np.empty((len(params), *shape), dtype=np.float32)
    for i, (p, seed) in enumerate(zip(params, seeds, strict=True)):
        image = np.asarray(func(p.copy(), np.random.default_rng(int(seed))), dtype=np.float32)
        if image.shape != shape and not (shape[0] == 1 and image.shape == shape[1:]):
            allowed = f"{shape}" + (f" or {shape[1:]}" if shape[0] == 1 else "")
            raise ValueError(f"the function returned an image of shape {image.shape}, expected {allowed}")
        out[i] = image.reshape(shape)
    return out


class FunctionSimulator(Simulator):
    """A batched Simulator built from a per-sample function; see :func:`simulator_from_function`."""

    def __init__(
        self,
        func: SampleFunction,
        *,
        name: str,
        image_shape: tuple[int, int, int],
        parameters: Sequence[Parameter],
        reference_truth: dict[str, tuple[float, float]] | None = None,
        workers: int = 0,
        chunk_size: int = 64,
    ) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.func = func
        self.name = name
        self.image_shape = tuple(image_shape)
        self.parameters = tuple(parameters)
        self.reference_truth = reference_truth
        self.workers = int(workers)
        self.chunk_size = int(chunk_size)
        problems = validate_simulator_class(self)
        if problems:
            raise ValueError(f"simulator_from_function({name!r}): " + "; ".join(problems))
        if self.workers < 0 or self.chunk_size < 1:
            raise ValueError(f"workers must be >= 0 and chunk_size >= 1, found {workers} and {chunk_size}")

    # instance attributes shadow the ClassVars the ABC declares; the class helpers read these
    def parameter_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(p.name for p in self.parameters)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        low = torch.tensor([p.low for p in self.parameters], dtype=torch.float32)
        high = torch.tensor([p.high for p in self.parameters], dtype=torch.float32)
        return low, high

    def sample_uniform(self, n: int, *, generator: torch.Generator) -> torch.Tensor:  # type: ignore[override]
        low, high = self.bounds()
        return low + torch.rand(n, len(self.parameters), generator=generator) * (high - low)

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Run the function once per row of ``params``, seeding each row from ``generator``."""
        p = params.detach().to("cpu", torch.float64).numpy()
        seeds = torch.randint(0, 2**62, (len(p),), generator=generator, dtype=torch.int64).numpy()
        if self.workers == 0 or len(p) <= self.chunk_size:
            return torch.from_numpy(_run_samples(self.func, p, seeds, self.image_shape))
        pool = self._get_pool()
        starts = range(0, len(p), self.chunk_size)
        futures = [
            pool.submit(
                _run_samples,
                self.func,
                p[s : s + self.chunk_size],
                seeds[s : s + self.chunk_size],
                self.image_shape,
            )
            for s in starts
        ]
        return torch.from_numpy(np.concatenate([f.result() for f in futures]))

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._pool_lock:  # gangal simulate calls simulate() from several threads
            if self._pool is None:
                # spawn, not fork: forking a process that holds torch's thread pools can deadlock
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            return self._pool

    def close(self) -> None:
        """Shut the worker pool down (it is also shut down when the object is collected)."""
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown()
            self._pool = None

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"] = None
        del state["_pool_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pool_lock = threading.Lock()


def simulator_from_function(
    func: SampleFunction,
    *,
    name: str,
    image_shape: tuple[int, int, int],
    parameters: Sequence[Parameter],
    reference_truth: dict[str, tuple[float, float]] | None = None,
    workers: int = 0,
    chunk_size: int = 64,
) -> FunctionSimulator:
    """Turn a per-sample function into a batched :class:`Simulator`.

    Parameters
    ----------
    func : callable
        ``func(params, rng) -> image``: ``params`` a float64 array of shape ``(P,)`` in
        physical units, ``rng`` a :class:`numpy.random.Generator` seeded for this sample
        alone; returns an array of shape ``(C, H, W)`` (or ``(H, W)`` when ``C == 1``).
        With ``workers > 0`` it must be picklable (a module-level function).
    name, image_shape, parameters, reference_truth
        As the :class:`Simulator` attributes of the same names.
    workers : int, optional
        Processes to spread each batch over; 0 runs in this process.
    chunk_size : int, optional
        Samples handed to a worker at a time.

    Returns
    -------
    FunctionSimulator
        Images depend only on the parameters and the generator's seed, never on
        ``workers`` or ``chunk_size``.

    Examples
    --------
    >>> import numpy as np
    >>> from gangal_core import Parameter, simulator_from_function
    >>> def spot(p, rng):
    ...     yy, xx = np.mgrid[:8, :8]
    ...     return np.exp(-((xx - p[0]) ** 2 + (yy - 4) ** 2) / 2) + rng.normal(0, 0.01, (8, 8))
    >>> sim = simulator_from_function(spot, name="spot", image_shape=(1, 8, 8),
    ...                               parameters=[Parameter("x", 1.0, 7.0, unit="px")])
    """
    return FunctionSimulator(
        func,
        name=name,
        image_shape=image_shape,
        parameters=parameters,
        reference_truth=reference_truth,
        workers=workers,
        chunk_size=chunk_size,
    )
