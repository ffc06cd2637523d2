"""Judging generated images by physical measurements: the Evaluator interface.

Fussell & Moews (2019, section 4) judge generated galaxies by fitting isophote ellipses to
real and generated images and comparing the distributions of four quantities: ellipticity,
position angle, flux and semi-major axis.  An :class:`Evaluator` measures such quantities
for a batch of images; gangal's comparison (:mod:`gangal_core.compare`) turns two sets of
measurements into histograms, KS statistics, Wasserstein distances and failure rates.

A plugin registers an evaluator class with ``register(name, EvaluatorSubclass)`` in its
``register_evaluators`` hook; ``gangal evaluate --evaluator NAME`` uses it.  The built-in
one is ``isophote``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["OK", "Evaluator", "Measurements", "validate_evaluator_class"]

#: The status of a successful measurement; anything else names why it failed.
OK = "ok"


@dataclass
class Measurements:
    """Per-image measurements of one image set.

    Attributes
    ----------
    values : dict of str to ndarray
        One float array of length N per quantity; NaN where the measurement failed.
    status : ndarray of str
        ``"ok"`` or a short reason for the failure (``"no convergence"``, ``"flat image"``...),
        one per image.  A failure is recorded, never dropped.
    """

    values: dict[str, np.ndarray]
    status: np.ndarray

    def __post_init__(self) -> None:
        self.status = np.asarray(self.status, dtype=object)
        n = len(self.status)
        for name, v in self.values.items():
            v = np.asarray(v, dtype=np.float64)
            if v.shape != (n,):
                raise ValueError(f"measurement {name!r} has shape {v.shape}, expected ({n},)")
            self.values[name] = v

    def __len__(self) -> int:
        return len(self.status)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the successful measurements."""
        return self.status == OK

    @property
    def failure_rate(self) -> float:
        """Fraction of images whose measurement failed."""
        return float(1.0 - self.ok.mean()) if len(self) else 0.0

    @classmethod
    def concatenate(cls, parts: list[Measurements]) -> Measurements:
        """Join the measurements of consecutive batches."""
        names = list(parts[0].values) if parts else []
        status = np.concatenate([p.status for p in parts]) if parts else np.array([], dtype=object)
        return cls({k: np.concatenate([p.values[k] for p in parts]) for k in names}, status)


class Evaluator(ABC):
    """Measures physical quantities of single-band images.

    Subclasses set :attr:`name`, :attr:`quantities` and :attr:`units` and implement
    :meth:`measure`.  The constructor takes keyword-only options; ``gangal evaluate``
    always passes ``method`` (default ``"fast"``) and ``workers`` (default ``None``), so
    every evaluator must accept both, even one with a single method.  A bad value is a
    ``ValueError``, an unknown option a ``TypeError``; the command reports either as a
    configuration error.

    Attributes
    ----------
    name : str
        Registry name.
    quantities : tuple of str
        The names of the measured quantities, in display order.
    units : dict of str to str
        Unit of each quantity, for tables and plot labels.
    """

    name: ClassVar[str] = ""
    quantities: ClassVar[tuple[str, ...]] = ()
    units: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def measure(self, images: np.ndarray, *, progress: Callable[[int], None] | None = None) -> Measurements:
        """Measure every image of ``images``, ``(N, H, W)`` float, one band.

        Parameters
        ----------
        images : ndarray
            The images; values in any linear units (gangal's are in [0, 1]).
        progress : callable, optional
            Called with the number of images finished since the last call.
        """

    def describe(self) -> dict[str, Any]:
        """What the evaluation report records about the evaluator and its options."""
        return {"evaluator": self.name}


def validate_evaluator_class(obj: object) -> list[str]:
    """Problems with a registered evaluator class (empty if it is usable)."""
    if not isinstance(obj, type) or not issubclass(obj, Evaluator):
        return [f"{obj!r} is not a subclass of gangal_core.evaluation.Evaluator"]
    problems = []
    if getattr(obj, "__abstractmethods__", None):
        problems.append("abstract methods not implemented: " + ", ".join(sorted(obj.__abstractmethods__)))
    if not obj.quantities:
        problems.append("quantities is empty")
    return problems
