"""Run the gangal command line with one checkpoint save frozen half-way, for kill tests.

    GANGAL_TEST_FREEZE_SAVE=N GANGAL_TEST_MARKER=FILE python tests/io/helpers/slow_save.py ARGS...

The N-th checkpoint write (counting every :func:`gangal_core.checkpoint.save_checkpoint`
of the process) writes half of its bytes to the temporary file, flushes them to disk,
writes the destination's path into FILE and then sleeps, so a test can SIGKILL the
process in the middle of a save.  Everything else is the real command.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import gangal_core.io.checkpoint as checkpoint

_freeze_at = int(os.environ["GANGAL_TEST_FREEZE_SAVE"])
_marker = Path(os.environ["GANGAL_TEST_MARKER"])
_saves = 0
_real_atomic_open = checkpoint.atomic_open


@contextlib.contextmanager
def _freezing_atomic_open(path, mode="wb"):
    global _saves
    _saves += 1
    with _real_atomic_open(path, mode) as fh:
        if _saves != _freeze_at:
            yield fh
            return

        class _HalfWriter:
            def write(self, data):
                fh.write(data[: len(data) // 2])
                fh.flush()
                os.fsync(fh.fileno())
                _marker.write_text(str(path))
                time.sleep(600)

        yield _HalfWriter()


checkpoint.atomic_open = _freezing_atomic_open

if __name__ == "__main__":
    from gangal_core.cli import main

    sys.argv = ["gangal", *sys.argv[1:]]
    main()
