"""Model selection during chain training (--eval-every): the split, the score, the kept epoch."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import gangal_core as gg
from gangal_core.chain.selection import MIN_VALIDATION, ModelSelection, split_validation
from gangal_core.errors import ConfigError
from gangal_core.evaluation.evaluator import Measurements

from .test_chain import Ellipses


class Brightness:
    """A stand-in evaluator: each image's mean and peak (no fits, so scores are exact)."""

    name = "brightness"
    quantities = ("mean", "peak")

    def measure(self, images: np.ndarray) -> Measurements:
        flat = images.reshape(len(images), -1)
        return Measurements({"mean": flat.mean(1), "peak": flat.max(1)}, np.full(len(images), "ok"))


def test_split_is_seeded_disjoint_and_complete() -> None:
    source = Ellipses(100)
    train, val = split_validation(source, 0.2, seed=3)
    assert len(val) == 32 and len(train) == 68  # 20% is 20, below the floor of MIN_VALIDATION
    assert MIN_VALIDATION == 32
    assert sorted([*train.indices, *val.indices]) == list(range(100))
    again, _ = split_validation(source, 0.2, seed=3)
    other, _ = split_validation(source, 0.2, seed=4)
    assert np.array_equal(train.indices, again.indices) and not np.array_equal(train.indices, other.indices)
    assert np.array_equal(val.read(0), source.read(int(val.indices[0])))
    assert val.describe()["part"] == "validation" and train.describe()["of"] == 100
    assert train.fingerprint() != source.fingerprint()  # a cache of the part is not the whole's


@pytest.mark.parametrize(("n", "fraction", "message"), [
    (50, 0.1, "50 images, too few"), (100, 1.0, r"in \(0, 1\)"), (100, 0.0, r"in \(0, 1\)"),
])  # fmt: skip
def test_split_refuses_what_cannot_work(n: int, fraction: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_validation(Ellipses(n), fraction, seed=0)


def test_score_is_the_worst_ks_and_the_best_epoch_is_kept(tmp_path: Path) -> None:
    _, val = split_validation(Ellipses(80), 0.5, seed=0)
    selection = ModelSelection(val, every=2, evaluator=Brightness(), n_samples=40)
    real = selection.images(16)
    assert real.shape == (40, 3, 16, 16) and real.dtype == np.float32 and 0 <= real.min() <= real.max() <= 1
    first = selection.score(real * 0.5, epoch=2)  # too faint: every image's mean and peak are off
    second = selection.score(real.copy(), epoch=4)  # the validation images themselves
    third = selection.score(np.concatenate([real[:20], real[:20]]), epoch=6)  # half the variety
    assert first["score"] == pytest.approx(1.0) and first["best"] == 1.0
    assert second["score"] == 0.0 and second["best"] == 1.0 and second["failure_rate"] == 0.0
    assert 0 < third["score"] < 1 and third["best"] == 0.0
    assert selection.best["epoch"] == 4
    selection.write_history(tmp_path)
    rows = list(csv.DictReader((tmp_path / "selection.csv").open()))
    assert [r["epoch"] for r in rows] == ["2", "4", "6"] and [r["best"] for r in rows] == ["0", "1", "0"]
    assert {"ks_mean", "ks_peak", "w_over_std_mean", "failure_rate", "score"} <= set(rows[0])
    assert (tmp_path / "selection.png").stat().st_size > 1000
    assert [selection.due(e, 7) for e in range(1, 8)] == [False, True, False, True, False, True, True]
    restored = ModelSelection(val, every=2, evaluator=Brightness())
    restored.load_state_dict(json.loads(json.dumps(selection.state_dict())))
    assert restored.best == selection.best and restored.rows == selection.rows


def test_training_keeps_the_selected_epoch_and_sample_uses_it(tmp_path: Path) -> None:
    out = tmp_path / "model"
    gg.train("synthetic", out=out, chain=["dcgan"], epochs=[2], width=[4], data_options={"n": 96},
             eval_every=1, validation=0.25, eval_samples=24, progress=False)  # fmt: skip
    stage = out / "dcgan"
    rows = list(csv.DictReader((stage / "selection.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and sum(r["best"] == "1" for r in rows) == 1
    summary = json.loads((stage / "training.json").read_text())
    assert summary["selection"]["validation"]["n_images"] == 32  # max(32, 25% of 96 = 24)
    assert summary["selection"]["best"]["epoch"] in (1.0, 2.0)
    chain = json.loads((out / "chain.json").read_text())
    assert chain["data"]["part"] == "training" and chain["data"]["n_images"] == 64
    assert (stage / "generator-best.safetensors").is_file() and (stage / "selection.png").is_file()
    gg.sample(out, 4, chain=["dcgan"], out=tmp_path / "s")
    assert json.loads((tmp_path / "s" / "sample.json").read_text())["weights"] == "best"
    ema = gg.sample(out, 4, chain=["dcgan"], weights="ema")
    best = gg.sample(out, 4, chain=["dcgan"], weights="best")
    assert ema.shape == best.shape == (4, 3, 64, 64)


def test_best_weights_of_a_stage_trained_without_selection_are_refused(tmp_path: Path) -> None:
    from gangal_core.cli import app

    out = tmp_path / "model"
    gg.train("synthetic", out=out, chain=["dcgan"], epochs=[1], width=[4], data_options={"n": 32},
             progress=False)  # fmt: skip
    result = CliRunner().invoke(app, ["sample", "--model", str(out), "--chain", "dcgan", "-n", "2",
                                      "--weights", "best", "--out", str(tmp_path / "s")])  # fmt: skip
    assert result.exit_code != 0
    assert "trained without --eval-every" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s").exists()
