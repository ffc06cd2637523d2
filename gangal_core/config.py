"""Command options as pydantic models: one place where a TOML file and CLI flags meet.

Every command has a model here.  ``--config FILE.toml`` supplies values, flags given on
the command line override them, and the model validates the result: an unknown key or
a wrong type is an error that names the key and the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gangal_core.errors import ConfigError

#: Seeds are below 2**63: torch takes 64-bit seeds, and runs derive others from theirs (seed + 7919).
SEED_LIMIT = 2**63
#: The commands whose options a --config file may hold in a [command] table.
COMMANDS = ("simulate", "pretrain", "calibrate", "emulate", "train", "sample", "evaluate")

__all__ = [
    "CalibrateConfig",
    "CommandConfig",
    "EmulateConfig",
    "EvaluateConfig",
    "PretrainConfig",
    "SampleConfig",
    "SimulateConfig",
    "TrainConfig",
    "resolve_config",
]


class CommandConfig(BaseModel):
    """Base of every command's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _openable_path(cls, value: Any) -> Any:
        # a NUL reaches a path only from a TOML file, and makes every later file call raise
        if isinstance(value, Path) and "\x00" in str(value):
            raise ValueError(f"{str(value)!r}: a path cannot contain a NUL character")
        return value


class SimulateConfig(CommandConfig):
    """Options of ``gangal simulate``."""

    simulator: str = Field(description="registered simulator name")
    n: int | None = Field(default=None, ge=1, description="number of images (default: rows of --params)")
    out: Path = Field(description="output: a path ending in .npy, or a folder of safetensors shards")
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT, description="seed of the whole run")
    params: Path | None = Field(default=None, description="CSV of parameters, header = parameter names")
    shard: str | None = Field(default=None, description="i/N: write only every N-th shard, from the i-th")
    shard_size: int = Field(default=65536, ge=1, description="images per shard file")
    chunk_size: int = Field(default=4096, ge=1, description="images per random-number chunk")
    workers: int | None = Field(default=None, ge=1, description="threads (default: one per core)")
    range: tuple[str, ...] = Field(
        default=(), description="NAME=LOW:HIGH: replace a parameter's declared range"
    )


class PretrainConfig(CommandConfig):
    """Options of ``gangal pretrain`` (and of the pretraining ``gangal calibrate`` runs first)."""

    simulator: str = Field(description="registered simulator name")
    out: Path = Field(description="folder for emulator.safetensors, its plot and checkpoint")
    iterations: int = Field(default=4000, ge=1, description="pretraining minibatches")
    batch_size: int = Field(default=256, ge=2, description="parameter sets per minibatch")
    recipe: Literal["likelihood", "paper"] = Field(default="likelihood", description="pretraining recipe")
    emulator_arch: str = Field(default="conv", description="registered emulator architecture")
    critic_arch: str = Field(default="conv", description="registered critic architecture (Siamese)")
    range: tuple[str, ...] = Field(
        default=(), description="NAME=LOW:HIGH: replace a parameter's declared range"
    )
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT, description="seed of the run")
    checkpoint_every: int = Field(default=500, ge=1, description="iterations between checkpoints")
    resume: bool = Field(default=False, description="continue from the checkpoint in --out")
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N or mps")
    precision: Literal["float32", "bf16"] = Field(default="float32", description="bf16: mixed precision")


