"""Checkpoints: the loader refuses damaged files, and ``--resume`` refuses another run's checkpoint."""

from __future__ import annotations

import functools
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from gangal_core.calibration.run import CHECKPOINT
from gangal_core.io.checkpoint import load_checkpoint, save_checkpoint

from .conftest import (
    CASES,
    _assert_cli_user_error,
    _assert_untouched,
    _cli,
    _deadline,
    _expect_user_error,
    _scratch,
    _settings,
    _snapshot,
    _user_error_or,
)
from .inputs import (
    JSON_SCALARS,
    JSON_VALUES,
)


# ---- damaged checkpoint files --------------------------------------------------------------------
def _checkpoint_bytes(state: Any, metadata: dict | None = None) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.safetensors"
        save_checkpoint(path, state, metadata=metadata)
        return path.read_bytes()


@functools.cache
def _valid_checkpoint() -> bytes:
    state = {
        "iteration": 3,
        "seconds": 1.5,
        "state": {"models": {"m": {"w": torch.ones(2, 3)}}, "rng": np.arange(4), "pair": (1, 2.5)},
    }
    return _checkpoint_bytes(state)


def _rebuild_safetensors(raw: bytes, edit: Callable[[dict], Any]) -> bytes:
    """``raw`` with its JSON header replaced by ``edit(header)`` (tensor data unchanged)."""
    size = int.from_bytes(raw[:8], "little")
    header = edit(json.loads(raw[8 : 8 + size]))
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + raw[8 + size :]


def _nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


@st.composite
def checkpoint_damage(draw) -> dict[str, Any]:
    how = draw(
        st.sampled_from(
            ["garbage", "truncate", "empty", "pickle", "header", "metadata", "format", "tree", "deep tree"]
        )
    )
    recipe: dict[str, Any] = {"how": how}
    if how == "garbage":
        recipe["bytes"] = draw(st.binary(max_size=200))
    elif how == "truncate":
        recipe["keep"] = draw(st.floats(0, 1, exclude_max=True))
    elif how in ("header", "metadata", "format"):
        recipe["value"] = draw(JSON_VALUES)
    elif how == "tree":
        markers = st.sampled_from(["__tensor__", "__ndarray__", "__tuple__", "__dict__", "__float__"])
        recipe["tree"] = draw(
            st.one_of(JSON_VALUES, st.dictionaries(markers, JSON_VALUES, min_size=1, max_size=1))
        )
    elif how == "deep tree":
        recipe["depth"] = draw(st.integers(1000, 100_000))
        recipe["kind"] = draw(st.sampled_from(["list", "dict"]))
    return recipe


def _damaged_checkpoint(recipe: dict[str, Any]) -> tuple[bytes, bool]:
    """The damaged checkpoint, and whether it must be refused (else: refused or read)."""
    raw, how = _valid_checkpoint(), recipe["how"]
    if how == "garbage":
        return recipe["bytes"], True
    if how == "truncate":
        return raw[: int(recipe["keep"] * len(raw))], True
    if how == "empty":
        return b"", True
    if how == "pickle":
        buf = io.BytesIO()
        torch.save({"iteration": 1, "state": {}}, buf)
        return buf.getvalue(), True
    if how == "header":
        return _rebuild_safetensors(raw, lambda h: {**h, "__metadata__": recipe["value"]}), True
    if how == "metadata":
        return _rebuild_safetensors(
            raw, lambda h: {**h, "__metadata__": {"format": "gangal-checkpoint/1", "tree": recipe["value"]}}
        ), True
    if how == "format":
        return _rebuild_safetensors(
            raw, lambda h: {**h, "__metadata__": {**h["__metadata__"], "format": recipe["value"]}}
        ), True
    tree = json.dumps(recipe["tree"]) if how == "tree" else _nested(recipe["depth"], recipe["kind"])
    return _rebuild_safetensors(
        raw, lambda h: {**h, "__metadata__": {**h["__metadata__"], "tree": tree}}
    ), how != "tree"


@_settings(60)
@given(damage=checkpoint_damage())
def test_checkpoint_loader_refuses_damaged_files(tmp_path, damage) -> None:
    CASES["checkpoint damaged"] += 1
    raw, must_fail = _damaged_checkpoint(damage)
    path = _scratch(tmp_path) / "checkpoint.safetensors"
    path.write_bytes(raw)
    with _deadline(20):
        if must_fail:
            _expect_user_error(lambda: load_checkpoint(path), path)
        else:
            _user_error_or(lambda: load_checkpoint(path), path)


# ---- resuming from a checkpoint that is not this run's -------------------------------------------
TREE = st.recursive(
    st.one_of(JSON_SCALARS, st.builds(torch.zeros, st.integers(0, 3)), st.builds(np.ones, st.integers(0, 3))),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["models", "optimisers", "emulator", "generator", "extra", "history", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)


@_settings(10)
@given(
    state=st.one_of(TREE.map(lambda tree: ("a state tree", tree)), st.just(("a damaged file", None))),
    iteration=st.one_of(st.integers(-5, 5), st.just(10**30), st.text(max_size=3), st.none()),
    damage=checkpoint_damage(),
)
def test_cli_resume_from_a_foreign_checkpoint(tmp_path, install, state, iteration, damage) -> None:
    out = _scratch(tmp_path) / "emulator"
    out.mkdir()
    checkpoint = out / CHECKPOINT
    kind, tree = state
    if kind == "a damaged file":
        raw, must_fail = _damaged_checkpoint(damage)
        assume(must_fail)
        checkpoint.write_bytes(raw)
    else:  # a sound checkpoint file, of some other run or program
        save_checkpoint(checkpoint, {"iteration": iteration, "seconds": 0.0, "state": tree})
    CASES["CLI --resume foreign checkpoint"] += 1
    before = _snapshot(out)
    with _deadline(60):
        result = _cli(
            "pretrain",
            "-s",
            "toy8",
            "-o",
            out,
            "--resume",
            "--iterations",
            2,
            "--batch-size",
            4,
            "--no-progress",
        )
    _assert_cli_user_error(result, checkpoint)
    _assert_untouched(before, out)
