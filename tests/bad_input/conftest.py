"""Bad input, tried systematically: shared settings, helpers, fixtures and the count of cases.

Hypothesis feeds gangal's readers (images, emulators, GAN stages, checkpoints, parameter
CSVs, TOML configs) and its command line with empty, truncated, bit-flipped and garbage
files, wrong dtypes and shapes, NaN and infinite values, headers that declare huge
dimensions, and bad option values; and it installs simulator plugins that misbehave
(raise, return the wrong shape, dtype or type, NaN or infinite pixels).  Every case must
end in a :class:`~gangal_core.errors.GangalError` (exit status 2) whose message names the
file, option or plugin and the problem; on the command line there is no traceback, and
an output that existed before the failing command is byte-identical after it.

One file per area; the valid inputs they damage are in :mod:`.inputs`.  Every example is
counted (:data:`CASES`) and the total is printed at the end of the run, whatever the order
of the tests; when every bad-input test ran and passed, fewer than 500 cases fail the run.
``GANGAL_BAD_INPUT_SCALE=10`` multiplies every test's number of examples for a deeper run;
``GANGAL_BAD_INPUT_SHRINK=1`` shrinks a failing example to its simplest form (slow).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import traceback
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, settings
from typer.testing import CliRunner, Result

import gangal_core.plugins as plugins_module
from gangal_core import Simulator
from gangal_core.cli import app
from gangal_core.errors import GangalError
from gangal_core.plugins import RegisteredThing, build_registry

from .inputs import TOY_PARAMETERS, _emulator_parts, _rng, _stage_parts, _weights_file

#: Examples tried, by kind of bad input.
CASES: Counter[str] = Counter()
SCALE = float(os.environ.get("GANGAL_BAD_INPUT_SCALE", "1"))
#: Shrinking a failure to its simplest form can take minutes; ask for it when debugging one.
SHRINK = os.environ.get("GANGAL_BAD_INPUT_SHRINK", "") not in ("", "0")


def _settings(examples: int) -> settings:
    """Deterministic, deadline-free settings (each example may build networks or run the CLI)."""
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        phases=tuple(Phase) if SHRINK else (Phase.explicit, Phase.reuse, Phase.generate, Phase.target),
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# ---- the count of cases, printed at the end of the run ------------------------------------------
HERE = Path(__file__).parent
#: Fewer cases than this, when every bad-input test ran and passed, fail the run.
MINIMUM_CASES = 500 * min(SCALE, 1)
#: This session's bad-input tests (node ids): collected, passed, and deselected.
_COLLECTED: set[str] = set()
_PASSED: set[str] = set()
_DESELECTED: set[str] = set()


def _is_bad_input(item: pytest.Item) -> bool:
    return HERE in item.path.parents


def pytest_deselected(items: list[pytest.Item]) -> None:
    _DESELECTED.update(item.nodeid for item in items if _is_bad_input(item))


def pytest_collection_finish(session: pytest.Session) -> None:
    _COLLECTED.update(item.nodeid for item in session.items if _is_bad_input(item))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        _PASSED.add(report.nodeid)


def _every_test_passed() -> bool:
    """Every test of every file here was selected and passed: only then is the total complete.

    A failing property stops at its first failing example, and -k or a file argument leaves
    tests out, so in those runs the total is shown but not checked.
    """
    files = {path.name for path in HERE.glob("test_*.py")}
    collected = {nodeid.split("::")[0].rsplit("/", 1)[-1] for nodeid in _COLLECTED}
    return not _DESELECTED and collected == files and _COLLECTED <= _PASSED


def pytest_sessionfinish(session: pytest.Session) -> None:
    if CASES and _every_test_passed() and sum(CASES.values()) < MINIMUM_CASES:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many bad inputs were tried, by kind (shown even when every test passes)."""
    if not CASES:  # no bad-input test ran
        return
    total = sum(CASES.values())
    report = terminalreporter
    report.section("bad input")
    report.write_line(f"bad input: {total} cases tried, in {len(CASES)} kinds")
    for kind, count in sorted(CASES.items()):
        report.write_line(f"  {count:5d}  {kind}")
    if not _every_test_passed():
        report.write_line("(not every bad-input test ran and passed, so the total is not checked)")
    elif total < MINIMUM_CASES:
        report.write_line(f"FAILED: fewer than {MINIMUM_CASES:g} cases were tried", red=True)


