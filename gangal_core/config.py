"""Command options as pydantic models: the one place an option is declared.

Every command has a model here, and each field is one option: its name, type, default,
help text (the field's ``description``) and allowed values (an enum, a ``Literal`` or a
constraint) live in the field and nowhere else.  A :class:`Flag` in the field's
``Annotated`` metadata says how it looks on the command line (short alias, help panel);
:mod:`gangal_core.options` derives the typer command from the model.

``--config FILE.toml`` supplies values, flags typed on the command line override them,
and the model validates the result: an unknown key or a wrong value is an error that
names the option (or the key and the file), what was expected and what was found.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gangal_core.errors import ConfigError

#: Seeds are below 2**63: torch takes 64-bit seeds, and runs derive others from theirs (seed + 7919).
SEED_LIMIT = 2**63
#: The commands whose options a --config file may hold in a [command] table.
COMMANDS = ("simulate", "pretrain", "calibrate", "check", "emulate", "train", "sample", "evaluate")

#: The help panels options are grouped in, in the order ``--help`` shows them.
PANELS = ("Data", "Simulations", "Training", "Evaluation", "Output", "Devices", "Run")
DATA, SIMULATIONS, TRAINING, EVALUATION, OUTPUT, DEVICES, RUN = PANELS

__all__ = [
    "PANELS",
    "CalibrateConfig",
    "CalibrationRecipe",
    "CheckConfig",
    "CommandConfig",
    "DiscriminatorInput",
    "EmulateConfig",
    "EvaluateConfig",
    "Flag",
    "Precision",
    "PretrainConfig",
    "PretrainRecipe",
    "RunOptions",
    "SampleConfig",
    "SimulateConfig",
    "SpatialDropout",
    "TrainConfig",
    "Weights",
    "flag_name",
    "resolve_config",
]


@dataclass(frozen=True)
class Flag:
    """How a field appears on the command line; everything else about it is the field's.

    Parameters
    ----------
    panel : str
        The ``--help`` panel it is listed in (one of :data:`PANELS`).
    short : str, optional
        A one-letter alias (``"-s"``).
    long : bool, optional
        False for an option that has only its short form (``-n``).
    negatable : bool, optional
        For a bool: ``--x/--no-x`` (default) or ``--x`` alone (a switch that is off by default).
    comma : bool, optional
        For a tuple: one comma-separated value (``--width 32,16``) instead of a repeated flag.
    """

    panel: str
    short: str | None = None
    long: bool = True
    negatable: bool = True
    comma: bool = False


def flag_name(model: type[BaseModel], field: str) -> str:
    """The option's name on the command line: ``--batch-size`` for ``batch_size``, ``-n`` for ``n``."""
    flag = next((m for m in model.model_fields[field].metadata if isinstance(m, Flag)), Flag(RUN))
    return f"--{field.replace('_', '-')}" if flag.long or not flag.short else flag.short


class PretrainRecipe(StrEnum):
    """How the emulator is pretrained."""

    LIKELIHOOD = "likelihood"  # fast, the default
    PAPER = "paper"  # adversarial, with the Siamese critic (eq. 1)


class CalibrationRecipe(StrEnum):
    """The optimisers and labels of the calibration GAN."""

    DEFAULT = "default"
    PAPER = "paper"


class DiscriminatorInput(StrEnum):
    """What the calibration discriminator sees of a generated parameter set."""

    SIMULATED = "simulated"  # T(G(z)): the simulator's images
    EMULATED = "emulated"  # E(G(z)): the emulator's, no simulator calls


class Precision(StrEnum):
    """The arithmetic networks run in."""

    FLOAT32 = "float32"
    BF16 = "bf16"

    @classmethod
    def _missing_(cls, value: object) -> Precision | None:
        # `gangal emulate --precision bfloat16` predates bf16: old scripts and configs keep working
        return cls.BF16 if value == "bfloat16" else None


