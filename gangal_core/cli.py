"""The ``gangal`` command line: thin commands that forward to library functions."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gangal_core import __version__
from gangal_core.errors import GangalError

__all__ = ["app", "main"]

app = typer.Typer(
    name="gangal",
    help="Calibrate Monte Carlo simulators against images (model-assisted GANs), "
    "and grow image sets with chained GANs.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML file of options; flags given here override it.", show_default=False),
]


def user_errors(command):
    """Turn a :class:`GangalError` into a clear message and exit code 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GangalError as exc:
            # a Text, not markup: the message holds the user's paths and a plugin's words verbatim,
            # "[bold]data.csv", "a:smile:b" or "[/]" included
            err.print(Text.assemble(("error:", "bold red"), " ", str(exc)), soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: finished files are kept; re-run the same command to resume.")
            raise typer.Exit(130) from None

    return wrapper


def typed_options(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The options the user actually typed (not defaults), for config-file merging."""
    typed = {}
    for name, value in values.items():
        source = ctx.get_parameter_source(name)
        # compare by name: typer may run its own bundled copy of click, whose enum differs
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            typed[name] = value
    return typed


_PYTHON_NAMES = {"out": "out_path", "range": "ranges"}  # options whose Python parameter is renamed


def _typed(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """typed_options for commands whose --out (--range) parameter is out_path (ranges) in Python."""
    renamed = {_PYTHON_NAMES.get(k, k): v for k, v in values.items()}
    back = {v: k for k, v in _PYTHON_NAMES.items()}
    return {back.get(k, k): v for k, v in typed_options(ctx, renamed).items()}


def _version(value: bool) -> None:
    if value:
        out.print(f"gangal {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """gangal: model-assisted GAN calibration and chained GANs for scientific images."""


@app.command()
@user_errors
def plugins(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")
    ] = False,
) -> None:
    """List every registered simulator, network architecture, data source, refiner and evaluator."""
    from gangal_core.plugins import get_registry

    things = get_registry().all()
    if as_json:
        rows = [
            {
                "name": t.name,
                "kind": t.kind,
                "distribution": t.distribution,
                "version": t.version,
                "plugin": t.plugin,
            }
            for t in things
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from gangal_core.plugins import ALLOW_ENV, allowed_plugins

    allowed = allowed_plugins()
    caption = (
        f"{ALLOW_ENV}={','.join(allowed)}: other third-party plugins are not loaded" if allowed else None
    )
    table = Table(title="gangal plugins", caption=caption)
    for column in ("name", "kind", "distribution", "version"):
        table.add_column(column)
    for t in things:
        table.add_row(t.name, t.kind.replace("_", " "), t.distribution, t.version)
    out.print(table)


@app.command()
@user_errors
def simulate(
    ctx: typer.Context,
    simulator: Annotated[str, typer.Option("--simulator", "-s", help="Registered simulator name.")] = "",
    n: Annotated[
        int | None,
        typer.Option("-n", help="Number of images (default: the rows of --params).", show_default=False),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="A path ending in .npy, or a folder of safetensors shards.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the whole run.")] = 0,
    params: Annotated[
        Path | None,
        typer.Option(
            help="CSV of parameters (header = parameter names) instead of uniform draws.", show_default=False
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="i/N: this job writes every N-th shard from the i-th (batch systems).", show_default=False
        ),
    ] = None,
    shard_size: Annotated[int, typer.Option(help="Images per shard file.")] = 65536,
    chunk_size: Annotated[int, typer.Option(help="Images per random-number chunk.")] = 4096,
    workers: Annotated[
        int | None, typer.Option(help="Threads (default: one per core).", show_default=False)
    ] = None,
    ranges: RangeOption = None,
    config: ConfigOption = None,
) -> None:
    """Simulate images with a registered simulator and write them with their parameters.

    Parameters are drawn uniformly within the declared ranges, or read from --params.

    Re-running the same command on a folder resumes it; --shard i/N splits the work over batch-system jobs with results identical to one run.
    """  # noqa: E501 (typer keeps docstring line breaks in --help)
    from gangal_core.config import SimulateConfig, resolve_config
    from gangal_core.errors import ConfigError

    values = {
        "simulator": simulator or None,
        "n": n,
        "out": out_path,
        "seed": seed,
        "params": params,
        "shard": shard,
        "shard_size": shard_size,
        "chunk_size": chunk_size,
        "workers": workers,
        "range": tuple(ranges or ()),
    }
    cfg = resolve_config(
        SimulateConfig, command_line=_typed(ctx, values), config_file=config, section="simulate"
    )
    if cfg.n is None and cfg.params is None:
        raise ConfigError("give -n (how many images) or --params (a CSV of parameters).")
    from gangal_core.simulation.run import run_simulate

    run_simulate(cfg, console=out)


OutOption = Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.", show_default=False)]
SimulatorOption = Annotated[str, typer.Option("--simulator", "-s", help="Registered simulator name.")]
SeedOption = Annotated[int, typer.Option(help="Seed of the run.")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out.")]
ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
DeviceOption = Annotated[str, typer.Option(help="auto (a GPU when present), cpu, cuda, cuda:N or mps.")]
RangeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--range",
        help="NAME=LOW:HIGH: replace a parameter's declared range for this run (repeatable).",
        show_default=False,
    ),
]
PrecisionOption = Annotated[
    str, typer.Option(help="float32, or bf16 for mixed precision (CUDA; CPUs with bfloat16 units).")
]


@app.command()
@user_errors
def pretrain(
    ctx: typer.Context,
    simulator: SimulatorOption = "",
    out_path: OutOption = None,
    iterations: Annotated[int, typer.Option(help="Pretraining minibatches.")] = 4000,
    batch_size: Annotated[int, typer.Option(help="Parameter sets per minibatch.")] = 256,
    recipe: Annotated[
        str, typer.Option(help="likelihood (fast, default) or paper (adversarial Siamese, eq. 1).")
    ] = "likelihood",
    emulator_arch: Annotated[str, typer.Option(help="Registered emulator architecture.")] = "conv",
    critic_arch: Annotated[str, typer.Option(help="Registered critic architecture (Siamese).")] = "conv",
    ranges: RangeOption = None,
    seed: SeedOption = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Iterations between checkpoints.")] = 500,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "float32",
    progress: ProgressOption = True,
    config: ConfigOption = None,
) -> None:
    """Pretrain an emulator of a simulator and save it to --out/emulator.safetensors.

    The file carries the simulator name, parameter ranges, image shape and network options, so `gangal calibrate --emulator` and `gangal emulate` reload it alone.
    """  # noqa: E501
    from gangal_core.config import PretrainConfig, resolve_config

    values = {
        "simulator": simulator or None, "out": out_path, "iterations": iterations, "batch_size": batch_size,
        "recipe": recipe, "emulator_arch": emulator_arch, "critic_arch": critic_arch, "seed": seed,
        "checkpoint_every": checkpoint_every, "resume": resume, "device": device, "precision": precision,
        "range": tuple(ranges or ()),
    }  # fmt: skip
    cfg = resolve_config(
        PretrainConfig, command_line=_typed(ctx, values), config_file=config, section="pretrain"
    )
    from gangal_core.calibration.run import run_pretrain

    run_pretrain(cfg, progress=progress, console=out)


@app.command()
@user_errors
def calibrate(
    ctx: typer.Context,
    simulator: SimulatorOption = "",
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default: calibrate-SIMULATOR).")
    ] = None,
    emulator: Annotated[
        Path | None,
        typer.Option(help="Pretrained emulator folder (default: pretrain first).", show_default=False),
    ] = None,
    true_data: Annotated[
        Path | None,
        typer.Option(
            help="True images: file or folder (default: built from the reference truth).", show_default=False
        ),
    ] = None,
    true_params: Annotated[
        Path | None,
        typer.Option(
            help="CSV of the true images' parameters, when known (closure tests).", show_default=False
        ),
    ] = None,
    truth: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=MEAN,STD: build the true set from this truth instead (repeatable).", show_default=False
        ),
    ] = None,
    n_true: Annotated[int, typer.Option(help="Images in a true set built from the truth.")] = 10000,
    iterations: Annotated[int, typer.Option(help="Training minibatches.")] = 3000,
    pretrain_iterations: Annotated[
        int, typer.Option(help="Pretraining minibatches (without --emulator).")
    ] = 4000,
    batch_size: Annotated[int, typer.Option(help="Images per minibatch.")] = 256,
    recipe: Annotated[
        str, typer.Option(help="default or paper (the paper's optimisers and labels).")
    ] = "default",
    pretrain_recipe: Annotated[str, typer.Option(help="likelihood or paper.")] = "likelihood",
    discriminator_input: Annotated[
        str, typer.Option(help="simulated (T(G(z)), default) or emulated (E(G(z)), no simulator calls).")
    ] = "simulated",
    emulator_arch: Annotated[str, typer.Option(help="Registered emulator architecture.")] = "conv",
    critic_arch: Annotated[str, typer.Option(help="Registered critic architecture.")] = "conv",
    ranges: RangeOption = None,
    n_samples: Annotated[int, typer.Option(help="Best-match samples written to samples.csv.")] = 10000,
    predictive_check: Annotated[
        bool,
        typer.Option(
            "--predictive-check/--no-predictive-check",
            help="Classifier two-sample test: true images vs simulations at the best match (AUC).",
        ),
    ] = True,
    seed: SeedOption = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Iterations between checkpoints.")] = 500,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "float32",
    progress: ProgressOption = True,
    config: ConfigOption = None,
) -> None:
    """Find the simulator-parameter distribution that best matches the true images.

    Writes calibration.json (best-match mean and std per parameter, with the truth when known), samples.csv, and plots into --out, and prints a table like the paper's Tables I/II.
    """  # noqa: E501
    from gangal_core.config import CalibrateConfig, resolve_config

    values = {
        "simulator": simulator or None, "out": out_path, "emulator": emulator, "true_data": true_data,
        "true_params": true_params, "truth": tuple(truth or ()), "n_true": n_true, "iterations": iterations,
        "pretrain_iterations": pretrain_iterations, "batch_size": batch_size, "recipe": recipe,
        "pretrain_recipe": pretrain_recipe, "discriminator_input": discriminator_input,
        "emulator_arch": emulator_arch, "critic_arch": critic_arch, "n_samples": n_samples, "seed": seed,
        "checkpoint_every": checkpoint_every, "resume": resume, "device": device, "precision": precision,
        "range": tuple(ranges or ()), "predictive_check": predictive_check,
    }  # fmt: skip
    typed = _typed(ctx, values)
    if "out" not in typed and simulator:
        typed["out"] = Path(f"calibrate-{simulator}")
    cfg = resolve_config(CalibrateConfig, command_line=typed, config_file=config, section="calibrate")
    from gangal_core.calibration.run import run_calibrate

    run_calibrate(cfg, progress=progress, console=out)


@app.command()
@user_errors
def emulate(
    ctx: typer.Context,
    emulator: Annotated[
        Path | None, typer.Option(help="Pretrained emulator folder or file.", show_default=False)
    ] = None,
    params: Annotated[
        Path | None, typer.Option(help="CSV of parameters, header = parameter names.", show_default=False)
    ] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output .npy file.", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the emulator's noise.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 1024,
    precision: Annotated[
        str, typer.Option(help="float32, or bfloat16: about twice as fast, error ~0.002 RMS (normalised).")
    ] = "float32",
    config: ConfigOption = None,
) -> None:
    """Use a pretrained emulator as a fast simulator: parameters CSV in, images .npy out."""
    from gangal_core.config import EmulateConfig, resolve_config

    values = {"emulator": emulator, "params": params, "out": out_path, "seed": seed, "batch_size": batch_size,
              "precision": precision}  # fmt: skip
    cfg = resolve_config(
        EmulateConfig, command_line=_typed(ctx, values), config_file=config, section="emulate"
    )
    from gangal_core.calibration.run import run_emulate

    run_emulate(cfg, console=out)


ChainOption = Annotated[
    str, typer.Option("--chain", help="Stages, comma-separated: dcgan, then refiners (e.g. dcgan,stackgan).")
]


@app.command()
@user_errors
def train(
    ctx: typer.Context,
    chain: ChainOption = "dcgan,stackgan",
    data: Annotated[
        str, typer.Option(help="Real images: SOURCE or SOURCE:PATH, e.g. synthetic, galaxyzoo:/data/gz2.")
    ] = "synthetic",
    data_option: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE for the data source, e.g. n=4096, select=spiral==1 (repeatable).",
            show_default=False,
        ),
    ] = None,
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="Model folder, one subfolder per stage.")
    ] = Path("chain-model"),
    epochs: Annotated[
        str | None,
        typer.Option(
            help="Epochs: one value, or one per stage (default: 20 for dcgan, 12 for a refiner).",
            show_default=False,
        ),
    ] = None,
    width: Annotated[
        str, typer.Option(help="Channel scale W, one value or one per stage; the paper's is 128.")
    ] = "32",
    batch_size: Annotated[
        str | None,
        typer.Option(
            help="Batch size, one value or per stage (default: 32 for dcgan, 64 for stackgan).",
            show_default=False,
        ),
    ] = None,
    resolution: Annotated[int, typer.Option(help="DCGAN image side: 64, or 128 (section 3.3).")] = 64,
    seed: SeedOption = 0,
    label_smoothing: Annotated[
        float, typer.Option(help="Real labels drawn from [1-d, 1+d]; the paper tried 0.3. 0 = off.")
    ] = 0.0,
    spatial_dropout: Annotated[
        str, typer.Option(help="Spatial dropout between hidden layers: none, generator, discriminator, both.")
    ] = "none",
    dropout_from_epoch: Annotated[
        int | None,
        typer.Option(
            help="Dropout before the discriminator's last layer from this epoch (section 3.3).",
            show_default=False,
        ),
    ] = None,
    sample_every: Annotated[int, typer.Option(help="Epochs between sample grids.")] = 1,
    ema_decay: Annotated[float, typer.Option(help="Decay of the generator's moving average.")] = 0.999,
    cache: Annotated[
        str, typer.Option(help="Decoded images: memory, none, or a folder reused across runs.")
    ] = "memory",
    workers: Annotated[
        int | None, typer.Option(help="Decoding threads (default: one per core).", show_default=False)
    ] = None,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "float32",
    progress: ProgressOption = True,
    config: ConfigOption = None,
) -> None:
    """Train the chained GAN: a DCGAN on real images, then refiners on pairs of them.

    Each stage writes its weights (raw and moving-average, safetensors with the network config), a loss plot and sample grids into --out/STAGE; real-64.png and real-128.png show real images to compare.
    """  # noqa: E501
    from gangal_core.config import TrainConfig, resolve_config

    values = {
        "chain": chain, "data": data, "data_option": tuple(data_option or ()), "out": out_path,
        "epochs": epochs, "width": width, "batch_size": batch_size, "resolution": resolution, "seed": seed,
        "label_smoothing": label_smoothing, "spatial_dropout": spatial_dropout,
        "dropout_from_epoch": dropout_from_epoch, "sample_every": sample_every, "ema_decay": ema_decay,
        "cache": cache, "workers": workers, "resume": resume, "device": device, "precision": precision,
    }  # fmt: skip
    typed = _typed(ctx, values)
    typed.setdefault("out", out_path)
    cfg = resolve_config(TrainConfig, command_line=typed, config_file=config, section="train")
    from gangal_core.chain.run import run_train

    run_train(cfg, progress=progress, console=out)


@app.command()
@user_errors
def sample(
    ctx: typer.Context,
    chain: ChainOption = "dcgan,stackgan",
    model: Annotated[Path, typer.Option(help="Model folder written by gangal train.")] = Path("chain-model"),
    n: Annotated[int, typer.Option("-n", help="Number of images.")] = 64,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("chain-samples"),
    seed: Annotated[int, typer.Option(help="Seed of the noise: the same seed gives the same images.")] = 0,
    weights: Annotated[str, typer.Option(help="ema (moving average, default) or raw weights.")] = "ema",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 256,
    fits: Annotated[bool, typer.Option("--fits", help="Also write one FITS file per image.")] = False,
    png: Annotated[bool, typer.Option("--png/--no-png", help="Write one PNG file per image.")] = True,
    data: Annotated[
        str | None,
        typer.Option(help="Real images to refine, when --chain starts with a refiner.", show_default=False),
    ] = None,
    data_option: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE for the --data source (repeatable).", show_default=False),
    ] = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "float32",
    config: ConfigOption = None,
) -> None:
    """Draw images from a trained chain: DCGAN images refined to the last stage's resolution.

    Writes samples.npy (N, C, H, W, float32 in [0, 1]), contact_sheet.png and png/NNNNNN.png (and fits/ with --fits) into --out. --chain dcgan alone gives 64x64 images.
    """  # noqa: E501
    from gangal_core.config import SampleConfig, resolve_config

    values = {"chain": chain, "model": model, "n": n, "out": out_path, "seed": seed, "weights": weights,
              "batch_size": batch_size, "fits": fits, "png": png, "data": data,
              "data_option": tuple(data_option or ()), "device": device, "precision": precision}  # fmt: skip
    typed = _typed(ctx, values)
    typed.setdefault("model", model)
    typed.setdefault("out", out_path)
    cfg = resolve_config(SampleConfig, command_line=typed, config_file=config, section="sample")
    from gangal_core.chain.run import run_sample

    run_sample(cfg, console=out)


@app.command()
@user_errors
def evaluate(
    ctx: typer.Context,
    real: Annotated[
        str, typer.Option(help="Real images: a file or folder, or a data source (galaxyzoo:PATH, synthetic).")
    ] = "",
    generated: Annotated[
        str,
        typer.Option(help="Generated images: a file or folder (a gangal sample --out), or a data source."),
    ] = "",
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder.", show_default=False)
    ] = None,
    evaluator: Annotated[str, typer.Option(help="Registered evaluator.")] = "isophote",
    method: Annotated[
        str, typer.Option(help="fast (batched, default) or photutils (the paper's reference fit, slow).")
    ] = "fast",
    n: Annotated[int, typer.Option("-n", help="Images per set: a seeded random subset.")] = 1000,
    band: Annotated[str, typer.Option(help="sum (of the channels) or a channel number.")] = "sum",
    seed: Annotated[int, typer.Option(help="Seed of the subsets.")] = 0,
    workers: Annotated[
        int | None,
        typer.Option(help="Processes for the photutils method (default: one per core).", show_default=False),
    ] = None,
    n_closest: Annotated[
        int, typer.Option(help="Generated/closest-real pairs shown in closest_match.png.")
    ] = 8,
    resolution: Annotated[
        int, typer.Option(help="Side a --generated data source is resampled to (files keep their size).")
    ] = 128,
    real_option: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE for a --real data source (repeatable).", show_default=False),
    ] = None,
    generated_option: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE for a --generated data source (repeatable).", show_default=False),
    ] = None,
    progress: ProgressOption = True,
    config: ConfigOption = None,
) -> None:
    """Compare generated with real images by isophote fits and a closest-match analysis.

    Writes evaluation.json (per quantity: KS statistic, Wasserstein distance, medians; fit-failure rates; closest-match summary), measurements_real.csv and measurements_generated.csv (one row per image), histograms.png, closest_match.png and closest_distances.png into --out.
    """  # noqa: E501
    from gangal_core.config import EvaluateConfig, resolve_config

    values = {"real": real or None, "generated": generated or None, "out": out_path, "evaluator": evaluator,
              "method": method, "n": n, "band": band, "seed": seed, "workers": workers,
              "n_closest": n_closest, "resolution": resolution, "real_option": tuple(real_option or ()),
              "generated_option": tuple(generated_option or ())}  # fmt: skip
    cfg = resolve_config(
        EvaluateConfig, command_line=_typed(ctx, values), config_file=config, section="evaluate"
    )
    from gangal_core.evaluation.run import run_evaluate

    run_evaluate(cfg, progress=progress, console=out)


def main() -> None:
    """Entry point of the ``gangal`` console script."""
    app()
