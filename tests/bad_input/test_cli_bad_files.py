"""The command line: bad files given to options are refused by name, and outputs are left untouched."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from hypothesis import assume, example, given
from hypothesis import strategies as st

from gangal_core.simulation.engine import read_parameter_csv

from .conftest import (
    CASES,
    Flaky,
    Toy,
    _assert_cli_user_error,
    _assert_untouched,
    _cli,
    _scratch,
    _sentinel,
    _settings,
    _snapshot,
    _user_error_or,
)
from .inputs import (
    ARRAY_FORMATS,
    CELLS,
    COMMAND_MODELS,
    EMULATOR_FIELDS,
    IMAGE_FORMATS,
    STAGE_FIELDS,
    _damaged_weights,
    _emulator_parts,
    _is_number,
    _required,
    _rng,
    _stage_parts,
    _valid_images,
    _write_array,
    weight_damage,
)

#: Names of bad inputs: the message must show each exactly as it is (rich markup, emoji codes...).
FILE_NAMES = st.sampled_from(
    ["input", "with space", "ünïcödé", "[bold]input", "[red]in[/red]put", "x:smile:y", "a[1]", "[link=x]in"]
)  # "[red]in[/red]put" is a file "red]put" in a folder "[red]in["
MUST_FAIL_IMAGE_DAMAGE = st.sampled_from(["garbage", "empty", "NaN", "wrong shape", "wrong dtype"])


def _bad_images(where: Path, fmt: str, damage: str, garbage: bytes, stem: str) -> Path:
    """A file (or folder) of format ``fmt`` that holds no usable (N, 1, 8, 8) images."""
    where = where / stem
    where.mkdir(parents=True)
    if damage in ("NaN", "wrong shape", "wrong dtype") and fmt in ARRAY_FORMATS:
        shape = (3, 2, 8, 8) if damage == "wrong shape" else (3, 1, 8, 8)
        images = _rng().normal(size=shape).astype(np.float32)
        if damage == "NaN":
            images[1, 0, 2, 3] = np.nan
        if damage == "wrong dtype":
            images = images > 0 if not fmt.startswith(".fits") else images.astype(np.float32) + np.inf
        return _write_array(where / f"images{fmt}", images)
    root, target = _valid_images(where, fmt)
    target.write_bytes(garbage if damage != "empty" else b"")
    return root


@_settings(25)
@given(
    fmt=st.sampled_from(IMAGE_FORMATS),
    damage=MUST_FAIL_IMAGE_DAMAGE,
    garbage=st.binary(max_size=100),
    stem=FILE_NAMES,
)
def test_cli_calibrate_bad_true_data(tmp_path, install, fmt, damage, garbage, stem) -> None:
    CASES["CLI --true-data"] += 1
    folder = _scratch(tmp_path)
    bad = _bad_images(folder, fmt, damage, garbage, stem)
    out = folder / "run"
    before = _snapshot(_sentinel(out / "notes.txt"), bad)
    result = _cli(
        "calibrate",
        "-s",
        "toy8",
        "--true-data",
        bad,
        "-o",
        out,
        "--iterations",
        1,
        "--pretrain-iterations",
        1,
        "--batch-size",
        2,
        "--n-samples",
        2,
        "--no-progress",
    )
    _assert_cli_user_error(result, bad, "--true-data")
    _assert_untouched(before, out)


@_settings(25)
@given(
    fmt=st.sampled_from(IMAGE_FORMATS),
    damage=MUST_FAIL_IMAGE_DAMAGE,
    garbage=st.binary(max_size=100),
    stem=FILE_NAMES,
)
def test_cli_evaluate_bad_real_images(tmp_path, install, good, fmt, damage, garbage, stem) -> None:
    folder = _scratch(tmp_path)
    bad = _bad_images(folder, fmt, damage, garbage, stem)
    if damage == "wrong shape":  # evaluate takes any shape; a shape unlike --generated's is the error
        assume(fmt in ARRAY_FORMATS)
    CASES["CLI --real"] += 1
    out = folder / "evaluation"
    before = _snapshot(_sentinel(out / "histograms.png"), bad)
    result = _cli(
        "evaluate", "--real", bad, "--generated", good["generated"], "-o", out, "-n", 4, "--no-progress"
    )
    _assert_cli_user_error(result, bad if damage != "wrong shape" else "--real")
    _assert_untouched(before, out)


BAD_CELLS = CELLS.filter(lambda c: not _is_number(c))


@_settings(25)
@given(
    command=st.sampled_from(["simulate", "emulate", "calibrate"]),
    cell=BAD_CELLS,
    at=st.tuples(st.integers(0, 1), st.integers(0, 1)),
    garbage=st.one_of(st.none(), st.binary(max_size=60)),
    stem=FILE_NAMES,
)
def test_cli_bad_parameter_csv(tmp_path, install, good, command, cell, at, garbage, stem) -> None:
    folder = _scratch(tmp_path)
    bad = folder / f"{stem}.csv"
    bad.parent.mkdir(parents=True, exist_ok=True)
    if garbage is None:
        table = [["a", "b"], ["0.5", "0.5"], ["0.2", "0.3"]]
        table[1 + at[0]][at[1]] = cell
        with open(bad, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(table)
    else:
        bad.write_bytes(garbage)
        assume(_user_error_or(lambda: read_parameter_csv(bad, Toy()))[1] is not None)  # really bad
    CASES["CLI parameter CSV"] += 1
    if command == "simulate":
        out, option = folder / "images.npy", "--params"
        sentinels = [
            _sentinel(out),
            _sentinel(out.with_suffix(".parameters.npy")),
            _sentinel(out.with_suffix(".json")),
        ]
        args = ["simulate", "-s", "toy8", "--params", bad, "-o", out]
    elif command == "emulate":
        out, option = folder / "images.npy", "--params"
        sentinels = [_sentinel(out)]
        args = ["emulate", "--emulator", good["emulator"], "--params", bad, "-o", out]
    else:
        out, option = folder / "run", "--true-params"
        sentinels = [_sentinel(out / "samples.csv")]
        args = [
            "calibrate",
            "-s",
            "toy8",
            "--true-data",
            good["true"],
            "--true-params",
            bad,
            "-o",
            out,
            "--iterations",
            1,
            "--pretrain-iterations",
            1,
            "--batch-size",
            2,
            "--n-samples",
            2,
            "--no-progress",
        ]
    before = _snapshot(*sentinels, bad)
    _assert_cli_user_error(_cli(*args), bad, option)
    _assert_untouched(before, out)


@_settings(25)
@given(
    damage=weight_damage(_emulator_parts, EMULATOR_FIELDS),
    stem=FILE_NAMES,
    command=st.sampled_from(["emulate", "calibrate"]),
)
def test_cli_bad_emulator_file(tmp_path, install, good, damage, stem, command) -> None:
    raw, must_fail = _damaged_weights(_emulator_parts, damage)
    assume(must_fail)
    CASES["CLI --emulator"] += 1
    folder = _scratch(tmp_path)
    bad = folder / stem / "emulator.safetensors"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(raw)
    install(Flaky())
    if command == "emulate":
        out = folder / "images.npy"
        args = ["emulate", "--emulator", bad.parent, "--params", good["params"], "-o", out]
    else:
        out = folder / "run" / "notes.txt"
        args = [
            "calibrate",
            "-s",
            "flaky",
            "--emulator",
            bad.parent,
            "--true-data",
            good["true"],
            "-o",
            out.parent,
            "--iterations",
            1,
            "--batch-size",
            2,
            "--n-samples",
            2,
            "--no-progress",
        ]
    before = _snapshot(_sentinel(out), bad)
    _assert_cli_user_error(_cli(*args), bad)
    _assert_untouched(before, out)


@_settings(25)
@given(damage=weight_damage(_stage_parts, STAGE_FIELDS), stem=FILE_NAMES)
def test_cli_sample_bad_model(tmp_path, install, damage, stem) -> None:
    raw, must_fail = _damaged_weights(_stage_parts, damage)
    assume(must_fail)
    CASES["CLI --model"] += 1
    folder = _scratch(tmp_path)
    bad = folder / stem / "dcgan" / "generator-ema.safetensors"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(raw)
    out = folder / "samples"
    before = _snapshot(_sentinel(out / "contact_sheet.png"), bad)
    result = _cli("sample", "--chain", "dcgan", "--model", bad.parent.parent, "-n", 2, "-o", out, "--no-png")
    _assert_cli_user_error(result, bad)
    _assert_untouched(before, out)


ALL_FIELDS = sorted({field for model in COMMAND_MODELS.values() for field in model.model_fields})
BAD_CONFIG_LINES = st.one_of(
    st.sampled_from(
        [
            "bogus = 1",
            "seed = 'x'",
            "seed = -1",
            "seed = 1.5",
            "seed = [1, 2]",
            "seed = 1979-05-27",
            "out = {a = 1}",
            "out = 3",
            'out = "a\\u0000b"',
            "out = ",
            "seed = 1\nseed = 2",
            "= 1",
            "[[seed]]",
        ]
    ),
    st.from_regex(r"[a-z_]{1,10} = (1|'x'|true|\[\]|1979-05-27)", fullmatch=True).filter(
        lambda line: line.split("=")[0].strip() not in ALL_FIELDS
    ),
)


@example(command="simulate", content='out = "a\\u0000b"', in_section=False, stem="input")
@_settings(30)
@given(
    command=st.sampled_from(sorted(COMMAND_MODELS)),
    content=st.one_of(st.binary(max_size=80), BAD_CONFIG_LINES),
    in_section=st.booleans(),
    stem=FILE_NAMES,
)
def test_cli_bad_config_file(tmp_path, install, command, content, in_section, stem) -> None:
    CASES["CLI --config"] += 1
    folder = _scratch(tmp_path)
    bad = folder / f"{stem}.toml"
    bad.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:  # the command's required options, and one bad line
        required = _required(command, folder)
        bad.write_text(
            (f"[{command}]\n" if in_section else "") + f"{required}\n{content}\n", encoding="utf-8"
        )
    before = _snapshot(bad)
    _assert_cli_user_error(_cli(command, "--config", bad), bad)
    _assert_untouched(before, bad)
