"""A trained stage on disk: weights with the network configuration, and sampling a chain.

Each stage folder holds ``generator.safetensors``, ``generator-ema.safetensors`` and
``discriminator.safetensors``; the network configuration travels in each file's metadata, so
:func:`load_generator` rebuilds a network from its file alone, and :func:`sample_chain`
feeds one stage's images to the next.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gangal_core.errors import GangalError, PluginError
from gangal_core.io.atomic import atomic_open
from gangal_core.io.weights import load_checked
from gangal_core.runtime.devices import autocast, check_precision, to_device

from .networks import LATENT_SIZE, DCGANGenerator, channels_last

__all__ = ["STAGE_FORMAT", "load_generator", "read_stage_metadata", "sample_chain", "save_network"]


STAGE_FORMAT = "gangal-gan-stage/1"


def save_network(path: Path, network: nn.Module, *, role: str, **metadata: Any) -> Path:
    """Write ``network``'s weights as safetensors with the metadata that rebuilds it.

    Parameters
    ----------
    path : Path
        Destination ``.safetensors`` file (written atomically).
    network : nn.Module
        The network.
    role : str
        ``"generator"``, ``"generator-ema"`` or ``"discriminator"``.
    **metadata
        JSON-serialisable facts: ``stage``, the network ``generator``/``config`` options...
    """
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    header = {"gangal": json.dumps({"format": STAGE_FORMAT, "role": role, **metadata}, default=str)}
    with atomic_open(path, "wb") as fh:
        fh.write(save(tensors, metadata=header))
    return path


def read_stage_metadata(path: Path) -> dict[str, Any]:
    """The gangal metadata of a stage's safetensors file, with a clear error for other files."""
    from safetensors import safe_open

    if not path.is_file():
        raise GangalError(f"{path}: no such file; train the stage first (gangal train).")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("gangal")
        meta = json.loads(raw) if raw else None
    except Exception as exc:
        raise GangalError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(meta, dict) or meta.get("format") != STAGE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else "no gangal metadata"
        raise GangalError(f"{path}: expected a gangal chain stage ({STAGE_FORMAT}), found {found}.")
    return meta


def load_generator(folder: Path, *, weights: str = "ema") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a stage's generator from its folder alone, in evaluation mode.

    Parameters
    ----------
    folder : Path
        A stage folder written by ``gangal train`` (e.g. ``MODEL/dcgan``).
    weights : {"ema", "raw"}, optional
        The moving-average weights (default) or the last training step's.
    """
    from gangal_core.plugins import get_registry

    if weights not in ("ema", "raw"):
        raise GangalError(f"--weights {weights!r}: expected ema or raw.")
    path = Path(folder) / ("generator-ema.safetensors" if weights == "ema" else "generator.safetensors")
    meta = read_stage_metadata(path)
    stage = meta.get("stage")
    try:
        if stage == "dcgan":
            options = meta.get("generator")
            if not isinstance(options, dict):
                raise GangalError(f"{path}: its metadata has no generator options (found {options!r}).")

            def build() -> dict[str, nn.Module]:
                return {"": DCGANGenerator(**options)}

        else:
            refiner, config = meta.get("refiner"), meta.get("config")
            if not isinstance(refiner, str) or not isinstance(config, dict):
                raise GangalError(
                    f"{path}: stage {stage!r} is not dcgan, so its metadata must name a refiner and its "
                    f"config; found refiner={refiner!r}, config={config!r}."
                )
            refiner_cls = get_registry().get("refiner", refiner).obj

            def build() -> dict[str, nn.Module]:
                return {"": refiner_cls(**config).build_generator()}

    except PluginError as exc:
        raise GangalError(f"{path}: {exc}") from None
    network = load_checked(path, build, label=str(path), error=GangalError)[""]
    return network.eval().requires_grad_(False), meta


@torch.no_grad()
def sample_chain(
    stages: list[tuple[nn.Module, dict[str, Any]]],
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    precision: str = "float32",
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Draw ``n`` images through a chain: a DCGAN, then any refiners.

    The noise is drawn once for all ``n`` images and every network runs in evaluation
    mode, so the images depend only on ``seed``, not on ``batch_size``.  Between stages the
    DCGAN's ``[-1, 1]`` output is mapped to the refiner's ``[0, 1]`` input by
    ``(x + 1) / 2`` (not by dividing by the maximum after shifting, as the paper's code did).

    Returns
    -------
    images : Tensor
        ``(n, C, R, R)`` in ``[0, 1]``, the last stage's output.
    per_stage : list of Tensor
        Each stage's output in ``[0, 1]``.
    """
    dev = torch.device(device)
    precision = check_precision(precision, dev)
    z = torch.randn(n, LATENT_SIZE, generator=torch.Generator().manual_seed(int(seed)))
    for network, _ in stages:
        network.to(dev, memory_format=torch.channels_last)
    outputs: list[list[torch.Tensor]] = [[] for _ in stages]
    for start in range(0, n, batch_size):
        x = to_device(z[start : start + batch_size], dev)
        for k, (network, _) in enumerate(stages):
            with autocast(dev, precision):
                x = (network(channels_last(x)).float() + 1.0) / 2.0
            outputs[k].append(x.clamp_(0.0, 1.0).cpu())
    per_stage = [torch.cat(o) for o in outputs]
    return per_stage[-1], per_stage
