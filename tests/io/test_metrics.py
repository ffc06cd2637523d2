"""metrics.csv: named after its checkpoint, appended in whole rows at flushes, cut back on resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gangal_core.io.metrics import MetricsLog, metrics_path


@pytest.mark.parametrize(
    ("checkpoint", "metrics"),
    [
        ("run/checkpoint.safetensors", "run/metrics.csv"),
        ("run/checkpoint-calibrate-2.safetensors", "run/metrics-calibrate-2.csv"),
        ("run/checkpoint-pretrain-0.safetensors", "run/metrics-pretrain-0.csv"),
        ("run/state.safetensors", "run/state-metrics.csv"),
    ],
)
def test_the_file_is_named_after_its_checkpoint(checkpoint: str, metrics: str) -> None:
    assert metrics_path(checkpoint) == Path(metrics)


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_rows_reach_the_file_at_flushes_only(tmp_path: Path) -> None:
    now = [0.0]
    log = MetricsLog(tmp_path / "metrics.csv", flush_seconds=30, clock=lambda: now[0])
    log.open(keep_until=0)
    log.add(10, 1.5, {"D": 1.25, "G": 0.5})
    assert not (tmp_path / "metrics.csv").exists()  # a kill now loses only rows younger than 30 s
    now[0] = 31.0
    log.add(20, 31.0, {"D": 1.0, "G": 0.75})
    log.add(30, 31.5, {"D": 0.5, "G": 1.0})
    assert _read(tmp_path / "metrics.csv") == [
        ["iteration", "seconds", "D", "G"], ["10", "1.500", "1.25", "0.5"], ["20", "31.000", "1.0", "0.75"]
    ]  # fmt: skip
    log.flush(sync=True)
    assert _read(tmp_path / "metrics.csv")[-1] == ["30", "31.500", "0.5", "1.0"]


def test_open_keeps_the_rows_up_to_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    rows = "10,1.0,0.5\n20,2.0,0.25\n30,3.0,0.125\n31,3.1,0.1"  # the last cut short by a kill
    path.write_text("iteration,seconds,mse\n" + rows, encoding="utf-8")
    (tmp_path / ".metrics.csv.abc.part").write_text("half", encoding="utf-8")  # a rewrite killed half-way
    log = MetricsLog(path)
    log.open(keep_until=25)
    assert path.read_text(encoding="utf-8") == "iteration,seconds,mse\n10,1.0,0.5\n20,2.0,0.25\n"
    assert not list(tmp_path.glob(".*.part"))
    log.add(30, 3.5, {"mse": 0.0625})
    log.flush()
    assert [r[0] for r in _read(path)] == ["iteration", "10", "20", "30"]


def test_a_fresh_start_and_a_foreign_file_start_afresh(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("iteration,seconds,mse\n10,1.0,0.5\n", encoding="utf-8")
    MetricsLog(path).open(keep_until=0)
    assert not path.exists()
    path.write_text("not,a,metrics,file\n", encoding="utf-8")
    log = MetricsLog(path)
    log.open(keep_until=100)
    log.add(110, 1.0, {"mse": 0.5})
    log.flush()
    assert _read(path) == [["iteration", "seconds", "mse"], ["110", "1.000", "0.5"]]