# ---- shared helpers ----------------------------------------------------------------------------
def _scratch(tmp_path: Path) -> Path:
    """A fresh folder for one example (``tmp_path`` is shared by all examples of a test)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def _expect_user_error(action: Callable[[], object], *names: object) -> GangalError:
    """``action()`` must raise a GangalError with exit code 2 whose message holds each of ``names``."""
    try:
        action()
    except GangalError as exc:
        message = str(exc)
        assert exc.exit_code == 2, (exc.exit_code, message)
        for name in names:
            assert str(name) in message, f"{str(name)!r} not in the message {message!r}"
        return exc
    except Exception as exc:
        raise AssertionError(f"bad input escaped as {type(exc).__name__}: {exc}") from exc
    raise AssertionError(f"bad input was accepted (expected an error naming {names})")


def _user_error_or(action: Callable[[], Any], *names: object) -> tuple[Any, GangalError | None]:
    """Run ``action``: a GangalError must name ``names``; any other exception fails the test."""
    try:
        return action(), None
    except GangalError as exc:
        message = str(exc)
        assert exc.exit_code == 2, (exc.exit_code, message)
        for name in names:
            assert str(name) in message, f"{str(name)!r} not in the message {message!r}"
        return None, exc
    except Exception as exc:
        raise AssertionError(f"bad input escaped as {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def _low_memory(limit_mb: float = 64) -> Iterator[None]:
    """Fail if the block allocates more than ``limit_mb`` through Python or numpy."""
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < limit_mb * 2**20, f"tried to allocate {peak / 2**20:.0f} MiB for a file of a few bytes"


class _TooSlow(BaseException):
    """Raised by :func:`_deadline`: a BaseException, so that neither gangal nor click catch it."""


@contextlib.contextmanager
def _deadline(cpu_seconds: float) -> Iterator[None]:
    """Interrupt the block after ``cpu_seconds`` of CPU time, all threads counted.

    SIGPROF, so pytest-timeout keeps SIGALRM; the main thread gets it even while it waits on a
    worker thread.
    """

    def expire(signum: int, frame: object) -> None:
        raise _TooSlow(f"still busy after {cpu_seconds} s of CPU time")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@contextlib.contextmanager
def _limits(*, file_mib: int, extra_gib: float) -> Iterator[None]:
    """For the block, no file may grow past ``file_mib`` and the address space by ``extra_gib``.

    A command that would write terabytes or allocate them then fails at once (EFBIG, MemoryError)
    instead of filling the disk or the memory of the machine running the tests.
    """
    import resource

    with open("/proc/self/status") as fh:
        size = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    limits = {
        resource.RLIMIT_FSIZE: file_mib * 2**20,
        resource.RLIMIT_AS: size + int(extra_gib * 2**30),
    }
    saved = {kind: resource.getrlimit(kind) for kind in limits}
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    try:
        for kind, cap in limits.items():
            _, hard = saved[kind]
            resource.setrlimit(kind, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
        yield
    finally:
        for kind, limit in saved.items():
            resource.setrlimit(kind, limit)
        signal.signal(signal.SIGXFSZ, previous)


def _cli(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


_BOX = re.compile(r"[\s│╭╮╰╯─]+")


def _text(result: Result) -> str:
    """The output on one line, without the frame click draws around usage errors."""
    return _BOX.sub(" ", result.output).strip()


def _assert_cli_user_error(result: Result, *parts: object) -> str:
    """Exit status 2, no traceback, and an output holding each of ``parts``."""
    text = _text(result)
    exc = result.exception
    if result.exit_code != 2 or not isinstance(exc, SystemExit):
        if exc is None or isinstance(exc, SystemExit):
            raise AssertionError(f"exit status {result.exit_code}, expected 2; output {text!r}")
        detail = "".join(traceback.format_exception(exc))
        raise AssertionError(
            f"exit status {result.exit_code}, expected 2: {type(exc).__name__}: {exc}\n{detail}"
        )
    assert "Traceback" not in result.output, result.output
    for part in parts:
        assert str(part) in text, f"{str(part)!r} not in the output {text!r}"
    return text


def _snapshot(*roots: Path) -> dict[Path, bytes]:
    """Every file under ``roots`` (files or folders) and its bytes."""
    files: dict[Path, bytes] = {}
    for root in roots:
        if root.is_file():
            files[root] = root.read_bytes()
        elif root.is_dir():
            files.update({p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()})
    return files


def _assert_untouched(before: dict[Path, bytes], *roots: Path) -> None:
    """Every file of ``before`` is still there, byte-identical, and no temporary file is left."""
    for path, data in before.items():
        assert path.is_file(), f"{path} was removed"
        assert path.read_bytes() == data, f"{path} was changed"
    for root in roots:
        folder = root if root.is_dir() else root.parent
        assert not list(folder.rglob("*.part")), f"temporary files left in {folder}"


def _sentinel(path: Path, seed: int = 0) -> Path:
    """An output that exists before a command runs: random bytes that must survive a failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(64))
    return path


