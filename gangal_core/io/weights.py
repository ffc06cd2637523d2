"""Loading network weights from a file whose metadata says how to build the network.

A weight file (an emulator, a GAN stage) is input like any other: its metadata may describe
a network that cannot be built, or one of absurd size, and its tensors may not fit, hold
another dtype, or NaN.  :func:`load_checked` builds the networks first on the ``meta``
device (no memory), compares them with the names and shapes in the file's header, and only
then builds them for real and loads tensors that fit, of the networks' own dtypes and
finite.  Every problem is an error naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gangal_core.errors import ConfigError, GangalError

__all__ = ["load_checked"]


def load_checked(
    file: Path,
    build: Callable[[], dict[str, nn.Module]],
    *,
    label: str,
    error: type[GangalError] = ConfigError,
    ignore: tuple[str, ...] = (),
) -> dict[str, nn.Module]:
    """Build the networks ``build()`` returns, ``{prefix: module}``, and load ``file`` into them.

    The file's tensor ``prefix + name`` is the module's ``name`` (the longest matching prefix
    wins; ``""`` matches all).  Tensors whose names start with one of ``ignore`` are skipped.
    ``label`` (``"--emulator FILE"``) starts every message.
    """
    from safetensors import safe_open

    try:
        with torch.device("meta"):
            planned = build()
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise error(
            f"{label}: its metadata describes no network that can be built ({type(exc).__name__}: {exc})."
        ) from None
    wanted = {p + k: v for p, m in planned.items() for k, v in m.state_dict().items()}
    with safe_open(str(file), framework="pt") as fh:
        shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys() if not k.startswith(ignore)}
        missing = sorted(set(wanted) - set(shapes))
        unexpected = sorted(set(shapes) - set(wanted))
        wrong = [
            f"{k} is {list(shapes[k])}, expected {list(v.shape)}"
            for k, v in wanted.items()
            if k in shapes and shapes[k] != tuple(v.shape)
        ]
        if missing or unexpected or wrong:
            problems = [f"missing {', '.join(missing[:5])}"] if missing else []
            problems += [f"unexpected {', '.join(unexpected[:5])}"] if unexpected else []
            raise error(
                f"{label}: the weights do not fit the network its metadata describes "
                f"({'; '.join(problems + wrong[:5])})."
            )
        tensors = {k: fh.get_tensor(k) for k in wanted}
    for name, t in tensors.items():
        if t.dtype != wanted[name].dtype:
            raise error(f"{label}: tensor {name!r} holds {t.dtype}; the network's is {wanted[name].dtype}.")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise error(f"{label}: tensor {name!r} holds NaN or infinite values; the file is damaged.")
    networks = build()
    for prefix, module in networks.items():
        own = {
            k[len(prefix) :]: t
            for k, t in tensors.items()
            if max((p for p in networks if k.startswith(p)), key=len) == prefix
        }
        module.load_state_dict(own)
    return networks
