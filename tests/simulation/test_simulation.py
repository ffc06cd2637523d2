"""Tests for gangal_core.simulation and `gangal simulate`: outputs, reproducibility, resuming, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
from gangal_circle import CircleSimulator
from gangal_polynomial import PolynomialSimulator
from safetensors.numpy import load_file
from typer.testing import CliRunner, Result

import gangal_core.plugins as plugins_module
from gangal_core import Parameter, Simulator
from gangal_core.cli import app
from gangal_core.errors import ConfigError, PluginError
from gangal_core.io.images import read_images, read_simulation_folder
from gangal_core.plugins import RegisteredThing, build_registry
from gangal_core.simulation.engine import chunk_generator, read_parameter_csv, run_simulation

CHUNK = 64


# ---- helpers ---------------------------------------------------------------------------------
def _expected(
    sim: Simulator, n: int, *, seed: int, chunk_size: int = CHUNK, params: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """What a run must write: chunk k draws its parameters, then its images, from chunk_generator(seed, k)."""
    images, rows = [], []
    for k, start in enumerate(range(0, n, chunk_size)):
        stop = min(n, start + chunk_size)
        generator = chunk_generator(seed, k)
        if params is None:
            p = sim.sample_uniform(stop - start, generator=generator)
        else:
            p = torch.from_numpy(params[start:stop])
        images.append(sim.simulate(p, generator=generator))
        rows.append(p)
    return torch.cat(images).numpy(), torch.cat(rows).numpy()


def _cli(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def _text(result: Result) -> str:
    return " ".join(result.output.split())


def _assert_user_error(result: Result, *parts: str) -> None:
    """Exit status 2, a one-paragraph message holding ``parts``, and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    text = _text(result)
    assert "error:" in text
    for part in parts:
        assert part in text, (part, text)


def _shards(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("shard-*.safetensors"))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.part"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


class Toy(Simulator):
    """Tiny and stochastic: a flat level ``a`` plus noise of standard deviation ``b``."""

    name = "toy"
    image_shape = (1, 4, 4)
    parameters = (Parameter("a", 0.0, 1.0), Parameter("b", 0.1, 1.0))

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def _count(self) -> int:
        with self._lock:
            self.calls += 1
            return self.calls

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(len(params), 1, 4, 4, generator=generator)
        return params[:, 0, None, None, None] + params[:, 1, None, None, None] * noise


class Raises(Toy):
    name = "raises"

    def simulate(self, params, *, generator):
        if self._count() >= 2:  # the second chunk fails, after the first was written
            raise RuntimeError("Geant4 lost its geometry")
        return super().simulate(params, generator=generator)


class MakesNaN(Toy):
    name = "nan"

    def simulate(self, params, *, generator):
        images = super().simulate(params, generator=generator)
        if self._count() >= 2:
            images[0, 0, 1, 1] = float("nan")
        return images


class WrongShape(Toy):
    name = "wrong-shape"

    def simulate(self, params, *, generator):
        images = super().simulate(params, generator=generator)
        return images[:, :, :3] if self._count() >= 2 else images


class WrongDtype(Toy):
    name = "wrong-dtype"

    def simulate(self, params, *, generator):
        images = super().simulate(params, generator=generator)
        return images.double() if self._count() >= 2 else images


BROKEN = {
    Raises: "raised RuntimeError on chunk 1 (images 16-31): Geant4 lost its geometry",
    MakesNaN: "returned 1 NaN or infinite pixel values",
    WrongShape: "returned torch.float32 (16, 1, 3, 4), expected float32 (16, 1, 4, 4)",
    WrongDtype: "returned torch.float64 (16, 1, 4, 4), expected float32 (16, 1, 4, 4)",
}


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch, builtin_entry_points):
    """Make `gangal` see the built-in simulators plus the given simulator instances."""

    def add(*simulators: Simulator) -> None:
        registry = build_registry(entry_points=builtin_entry_points)
        for sim in simulators:
            registry.things["simulator"][sim.name] = RegisteredThing(
                sim.name, "simulator", sim, "tests", "gangal-tests", "0"
            )
        monkeypatch.setattr(plugins_module, "_registry", registry)

    return add


