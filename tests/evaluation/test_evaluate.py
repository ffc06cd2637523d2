"""The evaluation framework: Measurements, distribution comparison, closest match, `gangal evaluate`.

The evaluator here is a stub registered as a plugin (image brightness), so these tests check
gangal's comparison and reporting independently of the isophote fits (tests/evaluation/test_isophote.py).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gangal_core import plugins as plugins_module
from gangal_core.cli import app
from gangal_core.evaluation.compare import centre_crop, closest_match, compare_measurements, nearest_l1
from gangal_core.evaluation.evaluator import Evaluator, Measurements, validate_evaluator_class
from gangal_core.plugins import build_registry

STUB = """
import numpy as np
from gangal_core import hookimpl
from gangal_core.evaluation import Evaluator, Measurements

class Brightness(Evaluator):
    name = "brightness"
    quantities = ("total", "peak")
    units = {"total": "relative", "peak": ""}

    def __init__(self, *, method="fast", workers=None):
        if method not in ("fast", "slow"):
            raise ValueError(f"method must be fast or slow, found {method!r}")

    def measure(self, images, *, progress=None):
        peak = images.max(axis=(1, 2))
        ok = peak > 0
        values = {"total": np.where(ok, images.sum(axis=(1, 2)), np.nan), "peak": np.where(ok, peak, np.nan)}
        if progress:
            progress(len(images))
        return Measurements(values, np.where(ok, "ok", "flat image"))

@hookimpl
def register_evaluators(register):
    register("brightness", Brightness)