class CalibrateConfig(CommandConfig):
    """Options of ``gangal calibrate``."""

    simulator: str = Field(description="registered simulator name")
    out: Path = Field(description="run folder for calibration.json, samples.csv and plots")
    emulator: Path | None = Field(default=None, description="pretrained emulator (default: pretrain first)")
    true_data: Path | None = Field(default=None, description="true images (default: the reference truth)")
    true_params: Path | None = Field(default=None, description="CSV of the true images' parameters, if known")
    truth: tuple[str, ...] = Field(default=(), description="NAME=MEAN,STD overrides of the reference truth")
    n_true: int = Field(default=10000, ge=2, description="images in a true set built from the truth")
    iterations: int = Field(default=3000, ge=1, description="training minibatches")
    pretrain_iterations: int = Field(default=4000, ge=1, description="pretraining minibatches")
    batch_size: int = Field(default=256, ge=2, description="images per minibatch")
    recipe: Literal["default", "paper"] = Field(default="default", description="training recipe")
    pretrain_recipe: Literal["likelihood", "paper"] = Field(default="likelihood", description="pretraining")
    discriminator_input: Literal["simulated", "emulated"] = Field(default="simulated")
    emulator_arch: str = Field(default="conv", description="registered emulator architecture")
    critic_arch: str = Field(default="conv", description="registered critic architecture")
    range: tuple[str, ...] = Field(
        default=(), description="NAME=LOW:HIGH: replace a parameter's declared range"
    )
    n_samples: int = Field(default=10000, ge=2, description="best-match samples to write")
    predictive_check: bool = Field(
        default=True, description="classifier two-sample test of true vs best-match simulated images"
    )
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT, description="seed of the run")
    checkpoint_every: int = Field(default=500, ge=1, description="iterations between checkpoints")
    resume: bool = Field(default=False, description="continue the run in --out")
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N or mps")
    precision: Literal["float32", "bf16"] = Field(default="float32", description="bf16: mixed precision")


class EmulateConfig(CommandConfig):
    """Options of ``gangal emulate``."""

    emulator: Path = Field(description="pretrained emulator folder or file")
    params: Path = Field(description="CSV of parameters, header = parameter names")
    out: Path = Field(description="output .npy file")
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT, description="seed of the emulator's noise")
    batch_size: int = Field(default=1024, ge=1, description="images per forward pass")
    precision: Literal["float32", "bfloat16"] = Field(default="float32", description="network arithmetic")