class SpatialDropout(StrEnum):
    """Which networks of the chain's DCGAN get spatial dropout between hidden layers."""

    NONE = "none"
    GENERATOR = "generator"
    DISCRIMINATOR = "discriminator"
    BOTH = "both"


class Weights(StrEnum):
    """Which of a trained stage's weights ``gangal sample`` runs."""

    AUTO = "auto"  # best where the stage kept one (--eval-every), else ema
    EMA = "ema"  # the generator's moving average
    RAW = "raw"  # the last training step's
    BEST = "best"  # the moving average of the epoch model selection kept


class CommandConfig(BaseModel):
    """Base of every command's options: unknown keys are errors, values are plain after validation.

    ``use_enum_values`` stores a choice as its string, so code downstream and the JSON a run
    writes see ``"paper"``, never ``CalibrationRecipe.PAPER``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True, validate_default=True)

    @field_validator("*", mode="after")
    @classmethod
    def _openable_path(cls, value: Any) -> Any:
        # a NUL reaches a path only from a TOML file, and makes every later file call raise
        if isinstance(value, Path) and "\x00" in str(value):
            raise ValueError(f"{str(value)!r}: a path cannot contain a NUL character")
        return value


# ---------------------------------------------------------------------------------------------
# Run options shared by several commands: each declared once, mixed into the commands it fits.
# ---------------------------------------------------------------------------------------------


class Seeded(CommandConfig):
    """``--seed``."""

    seed: Annotated[int, Flag(RUN)] = Field(
        default=0,
        ge=0,
        lt=SEED_LIMIT,
        description="Seed of every random draw: the same seed, the same output.",
    )


class Ranged(CommandConfig):
    """``--range``."""

    range: Annotated[tuple[str, ...], Flag(DATA)] = Field(
        default=(),
        description="NAME=LOW:HIGH: replace a parameter's declared range for this run (repeatable).",
    )


class OnDevice(CommandConfig):
    """``--device``."""

    device: Annotated[str, Flag(DEVICES)] = Field(
        default="auto", description="auto (a GPU when present), cpu, cuda, cuda:N or mps."
    )


class MixedPrecision(OnDevice):
    """``--device`` and ``--precision``: for commands whose networks do the work."""

    precision: Annotated[Precision, Flag(DEVICES)] = Field(
        default=Precision.FLOAT32,
        description="float32, or bf16 for mixed precision (CUDA; CPUs with bfloat16 units).",
    )


class Resumable(CommandConfig):
    """``--resume``."""

    resume: Annotated[bool, Flag(RUN, negatable=False)] = Field(
        default=False, description="Continue the interrupted run in --out."
    )


class Checkpointed(Resumable):
    """``--resume`` and ``--checkpoint-every``."""

    checkpoint_every: Annotated[int, Flag(RUN)] = Field(
        default=500, ge=1, description="Iterations between checkpoints."
    )


class ShowsProgress(CommandConfig):
    """``--progress/--no-progress``."""

    # how a run looks, not what it computes: left out of the options a run records
    progress: Annotated[bool, Flag(RUN)] = Field(
        default=True, exclude=True, description="Show progress: a bar on a terminal, lines in a log."
    )


class Overwrites(CommandConfig):
    """``--overwrite``: for commands whose ``--out`` is a file."""

    # what may be replaced, not what is computed: left out of the options a run records
    overwrite: Annotated[bool, Flag(OUTPUT, negatable=False)] = Field(
        default=False,
        exclude=True,
        description="Replace an --out file that holds another run or files gangal did not write.",
    )


class RunOptions(ShowsProgress, MixedPrecision, Checkpointed, Seeded, Ranged):
    """Every shared run option; the training commands (pretrain, calibrate) take them all."""


class Architectures(CommandConfig):
    """``--emulator-arch`` and ``--critic-arch``: the networks pretraining and calibration build."""

    emulator_arch: Annotated[str, Flag(TRAINING)] = Field(
        default="conv", description="Registered emulator architecture."
    )
    critic_arch: Annotated[str, Flag(TRAINING)] = Field(
        default="conv", description="Registered critic architecture (discriminator, Siamese, estimator)."
    )


class CostlySimulator(CommandConfig):
    """What a costly or external simulator needs: a budget, stored simulations, a declaration."""

    # required, unless --simulator-spec stands in for it (then None: _declared_simulator)
    simulator: Annotated[str | None, Flag(DATA, short="-s")] = Field(
        description="Registered simulator name, or path/to/mysim.py:ClassName, or package.module:ClassName.",
    )
    simulator_spec: Annotated[Path | None, Flag(DATA)] = Field(
        default=None,
        description="TOML file declaring a simulator gangal cannot call (name, image shape, parameters); "
        "needs --bank.",
    )
    budget: Annotated[int | None, Flag(SIMULATIONS)] = Field(
        default=None, ge=1, description="The most simulator images the run may make, everything included."
    )
    bank: Annotated[Path | None, Flag(SIMULATIONS)] = Field(
        default=None,
        description="Stored simulations to train from: a gangal simulate output, or images with a "
        "parameter CSV.",
    )
    bank_parameters: Annotated[Path | None, Flag(SIMULATIONS)] = Field(
        default=None,
        description="The parameter CSV of a --bank of plain images (default: parameters.csv in it, "
        "or NAME.csv beside it).",
    )
    validation: Annotated[float, Flag(SIMULATIONS)] = Field(
        default=0.1, ge=0, lt=1, description="Share of the simulations held out to measure the emulator on."
    )

    @model_validator(mode="before")
    @classmethod
    def _declared_simulator(cls, values: Any) -> Any:
        declared = isinstance(values, dict) and values.get("simulator_spec") is not None
        if declared and "simulator" not in values:
            return {**values, "simulator": None}
        return values

    @model_validator(mode="after")
    def _one_simulator(self) -> CostlySimulator:
        if (self.simulator is None) == (self.simulator_spec is None):
            found = "both" if self.simulator is not None else "neither"
            raise ValueError(f"give --simulator or --simulator-spec (found {found})")
        if self.bank_parameters is not None and self.bank is None:
            raise ValueError("--bank-parameters describes a --bank; give the bank too")
        return self


# ---------------------------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------------------------

Simulator = Annotated[str, Flag(DATA, short="-s")]


class SimulateConfig(Overwrites, ShowsProgress, Seeded, Ranged):
    """Options of ``gangal simulate``."""

    simulator: Simulator = Field(description="Registered simulator name.")
    n: Annotated[int | None, Flag(DATA, short="-n", long=False)] = Field(
        default=None, ge=1, description="Number of images (default: the rows of --params)."
    )
    params: Annotated[Path | None, Flag(DATA)] = Field(
        default=None, description="CSV of parameters (header = parameter names) instead of uniform draws."
    )
    allow_out_of_range: Annotated[bool, Flag(DATA, negatable=False)] = Field(
        default=False, description="Simulate --params rows outside the parameters' ranges (else refused)."
    )
    out: Annotated[Path, Flag(OUTPUT, short="-o")] = Field(
        description="A file (.npy, .npz, .fits), or a folder of safetensors shards."
    )
    shard: Annotated[str | None, Flag(OUTPUT)] = Field(
        default=None, description="i/N: this job writes every N-th shard from the i-th (batch systems)."
    )
    shard_size: Annotated[int, Flag(OUTPUT)] = Field(
        default=65536, ge=1, description="Images per shard file."
    )
    chunk_size: Annotated[int, Flag(RUN)] = Field(
        default=4096, ge=1, description="Images per random-number chunk."
    )
    workers: Annotated[int | None, Flag(DEVICES)] = Field(
        default=None, ge=1, description="Threads (default: one per core)."
    )


class PretrainConfig(CostlySimulator, Architectures, RunOptions):
    """Options of ``gangal pretrain`` (and of the pretraining ``gangal calibrate`` runs first)."""

    out: Annotated[Path, Flag(OUTPUT, short="-o")] = Field(
        description="Folder for emulator.safetensors, its plots and checkpoint."
    )
    iterations: Annotated[int, Flag(TRAINING)] = Field(
        default=4000, ge=1, description="Pretraining minibatches."
    )
    batch_size: Annotated[int, Flag(TRAINING)] = Field(
        default=256, ge=2, description="Parameter sets per minibatch."
    )
    recipe: Annotated[PretrainRecipe, Flag(TRAINING)] = Field(
        default=PretrainRecipe.LIKELIHOOD,
        description="likelihood (fast) or paper (adversarial, with the Siamese critic of eq. 1).",
    )


class CalibrateConfig(CostlySimulator, Architectures, RunOptions):
    """Options of ``gangal calibrate``."""

    rounds: Annotated[int | None, Flag(SIMULATIONS)] = Field(
        default=None,
        ge=0,
        description="Rounds of simulations near the best match after the first bank "
        "(default: 3 with --budget, else 0).",
    )
    first_bank: Annotated[float, Flag(SIMULATIONS)] = Field(
        default=0.6, gt=0, le=1, description="The first bank's share of the --budget (the rest: the rounds)."
    )
    likelihood_fit: Annotated[bool, Flag(SIMULATIONS)] = Field(
        default=True,
        description="In rounds: refine the best match by the emulator's likelihood or its parameter "
        "estimator, where they can be trusted; on faint images the likelihood fit leads the rounds.",
    )
    out: Annotated[Path, Flag(OUTPUT, short="-o")] = Field(
        description="Run folder (default: calibrate-SIMULATOR)."
    )
    emulator: Annotated[Path | None, Flag(TRAINING)] = Field(
        default=None, description="Pretrained emulator folder (default: pretrain first)."
    )
    true_data: Annotated[Path | None, Flag(DATA)] = Field(
        default=None, description="True images: file or folder (default: built from the reference truth)."
    )
    true_params: Annotated[Path | None, Flag(DATA)] = Field(
        default=None, description="CSV of the true images' parameters, when known (closure tests)."
    )
    truth: Annotated[tuple[str, ...], Flag(DATA)] = Field(
        default=(), description="NAME=MEAN,STD: build the true set from this truth instead (repeatable)."
    )
    n_true: Annotated[int, Flag(DATA)] = Field(
        default=10000, ge=2, description="Images in a true set built from the truth."
    )
    iterations: Annotated[int | None, Flag(TRAINING)] = Field(
        default=None, ge=1, description="Generator minibatches; default 3000, 1500 in rounds."
    )
    pretrain_iterations: Annotated[int | None, Flag(TRAINING)] = Field(
        default=None,
        ge=1,
        description="Pretraining minibatches (without --emulator); default 4000, 1200 in rounds.",
    )
    batch_size: Annotated[int, Flag(TRAINING)] = Field(default=256, ge=2, description="Images per minibatch.")
    recipe: Annotated[CalibrationRecipe, Flag(TRAINING)] = Field(
        default=CalibrationRecipe.DEFAULT, description="default, or paper: the paper's optimisers and labels."
    )
    pretrain_recipe: Annotated[PretrainRecipe, Flag(TRAINING)] = Field(
        default=PretrainRecipe.LIKELIHOOD, description="The emulator's pretraining (without --emulator)."
    )
    discriminator_input: Annotated[DiscriminatorInput, Flag(TRAINING)] = Field(
        default=DiscriminatorInput.SIMULATED,
        description="simulated: T(G(z)); emulated: E(G(z)), no simulator calls.",
    )
    n_samples: Annotated[int, Flag(OUTPUT)] = Field(
        default=10000, ge=2, description="Best-match samples written to samples.csv."
    )
    predictive_check: Annotated[bool, Flag(EVALUATION)] = Field(
        default=True,
        description="Classifier two-sample test: true images vs simulations at the best match (AUC).",
    )

    @model_validator(mode="before")
    @classmethod
    def _out_named_after_the_simulator(cls, values: Any) -> Any:
        # the default --out depends on --simulator, wherever either comes from
        if not isinstance(values, dict) or "out" in values:
            return values
        if isinstance(values.get("simulator"), str):
            name = values["simulator"].rpartition(":")[2] or values["simulator"]  # mysim.py:Ring -> Ring
            return {**values, "out": Path(f"calibrate-{Path(name).stem}")}
        if isinstance(values.get("simulator_spec"), (str, Path)):
            return {**values, "out": Path(f"calibrate-{Path(values['simulator_spec']).stem}")}
        return values


class CheckConfig(Seeded):
    """Options of ``gangal check``: a calibration's predictive check, from files."""

    run: Annotated[Path, Flag(DATA)] = Field(description="The calibration's run folder (its --out).")
    simulations: Annotated[Path, Flag(DATA)] = Field(
        description="Images simulated at the run's best_match_parameters.csv, in that order (any format "
        "gangal reads)."
    )
    true_data: Annotated[Path | None, Flag(DATA)] = Field(
        default=None, description="The true images (default: the run's own --true-data)."
    )