# ---- outputs -------------------------------------------------------------------------------
def test_npy_output_holds_the_chunk_generators_images(tmp_path: Path) -> None:
    sim = CircleSimulator()
    result = run_simulation(sim, n=150, out=tmp_path / "rings.npy", seed=3, chunk_size=CHUNK, workers=2)
    images = np.load(tmp_path / "rings.npy")
    params = np.load(tmp_path / "rings.parameters.npy")
    assert images.shape == (150, 1, 28, 28) and images.dtype == np.float32
    assert params.shape == (150, 5) and params.dtype == np.float32
    expected_images, expected_params = _expected(sim, 150, seed=3)
    np.testing.assert_array_equal(params, expected_params)
    np.testing.assert_array_equal(images, expected_images)
    meta = json.loads((tmp_path / "rings.json").read_text())
    assert meta["simulator"] == "circle" and meta["seed"] == 3 and meta["n"] == 150
    assert meta["chunk_size"] == CHUNK and meta["parameter_names"] == ["x0", "y0", "r", "n", "b"]
    assert meta["image_shape"] == [1, 28, 28]
    assert (meta["images"], meta["parameters_file"]) == ("rings.npy", "rings.parameters.npy")
    assert result["written"] == 150 and result["n"] == 150
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rings.json", "rings.npy", "rings.parameters.npy"]


def test_folder_output_is_readable_and_equals_npy_output(tmp_path: Path) -> None:
    sim = CircleSimulator()
    run_simulation(
        sim, n=300, out=tmp_path / "run", seed=5, chunk_size=CHUNK, shard_size=2 * CHUNK, workers=2
    )
    assert _shards(tmp_path / "run") == [f"shard-0000{i}.safetensors" for i in range(3)]
    images, params, names = read_simulation_folder(tmp_path / "run")
    assert names == ["x0", "y0", "r", "n", "b"]
    assert images.shape == (300, 1, 28, 28) and params.shape == (300, 5)
    expected_images, expected_params = _expected(sim, 300, seed=5)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(params, expected_params)
    np.testing.assert_array_equal(read_images(tmp_path / "run"), expected_images)
    shard = load_file(str(tmp_path / "run" / "shard-00002.safetensors"))
    np.testing.assert_array_equal(shard["images"], expected_images[256:])
    np.testing.assert_array_equal(shard["parameters"], expected_params[256:])
    run_simulation(sim, n=300, out=tmp_path / "same.npy", seed=5, chunk_size=CHUNK, workers=1)
    np.testing.assert_array_equal(np.load(tmp_path / "same.npy"), images)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["format"] == "gangal-simulation" and manifest["seed"] == 5
    assert [s["count"] for s in manifest["shards"]] == [128, 128, 44]


def test_explicit_params_are_simulated_in_order(tmp_path: Path) -> None:
    sim = PolynomialSimulator()
    params = sim.sample_uniform(70, generator=torch.Generator().manual_seed(1)).numpy()
    run_simulation(sim, n=70, out=tmp_path / "p.npy", params=params, chunk_size=32, workers=2)
    np.testing.assert_array_equal(np.load(tmp_path / "p.parameters.npy"), params)
    expected, _ = _expected(sim, 70, seed=0, chunk_size=32, params=params)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)


def test_progress_reports_every_image(tmp_path: Path) -> None:
    seen: list[int] = []
    run_simulation(Toy(), n=100, out=tmp_path / "t.npy", chunk_size=16, progress=seen.append)
    assert sum(seen) == 100 and len(seen) == 7


