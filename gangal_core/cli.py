"""The ``gangal`` command line: thin commands that forward to library functions."""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gangal_core import __version__, options
from gangal_core.config import (
    CalibrateConfig,
    CheckConfig,
    CommandConfig,
    EmulateConfig,
    EvaluateConfig,
    PretrainConfig,
    SampleConfig,
    SimulateConfig,
    TrainConfig,
)
from gangal_core.errors import ConfigError, GangalError

__all__ = ["app", "main"]

app = typer.Typer(
    name="gangal",
    help="Calibrate Monte Carlo simulators against images (model-assisted GANs), "
    "and grow image sets with chained GANs.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion: typer imports nothing heavy for them
    pretty_exceptions_enable=False,
    cls=options.OptionsGroup,
)
err = Console(stderr=True)
out = Console()


def user_errors(command):
    """Turn a :class:`GangalError` into a clear message and exit code 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
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


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A training run's warning as one line (``warning: ...``); any other as Python shows it."""
    if category.__module__.startswith("gangal_core.chain"):
        err.print(Text.assemble(("warning:", "bold yellow"), " ", str(message)), soft_wrap=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def _version(value: bool) -> None:
    if value:
        out.print(f"gangal {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True, metavar=""
        ),
    ] = False,
) -> None:
    """gangal: model-assisted GAN calibration and chained GANs for scientific images."""


@app.command(cls=options.OptionsCommand)
@user_errors
def plugins(
    simulator: Annotated[
        str | None,
        typer.Option("--simulator", "-s", help="Show this simulator's parameters: ranges, units, truth.",
                     show_default=False),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts instead of a table.", metavar="")
    ] = False,
) -> None:
    """List every registered simulator, network architecture, data source, refiner and evaluator."""
    from gangal_core.plugins import get_registry

    if simulator is not None:
        _describe_simulator(simulator, as_json=as_json)
        return
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


def _describe_simulator(name: str, *, as_json: bool) -> None:
    """``gangal plugins --simulator NAME``: its parameters as a table, or JSON."""
    from gangal_core.plugins import describe_simulator

    doc = describe_simulator(name)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    origin = f"{doc['distribution']} {doc['version']}".strip()
    shape = "x".join(map(str, doc["image_shape"]))
    caption = doc["summary"].replace("``", "") or None  # the docstring's reST quotes, not for a terminal
    table = Table(title=f"simulator {doc['name']} ({origin}): {shape} images", caption=caption)
    table.add_column("parameter", no_wrap=True)
    table.add_column("range", no_wrap=True)
    table.add_column("unit", no_wrap=True)
    table.add_column("truth", no_wrap=True)
    table.add_column("description", ratio=1)
    for p in doc["parameters"]:
        known = p["reference_truth"]
        truth = f"{known['mean']:g} ± {known['std']:g}" if known else "-"
        table.add_row(p["name"], f"{p['low']:g} to {p['high']:g}", p["unit"] or "-", truth, p["description"])
    out.print(table)
    if doc["reference_truth"]:
        out.print("truth: the simulator's reference population (mean ± std); gangal calibrate without "
                  "--true-data builds its true images from it.", highlight=False)  # fmt: skip


def command(model: type[CommandConfig]) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Register ``run(cfg)`` as the command of its name, with ``model``'s fields as its options."""

    def register(run: Callable[[Any], None]) -> Callable[[Any], None]:
        app.command(cls=options.OptionsCommand)(user_errors(options.derive_command(model, _tidy(run))))
        return run

    return register


def _tidy(run: Callable[[Any], None]) -> Callable[[Any], None]:
    """``run(cfg)``, leaving no empty ``--out`` folder behind when it fails."""

    @functools.wraps(run)
    def tidy(cfg: Any) -> None:
        from gangal_core.io.folders import removing_empty_folders  # not at import: --help stays fast

        with removing_empty_folders(getattr(cfg, "out", None)):
            return run(cfg)

    return tidy


