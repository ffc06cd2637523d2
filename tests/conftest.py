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
