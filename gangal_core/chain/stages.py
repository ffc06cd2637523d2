"""A trained stage on disk: weights with the network configuration, and sampling a chain.

Each stage folder holds ``generator.safetensors``, ``generator-ema.safetensors`` and
``discriminator.safetensors``; the network configuration travels in each file's metadata, so
:func:`load_generator` rebuilds a network from its file alone, and :func:`sample_chain`
feeds one stage's images to the next.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import ConfigDict, StrictStr, model_validator
from torch import nn

from gangal_core.errors import GangalError, PluginError
from gangal_core.io.weights import WeightsMetadata, load_checked, read_metadata, save_weights
from gangal_core.runtime.devices import autocast, check_precision, to_device

from .networks import LATENT_SIZE, DCGANGenerator, channels_last

__all__ = [
    "STAGE_FORMAT",
    "StageMetadata",
    "load_generator",
    "read_stage_metadata",
    "sample_chain",
    "save_network",
]


STAGE_FORMAT = "gangal-gan-stage/1"


class StageMetadata(WeightsMetadata):
    """What :func:`save_network` writes; a stage file's metadata is checked against it before use.

    A DCGAN stage (``stage="dcgan"``) is rebuilt from its ``generator`` options, any other
    stage from its registered ``refiner`` and that refiner's ``config``.  Other entries (the
    discriminator's options, epochs, seed, data) are kept as they are.
    """

    model_config = ConfigDict(extra="allow")

    FORMAT: ClassVar[str] = STAGE_FORMAT
    KIND: ClassVar[str] = "a gangal chain stage"

    role: StrictStr | None = None
    stage: StrictStr
    generator: dict[str, Any] | None = None
    refiner: StrictStr | None = None
    config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _rebuildable(self) -> StageMetadata:
        if self.stage == "dcgan" and self.generator is None:
            raise ValueError("stage 'dcgan' needs its generator options under 'generator'")
        if self.stage != "dcgan" and (self.refiner is None or self.config is None):
            raise ValueError(
                f"stage {self.stage!r} is not dcgan, so its metadata must name a 'refiner' and its 'config'"
            )
        return self


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
        (see :class:`StageMetadata`).
    """
    return save_weights(path, {"": network}, StageMetadata, {"role": role, **metadata})


def read_stage_metadata(path: Path) -> dict[str, Any]:
    """The gangal metadata of a stage's safetensors file, validated, with a clear error for other files."""
    return _read_stage(path).model_dump(exclude_unset=True)


def _read_stage(path: Path) -> StageMetadata:
    missing = "train the stage first (gangal train)"
    return read_metadata(path, StageMetadata, label=str(path), error=GangalError, missing=missing)


#: The weight files of a stage folder, by ``--weights``.
WEIGHT_FILES = {"ema": "generator-ema.safetensors", "raw": "generator.safetensors",
                "best": "generator-best.safetensors"}  # fmt: skip


def load_generator(folder: Path, *, weights: str = "auto") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a stage's generator from its folder alone, in evaluation mode.

    Parameters
    ----------
    folder : Path
        A stage folder written by ``gangal train`` (e.g. ``MODEL/dcgan``).
    weights : {"ema", "raw", "best", "auto"}, optional
        ``"auto"`` (default): the weights of the epoch model selection kept where the stage
        has them (``--eval-every``), else the moving average; ``"ema"`` the moving-average
        weights, ``"raw"`` the last training step's, ``"best"`` the selected ones.

    Returns
    -------
    network : nn.Module
        The generator.
    metadata : dict
        Its file's metadata (:class:`StageMetadata`).
    """
    from gangal_core.plugins import get_registry

    if weights not in WEIGHT_FILES and weights != "auto":
        raise GangalError(f"--weights {weights!r}: expected ema, raw, best or auto.")
    if weights == "auto":
        weights = "best" if (Path(folder) / WEIGHT_FILES["best"]).is_file() else "ema"
    path = Path(folder) / WEIGHT_FILES[weights]
    if weights == "best" and not path.is_file():
        raise GangalError(
            f"--weights best: {folder} holds no {WEIGHT_FILES['best']}; the stage was trained without "
            "--eval-every, so no epoch was selected. Use --weights ema (or auto)."
        )
    meta = _read_stage(path)
    if meta.stage == "dcgan":
        options = meta.generator or {}

        def build() -> dict[str, nn.Module]:
            return {"": DCGANGenerator(**options)}

    else:
        try:
            refiner_cls = get_registry().get("refiner", meta.refiner).obj
        except PluginError as exc:
            raise GangalError(f"{path}: {exc}") from None
        config = meta.config or {}

        def build() -> dict[str, nn.Module]:
            return {"": refiner_cls(**config).build_generator()}

    network = load_checked(path, build, label=str(path), error=GangalError)[""]
    doc = meta.model_dump(exclude_unset=True)
    doc["weights_used"] = weights
    return network.eval().requires_grad_(False), doc


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