@command(SimulateConfig)
def simulate(cfg: SimulateConfig) -> None:
    """Simulate images with a registered simulator and write them with their parameters.

    Parameters are drawn uniformly within the declared ranges, or read from --params.

    Re-running the same command on a folder resumes it; --shard i/N splits the work over batch-system jobs with results identical to one run.
    """  # noqa: E501 (typer keeps docstring line breaks in --help)
    if cfg.n is None and cfg.params is None:
        raise ConfigError("give -n (how many images) or --params (a CSV of parameters).")
    from gangal_core.simulation.run import run_simulate

    run_simulate(cfg, console=out)


@command(PretrainConfig)
def pretrain(cfg: PretrainConfig) -> None:
    """Pretrain an emulator of a simulator and save it to --out/emulator.safetensors.

    The file carries the simulator name, parameter ranges, image shape and network options, so `gangal calibrate --emulator` and `gangal emulate` reload it alone.
    """  # noqa: E501
    from gangal_core.calibration.run import run_pretrain

    run_pretrain(cfg, progress=cfg.progress, console=out)


@command(CalibrateConfig)
def calibrate(cfg: CalibrateConfig) -> None:
    """Find the simulator-parameter distribution that best matches the true images.

    Writes calibration.json (best-match mean and std per parameter with its unit, the truth when known, the correlation matrix), samples.csv and samples.ecsv (with units), and plots (corner.png among them) into --out, and prints a table like the paper's Tables I/II.
    """  # noqa: E501
    from gangal_core.calibration.run import run_calibrate

    run_calibrate(cfg, progress=cfg.progress, console=out)


@command(CheckConfig)
def check(cfg: CheckConfig) -> None:
    """The predictive check of a calibration whose simulator gangal cannot call, from your simulations.

    Simulate the parameter sets in RUN/best_match_parameters.csv with your own program, then give the images as --simulations: the check (held-out AUC of a classifier, true images vs those simulations) is added to RUN/calibration.json.
    """  # noqa: E501
    from gangal_core.calibration.run import run_check

    run_check(cfg, console=out)


@command(EmulateConfig)
def emulate(cfg: EmulateConfig) -> None:
    """Use a pretrained emulator as a fast simulator: parameters CSV in, images out (.npy, .npz, FITS)."""
    from gangal_core.calibration.run import run_emulate

    run_emulate(cfg, console=out)


@command(TrainConfig)
def train(cfg: TrainConfig) -> None:
    """Train the chained GAN: a DCGAN on real images, then refiners on pairs of them.

    Each stage writes its weights (raw and moving-average, safetensors with the network config), a loss plot and sample grids into --out/STAGE; real-64.png and real-128.png show real images to compare.
    """  # noqa: E501
    from gangal_core.chain.run import run_train

    run_train(cfg, progress=cfg.progress, console=out)


@command(SampleConfig)
def sample(cfg: SampleConfig) -> None:
    """Draw images from a trained chain: DCGAN images refined to the last stage's resolution.

    Writes samples.npy (N, C, H, W, float32 in [0, 1]), contact_sheet.png and png/NNNNNN.png (and fits/ with --fits) into --out. --chain dcgan alone gives 64x64 images.
    """  # noqa: E501
    from gangal_core.chain.run import run_sample

    run_sample(cfg, console=out)


@command(EvaluateConfig)
def evaluate(cfg: EvaluateConfig) -> None:
    """Compare generated with real images by isophote fits and a closest-match analysis.

    Writes evaluation.json (per quantity: KS statistic, Wasserstein distance, medians; fit-failure rates; closest-match summary), measurements_real.csv and measurements_generated.csv (one row per image), histograms.png, closest_match.png and closest_distances.png into --out.
    """  # noqa: E501
    from gangal_core.evaluation.run import run_evaluate

    run_evaluate(cfg, progress=cfg.progress, console=out)


def main() -> None:
    """Entry point of the ``gangal`` console script."""
    app()
