"""A costly test simulator: the paper's circle, sleeping 2 ms per image and counting its own images.

    gangal calibrate --simulator benchmarks/costly_simulator.py:CostlyCircle --budget 20000

It stands for a simulator that takes milliseconds per image (a detector response, a GalSim
galaxy): at 2 ms an image, gangal's default calibration (about 1.8 million images) would spend
an hour sleeping alone.  Every call appends its image count to ``$COSTLY_COUNT_FILE`` (default
``costly-count.txt``), so the simulator's own count, not gangal's, says how many it made:
``python benchmarks/costly_simulator.py count FILE`` sums it.
"""

from __future__ import annotations

import os
import sys
import time

import torch
from gangal_circle import CircleSimulator

SECONDS_PER_IMAGE = 0.002


class CostlyCircle(CircleSimulator):
    """:class:`CircleSimulator` at 2 ms per image, counting its images in a file."""

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        images = super().simulate(params, generator=generator)
        time.sleep(SECONDS_PER_IMAGE * params.shape[0])
        with open(os.environ.get("COSTLY_COUNT_FILE", "costly-count.txt"), "a") as fh:
            fh.write(f"{params.shape[0]}\n")
        return images


def count(path: str) -> int:
    """Images the simulator made, by its own record."""
    with open(path) as fh:
        return sum(int(line) for line in fh if line.strip())


if __name__ == "__main__" and sys.argv[1:2] == ["count"]:
    print(count(sys.argv[2]))