def test_progress_lines_when_standard_error_is_no_terminal(tmp_path: Path) -> None:
    result = _cli("simulate", "-s", "circle", "-n", 40, "--chunk-size", 16, "-o", tmp_path / "c.npy")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("[gangal] ")]
    assert lines[0].startswith("[gangal] simulate circle: 0/40 (0%)")
    assert lines[-1].startswith("[gangal] simulate circle: 40/40 (100%) | ") and "img/s" in lines[-1]
    quiet = _cli("simulate", "-s", "circle", "-n", 40, "--no-progress", "-o", tmp_path / "q.npy")
    assert quiet.exit_code == 0 and "[gangal]" not in quiet.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 0}, "need n >= 1"),
        ({"chunk_size": 48, "shard_size": 64}, "shard_size a multiple of chunk_size"),
        ({"params": np.zeros((3, 2), np.float32)}, "params must have shape (10, 2), found (3, 2)"),
        ({"shard": (0, 2), "out": "t.npy"}, "--shard needs a folder --out"),
        ({"out": "missing/t.npy"}, "does not exist"),
    ],
    ids=["n", "sizes", "params", "shard-npy", "parent"],
)
def test_invalid_run_options(tmp_path: Path, options: dict, message: str) -> None:
    arguments = {"n": 10, "out": "out", "chunk_size": 16, "shard_size": 32, **options}
    arguments["out"] = tmp_path / arguments["out"]
    with pytest.raises(ConfigError) as info:
        run_simulation(Toy(), **arguments)
    assert message in str(info.value)


# ---- reproducibility -----------------------------------------------------------------------
def test_workers_do_not_change_the_files(tmp_path: Path) -> None:
    for workers in (1, 2):
        run_simulation(
            CircleSimulator(),
            n=200,
            out=tmp_path / f"w{workers}",
            seed=2,
            chunk_size=32,
            shard_size=64,
            workers=workers,
        )
        run_simulation(
            CircleSimulator(), n=200, out=tmp_path / f"w{workers}.npy", seed=2, chunk_size=32, workers=workers
        )
    assert _files(tmp_path / "w1") == _files(tmp_path / "w2")
    assert (tmp_path / "w1.npy").read_bytes() == (tmp_path / "w2.npy").read_bytes()
    assert (tmp_path / "w1.parameters.npy").read_bytes() == (tmp_path / "w2.parameters.npy").read_bytes()


def test_different_seed_different_images(tmp_path: Path) -> None:
    for seed in (0, 1):
        run_simulation(Toy(), n=40, out=tmp_path / f"s{seed}.npy", seed=seed, chunk_size=16)
    assert not np.array_equal(np.load(tmp_path / "s0.npy"), np.load(tmp_path / "s1.npy"))
    assert not np.array_equal(
        np.load(tmp_path / "s0.parameters.npy"), np.load(tmp_path / "s1.parameters.npy")
    )


def test_shard_jobs_into_one_folder_equal_one_run(tmp_path: Path) -> None:
    options = {"n": 150, "seed": 9, "chunk_size": 16, "shard_size": 32}
    run_simulation(CircleSimulator(), out=tmp_path / "one", **options)
    result = run_simulation(CircleSimulator(), out=tmp_path / "jobs", shard=(0, 3), **options)
    assert _shards(tmp_path / "jobs") == ["shard-00000.safetensors", "shard-00003.safetensors"]
    assert result["written"] == 64
    for i in (1, 2):
        run_simulation(CircleSimulator(), out=tmp_path / "jobs", shard=(i, 3), **options)
    assert len(_shards(tmp_path / "one")) == 5
    assert _files(tmp_path / "jobs") == _files(tmp_path / "one")  # shards and manifest, byte for byte


def test_shard_jobs_through_the_cli(tmp_path: Path) -> None:
    common = ["simulate", "-s", "circle", "-n", 100, "--seed", 4, "--chunk-size", 16, "--shard-size", 32]
    for i in range(3):
        result = _cli(*common, "-o", tmp_path / "jobs", "--shard", f"{i}/3")
        assert result.exit_code == 0, result.output
    assert _cli(*common, "-o", tmp_path / "one").exit_code == 0
    assert _files(tmp_path / "jobs") == _files(tmp_path / "one")
    _assert_user_error(_cli(*common, "-o", tmp_path / "x", "--shard", "3/3"), "--shard 3/3")
    _assert_user_error(_cli(*common, "-o", tmp_path / "x", "--shard", "half"), "i/N")


