"""The ``gangal`` command line: thin commands that forward to library functions."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import GangalError

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
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
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
    """List every registered simulator, data source, refiner and evaluator."""
    from .plugins import get_registry

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
    table = Table(title="gangal plugins")
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
    config: ConfigOption = None,
) -> None:
    """Simulate images with a registered simulator and write them with their parameters.

    Parameters are drawn uniformly within the declared ranges, or read from --params.

    Re-running the same command on a folder resumes it; --shard i/N splits the work over batch-system jobs with results identical to one run.
    """  # noqa: E501 (typer keeps docstring line breaks in --help)
    from .config import SimulateConfig, resolve_config
    from .errors import ConfigError

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
    }
    typed = typed_options(ctx, {k if k != "out" else "out_path": v for k, v in values.items()})
    typed = {("out" if k == "out_path" else k): v for k, v in typed.items()}
    cfg = resolve_config(SimulateConfig, command_line=typed, config_file=config, section="simulate")
    if cfg.n is None and cfg.params is None:
        raise ConfigError("give -n (how many images) or --params (a CSV of parameters).")
    _run_simulate(cfg)


def _run_simulate(cfg) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .errors import ConfigError
    from .plugins import get_registry
    from .simulation import parse_shard, read_parameter_csv, run_simulation

    sim = get_registry().simulator(cfg.simulator)
    params = read_parameter_csv(cfg.params, sim) if cfg.params is not None else None
    n = cfg.n if cfg.n is not None else len(params)
    if params is not None and len(params) != n:
        raise ConfigError(
            f"-n {n} but --params {cfg.params} holds {len(params)} rows; give one or make them agree."
        )
    shard = parse_shard(cfg.shard) if cfg.shard else None
    start = time.perf_counter()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(f"simulate {sim.name}", total=n, rate="")

        def advance(count: int) -> None:
            done = bar.tasks[0].completed + count
            bar.update(
                task, advance=count, rate=f"{done / max(time.perf_counter() - start, 1e-9):,.0f} img/s"
            )

        result = run_simulation(
            sim,
            n=n,
            out=cfg.out,
            seed=cfg.seed,
            params=params,
            shard=shard,
            chunk_size=cfg.chunk_size,
            shard_size=cfg.shard_size,
            workers=cfg.workers,
            progress=advance,
        )
    seconds = time.perf_counter() - start
    written = result["written"]
    rate = f" ({written / seconds:,.0f} images/s)" if written else ""
    note = "" if written == n or shard else f"; {n - written} already there"
    out.print(
        f"Wrote {written} {sim.name} images to {cfg.out} in {seconds:.2f} s{rate}{note}.", highlight=False
    )


def main() -> None:
    """Entry point of the ``gangal`` console script."""
    app()
