"""Progress in a batch job's log: plain lines at the start, every interval or step, and the end."""

from __future__ import annotations

import io
import re

import pytest

from gangal_core.runtime import progress
from gangal_core.runtime.progress import LineProgress, NoProgress, progress_bar


class _Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_line_at_the_start_at_every_step_share_and_at_the_end() -> None:
    clock, out = _Clock(), io.StringIO()
    with LineProgress(("losses",), stream=out, interval=1e9, step=0.25, clock=clock) as bar:
        task = bar.add_task("calibrating circle", total=100, completed=0, losses="")
        for done in range(10, 101, 10):
            clock.now += 1.0
            bar.update(task, completed=done, losses=f"D {done / 100:.2f}  G 0.83")
    lines = _lines(out)
    assert [re.search(r": (\d+)/100", line).group(1) for line in lines] == ["0", "30", "50", "80", "100"]
    assert lines[0] == "[gangal] calibrating circle: 0/100 (0%) | 0:00 elapsed"
    assert lines[2] == "[gangal] calibrating circle: 50/100 (50%) | D 0.50  G 0.83 | 0:05 elapsed, ETA 0:05"
    assert lines[-1].endswith("(100%) | D 1.00  G 0.83 | 0:10 elapsed, done")


def test_a_line_every_interval_between_steps() -> None:
    clock, out = _Clock(), io.StringIO()
    with LineProgress(stream=out, interval=30.0, step=1.0, clock=clock) as bar:
        task = bar.add_task("simulate circle", total=1000)
        for _ in range(9):
            clock.now += 12.0  # a line at 36 s, 72 s, 108 s: the first update 30 s after the last line
            bar.advance(task, 100)
    times = [line.split(" | ")[-1] for line in _lines(out)]
    assert times == ["0:00 elapsed", "0:36 elapsed, ETA 1:24", "1:12 elapsed, ETA 0:48",
                     "1:48 elapsed, ETA 0:12"]  # fmt: skip
    assert "900/1000 (90%)" in _lines(out)[-1]


def test_the_eta_counts_only_this_sessions_work_and_the_end_shows_where_it_stopped() -> None:
    clock, out = _Clock(), io.StringIO()
    with LineProgress(("losses",), stream=out, interval=60, step=0.5, clock=clock) as bar:
        task = bar.add_task("dcgan", total=1000, completed=500, losses="")  # resumed half-way
        clock.now += 60
        bar.update(task, completed=600, losses="D 1.2")  # 100 in a minute: 400 left take 4 minutes
        clock.now += 3
        bar.update(task, completed=610, losses="D 1.1")  # not due: 3 s, and the next step is at 1000
    lines = _lines(out)
    assert lines[0] == "[gangal] dcgan: 500/1000 (50%) | 0:00 elapsed"
    assert lines[1] == "[gangal] dcgan: 600/1000 (60%) | D 1.2 | 1:00 elapsed, ETA 4:00"
    assert lines[2].startswith("[gangal] dcgan: 610/1000 (61%) | D 1.1 | 1:03 elapsed")  # written at exit
    assert len(lines) == 3


def test_several_tasks_and_an_unknown_total() -> None:
    clock, out = _Clock(), io.StringIO()
    with LineProgress(stream=out, interval=5, clock=clock) as bar:
        real = bar.add_task("measuring real", total=4)
        fake = bar.add_task("measuring generated")
        bar.advance(real, 4)
        clock.now += 3600 + 62
        bar.advance(fake, 7)
    lines = _lines(out)
    assert lines[2] == "[gangal] measuring real: 4/4 (100%) | 0:00 elapsed, done"
    assert lines[3] == "[gangal] measuring generated: 7 | 1:01:02 elapsed"


def test_progress_bar_chooses_by_standard_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    assert isinstance(progress_bar(enabled=False), NoProgress)
    bar = progress_bar(fields=("losses",))  # pytest's captured standard error is no terminal
    assert isinstance(bar, LineProgress) and bar.interval == progress.LINE_INTERVAL
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.0)
    with progress_bar(fields=("rate",)) as bar:
        task = bar.add_task("simulate circle", total=10, rate="")
        bar.update(task, advance=3, rate="5 img/s")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "[gangal] simulate circle: 0/10 (0%) | 0:00 elapsed"
    expected = r"\[gangal\] simulate circle: 3/10 \(30%\) \| 5 img/s \| 0:00 elapsed(, ETA .*)?"
    assert re.fullmatch(expected, err[1])