# ---- resuming ------------------------------------------------------------------------------
def test_resume_rewrites_only_the_missing_shard(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    options = {"n": 200, "seed": 1, "chunk_size": 32, "shard_size": 64, "workers": 2}
    run_simulation(CircleSimulator(), out=folder, **options)
    before = _files(folder)
    stats = {name: (folder / name).stat() for name in _shards(folder)}
    (folder / "shard-00001.safetensors").unlink()
    result = run_simulation(CircleSimulator(), out=folder, **options)
    assert result["written"] == 64 and result["skipped"] == 136
    assert result["files"] == [str(folder / "shard-00001.safetensors")]
    for name, stat in stats.items():
        if name != "shard-00001.safetensors":
            now = (folder / name).stat()
            assert (now.st_mtime_ns, now.st_ino) == (stat.st_mtime_ns, stat.st_ino), name
    assert _files(folder) == before
    again = run_simulation(CircleSimulator(), out=folder, **options)
    assert again["written"] == 0 and again["skipped"] == 200


def test_another_run_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    common = [*"simulate -s circle -n 40 --chunk-size 16 --shard-size 16".split(), "-o", tmp_path / "run"]
    assert _cli(*common).exit_code == 0
    before = _files(tmp_path / "run")
    _assert_user_error(
        _cli(*common, "--seed", 1), str(tmp_path / "run"), "different simulation run", "seed: 0 there, 1 now"
    )
    _assert_user_error(_cli(*common[:4], 41, *common[5:]), "n: 40 there, 41 now")
    assert _files(tmp_path / "run") == before


def test_a_folder_holding_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no gangal simulation"):
        run_simulation(Toy(), n=10, out=tmp_path / "run", chunk_size=16, shard_size=16)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["notes.txt"]


# ---- a crash mid-run -------------------------------------------------------------------------
class CrashesOnThirdChunk(CircleSimulator):
    """The circle simulator, until its third call: then the process "dies"."""

    def __init__(self) -> None:
        self.calls = 0

    def simulate(self, params, *, generator):
        self.calls += 1
        if self.calls >= 3:
            raise MemoryError("killed")
        return super().simulate(params, generator=generator)


def test_crash_keeps_finished_shards_only_and_resume_finishes(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    options = {"n": 80, "seed": 6, "chunk_size": 16, "shard_size": 16}
    with pytest.raises(PluginError, match="raised MemoryError on chunk 2"):
        run_simulation(CrashesOnThirdChunk(), out=folder, workers=1, **options)
    assert _shards(folder) == ["shard-00000.safetensors", "shard-00001.safetensors"]
    assert _leftovers(folder) == []
    expected, expected_params = _expected(CircleSimulator(), 80, seed=6, chunk_size=16)
    for i in (0, 1):
        shard = load_file(str(folder / f"shard-0000{i}.safetensors"))
        np.testing.assert_array_equal(shard["images"], expected[16 * i : 16 * (i + 1)])
        np.testing.assert_array_equal(shard["parameters"], expected_params[16 * i : 16 * (i + 1)])
    finished = {name: (folder / name).stat().st_mtime_ns for name in _shards(folder)}
    result = run_simulation(CircleSimulator(), out=folder, workers=2, **options)
    assert result["written"] == 48
    assert {name: (folder / name).stat().st_mtime_ns for name in finished} == finished
    images, params, _ = read_simulation_folder(folder)
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(params, expected_params)


def test_crash_leaves_no_npy_behind(tmp_path: Path) -> None:
    with pytest.raises(PluginError):
        run_simulation(CrashesOnThirdChunk(), n=80, out=tmp_path / "c.npy", chunk_size=16, workers=1)
    assert list(tmp_path.iterdir()) == []


# ---- misbehaving simulator plugins ---------------------------------------------------------
@pytest.mark.parametrize("suffix", ["", ".npy"], ids=["folder", "npy"])
@pytest.mark.parametrize("broken", list(BROKEN), ids=lambda c: c.name)
def test_misbehaving_simulator_is_a_plugin_error(tmp_path: Path, broken: type[Toy], suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    with pytest.raises(PluginError) as info:
        run_simulation(broken(), n=100, out=out, chunk_size=16, shard_size=64, workers=1)
    assert f"simulator '{broken.name}'" in str(info.value)
    assert BROKEN[broken] in str(info.value)
    assert _leftovers(tmp_path) == []
    if suffix:  # neither the images, nor their parameters, nor the description
        assert list(tmp_path.iterdir()) == []
    else:  # the run's description only: shard 0 was begun, never finished
        assert [p.name for p in out.iterdir()] == ["manifest.json"]


@pytest.mark.parametrize("broken", list(BROKEN), ids=lambda c: c.name)
def test_misbehaving_simulator_exits_2_without_traceback(tmp_path: Path, install, broken: type[Toy]) -> None:
    install(broken())
    options = "-n 100 --chunk-size 16 --shard-size 64 --workers 1".split()
    result = _cli("simulate", "-s", broken.name, *options, "-o", tmp_path / "out")
    _assert_user_error(result, f"simulator '{broken.name}'", BROKEN[broken])
    assert _shards(tmp_path / "out") == [] and _leftovers(tmp_path) == []


def test_registered_toy_runs_through_the_cli(tmp_path: Path, install) -> None:
    install(Toy())
    result = _cli(
        "simulate", "-s", "toy", "-n", 50, "--chunk-size", 16, "-o", tmp_path / "t.npy", "--seed", 8
    )
    assert result.exit_code == 0, result.output
    assert "Wrote 50 toy images" in _text(result)
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), _expected(Toy(), 50, seed=8, chunk_size=16)[0])


# ---- --params CSV ----------------------------------------------------------------------------
ROWS = [[18.0, 17.5, 8.0, 0.15, 0.9], [16.0, 19.0, 7.0, 0.0, 1.0], [20.5, 15.25, 9.5, 0.3, 0.75]]


def test_params_csv_maps_columns_by_name(tmp_path: Path) -> None:
    csv = tmp_path / "chosen.csv"
    csv.write_text("b, r ,x0,n,y0\n" + "".join(f"{b},{r},{x0},{n},{y0}\n" for x0, y0, r, n, b in ROWS) + "\n")
    result = _cli("simulate", "-s", "circle", "--params", csv, "-o", tmp_path / "c.npy", "--chunk-size", 2)
    assert result.exit_code == 0, result.output
    params = np.load(tmp_path / "c.parameters.npy")
    np.testing.assert_array_equal(params, np.array(ROWS, np.float32))
    expected, _ = _expected(CircleSimulator(), 3, seed=0, chunk_size=2, params=params)
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), expected)
    _assert_user_error(
        _cli("simulate", "-s", "circle", "--params", csv, "-n", 4, "-o", tmp_path / "d.npy"), "holds 3 rows"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("x0,y0,r,n\n18,18,8,0.1\n", "missing ['b']"),
        ("x0,y0,r,n,b,colour\n18,18,8,0.1,0.9,red\n", "unknown ['colour']"),
        ("x0,y0,r,n,b\n18,18,eight,0.1,0.9\n", "line 2"),
        ("x0,y0,r,n,b\n18,18,8,0.1,0.9\n18,18,8,0.1\n", "line 3: expected 5 values, found 4"),
        ("x0,y0,r,n,b\n18,18,nan,0.1,0.9\n", "finite numbers"),
        ("x0,y0,r,n,b\n", "no rows"),
        ("", "header must name the parameters"),
    ],
    ids=["missing", "unknown", "not-a-number", "short-row", "nan", "no-rows", "empty"],
)
def test_bad_params_csv_exits_2_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    result = _cli("simulate", "-s", "circle", "--params", csv, "-o", tmp_path / "c.npy")
    _assert_user_error(result, f"--params {csv}", message)
    assert list(tmp_path.iterdir()) == [csv]
    with pytest.raises(ConfigError, match="--params"):
        read_parameter_csv(csv, CircleSimulator())