def _comma_list(value: Any) -> Any:
    """``"dcgan,stackgan"`` or ``"30,10"`` (command line) or a TOML list, as a tuple."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, int):
        return (value,)
    return value


class TrainConfig(CommandConfig):
    """Options of ``gangal train`` (the chained GAN)."""

    chain: tuple[str, ...] = Field(
        default=("dcgan", "stackgan"), min_length=1, description="stages to train: dcgan, then refiners"
    )
    data: str = Field(default="synthetic", description="data source: SOURCE or SOURCE:PATH")
    data_option: tuple[str, ...] = Field(default=(), description="KEY=VALUE options for the data source")
    out: Path = Field(description="model folder: one subfolder per stage")
    epochs: tuple[int, ...] = Field(default=(), description="epochs, one value or per stage (20 / 12)")
    width: tuple[int, ...] = Field(
        default=(32,), min_length=1, description="channel scale W, one value or per stage (paper: 128)"
    )
    batch_size: tuple[int, ...] = Field(default=(), description="batch size per stage (default 32 / 64)")
    resolution: Literal[64, 128] = Field(default=64, description="DCGAN output side")
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT, description="seed of the run")
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0, description="real labels in [1-d, 1+d]")
    spatial_dropout: Literal["none", "generator", "discriminator", "both"] = Field(default="none")
    dropout_from_epoch: int | None = Field(default=None, ge=1, description="discriminator dropout from epoch")
    sample_every: int = Field(default=1, ge=1, description="epochs between sample grids")
    ema_decay: float = Field(default=0.999, ge=0.0, lt=1.0, description="generator moving-average decay")
    cache: str = Field(default="memory", description="decoded-image cache: memory, none or a folder")
    workers: int | None = Field(default=None, ge=1, description="decoding threads (default: one per core)")
    resume: bool = Field(default=False, description="continue the run in --out")
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N or mps")
    precision: Literal["float32", "bf16"] = Field(default="float32", description="bf16: mixed precision")

    _split = field_validator("chain", "epochs", "width", "batch_size", "data_option", mode="before")(
        classmethod(lambda cls, v: _comma_list(v) if not isinstance(v, tuple) else v)
    )

    @field_validator("epochs", "width", "batch_size")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(v < 1 for v in value):
            raise ValueError(f"every value must be a positive integer, found {list(value)}")
        return value


class SampleConfig(CommandConfig):
    """Options of ``gangal sample``."""

    chain: tuple[str, ...] = Field(default=("dcgan", "stackgan"), min_length=1, description="stages to run")
    model: Path = Field(description="model folder written by gangal train")
    n: int = Field(default=64, ge=1, description="number of images")
    out: Path = Field(description="output folder")
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT, description="seed of the noise")
    weights: Literal["ema", "raw"] = Field(default="ema", description="moving-average or last-step weights")
    batch_size: int = Field(default=256, ge=1, description="images per forward pass")
    fits: bool = Field(default=False, description="also write one FITS file per image")
    png: bool = Field(default=True, description="write one PNG file per image")
    data: str | None = Field(
        default=None, description="real images to refine when the chain starts with a refiner"
    )
    data_option: tuple[str, ...] = Field(default=(), description="KEY=VALUE options for the data source")
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N or mps")
    precision: Literal["float32", "bf16"] = Field(default="float32", description="bf16: mixed precision")

    _split = field_validator("chain", mode="before")(
        classmethod(lambda cls, v: _comma_list(v) if not isinstance(v, tuple) else v)
    )


class EvaluateConfig(CommandConfig):
    """Options of ``gangal evaluate``."""

    real: str = Field(description="real images: a path, or a data source SOURCE[:PATH]")
    generated: str = Field(description="generated images: a path (a gangal sample folder) or a data source")
    out: Path = Field(description="output folder")
    evaluator: str = Field(default="isophote", description="registered evaluator")
    method: str = Field(default="fast", description="the evaluator's method (isophote: fast or photutils)")
    n: int | None = Field(default=1000, ge=2, description="images per set (a seeded random subset)")
    band: str = Field(default="sum", description="sum of the channels, or a channel number")
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT, description="seed of the subsets")
    workers: int | None = Field(default=None, ge=1, description="processes for slow evaluators")
    n_closest: int = Field(default=8, ge=1, description="pairs shown in closest_match.png")
    resolution: int = Field(default=128, ge=8, description="side a --generated data source is resampled to")
    real_option: tuple[str, ...] = Field(default=(), description="KEY=VALUE options of a --real data source")
    generated_option: tuple[str, ...] = Field(
        default=(), description="KEY=VALUE for a --generated data source"
    )


def _load_toml(path: Path, section: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: the file does not exist.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--config {path}: not a readable TOML file ({exc}).") from exc
    # a file may hold one command's options at top level, or several in [command] tables; any
    # other table ([simualte], [option]) is an unknown key, never silently ignored
    if section in data and isinstance(data[section], dict):
        stray = sorted(k for k, v in data.items() if isinstance(v, dict) and k not in COMMANDS)
        if stray:
            raise ConfigError(
                f"--config {path}: unknown table(s) {', '.join(stray)}; tables are named after a command "
                f"({', '.join(COMMANDS)})."
            )
        return dict(data[section])
    return {k: v for k, v in data.items() if not (isinstance(v, dict) and k in COMMANDS)}


def resolve_config(
    model: type[CommandConfig],
    *,
    command_line: dict[str, Any],
    config_file: Path | None,
    section: str,
) -> CommandConfig:
    """Merge file values with command-line values (which win) and validate.

    Parameters
    ----------
    model : type
        The command's options model.
    command_line : dict
        Only the options the user actually typed.
    config_file : Path, optional
        A TOML file: the command's options at top level or in a ``[section]`` table.
    section : str
        The command's name.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update({k.replace("-", "_"): v for k, v in _load_toml(config_file, section).items()})
        unknown = sorted(set(values) - set(model.model_fields))
        if unknown:
            raise ConfigError(
                f"--config {config_file}: unknown key(s) {', '.join(unknown)} for `gangal {section}`; "
                f"known keys: {', '.join(model.model_fields)}."
            )
    values.update(command_line)
    try:
        return model(**values)
    except ValidationError as exc:
        where = f" (with --config {config_file})" if config_file else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid options for `gangal {section}`{where}: {problems}.") from None
