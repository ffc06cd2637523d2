"""Simulators declared by a TOML file: for simulators gangal cannot call.

Many simulators are programs gangal cannot call from Python: a C++ detector simulation or a
Fortran radiative-transfer code on a cluster, which writes images and a parameter table.  gangal
still needs to know what they simulate: a name, the image shape, and the parameters with their
ranges and units.  A small TOML file says it, with no Python code::

    name = "calorimeter"
    image_shape = [1, 32, 32]

    [[parameters]]
    name = "energy"
    low = 1.0
    high = 50.0
    unit = "GeV"
    description = "energy of the incoming particle"

    [reference_truth]        # optional: a known true population, for closure tests
    energy = [20.0, 3.0]

(``examples/external-simulator/ring.toml`` is a whole one.)

:func:`load_simulator_spec` gives a :class:`Simulator` that has everything but :meth:`simulate`:
calling it raises a :class:`~gangal_core.errors.ConfigError` that says to train from a bank.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from gangal_core.errors import ConfigError, SimulationRefused

from .simulator import Parameter, Simulator, validate_simulator_class

__all__ = ["DeclaredSimulator", "callable_simulator", "load_simulator_spec"]


class _ParameterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    unit: str = ""
    description: str = ""


class _SimulatorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    image_shape: tuple[Annotated[StrictInt, Field(gt=0)], ...] = Field(min_length=3, max_length=3)
    description: str = ""
    parameters: list[_ParameterSpec] = Field(min_length=1)
    reference_truth: dict[str, tuple[float, float]] | None = None


class DeclaredSimulator(Simulator):
    """A simulator known by its declaration only: it has no :meth:`simulate`."""

    spec_path: str = ""

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        raise SimulationRefused(
            f"simulator {self.name!r} is declared by {self.spec_path} and cannot be called by gangal: "
            "train from stored simulations (--bank) and calibrate with the discriminator on emulated "
            "images; `gangal calibrate` then writes the best-match parameters for you to simulate."
        )


def load_simulator_spec(path: str | Path) -> DeclaredSimulator:
    """Read a simulator's TOML declaration (see the module docstring for the layout).

    Parameters
    ----------
    path : path-like
        The TOML file.

    Returns
    -------
    DeclaredSimulator
        Name, image shape, parameters and reference truth as declared.

    Raises
    ------
    ConfigError
        The file is missing, not TOML, or does not declare a valid simulator; the message names
        the file and the key.
    """
    path = Path(path)
    label = f"--simulator-spec {path}"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read it ({exc.strerror or exc}).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: not a valid TOML file ({exc}).") from None
    try:
        spec = _SimulatorSpec.model_validate(raw)
        parameters = tuple(Parameter(p.name, p.low, p.high, unit=p.unit, description=p.description)
                           for p in spec.parameters)  # fmt: skip
    except ValidationError as exc:
        where = (f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors()[:5])
        problems = "; ".join(where)
        raise ConfigError(f"{label}: {problems}.") from None
    except ValueError as exc:  # a Parameter's own checks (identifier name, low < high)
        raise ConfigError(f"{label}: {exc}.") from None
    attrs = {
        "name": spec.name,
        "image_shape": tuple(spec.image_shape),
        "parameters": parameters,
        "reference_truth": spec.reference_truth,
        "spec_path": str(path),
        "__doc__": spec.description or f"Simulator {spec.name!r} declared by {path}.",
    }
    cls = type(f"Declared_{spec.name}", (DeclaredSimulator,), attrs)
    problems = validate_simulator_class(cls)
    if problems:
        raise ConfigError(f"{label}: {'; '.join(problems)}.")
    return cls()


def callable_simulator(simulator: Simulator) -> bool:
    """Whether gangal can call ``simulator`` (it is not only declared by a TOML file)."""
    return not isinstance(simulator, DeclaredSimulator)
