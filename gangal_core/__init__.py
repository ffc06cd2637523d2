"""gangal: model-assisted GAN calibration of Monte Carlo simulators, and chained GANs.

Everything a plugin author needs is importable from here::

    from gangal_core import Simulator, Parameter, hookimpl
    from gangal_core import Emulator, Critic, Refiner
    from gangal_core import DataSource, Evaluator, Measurements, OK
    from gangal_core import pixel_centres, render_separable

and so is what every command runs, as Python functions (``docs/python-api.md``)::

    from gangal_core import calibrate, pretrain, train, sample, evaluate

    result = calibrate("circle", true_images, out=None)   # a CalibrationResult
    result.to_table()                                       # an astropy Table

The names load on first use (PEP 562), so ``import gangal_core`` and ``gangal --help`` do not
import torch.  The house is laid out by capability (``docs/architecture.md``):
:mod:`gangal_core.simulation`, :mod:`~gangal_core.calibration`, :mod:`~gangal_core.chain`,
:mod:`~gangal_core.data`, :mod:`~gangal_core.evaluation`, :mod:`~gangal_core.io` and
:mod:`~gangal_core.runtime`.  Modules that lived at the top level before keep their old
import paths (``gangal_core.simulator``, ``gangal_core.networks``, ...) as aliases of their
new homes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("gangal")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

#: public name -> the module that defines it
_API = {
    "ConfigError": "gangal_core.errors",
    "GangalError": "gangal_core.errors",
    "ImageFormatError": "gangal_core.errors",
    "PluginError": "gangal_core.errors",
    "hookimpl": "gangal_core.hookspecs",
    "Parameter": "gangal_core.simulation.simulator",
    "Simulator": "gangal_core.simulation.simulator",
    "FunctionSimulator": "gangal_core.simulation.adapters",
    "simulator_from_function": "gangal_core.simulation.adapters",
    "pixel_centres": "gangal_core.simulation.rendering",
    "render_separable": "gangal_core.simulation.rendering",
    "check_simulator": "gangal_core.simulation.testing",
    "Emulator": "gangal_core.calibration.networks",
    "Critic": "gangal_core.calibration.networks",
    "ConvEmulator": "gangal_core.calibration.networks",
    "ConvCritic": "gangal_core.calibration.networks",
    "Refiner": "gangal_core.chain.networks",
    "DCGANGenerator": "gangal_core.chain.networks",
    "DCGANDiscriminator": "gangal_core.chain.networks",
    "init_weights": "gangal_core.chain.networks",
    "DataSource": "gangal_core.data.sources",
    "open_data_source": "gangal_core.data.sources",
    "downscale_nearest": "gangal_core.data.sources",
    "OK": "gangal_core.evaluation.evaluator",
    "Evaluator": "gangal_core.evaluation.evaluator",
    "Measurements": "gangal_core.evaluation.evaluator",
    "validate_evaluator_class": "gangal_core.evaluation.evaluator",
    "read_images": "gangal_core.io.images",
    "atomic_open": "gangal_core.io.atomic",
    "IMAGE_SUFFIXES": "gangal_core.io.images",
    # the Python API: what each command runs, and what it returns
    "pretrain": "gangal_core.calibration.api",
    "calibrate": "gangal_core.calibration.api",
    "train": "gangal_core.chain.api",
    "sample": "gangal_core.chain.api",
    "evaluate": "gangal_core.evaluation.api",
    "run_simulation": "gangal_core.simulation.engine",
    "TrainedEmulator": "gangal_core.calibration.emulator",
    "CalibrationResult": "gangal_core.calibration.result",
    "TrainedChain": "gangal_core.chain.api",
    "EvaluationResult": "gangal_core.evaluation.compare",
    "SimulationSummary": "gangal_core.simulation.engine",
    "ArgumentError": "gangal_core.runtime.api",
}

#: a module's import path before the capability subpackages -> its home now
_MOVED = {
    "adapters": "simulation.adapters",
    "atomic": "io.atomic",
    "builtin_networks": "calibration.builtin_networks",
    "chain_commands": "chain.run",
    "checkpoint": "io.checkpoint",
    "commands": "calibration.run",
    "compare": "evaluation.compare",
    "devices": "runtime.devices",
    "distributed": "runtime.distributed",
    "evaluate_command": "evaluation.run",
    "gan": "chain.networks",
    "limits": "runtime.limits",
    "networks": "calibration.networks",
    "predictive": "calibration.predictive",
    "rendering": "simulation.rendering",
    "report": "calibration.report",
    "simulator": "simulation.simulator",
    "testing": "simulation.testing",
    "weights": "io.weights",
}

__all__ = sorted([*_API, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'gangal_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import gangal_core.simulator`` gives the module now at ``gangal_core.simulation.simulator``."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        prefix, _, old = fullname.partition(".")
        if prefix == __name__ and old in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: Any) -> Any:
        return importlib.import_module(f"{__name__}.{_MOVED[spec.name.partition('.')[2]]}")

    def exec_module(self, module: Any) -> None:
        """The module is its new home, already executed."""


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
