"""The command line: bad option values, huge seeds and huge counts are refused by the option's name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from .conftest import (
    CASES,
    _assert_cli_user_error,
    _assert_untouched,
    _cli,
    _deadline,
    _limits,
    _scratch,
    _sentinel,
    _settings,
    _snapshot,
)


def _base_args(command: str, good: dict[str, Path], out: Path) -> list[object]:
    """Valid, tiny options for ``command``, writing into the folder ``out`` (made here)."""
    out.mkdir(parents=True, exist_ok=True)
    tiny = ["--iterations", 1, "--batch-size", 2, "--no-progress"]
    return {
        "simulate": ["simulate", "-s", "toy8", "-n", 4, "-o", out / "images.npy"],
        "pretrain": ["pretrain", "-s", "toy8", "-o", out, *tiny],
        "calibrate": [
            "calibrate",
            "-s",
            "toy8",
            "--true-data",
            good["true"],
            "-o",
            out,
            "--pretrain-iterations",
            1,
            "--n-samples",
            2,
            *tiny,
        ],
        "calibrate-truth": [
            "calibrate",
            "-s",
            "toy8",
            "--n-true",
            8,
            "-o",
            out,
            "--pretrain-iterations",
            1,
            "--n-samples",
            2,
            *tiny,
        ],
        "emulate": [
            "emulate",
            "--emulator",
            good["emulator"],
            "--params",
            good["params"],
            "-o",
            out / "images.npy",
        ],
        "sample": ["sample", "--chain", "dcgan", "--model", good["model"], "-n", 2, "-o", out, "--no-png"],
        "evaluate": [
            "evaluate",
            "--real",
            good["generated"],
            "--generated",
            good["generated"],
            "-o",
            out,
            "-n",
            4,
            "--no-progress",
        ],
        "train": [
            "train",
            "--chain",
            "dcgan",
            "--data",
            "synthetic",
            "--data-option",
            "n=8",
            "--epochs",
            1,
            "--width",
            2,
            "--batch-size",
            4,
            "-o",
            out / "model",
            "--no-progress",
        ],
    }[command]


VALUE = object()  # in BAD_OPTIONS: the bad value itself, quoted in the message, names the option
NOT_AN_INT = st.sampled_from(["abc", "1.5", "", " ", "1e3", "0x10", "--", "½", "[/]"])
NOT_A_FLOAT = st.sampled_from(["abc", "", "1,5", "--", "[/]"])


def _not(valid: Callable[[str], bool]) -> Callable[[str], bool]:
    def invalid(text: str) -> bool:
        try:
            return not valid(text)
        except (ValueError, TypeError):
            return True

    return invalid


def _valid_shard(text: str) -> bool:
    i, n = (int(v) for v in text.split("/"))
    return n >= 1 and 0 <= i < n


def _valid_band(text: str) -> bool:
    return text == "sum" or int(text) == 0  # the --generated images have one channel


def _count_values(low: int) -> st.SearchStrategy:
    """Values of an option that must be at least ``low``."""
    return st.one_of(st.integers(-(10**6), low - 1).map(str), NOT_AN_INT)


def _words(*valid: str) -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(["", " ", "[/]", "NONE", *(v.upper() for v in valid)]), st.text(max_size=8)
    ).filter(lambda v: v not in valid)


#: (command, option, names the message may use for it, bad values); a value here must never be accepted.
BAD_OPTIONS = [
    ("simulate", "-n", ("'-n'", "n:"), _count_values(1)),
    ("simulate", "--seed", ("--seed", "seed:"), st.one_of(st.integers(-(10**6), -1).map(str), NOT_AN_INT)),
    (
        "simulate",
        "--shard",
        ("--shard",),
        st.one_of(st.text(max_size=8), st.sampled_from(["1/0", "2/2", "-1/3", "1/2/3", "/"])).filter(
            _not(_valid_shard)
        ),
    ),
    ("simulate", "--shard-size", ("--shard-size", "shard_size"), _count_values(1)),
    (
        "simulate",
        "--chunk-size",
        ("--chunk-size", "chunk_size"),
        st.one_of(_count_values(1), st.sampled_from(["3", "7", "65535"])),
    ),
    ("simulate", "--workers", ("--workers", "workers:"), _count_values(1)),
    ("pretrain", "--iterations", ("--iterations", "iterations:"), _count_values(1)),
    ("pretrain", "--batch-size", ("--batch-size", "batch_size:"), _count_values(2)),
    ("pretrain", "--recipe", ("--recipe", "recipe:"), _words("likelihood", "paper")),
    ("pretrain", "--checkpoint-every", ("--checkpoint-every", "checkpoint_every:"), _count_values(1)),
    ("pretrain", "--emulator-arch", ("--emulator-arch", "emulator_arch", "emulator named"), _words("conv")),
    ("pretrain", "--critic-arch", ("--critic-arch", "critic_arch", "critic named"), _words("conv")),
    ("calibrate", "--iterations", ("--iterations", "iterations:"), _count_values(1)),
    ("calibrate", "--n-samples", ("--n-samples", "n_samples:"), _count_values(2)),
    ("calibrate", "--recipe", ("--recipe", "recipe:"), _words("default", "paper")),
    (
        "calibrate",
        "--pretrain-recipe",
        ("--pretrain-recipe", "pretrain_recipe:"),
        _words("likelihood", "paper"),
    ),
    (
        "calibrate",
        "--discriminator-input",
        ("--discriminator-input", "discriminator_input:"),
        _words("simulated", "emulated"),
    ),
    ("calibrate", "--truth", ("--truth",), _words()),
    (
        "calibrate-truth",
        "--truth",
        ("--truth",),
        st.one_of(
            st.text(max_size=10),
            st.sampled_from(["a=1", "a=1,0", "a=1,-1", "a=nan,1", "c=1,1", "=1,1", "a=1,2,3"]),
        ),
    ),
    ("calibrate-truth", "--n-true", ("--n-true", "n_true:"), _count_values(2)),
    ("emulate", "--batch-size", ("--batch-size", "batch_size:"), _count_values(1)),
    ("emulate", "--precision", ("--precision", "precision:"), _words("float32", "bf16", "bfloat16")),
    ("sample", "-n", ("'-n'", "n:"), _count_values(1)),
    ("sample", "--batch-size", ("--batch-size", "batch_size:"), _count_values(1)),
    ("sample", "--weights", ("--weights", "weights:"), _words("ema", "raw")),
    ("sample", "--chain", ("--chain", "chain:", VALUE), _words("dcgan", "dcgan,stackgan")),
    ("evaluate", "-n", ("'-n'", "n:"), _count_values(2)),
    (
        "evaluate",
        "--band",
        ("--band",),
        st.one_of(st.text(max_size=4), st.sampled_from(["1", "-1", "SUM", "3"])).filter(_not(_valid_band)),
    ),
    ("evaluate", "--resolution", ("--resolution", "resolution:"), _count_values(8)),
    ("evaluate", "--n-closest", ("--n-closest", "n_closest:"), _count_values(1)),
    ("evaluate", "--workers", ("--workers", "workers:"), _count_values(1)),
    ("evaluate", "--method", ("--method",), _words("fast", "photutils")),
    ("evaluate", "--evaluator", ("--evaluator", "evaluator named"), _words("isophote")),
    (
        "train",
        "--epochs",
        ("--epochs", "epochs:", "epochs."),
        st.sampled_from(["0", "-1", "a", "1,2", "1,,x", "1.5"]),
    ),
    ("train", "--width", ("--width", "width:", "width."), st.sampled_from(["0", "-3", "a", "2,2", "", ","])),
    (
        "train",
        "--batch-size",
        ("--batch-size", "batch_size:", "batch_size."),
        st.sampled_from(["0", "-3", "a", "4,4"]),
    ),
    (
        "train",
        "--resolution",
        ("--resolution", "resolution:"),
        st.one_of(st.integers(-100, 300).filter(lambda r: r not in (64, 128)).map(str), NOT_AN_INT),
    ),
    (
        "train",
        "--label-smoothing",
        ("--label-smoothing", "label_smoothing:"),
        st.one_of(st.sampled_from(["1", "1.5", "-0.1", "nan", "inf"]), NOT_A_FLOAT),
    ),
    (
        "train",
        "--ema-decay",
        ("--ema-decay", "ema_decay:"),
        st.one_of(st.sampled_from(["1", "2", "-0.5", "nan", "-inf"]), NOT_A_FLOAT),
    ),
    (
        "train",
        "--spatial-dropout",
        ("--spatial-dropout", "spatial_dropout:"),
        _words("none", "generator", "discriminator", "both"),
    ),
    ("train", "--dropout-from-epoch", ("--dropout-from-epoch", "dropout_from_epoch:"), _count_values(1)),
    ("train", "--dropout-until-epoch", ("--dropout-until-epoch", "dropout_until_epoch:"), _count_values(1)),
    ("train", "--lr-decay-from", ("--lr-decay-from", "lr_decay_from:"), _count_values(1)),
    ("train", "--r1", ("--r1", "r1:"), st.one_of(st.sampled_from(["-1", "nan", "inf", "-0.5"]), NOT_A_FLOAT)),
    (
        "train",
        "--augment",
        ("--augment", "unknown augmentation"),
        st.sampled_from(["colour", "flip,zoom", "rot45"]),
    ),
    (
        "train",
        "--data",
        ("--data", "data source named"),
        st.sampled_from(["nosuch", ":", "synthetic:", "galaxyzoo", "galaxyzoo:/no/such/folder", " "]),
    ),
    (
        "train",
        "--data-option",
        ("--data-option", "synthetic: n=", "'bogus'"),
        st.sampled_from(["n=-5", "n=0", "n=abc", "noequals", "=3", "bogus=1", "n=1e999"]),
    ),
]


@example(case=(("simulate", "--shard", ("--shard",)), ""))  # an unset $SHARD in a batch script
@_settings(150)
@given(case=st.sampled_from(BAD_OPTIONS).flatmap(lambda c: st.tuples(st.just(c[:3]), c[3])))
def test_cli_bad_option_values(tmp_path, install, good, case) -> None:
    CASES["CLI option value"] += 1
    (command, option, names), value = case
    out = _scratch(tmp_path) / "out"
    sentinel = [] if command in ("train", "simulate", "emulate") else [_sentinel(out / "notes.txt")]
    before = _snapshot(*sentinel)
    args = _base_args(command, good, out)
    with _deadline(30):
        result = _cli(*args, option, value)
    text = _assert_cli_user_error(result)
    names = tuple(str(value) if name is VALUE else name for name in names)
    assert any(name in text for name in names), (
        f"{option} {value!r}: the message names none of {names}: {text!r}"
    )
    _assert_untouched(before, out)


#: Seeds a run cannot take, for commands that seed torch: refused by name, or taken (hashed, reduced).
@_settings(12)
@given(
    command=st.sampled_from(["simulate", "pretrain", "calibrate", "emulate", "sample", "evaluate", "train"]),
    seed=st.integers(2**64, 2**80),
)
def test_cli_huge_seed_is_taken_or_refused_by_name(tmp_path, install, good, command, seed) -> None:
    CASES["CLI huge seed"] += 1
    out = _scratch(tmp_path) / "out"
    with _deadline(60):
        result = _cli(*_base_args(command, good, out), "--seed", seed)
    if result.exit_code != 0:
        text = _assert_cli_user_error(result)
        assert "--seed" in text or "seed:" in text, text


@_settings(8)
@given(
    case=st.sampled_from(
        [
            ("simulate", "-n", ".npy"),
            ("simulate", "-n", "folder"),
            ("sample", "-n", ""),
            ("calibrate-truth", "--n-true", ""),
        ]
    ),
    n=st.integers(10**13, 10**18),
)
def test_cli_huge_counts_are_refused_up_front(tmp_path, install, good, case, n) -> None:
    """A count whose images could never fit on the disk or in memory: refused by name, at once.

    The counts start at 10**13 so that, while the bug is there, the command fails at once on its
    first huge list instead of starting millions of chunks that then all have to run.
    """
    CASES["CLI huge count"] += 1
    command, option, kind = case
    out = _scratch(tmp_path) / "out"
    args = _base_args(command, good, out)
    if kind == "folder":
        args[args.index(out / "images.npy")] = out / "images"
    with _deadline(5), _limits(file_mib=64, extra_gib=3):
        result = _cli(*args, option, n)
    text = _assert_cli_user_error(result)
    assert option in text or f"{option.strip('-').replace('-', '_')}:" in text, text
