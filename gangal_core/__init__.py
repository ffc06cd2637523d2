"""gangal: model-assisted GAN calibration of Monte Carlo simulators, and chained GANs.

The public API a plugin author needs is importable from here::

    from gangal_core import Simulator, Parameter, hookimpl
    from gangal_core import DataSource, Evaluator, Measurements, OK
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .adapters import FunctionSimulator, simulator_from_function
from .data import DataSource
from .errors import ConfigError, GangalError, ImageFormatError, PluginError
from .evaluation import OK, Evaluator, Measurements
from .hookspecs import hookimpl
from .simulator import Parameter, Simulator

try:
    __version__ = version("gangal")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "OK",
    "ConfigError",
    "DataSource",
    "Evaluator",
    "FunctionSimulator",
    "GangalError",
    "ImageFormatError",
    "Measurements",
    "Parameter",
    "PluginError",
    "Simulator",
    "__version__",
    "hookimpl",
    "simulator_from_function",
]
