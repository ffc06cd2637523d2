"""Counting what a simulator costs: images made and seconds spent, against a budget.

A costly simulator (a detector response, a GalSim galaxy with PSF and noise, radiative
transfer) takes 10 ms to seconds per image, so a run must know what it has spent and never
spend more than the user allowed.  :class:`MeteredSimulator` wraps any simulator: every image
it makes is counted and timed, and a call that would pass the limit is refused before the
simulator runs.
"""

from __future__ import annotations

import threading
import time

import torch

from gangal_core.errors import SimulationRefused

from .simulator import Simulator

__all__ = ["BudgetExceeded", "MeteredSimulator", "metered"]


class BudgetExceeded(SimulationRefused):
    """A run asked its simulator for more images than ``--budget`` allows."""


def metered(simulator: Simulator, *, limit: int | None = None) -> MeteredSimulator:
    """``simulator`` with every image counted and timed, and at most ``limit`` images made.

    Parameters
    ----------
    simulator : Simulator
        The simulator to meter; the result has its name, image shape, parameters and
        reference truth.
    limit : int, optional
        The most images it may make in all (``None``: no limit, only counting).

    Returns
    -------
    MeteredSimulator
    """
    declared = {
        "name": simulator.name,
        "image_shape": tuple(simulator.image_shape),
        "parameters": tuple(simulator.parameters),
        "reference_truth": simulator.reference_truth,
    }
    cls = type(f"Metered{type(simulator).__name__}", (MeteredSimulator,), declared)
    return cls(simulator, limit=limit)


class MeteredSimulator(Simulator):
    """A simulator that counts and times the images of the one it wraps; made by :func:`metered`.

    Attributes
    ----------
    images : int
        Images made so far (with those of a resumed run's stored banks).
    seconds : float
        Wall time spent inside the simulator so far.
    reused : int
        Of ``images``, those an earlier process of a resumed run made (:meth:`count_stored`).
    """

    def __init__(self, simulator: Simulator, *, limit: int | None = None) -> None:
        if limit is not None and int(limit) < 0:
            raise ValueError(f"limit must be a non-negative number of images, found {limit}")
        self.inner = simulator
        self.limit = None if limit is None else int(limit)
        self.images = 0
        self.seconds = 0.0
        self.reused = 0
        self._lock = threading.Lock()  # gangal simulate calls from a thread pool

    @property
    def remaining(self) -> int | None:
        """Images still allowed (``None`` without a limit)."""
        return None if self.limit is None else self.limit - self.images

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        n = int(params.shape[0])
        with self._lock:
            if self.limit is not None and self.images + n > self.limit:
                raise BudgetExceeded(
                    f"the simulation budget of {self.limit:,} images is spent ({self.images:,} made); "
                    f"{n:,} more were asked for. Give a larger --budget, or fewer rounds."
                )
            self.images += n
        start = time.perf_counter()
        try:
            return self.inner.simulate(params, generator=generator)
        except BaseException:
            with self._lock:  # images that were never made are not spent
                self.images -= n
            raise
        finally:
            with self._lock:
                self.seconds += time.perf_counter() - start

    def count_stored(self, images: int, *, seconds: float) -> None:
        """Count ``images`` an earlier process of the same run made (a resumed bank) and their ``seconds``.

        They count against the limit as if made here, so a resumed run reports and spends what
        the whole run did.
        """
        with self._lock:
            if self.limit is not None and self.images + images > self.limit:
                raise BudgetExceeded(
                    f"the run's stored simulations ({images:,} images) and the {self.images:,} made since "
                    f"pass the simulation budget of {self.limit:,}."
                )
            self.images += int(images)
            self.seconds += float(seconds)
            self.reused += int(images)

    def usage(self) -> dict[str, float | int | None]:
        """``{"simulator_images", "simulator_seconds", "budget"}`` for JSON and metadata."""
        return {
            "simulator_images": self.images,
            "simulator_seconds": round(self.seconds, 3),
            "budget": self.limit,
        }