def test_missing_params_file_exits_2(tmp_path: Path) -> None:
    result = _cli("simulate", "-s", "circle", "--params", tmp_path / "none.csv", "-o", tmp_path / "c.npy")
    _assert_user_error(result, str(tmp_path / "none.csv"))


def test_params_csv_with_byte_order_mark(tmp_path: Path) -> None:
    csv = tmp_path / "excel.csv"
    csv.write_bytes("x0,y0,r,n,b\r\n18,18,8,0.1,0.9\r\n".encode("utf-8-sig"))
    expected = np.array([[18, 18, 8, 0.1, 0.9]], np.float32)
    np.testing.assert_array_equal(read_parameter_csv(csv, CircleSimulator()), expected)


def test_params_csv_with_a_repeated_column_is_an_error(tmp_path: Path) -> None:
    csv = tmp_path / "twice.csv"
    csv.write_text("x0,y0,r,n,b,x0\n18,18,8,0.1,0.9,20\n")
    with pytest.raises(ConfigError, match="x0"):
        read_parameter_csv(csv, CircleSimulator())


# ---- --config TOML ---------------------------------------------------------------------------
def test_config_file_with_flags_overriding_it(tmp_path: Path) -> None:
    config = tmp_path / "simulate.toml"
    config.write_text(
        f'simulator = "circle"\nn = 40\nout = "{tmp_path / "c.npy"}"\nseed = 3\nchunk-size = 16\n'
    )
    result = _cli("simulate", "--config", config, "--seed", 4)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "c.json").read_text())
    assert (meta["simulator"], meta["n"], meta["seed"], meta["chunk_size"]) == ("circle", 40, 4, 16)
    expected, _ = _expected(CircleSimulator(), 40, seed=4, chunk_size=16)
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), expected)


