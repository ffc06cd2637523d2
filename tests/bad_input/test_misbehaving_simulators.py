"""Simulator plugins that misbehave: simulate, pretrain and calibrate stop and name the simulator."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import Result

from .conftest import (
    CASES,
    Fault,
    Flaky,
    _assert_cli_user_error,
    _assert_untouched,
    _cli,
    _deadline,
    _scratch,
    _sentinel,
    _settings,
    _snapshot,
)

TRICKY_MESSAGES = ["[/]", "[bold]boom[/bold]", "[link=file:///etc]x", ":smile:", "100%", "{}", "\\", "é"]
EXCEPTIONS = (
    RuntimeError,
    ValueError,
    KeyError,
    ZeroDivisionError,
    TypeError,
    OSError,
    AssertionError,
    IndexError,
)


WRONG_SHAPES = {
    "one more image": lambda b: (b + 1, 1, 8, 8),
    "one image fewer": lambda b: (b - 1, 1, 8, 8),
    "no channel axis": lambda b: (b, 8, 8),
    "extra axis": lambda b: (b, 1, 1, 8, 8),
    "three channels": lambda b: (b, 3, 8, 8),
    "7x9 pixels": lambda b: (b, 1, 7, 9),
    "flat": lambda b: (b, 64),
}


class _Named:
    """A callable with a readable repr, for falsifying examples."""

    def __init__(self, name: str, fn: Callable) -> None:
        self.name, self.fn = name, fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __repr__(self) -> str:
        return self.name


FAULTS = st.one_of(
    st.tuples(
        st.sampled_from(EXCEPTIONS),
        st.one_of(
            st.sampled_from(TRICKY_MESSAGES),
            st.text(alphabet=st.characters(exclude_characters="│╭╮╰╯─"), max_size=20),
        ),
    ).map(lambda d: Fault("raises", d)),
    st.sampled_from(sorted(WRONG_SHAPES)).map(lambda k: Fault("shape", _Named(k, WRONG_SHAPES[k]))),
    st.sampled_from(
        [torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.uint8, torch.bool, torch.complex64]
    ).map(lambda d: Fault("dtype", d)),
    st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from([math.nan, math.inf, -math.inf])),
        min_size=1,
        max_size=3,
    ).map(lambda d: Fault("nan", d)),
    st.sampled_from(["numpy", "list", "none", "meta"]).map(lambda k: Fault(k, None)),
)


def _assert_names_the_simulator(result: Result, flaky: Flaky) -> None:
    text = _assert_cli_user_error(result, "'flaky'", *flaky.fault.expected)
    assert "simulator" in text.lower(), text
    assert flaky.calls >= flaky.from_call, "the fault never happened"


@_settings(25)
@given(fault=FAULTS, from_call=st.integers(1, 2), to_npy=st.booleans())
def test_cli_simulate_with_a_misbehaving_simulator(tmp_path, install, fault, from_call, to_npy) -> None:
    CASES["misbehaving simulator: simulate"] += 1
    flaky = Flaky(fault, from_call)
    install(flaky)
    folder = _scratch(tmp_path)
    out = folder / ("images.npy" if to_npy else "images")
    sentinels = (
        [_sentinel(out), _sentinel(out.with_suffix(".parameters.npy")), _sentinel(out.with_suffix(".json"))]
        if to_npy
        else []
    )
    before = _snapshot(*sentinels)
    overwrite = ["--overwrite"] if to_npy else []  # else refused up front: it is not gangal's
    result = _cli(
        "simulate", "-s", "flaky", "-n", 16, "--chunk-size", 8, "--shard-size", 8, "--workers", 1, "-o", out,
        *overwrite,
    )  # fmt: skip
    _assert_names_the_simulator(result, flaky)
    _assert_untouched(before, out)


@_settings(12)
@given(fault=FAULTS, from_call=st.integers(1, 2))
def test_cli_pretrain_with_a_misbehaving_simulator(tmp_path, install, fault, from_call) -> None:
    CASES["misbehaving simulator: pretrain"] += 1
    flaky = Flaky(fault, from_call)
    install(flaky)
    out = _scratch(tmp_path) / "emulator"
    before = _snapshot(_sentinel(out / "notes.txt"))
    with _deadline(60):
        result = _cli(
            "pretrain", "-s", "flaky", "-o", out, "--iterations", 2, "--batch-size", 4, "--no-progress"
        )
    _assert_names_the_simulator(result, flaky)
    _assert_untouched(before, out)


@_settings(15)
@given(
    fault=FAULTS,
    path=st.sampled_from(["true set from the truth", "pretraining first", "given emulator"]),
    from_call=st.integers(1, 2),
)
def test_cli_calibrate_with_a_misbehaving_simulator(tmp_path, install, good, fault, path, from_call) -> None:
    CASES["misbehaving simulator: calibrate"] += 1
    flaky = Flaky(fault, from_call if path == "pretraining first" else 1)
    install(flaky)
    out = _scratch(tmp_path) / "run"
    args: list[object] = [
        "calibrate",
        "-s",
        "flaky",
        "-o",
        out,
        "--iterations",
        2,
        "--pretrain-iterations",
        2,
        "--batch-size",
        4,
        "--n-samples",
        4,
        "--no-progress",
    ]
    if path == "true set from the truth":
        args += ["--n-true", 8]
    else:
        args += ["--true-data", good["true"]]
    if path == "given emulator":
        args += ["--emulator", good["emulator"]]
    before = _snapshot(_sentinel(out / "notes.txt"))
    with _deadline(60):
        result = _cli(*args)
    _assert_names_the_simulator(result, flaky)
    _assert_untouched(before, out)
