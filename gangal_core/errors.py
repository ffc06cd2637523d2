"""Errors gangal raises for a user's mistake.

A :class:`GangalError` carries a one-paragraph message that names the file, option or
plugin at fault, what was expected and what was found.  The command line prints it
without a traceback and exits with status 2.
"""

from __future__ import annotations

__all__ = ["ConfigError", "GangalError", "ImageFormatError", "PluginError", "SimulationRefused"]


class GangalError(Exception):
    """A problem with the user's input, options or environment (exit code 2)."""

    exit_code = 2


class PluginError(GangalError):
    """A plugin is missing, failed to load, or misbehaved."""


class ImageFormatError(GangalError):
    """An image file or folder could not be read, or holds the wrong kind of images."""


class ConfigError(GangalError):
    """A configuration file or command-line option is invalid."""


class SimulationRefused(ConfigError):
    """gangal will not run the simulator: the budget is spent, or the simulator is only declared.

    Raised from inside a simulator call, it reaches the user as it is, not as the simulator's
    own failure.
    """
