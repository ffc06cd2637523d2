"""The pretrained emulator: a network that stands in for the simulator, and its file.

:class:`TrainedEmulator` holds the network with everything needed to use it without the
simulator (pixel scale, parameter ranges, architecture); :func:`save_emulator` and
:func:`load_emulator` write and read it as one safetensors file whose metadata rebuilds it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from gangal_core.errors import ConfigError, PluginError
from gangal_core.io.weights import WeightsMetadata, load_checked, read_metadata, save_weights
from gangal_core.simulation.simulator import Simulator

from .networks import Emulator, ImageScale, ParameterEstimator

__all__ = [
    "EMULATOR_FILE",
    "FORMAT",
    "EmulatorMetadata",
    "TrainedEmulator",
    "load_emulator",
    "save_emulator",
]


EMULATOR_FILE = "emulator.safetensors"
FORMAT = "gangal-emulator/1"


# --------------------------------------------------------------------------- the emulator
@dataclass
class TrainedEmulator:
    """A pretrained emulator with everything needed to use it without the simulator.

    Attributes
    ----------
    network : Emulator
        The network (normalised parameters to normalised image distribution).
    scale : ImageScale
        Pixel normalisation fitted to the simulator's images.
    simulator : str
        Registry name of the simulator it mimics.
    parameters : list of dict
        ``{"name", "low", "high", "unit"}`` per parameter, in the simulator's order.
    arch : str
        Registry name of the emulator architecture.
    info : dict
        How it was trained (recipe, iterations, seconds, seed, losses).
    estimator : ParameterEstimator, optional
        A critic trained alongside to estimate parameters from simulated images; calibration
        starts its discriminator from it.
    """

    network: Emulator
    scale: ImageScale
    simulator: str
    parameters: list[dict[str, Any]]
    arch: str
    info: dict[str, Any] = field(default_factory=dict)
    estimator: ParameterEstimator | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.network.image_shape

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p["name"] for p in self.parameters)

    def _bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        lo = torch.tensor([p["low"] for p in self.parameters], dtype=torch.float32)
        hi = torch.tensor([p["high"] for p in self.parameters], dtype=torch.float32)
        return lo, hi

    def to_unit(self, params: torch.Tensor) -> torch.Tensor:
        """Physical parameters to ``[-1, 1]`` (each declared range mapped linearly)."""
        lo, hi = self._bounds()
        return 2 * (params - lo) / (hi - lo) - 1

    def to_physical(self, u: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_unit`."""
        lo, hi = self._bounds()
        return lo + (u + 1) / 2 * (hi - lo)

    @torch.inference_mode()
    def emulate(
        self,
        params: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        batch_size: int = 1024,
        precision: str = "float32",
        device: str | torch.device = "cpu",
    ) -> torch.Tensor:
        """Emulated images, in the simulator's pixel units, for physical ``params`` ``(n, P)``.

        Runs a copy of the network laid out for inference (:meth:`Emulator.for_inference`) in
        batches of ``batch_size`` (1024 is fastest on our 2-core CPU: Table III), on
        ``device``.  ``precision="bf16"`` (or ``"bfloat16"``) runs the network in bfloat16
        (autocast): about twice as fast on CPUs with bfloat16 units, at an error of about 0.002
        RMS (0.04 at worst) in normalised pixel units, below a typical emulator's own error;
        images stay float32.  The noise is drawn on the CPU from ``generator``, so a seed gives
        the same images on every device up to the network's own rounding.
        """
        from gangal_core.runtime.devices import autocast, check_precision

        device = torch.device(device)
        precision = check_precision(precision, device)
        self.network.eval()
        fast = self.network.for_inference()
        if device.type != "cpu":
            fast = copy.deepcopy(fast).to(device)
        out = torch.empty((params.shape[0], *self.image_shape), dtype=torch.float32)
        for start in range(0, params.shape[0], batch_size):
            u = self.to_unit(params[start : start + batch_size].float())
            with autocast(device, precision):
                mean, std = (t.float().cpu() for t in fast(u.to(device)))
            chunk = out[start : start + u.shape[0]]
            torch.randn(chunk.shape, generator=generator, out=chunk)
            chunk.mul_(std).add_(mean).mul_(self.scale.scale).add_(self.scale.offset)
        return out


