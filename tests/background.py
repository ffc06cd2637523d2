"""Command-line runs in the background for the subprocess tests (kill/resume, two processes).

Those tests give each process one thread, so a reference run can go on the second core while
the test works on its twin.  Output goes to a temporary file, not a pipe: nobody reads it
until the end, and a full pipe would stall the process.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start ``cmd`` with ``env``, its output kept for :func:`finish`."""
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = log
    return proc


def finish(proc: subprocess.Popen) -> None:
    """Wait for ``proc`` (at most 300 s) and assert it succeeded, showing its output if not."""
    proc.wait(timeout=300)
    proc.log.seek(0)
    assert proc.returncode == 0, proc.log.read()


class BackgroundRun:
    """A run writing to ``out``, started now; call it to wait for it and get ``out``."""

    def __init__(self, cmd: list[str], env: dict[str, str], out: Path) -> None:
        self.proc, self.out = start(cmd, env), out

    def __call__(self) -> Path:
        if self.proc.returncode is None:
            finish(self.proc)
        return self.out

    def stop(self) -> None:
        """Kill the run if it is still going (a test failed before it needed it)."""
        self.proc.kill()
        self.proc.wait()
