"""A stand-in for a simulator gangal cannot call: a plain program that knows nothing of gangal.

It draws noisy rings (the physics of the paper's circle case study, in numpy) and writes what a
C++ or Fortran program on a cluster would: a file of images and a table of their parameters.

    python ring_program.py bank  OUT N SEED          # N rings, parameters uniform over the ranges
    python ring_program.py truth OUT N SEED          # N "observed" rings from the true population
    python ring_program.py at    PARAMS.csv OUT SEED # one ring per row of a parameter table

Each writes OUT/images.npy and OUT/parameters.csv (``x0,y0,r,n,b``, one row per image).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

NAMES = ("x0", "y0", "r", "n", "b")
RANGES = {"x0": (14.8, 21.2), "y0": (14.8, 21.2), "r": (6.0, 10.0), "n": (0.0, 0.35), "b": (0.7, 1.1)}
TRUTH = {"x0": (18.0, 0.8), "y0": (18.0, 0.8), "r": (8.0, 0.5), "n": (0.15, 0.05), "b": (0.9, 0.05)}


def rings(params: np.ndarray, rng: np.random.Generator, size: int = 28, width: float = 0.5) -> np.ndarray:
    """One noisy ring per row of ``params`` (x0, y0, r, n, b): ``(N, 1, size, size)`` float32."""
    x0, y0, r, n, b = (params[:, i, None, None] for i in range(5))
    centres = np.arange(size) + 0.5
    x = centres[None, None, :]
    y = (size - centres)[None, :, None]  # y up: row 0 is the top
    rho2 = (x - x0) ** 2 + (y - y0) ** 2
    image = b * np.exp(-((rho2 - r * r) ** 2) / (8 * r * r * width**2))
    image = image + n * rng.standard_normal(image.shape)
    return image[:, None].astype(np.float32)


def draw(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "bank":
        return np.column_stack([rng.uniform(*RANGES[k], n) for k in NAMES])
    columns = []
    for k in NAMES:  # the true population: Gaussians, redrawn inside the ranges
        low, high = RANGES[k]
        values = rng.normal(*TRUTH[k], n)
        while ((values < low) | (values > high)).any():
            bad = (values < low) | (values > high)
            values[bad] = rng.normal(*TRUTH[k], bad.sum())
        columns.append(values)
    return np.column_stack(columns)


def write(out: Path, params: np.ndarray, images: np.ndarray) -> None:
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", images)
    with open(out / "parameters.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(NAMES)
        writer.writerows(params.tolist())


def main(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "at":
        with open(argv[1], newline="") as fh:
            rows = list(csv.DictReader(fh))
        params = np.array([[float(row[k]) for k in NAMES] for row in rows])
        out, seed = Path(argv[2]), int(argv[3])
    else:
        out, n, seed = Path(argv[1]), int(argv[2]), int(argv[3])
        params = draw(kind, n, np.random.default_rng(seed))
    write(out, params, rings(params, np.random.default_rng(seed + 1)))


if __name__ == "__main__":
    main(sys.argv[1:])