# ---- simulators that behave and one that does not, put where `gangal` finds them ----------------
class Toy(Simulator):
    """A flat level ``a`` plus noise of scale ``b`` on 8x8 pixels: quick to simulate and to emulate."""

    name = "toy8"
    image_shape = (1, 8, 8)
    parameters = TOY_PARAMETERS
    reference_truth = {"a": (0.5, 0.1), "b": (0.5, 0.1)}  # noqa: RUF012

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(len(params), 1, 8, 8, generator=generator)
        return params[:, 0, None, None, None] + params[:, 1, None, None, None] * noise


class Fault:
    """What a misbehaving simulator does instead of returning its images, and the words that say so."""

    def __init__(self, kind: str, detail: Any) -> None:
        self.kind, self.detail = kind, detail
        self.expected: list[str] = []

    def __repr__(self) -> str:
        return f"Fault({self.kind!r}, {self.detail!r})"

    def apply(self, images: torch.Tensor) -> Any:
        kind, detail = self.kind, self.detail
        if kind == "raises":
            exc_type, message = detail
            exc = exc_type(message)
            self.expected = [exc_type.__name__, " ".join(str(exc).split())]
            raise exc
        if kind == "shape":
            shape = detail(len(images))
            self.expected = [str(shape)]
            return torch.zeros(shape)
        if kind == "dtype":
            self.expected = [str(detail).removeprefix("torch.")]
            return images.to(detail)
        if kind == "nan":
            flat = images.reshape(-1)
            for at, value in detail:
                flat[int(at * flat.numel())] = value
            self.expected = ["NaN"]
            return images
        if kind == "numpy":
            self.expected = ["ndarray"]
            return images.numpy()
        if kind == "list":
            self.expected = ["list"]
            return images.tolist()
        if kind == "none":
            self.expected = ["NoneType"]
            return None
        self.expected = ["meta"]
        return torch.empty(images.shape, device="meta")


class Flaky(Toy):
    """A simulator plugin that misbehaves from its ``from_call``-th call on, as ``fault`` says."""

    name = "flaky"

    def __init__(self, fault: Fault | None = None, from_call: int = 1) -> None:
        self.fault, self.from_call, self.calls = fault, from_call, 0

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> Any:
        images = super().simulate(params, generator=generator)
        self.calls += 1
        return images if self.fault is None or self.calls < self.from_call else self.fault.apply(images)


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch, builtin_entry_points, tmp_path) -> Callable[[Simulator], None]:
    """`gangal` sees the built-in plugins, ``toy8``, and whatever simulator instance is put in."""
    registry = build_registry(entry_points=builtin_entry_points)
    monkeypatch.setattr(plugins_module, "_registry", registry)
    monkeypatch.chdir(tmp_path)  # whatever a command writes by a relative default lands here

    def put(sim: Simulator) -> None:
        registry.things["simulator"][sim.name] = RegisteredThing(
            sim.name, "simulator", sim, "gangal_flaky", "gangal-flaky", "0.1"
        )

    put(Toy())
    return put


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """Valid inputs for the commands: true images, a parameter CSV, an emulator, a chain model."""
    folder = tmp_path_factory.mktemp("good")
    with torch.random.fork_rng():
        torch.manual_seed(1)
        images = Toy().simulate(
            Toy.sample_uniform(6, generator=torch.Generator().manual_seed(1)),
            generator=torch.Generator().manual_seed(2),
        )
    np.save(folder / "true.npy", images.numpy())
    (folder / "params.csv").write_text("a,b\n0.5,0.5\n0.2,0.3\n")
    (folder / "emulator").mkdir()
    (folder / "emulator" / "emulator.safetensors").write_bytes(_weights_file(*_emulator_parts()))
    (folder / "model" / "dcgan").mkdir(parents=True)
    (folder / "model" / "dcgan" / "generator-ema.safetensors").write_bytes(_weights_file(*_stage_parts()))
    np.save(folder / "generated.npy", _rng().random((4, 1, 16, 16)).astype(np.float32))
    return {
        "true": folder / "true.npy",
        "params": folder / "params.csv",
        "emulator": folder / "emulator",
        "model": folder / "model",
        "generated": folder / "generated.npy",
    }