class EmulateConfig(Overwrites, MixedPrecision, Seeded):
    """Options of ``gangal emulate``."""

    emulator: Annotated[Path, Flag(DATA)] = Field(description="Pretrained emulator folder or file.")
    params: Annotated[Path, Flag(DATA)] = Field(description="CSV of parameters, header = parameter names.")
    out: Annotated[Path, Flag(OUTPUT, short="-o")] = Field(description="Output file: .npy, .npz or .fits.")
    batch_size: Annotated[int, Flag(DEVICES)] = Field(
        default=1024, ge=1, description="Images per forward pass."
    )


def _comma_list(value: Any) -> Any:
    """``"dcgan,stackgan"`` or ``"30,10"`` (command line) or a TOML list, as a tuple."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, int):
        return (value,)
    return value


Chain = Annotated[tuple[str, ...], Flag(TRAINING, comma=True)]
DataOption = Annotated[tuple[str, ...], Flag(DATA)]


class TrainConfig(ShowsProgress, MixedPrecision, Resumable, Seeded):
    """Options of ``gangal train`` (the chained GAN)."""

    data: Annotated[str, Flag(DATA)] = Field(
        default="synthetic",
        description="Real images: SOURCE or SOURCE:PATH, e.g. synthetic, galaxyzoo:/data/gz2.",
    )
    data_option: DataOption = Field(
        default=(), description="KEY=VALUE for the data source, e.g. n=4096, select=spiral==1 (repeatable)."
    )
    cache: Annotated[str, Flag(DATA)] = Field(
        default="memory", description="Decoded images: memory, none, or a folder reused across runs."
    )
    chain: Chain = Field(
        default=("dcgan", "stackgan"),
        min_length=1,
        description="Stages, comma-separated: dcgan, then refiners (e.g. dcgan,stackgan).",
    )
    epochs: Annotated[tuple[int, ...], Flag(TRAINING, comma=True)] = Field(
        default=(),
        description="Epochs, one value or per stage (default: as many as make 216,000 training images "
        "for dcgan, 48,600 for a refiner).",
    )
    width: Annotated[tuple[int, ...], Flag(TRAINING, comma=True)] = Field(
        default=(32,),
        min_length=1,
        description="Channel scale W, one value or one per stage; the paper's is 128.",
    )
    batch_size: Annotated[tuple[int, ...], Flag(TRAINING, comma=True)] = Field(
        default=(), description="Batch size, one value or per stage (default: 32 for dcgan, 64 for stackgan)."
    )
    resolution: Annotated[Literal[64, 128], Flag(TRAINING)] = Field(
        default=64, description="DCGAN image side: 64, or 128 (section 3.3)."
    )
    label_smoothing: Annotated[float, Flag(TRAINING)] = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Real labels drawn from [1-d, 1+d]; the paper tried 0.3. 0 = off.",
    )
    spatial_dropout: Annotated[SpatialDropout, Flag(TRAINING)] = Field(
        default=SpatialDropout.NONE, description="Spatial dropout between hidden layers."
    )
    dropout_from_epoch: Annotated[int | None, Flag(TRAINING)] = Field(
        default=None,
        ge=1,
        description="Dropout before the discriminator's last layer from this epoch on (section 3.3's text).",
    )
    dropout_until_epoch: Annotated[int | None, Flag(TRAINING)] = Field(
        default=None,
        ge=1,
        description="Dropout before the discriminator's last layer up to this epoch, then off (Fig. 8).",
    )
    lr_decay_from: Annotated[int | None, Flag(TRAINING)] = Field(
        default=None,
        ge=1,
        description="DCGAN learning rate constant up to this epoch, then linear to zero at the end.",
    )
    augment: Annotated[tuple[str, ...], Flag(TRAINING, comma=True)] = Field(
        default=(),
        description="Augment what D sees: flip,rot90 (real images), translation,cutout (both).",
    )
    r1: Annotated[float, Flag(TRAINING)] = Field(
        default=0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="Weight gamma of the R1 penalty on real images; 0 = off.",
    )
    ema_decay: Annotated[float, Flag(TRAINING)] = Field(
        default=0.999, ge=0.0, lt=1.0, description="Decay of the generator's moving average."
    )
    out: Annotated[Path, Flag(OUTPUT, short="-o")] = Field(
        default=Path("chain-model"), description="Model folder, one subfolder per stage."
    )
    sample_every: Annotated[int, Flag(OUTPUT)] = Field(
        default=1, ge=1, description="Epochs between sample grids."
    )
    eval_every: Annotated[int | None, Flag(TRAINING)] = Field(
        default=None,
        ge=1,
        description="Every K epochs, score samples against held-out images; keep the best epoch.",
    )
    validation: Annotated[float, Flag(TRAINING)] = Field(
        default=0.1, gt=0.0, lt=1.0, description="Share of the images held out for --eval-every."
    )
    eval_samples: Annotated[int, Flag(TRAINING)] = Field(
        default=256, ge=2, description="Generated images per --eval-every score."
    )
    workers: Annotated[int | None, Flag(DEVICES)] = Field(
        default=None, ge=1, description="Decoding threads (default: one per core)."
    )

    _split = field_validator(
        "chain", "epochs", "width", "batch_size", "data_option", "augment", mode="before"
    )(
        classmethod(lambda cls, v: _comma_list(v) if not isinstance(v, tuple) else v)
    )

    @field_validator("epochs", "width", "batch_size")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(v < 1 for v in value):
            raise ValueError(f"every value must be a positive integer, found {list(value)}")
        return value


class SampleConfig(ShowsProgress, MixedPrecision, Seeded):
    """Options of ``gangal sample``."""

    model: Annotated[Path, Flag(DATA)] = Field(
        default=Path("chain-model"), description="Model folder written by gangal train."
    )
    chain: Chain = Field(
        default=("dcgan", "stackgan"), min_length=1, description="Stages to run, comma-separated."
    )
    weights: Annotated[Weights, Flag(DATA)] = Field(
        default=Weights.AUTO,
        description="auto (best if kept, else ema), ema (moving average), raw (last step), best.",
    )
    data: Annotated[str | None, Flag(DATA)] = Field(
        default=None, description="Real images to refine, when --chain starts with a refiner."
    )
    data_option: DataOption = Field(default=(), description="KEY=VALUE for the --data source (repeatable).")
    n: Annotated[int, Flag(OUTPUT, short="-n", long=False)] = Field(
        default=64, ge=1, description="Number of images."
    )
    out: Annotated[Path, Flag(OUTPUT, short="-o")] = Field(
        default=Path("chain-samples"), description="Output folder."
    )
    fits: Annotated[bool, Flag(OUTPUT, negatable=False)] = Field(
        default=False, description="Also write one FITS file per image."
    )
    png: Annotated[bool, Flag(OUTPUT)] = Field(default=True, description="Write one PNG file per image.")
    sky: Annotated[bool, Flag(OUTPUT)] = Field(
        default=True, description="Give the images the training images' sky level and noise (sky.json)."
    )
    batch_size: Annotated[int, Flag(DEVICES)] = Field(
        default=256, ge=1, description="Images per forward pass."
    )

    _split = field_validator("chain", mode="before")(
        classmethod(lambda cls, v: _comma_list(v) if not isinstance(v, tuple) else v)
    )


class EvaluateConfig(ShowsProgress, OnDevice, Seeded):
    """Options of ``gangal evaluate``."""

    real: Annotated[str, Flag(DATA)] = Field(
        description="Real images: a file or folder, or a data source (galaxyzoo:PATH, synthetic)."
    )
    real_option: Annotated[tuple[str, ...], Flag(DATA)] = Field(
        default=(), description="KEY=VALUE for a --real data source (repeatable)."
    )
    generated: Annotated[str, Flag(DATA)] = Field(
        description="Generated images: a file or folder (a gangal sample --out), or a data source."
    )
    generated_option: Annotated[tuple[str, ...], Flag(DATA)] = Field(
        default=(), description="KEY=VALUE for a --generated data source (repeatable)."
    )
    n: Annotated[int | None, Flag(DATA, short="-n", long=False)] = Field(
        default=1000, ge=2, description="Images per set: a seeded random subset."
    )
    band: Annotated[str, Flag(DATA)] = Field(
        default="sum", description="sum (of the channels) or a channel number."
    )
    resolution: Annotated[int, Flag(DATA)] = Field(
        default=128,
        ge=8,
        description="Side a --generated data source is resampled to (files keep their size).",
    )
    evaluator: Annotated[str, Flag(EVALUATION)] = Field(
        default="isophote", description="Registered evaluator."
    )
    # the evaluator's own word (a plugin's evaluator may have other methods), so a string
    method: Annotated[str, Flag(EVALUATION)] = Field(
        default="fast",
        description="The evaluator's method; isophote: fast (batched) or photutils (the paper's, slow).",
    )
    n_closest: Annotated[int, Flag(OUTPUT)] = Field(
        default=8, ge=1, description="Generated/closest-real pairs shown in closest_match.png."
    )
    out: Annotated[Path, Flag(OUTPUT, short="-o")] = Field(description="Output folder.")
    workers: Annotated[int | None, Flag(DEVICES)] = Field(
        default=None, ge=1, description="Processes for the photutils method (default: one per core)."
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
        problems = "; ".join(_problem(model, error, typed=command_line) for error in exc.errors())
        raise ConfigError(f"invalid options for `gangal {section}`{where}: {problems}.") from None


def _problem(model: type[CommandConfig], error: Any, *, typed: dict[str, Any]) -> str:
    """One validation error: the option as the user gave it (flag or file key), what is wrong, the value."""
    loc = error["loc"]
    if not loc:  # a check across options, whose message names them itself
        return str(error["msg"]).removeprefix("Value error, ")
    key = str(loc[0])
    name = flag_name(model, key) if key in typed and key in model.model_fields else key
    where = ".".join([name, *(str(p) for p in loc[1:])])
    if error["type"] == "missing":  # the user would type it: name the flag
        return f"{flag_name(model, key) if key in model.model_fields else key}: required"
    value = error.get("input")
    if "found" in error["msg"]:
        return f"{where}: {error['msg']}"
    shown = str(value) if isinstance(value, Path) else value
    return f"{where}: {error['msg']}, found {shown!r}"
