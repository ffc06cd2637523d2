"""The one training base: a toy Trainer saves the documented state and resumes bit for bit,
writes its losses to metrics.csv and shows its progress as lines in a log."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import torch

from gangal_core.runtime import progress
from gangal_core.training import LOG_EVERY, Interrupted, Trainer


class _Regression(Trainer):
    """A least-squares line fitted to noisy points drawn from the run's stream, with dropout."""

    def __init__(self, iterations: int = 20, **options) -> None:
        super().__init__(iterations=iterations, **options)
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
        self.random = torch.Generator().manual_seed(2)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.models["line"], self.optimisers["line"] = self.net, optimiser
        self.schedulers["line"] = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=1e-2, total_steps=iterations
        )
        self.generators["points"] = self.random
        self.seen = 0

    def step(self, iteration: int) -> dict[str, float]:
        x = torch.rand(16, 1, generator=self.random)
        y = 3 * x + 0.1 * torch.randn(16, 1, generator=self.random)
        loss = (self.net(x) - y).square().mean()
        self.update("line", loss)
        self.seen += 16
        return {"mse": loss.item()}

    def extra_state(self) -> dict:
        return {"seen": self.seen}

    def load_extra_state(self, extra: dict) -> None:
        self.seen = extra["seen"]

    def result(self) -> torch.nn.Module:
        return self.net

    def simulator_images(self, iteration: int) -> int:
        return 16 * iteration


class _Killed(Exception):
    """What a SIGKILL would be, in-process: no checkpoint is saved on the way out."""


def test_the_state_has_the_documented_parts() -> None:
    state = _Regression(history_every=1).state()
    assert list(state) == ["models", "optimisers", "schedulers", "generators", "torch", "history", "extra"]
    assert "cuda" not in state  # a CPU run keeps no CUDA state
    assert set(state["generators"]) == {"points"} and state["extra"] == {"seen": 0}


def test_an_interrupted_run_resumes_bit_for_bit(tmp_path: Path, interrupt_at) -> None:
    straight = _Regression(history_every=1)
    whole = straight.train()
    checkpoint = tmp_path / "checkpoint.safetensors"
    interrupt_at(13)
    with pytest.raises(Interrupted, match="iteration 13 of 20"):
        _Regression(checkpoint=checkpoint, checkpoint_every=5, history_every=1).train()
    interrupt_at(None)
    torch.manual_seed(99)  # the checkpoint, not the process, decides the dropout stream
    resumed = _Regression(checkpoint=checkpoint, resume=True, history_every=1)
    net = resumed.train()
    for a, b in zip(net.state_dict().values(), whole.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed.history.values == straight.history.values and resumed.seen == straight.seen == 320


def _metrics(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_metrics_csv_holds_every_tenth_iteration_and_the_last(tmp_path: Path) -> None:
    run = _Regression(iterations=35, checkpoint=tmp_path / "checkpoint.safetensors", history_every=1)
    run.train()
    header, *rows = _metrics(tmp_path / "metrics.csv")
    assert LOG_EVERY == 10 and header == ["iteration", "seconds", "mse"]
    assert [int(r[0]) for r in rows] == [10, 20, 30, 35]
    # the loss of the iteration that completes the count, to the last bit
    assert [float(r[2]) for r in rows] == [run.history.values["mse"][i - 1] for i in (10, 20, 30, 35)]
    seconds = [float(r[1]) for r in rows]
    assert seconds == sorted(seconds) and 0 < seconds[-1] <= run.seconds + 1e-3


def test_no_checkpoint_no_metrics_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _Regression().train()
    assert not list(tmp_path.iterdir())


def test_metrics_csv_of_a_resumed_run_has_every_row_once(tmp_path: Path, interrupt_at) -> None:
    reference = tmp_path / "straight"
    reference.mkdir()
    _Regression(iterations=40, checkpoint=reference / "checkpoint.safetensors").train()
    expected = [[r[0], r[2]] for r in _metrics(reference / "metrics.csv")]  # seconds differ

    out = tmp_path / "run"
    out.mkdir()
    interrupt_at(13)  # Ctrl-C: checkpoint at 13, rows 10
    with pytest.raises(Interrupted):
        _Regression(iterations=40, checkpoint=out / "checkpoint.safetensors", checkpoint_every=15).train()
    interrupt_at(27)  # resumed at 13; checkpoint at 15 (and at 27 on the way out)
    with pytest.raises(Interrupted):
        _Regression(iterations=40, checkpoint=out / "checkpoint.safetensors", checkpoint_every=15,
                    resume=True).train()  # fmt: skip
    interrupt_at(None)
    _Regression(iterations=40, checkpoint=out / "checkpoint.safetensors", resume=True).train()
    assert [[r[0], r[2]] for r in _metrics(out / "metrics.csv")] == expected


def test_metrics_csv_drops_the_rows_a_killed_run_wrote_past_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "straight"
    reference.mkdir()
    _Regression(iterations=40, checkpoint=reference / "checkpoint.safetensors").train()
    expected = [[r[0], r[2]] for r in _metrics(reference / "metrics.csv")]

    out, checkpoint = tmp_path / "run", tmp_path / "run" / "checkpoint.safetensors"
    out.mkdir()
    step = _Regression.step

    def dies_at_34(trainer: _Regression, iteration: int) -> dict[str, float]:
        if iteration == 34:
            raise _Killed
        return step(trainer, iteration)

    monkeypatch.setattr(_Regression, "step", dies_at_34)
    with pytest.raises(_Killed):
        _Regression(iterations=40, checkpoint=checkpoint, checkpoint_every=25).train()
    monkeypatch.undo()
    # row 30 came after the checkpoint at 25
    assert [r[0] for r in _metrics(out / "metrics.csv")[1:]] == ["10", "20", "30"]
    with open(out / "metrics.csv", "a") as fh:
        fh.write("31,9.9,0.")  # and a row cut short by the kill
    _Regression(iterations=40, checkpoint=checkpoint, resume=True).train()
    assert [[r[0], r[2]] for r in _metrics(out / "metrics.csv")] == expected
    assert not list(out.glob(".*.part"))


def test_progress_lines_in_a_log_show_the_losses_images_and_eta(
    capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "LINE_INTERVAL", 1e9)  # lines by share only: 5% of 100 is 5
    _Regression(iterations=100, progress=True, description="fitting a line").train()
    lines = capsys.readouterr().err.splitlines()  # pytest's standard error is no terminal
    assert lines[0] == "[gangal] fitting a line: 0/100 (0%) | 0 simulator images | 0:00 elapsed"
    assert [int(re.search(r": (\d+)/100", line).group(1)) for line in lines] == list(range(0, 101, 10))
    pattern = r"\[gangal\] fitting a line: 50/100 \(50%\) \| mse \d+\.\d{3} \| 800 simulator images \| "
    assert re.match(pattern + r"\d+:\d\d elapsed, ETA \d+:\d\d$", lines[5]), lines[5]
    assert lines[-1].startswith("[gangal] fitting a line: 100/100 (100%) | mse ")
    assert lines[-1].endswith(" elapsed, done")
