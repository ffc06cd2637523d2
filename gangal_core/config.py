"""Command options as pydantic models: one place where a TOML file and CLI flags meet.

Every command has a model here.  ``--config FILE.toml`` supplies values, flags given on
the command line override them, and the model validates the result: an unknown key or
a wrong type is an error that names the key and the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

__all__ = ["CommandConfig", "SimulateConfig", "resolve_config"]


class CommandConfig(BaseModel):
    """Base of every command's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulateConfig(CommandConfig):
    """Options of ``gangal simulate``."""

    simulator: str = Field(description="registered simulator name")
    n: int | None = Field(default=None, ge=1, description="number of images (default: rows of --params)")
    out: Path = Field(description="output: a path ending in .npy, or a folder of safetensors shards")
    seed: int = Field(default=0, ge=0, description="seed of the whole run")
    params: Path | None = Field(default=None, description="CSV of parameters, header = parameter names")
    shard: str | None = Field(default=None, description="i/N: write only every N-th shard, from the i-th")
    shard_size: int = Field(default=65536, ge=1, description="images per shard file")
    chunk_size: int = Field(default=4096, ge=1, description="images per random-number chunk")
    workers: int | None = Field(default=None, ge=1, description="threads (default: one per core)")


def _load_toml(path: Path, section: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: the file does not exist.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--config {path}: not a readable TOML file ({exc}).") from exc
    # a file may hold one command's options at top level, or several in [command] tables
    if section in data and isinstance(data[section], dict):
        return dict(data[section])
    return {k: v for k, v in data.items() if not isinstance(v, dict)}


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
