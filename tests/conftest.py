"""Shared fixtures: a fixed seed for every test, marker-based skips, and fake installed plugins."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import random
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

#: The sample of real Galaxy Zoo images, beside the repository in ../shared.
REAL_DATA = Path(__file__).resolve().parents[2] / "shared/data/galaxyzoo2-sample"


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Every test starts from the same random state, whatever ran before it."""
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - code under test may use the legacy global RNG
    random.seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _slow_files_first(items)
    skips = {
        "realdata": (not REAL_DATA.is_dir(), f"needs the real data sample at {REAL_DATA}"),
        "gpu": (not torch.cuda.is_available(), "needs a CUDA device"),
    }
    for item in items:
        for marker, (skip, reason) in skips.items():
            if skip and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


FakePlugin = Callable[..., list[md.EntryPoint]]


@pytest.fixture
def fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePlugin]:
    """Factory that "installs" a plugin module without pip, returning its entry points.

    ``fake_plugin(module, source, distribution="gangal-fake", version="1.2.3")`` writes
    ``module.py`` and a ``*.dist-info`` folder (METADATA and ``entry_points.txt`` with one
    entry point ``module = module`` in the group ``gangal``) under a folder put first on
    ``sys.path``.  The entry points come from ``importlib.metadata.distributions`` and so
    carry ``.dist``, as installed ones do; pass them to ``build_registry(entry_points=...)``.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def make(
        module: str,
        source: str,
        *,
        distribution: str = "gangal-fake",
        version: str = "1.2.3",
        entry_point: str | None = None,
    ) -> list[md.EntryPoint]:
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        dist_info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n", encoding="utf-8"
        )
        (dist_info / "entry_points.txt").write_text(
            f"[gangal]\n{entry_point or module} = {module}\n", encoding="utf-8"
        )
        modules.append(module)
        sys.modules.pop(module, None)
        importlib.invalidate_caches()
        found = [
            ep
            for dist in md.distributions(path=[str(site)])
            if dist.metadata["Name"] == distribution
            for ep in dist.entry_points
            if ep.group == "gangal"
        ]
        assert found and all(ep.dist is not None for ep in found)
        return found

    yield make
    for module in modules:
        sys.modules.pop(module, None)


@pytest.fixture
def builtin_entry_points() -> list[md.EntryPoint]:
    """The entry points of gangal's own distribution (the built-in simulators) only."""
    eps = [ep for ep in md.entry_points(group="gangal") if ep.dist and ep.dist.metadata["Name"] == "gangal"]
    builtins = {"circle", "polynomial", "networks", "stackgan", "galaxyzoo", "synthetic", "isophote"}
    assert {ep.name for ep in eps} == builtins
    return eps


@pytest.fixture
def interrupt_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[int | None], None]:
    """``interrupt_at(i)``: every training loop is Ctrl-C'ed before its iteration ``i``; ``None`` undoes it.

    The loop saves its checkpoint and raises ``Interrupted`` as it would for a user's Ctrl-C.
    """
    from gangal_core.training import TrainingLoop

    real_run = TrainingLoop.run

    def interrupt(iteration: int | None) -> None:
        if iteration is None:
            monkeypatch.setattr(TrainingLoop, "run", real_run)
            return

        def run(loop: TrainingLoop) -> None:
            step = loop.step
            loop.step = lambda i: (_ for _ in ()).throw(KeyboardInterrupt) if i == iteration else step(i)
            real_run(loop)

        monkeypatch.setattr(TrainingLoop, "run", run)

    return interrupt



# ---- running in parallel (pytest-xdist, ``-n auto --dist loadfile`` in pyproject.toml) ---------
#: At most this many workers: the subprocess tests (kill/resume, two processes) start their own.
MAX_WORKERS = 8


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One worker per core, at most :data:`MAX_WORKERS` (more than the cores only slows the suite)."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def pytest_configure(config: pytest.Config) -> None:
    """Each worker computes on one thread: the workers share the cores (measured on 2 cores: the
    suite took 354 s with 2 workers of one thread, 672 s with 2 workers of two, 485 s serially)."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def _slow_files_first(items: list[pytest.Item]) -> None:
    """Files holding ``slow`` tests first, the slowest first (the order within a file is kept).

    ``--dist worksteal`` gives each worker a contiguous share of the list: the first worker
    then runs the slow files, which start processes of their own on every core, one after the
    other rather than against each other, while the others take the quick tests and steal the
    first worker's last ones."""
    slow: dict[str, int] = {}
    for item in items:
        if item.get_closest_marker("slow") is not None:
            slow[item.path] = slow.get(item.path, 0) + 1
    items.sort(key=lambda item: -slow.get(item.path, 0))
