"""Smoke tests on the real Galaxy Zoo sample (skipped when ../shared/data is absent)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from gangal_core.io.images import read_images

SAMPLE = Path(__file__).resolve().parents[3] / "shared/data/galaxyzoo2-sample"


@pytest.mark.realdata
def test_real_sample_reads_as_colour_images_in_file_order() -> None:
    folder = SAMPLE / "images_training_rev1"
    images = read_images(folder, limit=3, what="true data")
    assert images.shape[:2] == (3, 3) and images.shape[2] == images.shape[3] > 0
    assert images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert images.std() > 0.01  # real pictures, not blank ones
    first = sorted(p for p in folder.iterdir() if not p.name.startswith("."))[0]
    np.testing.assert_array_equal(read_images(first)[0], images[0])


@pytest.mark.realdata
def test_real_sample_labels_name_existing_images() -> None:
    with open(SAMPLE / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {"GalaxyID"} <= set(rows[0])
    for row in rows[:20]:
        assert (SAMPLE / "images_training_rev1" / f"{row['GalaxyID']}.jpg").is_file()
