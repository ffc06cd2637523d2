"""What the Python API functions share: errors that name arguments, and inputs taken in any form.

``gangal_core.calibrate(simulator, true_images, ...)`` and its siblings are the path every
command takes: ``gangal calibrate`` resolves its options (files, registry) and calls the same
function.  A mistake is reported in the caller's words: ``true_images: ...`` from Python,
``--true-data: ...`` from the command line.  To get there, a message names an argument through
:func:`arg`, which marks the name; :class:`ArgumentError` shows marked names as Python names,
and :func:`command_line_names` turns them into the command's flags.  The marks are NUL
characters, which no path or option value can hold (the options refuse them).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gangal_core.errors import ConfigError, GangalError

__all__ = [
    "ArgumentError",
    "arg",
    "as_image_tensor",
    "as_path",
    "command_line_names",
    "python_names",
    "resolve_simulator",
]

_MARK, _PYTHON = "\x00", "\x01"


def arg(name: str, *, python: str | None = None) -> str:
    """``name`` marked as an argument in a message; ``python``: how Python sees it (``resume=True``)."""
    return f"{_MARK}{name}{_PYTHON}{python or name}{_MARK}"


def _render(marked: str, flags: Mapping[str, str]) -> str:
    parts = marked.split(_MARK)
    for i in range(1, len(parts), 2):
        name, _, python = parts[i].partition(_PYTHON)
        parts[i] = flags.get(name, python or name)
    return "".join(parts)


class ArgumentError(ConfigError):
    """A bad argument of a Python API function, named as the caller spells it.

    Parameters
    ----------
    message : str
        The message, with every argument it names written as :func:`arg` ``(name)``.
    flags : dict, optional
        How to spell the arguments (``{"true_images": "--true-data"}``); by default their
        Python names.
    """

    def __init__(self, message: str, *, flags: Mapping[str, str] | None = None) -> None:
        self.marked = message
        super().__init__(_render(message, flags or {}))


def _respelled(exc: GangalError, marked: str, flags: Mapping[str, str]) -> GangalError:
    """An error of ``exc``'s class saying ``marked`` with the arguments spelled as ``flags`` say."""
    if isinstance(exc, ArgumentError):
        return ArgumentError(marked, flags=flags)
    new = type(exc)(_render(marked, flags))
    new.marked = marked  # type: ignore[attr-defined]
    return new


@contextlib.contextmanager
def python_names() -> Iterator[None]:
    """Errors raised inside, by lower layers given :func:`arg` names, show Python names.

    A function such as :func:`~gangal_core.runtime.devices.resolve_device` puts the option it is
    given into its message; given ``arg("device")`` it raises a message holding marks, which this
    renders (keeping the marked text for :func:`command_line_names`).
    """
    try:
        yield
    except GangalError as exc:
        text = str(exc)
        if _MARK not in text or hasattr(exc, "marked"):
            raise
        raise _respelled(exc, text, {}) from exc.__cause__


@contextlib.contextmanager
def command_line_names(flags: Mapping[str, str]) -> Iterator[None]:
    """Errors raised inside name the command's flags (``{"true_images": "--true-data"}``).

    Arguments missing from ``flags`` keep their Python names.
    """
    try:
        yield
    except GangalError as exc:
        marked = getattr(exc, "marked", None)
        if marked is None and _MARK in str(exc):
            marked = str(exc)
        if marked is None:
            raise
        raise _respelled(exc, marked, flags) from exc.__cause__


def resolve_simulator(simulator: Any, *, ranges: Mapping[str, tuple[float, float]] | None = None) -> Any:
    """A :class:`~gangal_core.Simulator` from an instance or a registered name, with ``ranges`` applied.

    Parameters
    ----------
    simulator : Simulator or str
        An instance, or the name a plugin registered.
    ranges : dict, optional
        ``{name: (low, high)}`` replacing declared parameter ranges for this run (``--range``).
    """
    from gangal_core.plugins import get_registry
    from gangal_core.simulation.simulator import Simulator, with_ranges

    if isinstance(simulator, str):
        simulator = get_registry().simulator(simulator)
    elif not isinstance(simulator, Simulator):
        raise ArgumentError(
            f"{arg('simulator')}: expected a Simulator or the name of a registered one, "
            f"found {type(simulator).__name__}."
        )
    if not ranges:
        return simulator
    names = simulator.parameter_names()
    checked: dict[str, tuple[float, float]] = {}
    for name, bounds in dict(ranges).items():
        if name not in names:
            raise ArgumentError(
                f"{arg('ranges')} {name!r}: not a parameter of {simulator.name!r}; "
                f"its parameters are {', '.join(names)}."
            )
        try:
            low, high = (float(v) for v in bounds)
        except (TypeError, ValueError):
            raise ArgumentError(
                f"{arg('ranges')} {name!r}: expected (low, high), found {bounds!r}."
            ) from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ArgumentError(
                f"{arg('ranges')} {name!r}: need finite low < high, found {low:g} and {high:g}."
            )
        checked[name] = (low, high)
    return with_ranges(simulator, checked)


def as_image_tensor(images: Any, *, argument: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """``(n, C, H, W)`` float32 images on the CPU from a numpy array or a torch tensor.

    Parameters
    ----------
    images : numpy.ndarray or torch.Tensor
        The images.
    argument : str
        The argument they came from, for messages.
    shape : tuple of int, optional
        ``(C, H, W)`` every image must have.
    """
    if isinstance(images, torch.Tensor):
        tensor = images.detach().to("cpu", torch.float32)
    elif isinstance(images, np.ndarray) and images.dtype.kind in "fiu":
        tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    else:
        found = f"an array of {images.dtype}" if isinstance(images, np.ndarray) else type(images).__name__
        raise ArgumentError(
            f"{arg(argument)}: expected a numpy array or a torch tensor of numbers, found {found}."
        )
    if tensor.ndim != 4 or (shape is not None and tuple(tensor.shape[1:]) != tuple(shape)):
        want = f"images of shape {tuple(shape)}" if shape is not None else "(n, C, H, W) images"
        found = tuple(tensor.shape[1:]) if tensor.ndim == 4 else f"an array of shape {tuple(tensor.shape)}"
        raise ArgumentError(f"{arg(argument)}: expected {want}, found {found}.")
    if not torch.isfinite(tensor).all():
        raise ArgumentError(f"{arg(argument)}: the images contain NaN or infinite values.")
    return tensor


def as_path(value: Any) -> Path | None:
    """``value`` as a path when it is one (``str`` or ``os.PathLike``), else None."""
    if isinstance(value, (str, Path)) or hasattr(value, "__fspath__"):
        return Path(value)
    return None
