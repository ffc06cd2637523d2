"""A failed run leaves no empty output folder behind, and never removes one that was there or holds files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gangal_core.cli import app
from gangal_core.errors import ConfigError
from gangal_core.io.folders import removing_empty_folders


def _fail(*paths: Path, make: tuple[Path, ...] = (), write: tuple[Path, ...] = ()) -> None:
    """Inside removing_empty_folders(paths): make folders, write files, then fail as a run would."""
    with pytest.raises(ConfigError), removing_empty_folders(*paths):
        for folder in make:
            folder.mkdir(parents=True, exist_ok=True)
        for file in write:
            file.write_text("finished")
        raise ConfigError("the run failed")


def test_the_empty_folders_a_failed_run_made_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "run"
    _fail(out, make=(out / "dcgan" / "samples", out / "stackgan"))
    assert list(tmp_path.iterdir()) == []  # run, its subfolders and the parents made for it


def test_a_folder_that_was_there_is_kept_even_empty(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    _fail(out, make=(out / "dcgan",))
    assert out.is_dir() and (out / "dcgan").is_dir()  # inside a folder the user had: not ours to judge


def test_a_folder_holding_files_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "new" / "run"
    files = (out / "manifest.json", out / "shards" / ".s.part")
    _fail(out, make=(out / "empty", out / "shards"), write=files)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "new", "new/run", "new/run/manifest.json", "new/run/shards", "new/run/shards/.s.part"
    ]  # fmt: skip


def test_parents_that_were_there_are_kept(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    out = tmp_path / "data" / "runs" / "one"
    _fail(out, make=(out,))
    assert list(tmp_path.iterdir()) == [tmp_path / "data"] and list((tmp_path / "data").iterdir()) == []


def test_a_run_that_succeeds_keeps_its_empty_folder(tmp_path: Path) -> None:
    with removing_empty_folders(tmp_path / "run", None):
        (tmp_path / "run").mkdir()
    assert (tmp_path / "run").is_dir()


def test_a_file_output_and_a_symlinked_folder_are_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (target / "inside").mkdir(parents=True)
    link = tmp_path / "out"
    _fail(tmp_path / "x.npy", link, make=(), write=())
    with pytest.raises(ConfigError), removing_empty_folders(link):
        os.symlink(target, link)
        raise ConfigError("failed")
    assert (target / "inside").is_dir()


# ---- through the commands ------------------------------------------------------------------------
FAILING = {
    "calibrate": ["calibrate", "-s", "circle", "--true-data", "missing.npy", "--no-progress"],
    "pretrain": ["pretrain", "-s", "circle", "--bank", "missing", "--iterations", "1", "--no-progress"],
    "evaluate": ["evaluate", "--real", "missing.npy", "--generated", "missing.npy", "--no-progress"],
    "train": ["train", "--data", "galaxyzoo:/no/such/folder", "--no-progress"],
}


@pytest.mark.parametrize("command", list(FAILING))
def test_a_failed_command_leaves_no_empty_out_folder(tmp_path: Path, monkeypatch, command: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*FAILING[command], "--out", "runs/new"])
    assert result.exit_code == 2, result.output
    assert "missing" in result.output or "no/such/folder" in result.output  # the input named, not the folder
    assert list(tmp_path.iterdir()) == []
    Path("mine").mkdir()
    assert CliRunner().invoke(app, [*FAILING[command], "--out", "mine"]).exit_code == 2
    assert Path("mine").is_dir()