def test_config_file_section_and_explicit_default_flag(tmp_path: Path) -> None:
    config = tmp_path / "gangal.toml"
    config.write_text(
        f'[simulate]\nsimulator = "polynomial"\nn = 20\nseed = 5\nout = "{tmp_path / "p.npy"}"\n'
        "[train]\nepochs = 3\n"
    )
    result = _cli("simulate", "--config", config, "--seed", 0, "--chunk-size", 8)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "p.json").read_text())
    assert (meta["simulator"], meta["n"], meta["seed"], meta["chunk_size"]) == ("polynomial", 20, 0, 8)


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ('simulator = "circle"\nn = 10\nout = "x.npy"\nsead = 3\n', ["unknown key(s) sead", "known keys"]),
        pytest.param('simulator = "circle"\nn = "many"\nout = "x.npy"\n', ["invalid options", "n:"]),
        pytest.param(
            'simulator = "circle"\nn = 0\nout = "x.npy"\n',
            ["n:", "greater than or equal to 1"],
        ),
        ("simulator = [unclosed\n", ["not a readable TOML file"]),
    ],
    ids=["unknown-key", "wrong-type", "too-small", "not-toml"],
)
def test_bad_config_file_exits_2(tmp_path: Path, content: str, parts: list[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    _assert_user_error(_cli("simulate", "--config", config), *parts)
    assert list(tmp_path.iterdir()) == [config]


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    _assert_user_error(_cli("simulate", "--config", tmp_path / "none.toml"), str(tmp_path / "none.toml"))


# ---- command-line errors and help ---------------------------------------------------------------
def test_n_or_params_is_required(tmp_path: Path) -> None:
    _assert_user_error(_cli("simulate", "-s", "circle", "-o", tmp_path / "c.npy"), "give -n", "--params")


def test_unknown_simulator_lists_the_available_ones(tmp_path: Path) -> None:
    result = _cli("simulate", "-s", "cirle", "-n", 5, "-o", tmp_path / "c.npy")
    _assert_user_error(result, "No simulator named 'cirle'", "Available:", "circle", "polynomial")


def test_options_are_validated(tmp_path: Path) -> None:
    _assert_user_error(_cli("simulate", "-s", "circle", "-n", 0, "-o", tmp_path / "c.npy"), "n:")
    _assert_user_error(_cli("simulate", "-n", 5, "-o", tmp_path / "c.npy"), "simulator")
    result = _cli(
        "simulate", "-s", "circle", "-n", 10, "-o", tmp_path / "c.npy", "--chunk-size", 3, "--shard-size", 4
    )
    _assert_user_error(result, "shard_size a multiple of chunk_size")


def test_version() -> None:
    result = _cli("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"gangal {version('gangal')}"


def test_simulate_help_shows_the_defaults() -> None:
    result = _cli("simulate", "--help")
    assert result.exit_code == 0
    text = _text(result)
    for part in ("--simulator", "--chunk-size", "--shard-size", "65536", "4096", "--config"):
        assert part in text, part


def test_python_dash_m_simulate(tmp_path: Path) -> None:
    options = "simulate -s circle -n 40 --seed 2 --chunk-size 16".split()
    command = [sys.executable, "-m", "gangal_core", *options, "-o", str(tmp_path / "c.npy")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Wrote 40 circle images" in done.stdout
    assert "[gangal] simulate circle: 40/40 (100%)" in done.stderr  # a pipe, as a batch job's log
    expected, _ = _expected(CircleSimulator(), 40, seed=2, chunk_size=16)
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), expected)


# ---- valid simulator outputs the writer must accept -------------------------------------------
class Transposed(Toy):
    """Returns a valid float32 (B, 1, 4, 4) tensor that is a non-contiguous view."""

    name = "transposed"

    def simulate(self, params, *, generator):
        return super().simulate(params, generator=generator).transpose(2, 3)


class NeedsFloat32(Toy):
    """Holds the caller to the contract: params are float32."""

    name = "strict"

    def simulate(self, params, *, generator):
        if params.dtype != torch.float32:
            raise TypeError(f"params must be float32 per the Simulator contract, got {params.dtype}")
        return super().simulate(params, generator=generator)


class RequiresGrad(Toy):
    """A differentiable simulator (an emulator, say) whose output carries gradients."""

    name = "differentiable"

    def simulate(self, params, *, generator):
        return super().simulate(params, generator=generator).requires_grad_()


def test_non_contiguous_images_are_written(tmp_path: Path) -> None:
    run_simulation(Transposed(), n=20, out=tmp_path / "t.npy", chunk_size=8, workers=1)
    expected, _ = _expected(Transposed(), 20, seed=0, chunk_size=8)
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), expected)


def test_float64_params_reach_the_simulator_as_float32(tmp_path: Path) -> None:
    params = np.column_stack([np.linspace(0.0, 1.0, 20), np.full(20, 0.5)])  # float64
    run_simulation(NeedsFloat32(), n=20, out=tmp_path / "s.npy", params=params, chunk_size=8, workers=1)
    np.testing.assert_array_equal(np.load(tmp_path / "s.parameters.npy"), params.astype(np.float32))


def test_output_requiring_grad_is_written(tmp_path: Path) -> None:
    run_simulation(RequiresGrad(), n=20, out=tmp_path / "g.npy", chunk_size=8, workers=1)
    expected, _ = _expected(Toy(), 20, seed=0, chunk_size=8)
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), expected)


class OnTheGPU(Toy):
    name = "on-gpu"

    def simulate(self, params, *, generator):
        return super().simulate(params, generator=generator).cuda()


@pytest.mark.gpu
def test_cuda_output_is_a_plugin_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="must return CPU tensors"):
        run_simulation(OnTheGPU(), n=20, out=tmp_path / "g.npy", chunk_size=8, workers=1)
    assert list(tmp_path.iterdir()) == []
