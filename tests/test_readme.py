"""The README's first screen: a clone step, the main job, and the test command CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _first_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def _command_after(comment: str) -> str:
    lines = _first_block()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"# {comment}"))
    return next(line for line in lines[at + 1 :] if not line.startswith("#"))


def test_the_first_screen_clones_installs_and_runs_the_main_job() -> None:
    assert _command_after("get it").startswith("git clone ")
    main_job = _command_after("run the main job")
    assert "pip install torch==2.13.0 && pip install -e ." in main_job and "gangal calibrate" in main_job


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    command = _command_after("run the tests")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci
    assert command.startswith("pip install torch==2.13.0 && ")  # the CPU wheel before anything pulls torch
