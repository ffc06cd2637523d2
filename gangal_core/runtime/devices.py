"""Where networks run: ``--device auto|cpu|cuda|mps`` and ``--precision float32|bf16``.

Random numbers are always drawn on the CPU from ``torch.Generator`` objects and then moved,
so a seed gives the same draws on every device (the arithmetic that follows may still
differ in the last bits between devices).  Simulators run on the CPU, as their contract
says; their images are moved to the device in pinned memory when it is a CUDA device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from gangal_core.errors import ConfigError

__all__ = ["DEVICES", "PRECISIONS", "autocast", "check_precision", "resolve_device", "to_device"]

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("float32", "bf16")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str = "auto", *, option: str = "--device") -> torch.device:
    """The device ``name`` stands for; ``auto`` picks CUDA, then MPS, then the CPU.

    ``cuda:1`` and the like select one GPU.  Asking for a device this machine or this build
    of torch lacks is a :class:`~gangal_core.errors.ConfigError` that says which.
    """
    name = str(name).strip().lower()
    kind = name.split(":", 1)[0]
    if kind not in DEVICES:
        raise ConfigError(f"{option}: expected one of {', '.join(DEVICES)} (or cuda:N), found {name!r}.")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ConfigError(
            f"{option} {name}: no CUDA device is visible (torch {torch.__version__}, {build}). "
            "Install a CUDA build of torch (see the README) or use --device cpu."
        )
    if kind == "mps" and not _mps_available():
        raise ConfigError(f"{option} {name}: Apple's MPS backend is not available on this machine.")
    if kind == "cuda" and ":" in name:
        index = int(name.split(":", 1)[1]) if name.split(":", 1)[1].isdigit() else -1
        if not 0 <= index < torch.cuda.device_count():
            raise ConfigError(
                f"{option} {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"numbered from 0."
            )
    return torch.device(name)


def check_precision(precision: str, device: torch.device, *, option: str = "--precision") -> str:
    """Validate ``precision`` for ``device``; returns it normalised (``bfloat16`` -> ``bf16``)."""
    value = {"bfloat16": "bf16"}.get(str(precision).lower(), str(precision).lower())
    if value not in PRECISIONS:
        raise ConfigError(f"{option}: expected one of {', '.join(PRECISIONS)}, found {precision!r}.")
    if value == "bf16" and device.type == "mps":
        raise ConfigError(
            f"{option} bf16: mixed precision is supported on CUDA devices and CPUs, not on MPS."
        )
    return value


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed precision (bfloat16 autocast) for ``bf16``; nothing for ``float32``."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``: through pinned memory, without waiting, for a CUDA device."""
    if x.device == device:
        return x
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