"""


def _m(values: dict[str, list[float]], status: list[str]) -> Measurements:
    return Measurements({k: np.asarray(v, dtype=float) for k, v in values.items()}, np.asarray(status))


def test_measurements_count_failures_and_join() -> None:
    a = _m({"x": [1.0, np.nan]}, ["ok", "no convergence"])
    b = _m({"x": [3.0]}, ["ok"])
    joined = Measurements.concatenate([a, b])
    assert len(joined) == 3 and joined.failure_rate == pytest.approx(1 / 3)
    assert joined.ok.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="expected"):
        _m({"x": [1.0, 2.0]}, ["ok"])


def test_comparison_measures_the_distance_between_distributions() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 1.0, 4000)
    same = compare_measurements(_m({"x": base[:2000]}, ["ok"] * 2000), _m({"x": base[2000:]}, ["ok"] * 2000),
                                quantities=("x",))["quantities"]["x"]  # fmt: skip
    shifted = compare_measurements(
        _m({"x": base[:2000]}, ["ok"] * 2000), _m({"x": base[2000:] + 0.5}, ["ok"] * 2000), quantities=("x",)
    )["quantities"]["x"]
    assert same["ks_statistic"] < 0.05 and same["ks_pvalue"] > 0.01 and same["wasserstein"] < 0.08
    assert shifted["wasserstein"] == pytest.approx(0.5, abs=0.08)
    assert shifted["ks_statistic"] > 0.15 and shifted["ks_pvalue"] < 1e-6
    real, generated = _m({"x": [1.0, np.nan]}, ["ok", "flat image"]), _m({"x": [np.nan]}, ["bad"])
    failed = compare_measurements(real, generated, quantities=("x",))
    assert failed["failure_rate"] == {"real": 0.5, "generated": 1.0}
    assert failed["quantities"]["x"]["ks_statistic"] is None  # too few measurements, said so


def test_nearest_l1_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    q, r = rng.random((7, 2, 3, 3)), rng.random((11, 2, 3, 3))
    dist, index = nearest_l1(q, r, chunk=3)
    brute = np.abs(q[:, None] - r[None]).reshape(7, 11, -1).mean(-1)
    assert np.array_equal(index, brute.argmin(1))
    assert np.allclose(dist, brute.min(1), atol=1e-6)
    self_dist, self_index = nearest_l1(r, r, exclude_self=True, chunk=4)
    assert (self_index != np.arange(11)).all() and (self_dist > 0).all()


def test_closest_match_flags_memorised_images() -> None:
    rng = np.random.default_rng(2)
    real = rng.random((60, 3, 16, 16)).astype(np.float32)
    assert centre_crop(real).shape == (60, 3, 8, 8)
    copies = closest_match(real[:20] + 1e-4, real)["summary"]
    fresh = closest_match(rng.random((20, 3, 16, 16)).astype(np.float32), real)["summary"]
    assert copies["ratio_of_medians"] < 0.01 and copies["fraction_generated_below_that"] == 1.0
    assert fresh["ratio_of_medians"] > 0.9 and fresh["fraction_generated_below_that"] < 0.2


def test_evaluator_validation() -> None:
    class Empty(Evaluator):
        name = "empty"

    problems = validate_evaluator_class(Empty)
    assert any("abstract" in p for p in problems) and any("quantities" in p for p in problems)
    assert "not a subclass" in validate_evaluator_class(int)[0]


# ---- the command ----------------------------------------------------------------------------
@pytest.fixture
def stub_registry(fake_plugin, builtin_entry_points, monkeypatch):
    eps = fake_plugin("gangal_brightness", STUB, distribution="gangal-brightness")
    monkeypatch.setattr(plugins_module, "_registry", build_registry(entry_points=builtin_entry_points + eps))


def _generated(tmp_path: Path, n: int = 12) -> Path:
    rng = np.random.default_rng(3)
    images = rng.random((n, 3, 32, 32)).astype(np.float32) * 0.5
    images[0] = 0.0  # a flat image: its measurement fails and is recorded
    np.save(tmp_path / "generated.npy", images)
    return tmp_path / "generated.npy"


def test_evaluate_writes_every_output(stub_registry, tmp_path: Path) -> None:
    generated = _generated(tmp_path)
    out = tmp_path / "eval"
    args = ["evaluate", "--real", "synthetic", "--real-option", "n=10", "--generated", str(generated),
            "--evaluator", "brightness", "--out", str(out), "--no-progress", "--n-closest", "3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "evaluation.json").read_text())
    assert set(doc["quantities"]) == {"total", "peak"}
    assert doc["failure_rate"] == {"real": 0.0, "generated": pytest.approx(1 / 12)}
    assert doc["resolution"] == 32 and doc["real"]["source"] == "synthetic"
    assert 0 < doc["closest_match"]["median_generated_to_real"]
    rows = list(csv.DictReader((out / "measurements_generated.csv").open()))
    assert len(rows) == 12 and rows[0]["status"] == "flat image" and rows[0]["total"] == ""
    assert rows[1]["image"] == "generated.npy[1]" and float(rows[1]["total"]) > 0
    real_rows = list(csv.DictReader((out / "measurements_real.csv").open()))
    assert len(real_rows) == 10 and real_rows[0]["status"] == "ok"
    for name in ("histograms.png", "closest_match.png", "closest_distances.png"):
        assert (out / name).stat().st_size > 1000
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already holds evaluation.json" in again.output


def test_evaluate_reads_a_sample_folder_and_subsets(stub_registry, tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    folder.mkdir()
    np.save(folder / "samples.npy", np.random.default_rng(4).random((30, 3, 32, 32)).astype(np.float32))
    (folder / "sample.json").write_text("{}")
    real = _generated(tmp_path, n=20)
    result = CliRunner().invoke(app, ["evaluate", "--real", str(real), "--generated", str(folder), "-n", "8",
                                      "--evaluator", "brightness", "--out", str(tmp_path / "e"),
                                      "--no-progress", "--band", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert doc["n_measured"]["generated"] == 8 and doc["band"] == "1"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--real", "nowhere/at/all"], "no such file or folder"),
        (["--band", "7"], "3 channel(s)"),
        (["--method", "psychic"], "method must be fast or slow"),
        (["--evaluator", "nope"], "No evaluator named 'nope'"),
        (["--real-option", "n=3"], "applies to a data source"),
    ],
)
def test_evaluate_bad_input_is_a_clear_error(stub_registry, tmp_path: Path, extra, message) -> None:
    generated = _generated(tmp_path)
    args = {"--real": str(generated), "--generated": str(generated), "--evaluator": "brightness"}
    for k in range(0, len(extra), 2):
        args[extra[k]] = extra[k + 1]
    flat = [x for kv in args.items() for x in kv]
    result = CliRunner().invoke(app, ["evaluate", *flat, "--out", str(tmp_path / "o"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
