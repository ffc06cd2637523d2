"""The Simulator contract: what a Monte Carlo simulator must provide to gangal.

A simulator turns a batch of physical model parameters ``p`` into a batch of images,
``T(p)`` in the words of Alonso-Monsalve & Whitehead (2020).  It need not be
differentiable: gangal learns an emulator that carries gradients in its place.

Third parties write against this module; it is part of gangal's stable public API.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import KW_ONLY, dataclass
from typing import ClassVar

import torch

__all__ = [
    "Parameter",
    "Simulator",
    "call_simulator",
    "parse_ranges",
    "validate_simulator_class",
    "with_ranges",
]


@dataclass(frozen=True)
class Parameter:
    """One model parameter of a simulator, with the physical range it may take.

    Parameters
    ----------
    name : str
        Identifier used in CSV headers, ``calibration.json`` and on the command line.
    low, high : float
        The declared range, in physical units.  The emulator is pretrained on parameters
        drawn uniformly from ``[low, high]`` and the generator's output is mapped onto it,
        so the range must cover every value a true data set may plausibly hold.
    unit : str, optional
        Physical unit, for tables and plots (``"px"``, ``"GeV"``...).
    description : str, optional
        One line saying what the parameter does to the image.
    """

    name: str
    low: float
    high: float
    _: KW_ONLY
    unit: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"Parameter name must be a Python identifier, found {self.name!r}")
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"Parameter {self.name!r}: {bound} must be a finite number, found {value!r}")
            object.__setattr__(self, bound, float(value))
        if not self.low < self.high:
            raise ValueError(
                f"Parameter {self.name!r}: low must be below high, found low={self.low} high={self.high}"
            )

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low


class Simulator(ABC):
    """A batched, possibly stochastic simulator ``T(p) -> images``.

    Subclasses set three class attributes and implement :meth:`simulate`::

        class Ring(Simulator):
            name = "ring"
            image_shape = (1, 28, 28)
            parameters = (Parameter("r", 2.0, 10.0, unit="px"),)

            def simulate(self, params, *, generator):
                ...

    Attributes
    ----------
    name : str
        Registry name, used as ``gangal simulate --simulator NAME``.
    image_shape : tuple of int
        ``(channels, height, width)`` of every image.
    parameters : tuple of Parameter
        The model parameters ``p``, in the order of the columns of ``params``.
    reference_truth : dict of str to (float, float), optional
        A known true population ``{name: (mean, std)}`` of normal distributions, used
        by demos and benchmarks (for the paper's simulators: Tables I and II).
    """

    name: ClassVar[str]
    image_shape: ClassVar[tuple[int, int, int]]
    parameters: ClassVar[tuple[Parameter, ...]]
    reference_truth: ClassVar[dict[str, tuple[float, float]] | None] = None

    @abstractmethod
    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Simulate one image per row of ``params``.

        Parameters
        ----------
        params : torch.Tensor
            float32 tensor of shape ``(B, P)`` in physical units, columns in the order of
            :attr:`parameters`.
        generator : torch.Generator
            The only source of randomness the simulator may use, so that a seed fixes
            the images.

        Returns
        -------
        torch.Tensor
            float32 tensor of shape ``(B, C, H, W)`` with ``(C, H, W) == image_shape``.
        """

    # ---- conveniences built on the contract -------------------------------------------
    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """Names of the parameters, in column order."""
        return tuple(p.name for p in cls.parameters)

    @classmethod
    def bounds(cls) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` float32 tensors of shape ``(P,)``."""
        low = torch.tensor([p.low for p in cls.parameters], dtype=torch.float32)
        high = torch.tensor([p.high for p in cls.parameters], dtype=torch.float32)
        return low, high

    @classmethod
    def sample_uniform(cls, n: int, *, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` parameter vectors uniformly within the declared ranges, shape ``(n, P)``."""
        low, high = cls.bounds()
        u = torch.rand(n, len(cls.parameters), generator=generator, dtype=torch.float32)
        return low + u * (high - low)


def validate_simulator_class(obj: object) -> list[str]:
    """Return what is wrong with a would-be Simulator (empty when it is valid).

    Used by the plugin registry before a plugin's simulator is accepted, and by
    :func:`gangal_core.testing.check_simulator`.
    """
    problems: list[str] = []
    cls = obj if isinstance(obj, type) else type(obj)
    if not (isinstance(cls, type) and issubclass(cls, Simulator)):
        return [f"{obj!r} is not a subclass of gangal_core.Simulator"]
    if isinstance(obj, type) and getattr(cls, "__abstractmethods__", None):
        problems.append(f"abstract methods not implemented: {sorted(cls.__abstractmethods__)}")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name or any(c.isspace() or c == "," for c in name):
        problems.append(f"name must be a non-empty string without spaces or commas, found {name!r}")
    shape = getattr(obj, "image_shape", None)
    if not (
        isinstance(shape, tuple)
        and len(shape) == 3
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        problems.append(f"image_shape must be a tuple of 3 positive ints (C, H, W), found {shape!r}")
    params = getattr(obj, "parameters", None)
    if not (isinstance(params, tuple) and params and all(isinstance(p, Parameter) for p in params)):
        problems.append(f"parameters must be a non-empty tuple of gangal_core.Parameter, found {params!r}")
    else:
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            problems.append(f"parameter names must be unique, found {names}")
        truth = getattr(obj, "reference_truth", None)
        if truth is not None:
            problems.extend(_truth_problems(truth, params))
    return problems


def _truth_problems(truth: object, params: tuple[Parameter, ...]) -> list[str]:
    if not isinstance(truth, dict):
        return [f"reference_truth must be a dict name -> (mean, std), found {type(truth).__name__}"]
    by_name = {p.name: p for p in params}
    problems = []
    for key, value in truth.items():
        if key not in by_name:
            problems.append(
                f"reference_truth names unknown parameter {key!r}; parameters are {list(by_name)}"
            )
            continue
        try:
            mean, std = (float(v) for v in value)
        except (TypeError, ValueError):
            problems.append(f"reference_truth[{key!r}] must be (mean, std), found {value!r}")
            continue
        p = by_name[key]
        if not (math.isfinite(std) and std > 0):
            problems.append(f"reference_truth[{key!r}] std must be positive, found {std}")
        elif not p.low <= mean <= p.high:
            problems.append(
                f"reference_truth[{key!r}] mean {mean} lies outside the declared range [{p.low}, {p.high}]"
            )
    return problems


def parse_ranges(items: tuple[str, ...] | list[str], simulator: Simulator) -> dict[str, tuple[float, float]]:
    """``("r=5:11", ...)`` (``--range``) to ``{"r": (5.0, 11.0)}``, with errors naming the item."""
    from gangal_core.errors import ConfigError

    names = simulator.parameter_names()
    ranges: dict[str, tuple[float, float]] = {}
    for item in items:
        name, _, rest = str(item).partition("=")
        name = name.strip()
        try:
            low, high = (float(v) for v in rest.split(":"))
        except ValueError:
            raise ConfigError(f"--range {item!r}: expected NAME=LOW:HIGH, e.g. r=5:11.") from None
        if name not in names:
            raise ConfigError(
                f"--range {item!r}: {name!r} is not a parameter of {simulator.name!r}; "
                f"its parameters are {', '.join(names)}."
            )
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigError(f"--range {item!r}: need finite LOW < HIGH, found {low:g} and {high:g}.")
        if name in ranges:
            raise ConfigError(f"--range {item!r}: {name!r} is given twice.")
        ranges[name] = (low, high)
    return ranges


def with_ranges(simulator: Simulator, ranges: dict[str, tuple[float, float]]) -> Simulator:
    """``simulator`` with some declared parameter ranges replaced, for one run (``--range``).

    The images are the simulator's own; only the ranges change: those the emulator is
    pretrained over, the generator maps onto and ``simulate`` draws uniformly from.  Widening
    a range past what the simulator was written for is the user's responsibility.
    """
    if not ranges:
        return simulator
    import dataclasses

    inner = simulator
    declared = tuple(
        dataclasses.replace(p, low=ranges[p.name][0], high=ranges[p.name][1]) if p.name in ranges else p
        for p in simulator.parameters
    )

    class Ranged(Simulator):
        name = inner.name
        image_shape = tuple(inner.image_shape)
        parameters = declared
        reference_truth = inner.reference_truth

        def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
            return inner.simulate(params, generator=generator)

    Ranged.__name__ = Ranged.__qualname__ = f"{type(inner).__name__}WithRanges"
    return Ranged()


def call_simulator(
    simulator: Simulator,
    params: torch.Tensor,
    *,
    generator: torch.Generator,
    where: str = "",
    span: str = "",
) -> torch.Tensor:
    """``simulator.simulate(params)``, with a :class:`~gangal_core.errors.PluginError` if it misbehaves.

    The error names the simulator and what it did: raised (with the exception), returned
    something other than a CPU float32 tensor of shape ``(B, C, H, W)``, or NaN/infinite pixels.
    ``where`` says which call it was (``"chunk 3"``, ``"a pretraining batch"``) and ``span`` which
    images (``"images 96-127"``).
    """
    from gangal_core.errors import PluginError, SimulationRefused

    name = f"simulator {simulator.name!r}"
    try:
        images = simulator.simulate(params, generator=generator)
    except SimulationRefused:
        raise
    except Exception as exc:
        on = (f" on {where}" if where else "") + (f" ({span})" if span else "")
        raise PluginError(f"{name} raised {type(exc).__name__}{on}: {exc}") from exc
    who = name + (f" ({where})" if where else "")
    expected = (params.shape[0], *simulator.image_shape)
    if not isinstance(images, torch.Tensor):
        raise PluginError(f"{who} returned {type(images).__name__}, expected a torch.Tensor {expected}.")
    if images.device.type != "cpu":
        raise PluginError(f"{who} returned a tensor on {images.device}; simulate() must return CPU tensors.")
    if images.dtype != torch.float32 or tuple(images.shape) != expected:
        raise PluginError(
            f"{who} returned {images.dtype} {tuple(images.shape)}, expected float32 {expected}."
        )
    if not torch.isfinite(images.sum()):  # one cheap pass; NaN and inf both propagate into the sum
        bad = int((~torch.isfinite(images)).sum())
        if bad:
            raise PluginError(f"{who} returned {bad} NaN or infinite pixel values.")
    return images


def simulate_in_chunks(
    simulator: Simulator, params: torch.Tensor, *, generator: torch.Generator, where: str, chunk: int = 4096
) -> torch.Tensor:
    """:func:`call_simulator` on ``params``, ``chunk`` rows at a time (bounded memory), concatenated."""
    return torch.cat(
        [
            call_simulator(simulator, params[i : i + chunk], generator=generator, where=where)
            for i in range(0, params.shape[0], chunk)
        ]
    )