PositiveStrictInt = Annotated[StrictInt, Field(gt=0)]


class _ParameterEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: StrictStr
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> _ParameterEntry:
        if not self.low < self.high:
            raise ValueError(f"parameter {self.name!r}: low {self.low} is not below high {self.high}")
        return self


class _NetworkEntry(BaseModel):
    arch: StrictStr
    options: dict[str, Any]


class _ScaleEntry(BaseModel):
    offset: float = Field(allow_inf_nan=False)
    scale: float = Field(gt=0, allow_inf_nan=False)


class EmulatorMetadata(WeightsMetadata):
    """What :func:`save_emulator` writes; a file's metadata is checked against it before use."""

    FORMAT: ClassVar[str] = FORMAT
    KIND: ClassVar[str] = "a gangal emulator"

    simulator: StrictStr
    parameters: list[_ParameterEntry] = Field(min_length=1)
    image_shape: tuple[PositiveStrictInt, PositiveStrictInt, PositiveStrictInt]
    arch: StrictStr
    options: dict[str, Any]
    scale: _ScaleEntry
    info: dict[str, Any] = Field(default_factory=dict)
    estimator: _NetworkEntry | None = None


def save_emulator(emulator: TrainedEmulator, folder: Path) -> Path:
    """Write ``folder/emulator.safetensors``: weights plus metadata to rebuild it alone."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fields: dict[str, Any] = {
        "simulator": emulator.simulator,
        "parameters": emulator.parameters,
        "image_shape": list(emulator.image_shape),
        "arch": emulator.arch,
        "options": emulator.network.options,
        "scale": {"offset": emulator.scale.offset, "scale": emulator.scale.scale},
        "info": emulator.info,
    }
    networks: dict[str, torch.nn.Module] = {"": emulator.network}
    if emulator.estimator is not None:
        critic = emulator.estimator.critic
        fields["estimator"] = {"arch": critic.name, "options": critic.options}
        networks["estimator."] = emulator.estimator
    return save_weights(folder / EMULATOR_FILE, networks, EmulatorMetadata, fields)


def load_emulator(path: Path, *, registry: Any = None) -> TrainedEmulator:
    """Load an emulator saved by :func:`save_emulator` (a folder or the ``.safetensors`` file).

    The metadata is checked, the networks it describes are compared with the tensors before
    any memory is given to them, and the weights must fit, be float32 and finite: every
    problem is a :class:`ConfigError` naming the file.
    """
    from gangal_core.plugins import get_registry

    path = Path(path)
    file = path / EMULATOR_FILE if path.is_dir() else path
    if not file.exists():
        raise ConfigError(
            f"--emulator {path}: no {EMULATOR_FILE} there. Make one with `gangal pretrain --out {path}`."
        )
    meta = read_metadata(file, EmulatorMetadata, label=f"--emulator {file}")
    registry = registry or get_registry()
    try:
        arch = registry.get("emulator", meta.arch).obj
        critic_cls = registry.get("critic", meta.estimator.arch).obj if meta.estimator else None
    except PluginError as exc:
        raise ConfigError(f"--emulator {file}: {exc}") from None
    n_params = len(meta.parameters)

    def build() -> dict[str, torch.nn.Module]:
        networks = {"": arch(meta.image_shape, n_params, **meta.options)}
        if meta.estimator is not None:
            critic = critic_cls(meta.image_shape, **meta.estimator.options)
            networks["estimator."] = ParameterEstimator(critic, n_params)
        return networks

    networks = load_checked(
        file, build, label=f"--emulator {file}", ignore=() if meta.estimator else ("estimator.",)
    )
    for module in networks.values():
        module.eval().requires_grad_(False)
    return TrainedEmulator(
        network=networks[""],
        scale=ImageScale(offset=meta.scale.offset, scale=meta.scale.scale),
        simulator=meta.simulator,
        parameters=[p.model_dump() for p in meta.parameters],
        arch=meta.arch,
        info=meta.info,
        estimator=networks.get("estimator."),
    )


def parameter_table(simulator: Simulator) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "low": float(p.low), "high": float(p.high), "unit": p.unit}
        for p in simulator.parameters
    ]
