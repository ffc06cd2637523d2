"""Model-assisted GAN: networks, pretraining, calibration, resume and the three commands.

Everything runs on tiny configurations (a blob simulator on 8x8 images, small networks) that
take seconds, yet each asserts a result that a broken implementation would miss: the emulator
error falls, the generator moves to a known truth, a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from gangal_core import Parameter, Simulator
from gangal_core import calibration as cal
from gangal_core.calibration.networks import (
    ConvCritic,
    ConvEmulator,
    Discriminator,
    ImageScale,
    ParameterGenerator,
    Siamese,
)
from gangal_core.calibration.pretraining import PRETRAINING
from gangal_core.cli import app
from gangal_core.errors import ConfigError
from gangal_core.plugins import get_registry
from gangal_core.simulation.budget import metered
from gangal_core.training import Interrupted

TINY_EMU = {"width": 8, "hidden": 32}
TINY_CRITIC = {"width": 8, "encoding_size": 16}


class Blob(Simulator):
    """A centred Gaussian blob of brightness b on an 8x8 image, plus white noise of scale n."""

    name = "blob"
    image_shape = (1, 8, 8)
    parameters = (Parameter("b", 0.2, 2.0), Parameter("n", 0.02, 0.3))
    reference_truth = {"b": (1.5, 0.1), "n": (0.1, 0.02)}  # noqa: RUF012

    def simulate(self, params, *, generator):
        yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
        blob = torch.exp(-((yy - 3.5) ** 2 + (xx - 3.5) ** 2) / 4.0)
        b, n = params[:, 0, None, None, None], params[:, 1, None, None, None]
        noise = torch.randn((params.shape[0], 1, 8, 8), generator=generator)
        return b * blob + n * noise


def _emulator(seed: int = 0) -> cal.TrainedEmulator:
    return cal.pretrain(
        Blob(), iterations=400, batch_size=64, emulator_options=TINY_EMU, seed=seed, progress=False
    )


@pytest.fixture(scope="module")
def blob_emulator() -> cal.TrainedEmulator:
    torch.manual_seed(0)
    return _emulator()


# ---- networks --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 20, 36), (3, 64, 64), (2, 7, 9)])
def test_networks_are_sized_from_the_image_shape(shape) -> None:
    emu = ConvEmulator(shape, 4, **TINY_EMU)
    mean, std = emu(torch.rand(5, 4) * 2 - 1)
    assert mean.shape == std.shape == (5, *shape)
    assert mean.abs().max() < 1 and std.min() > 0
    critic = ConvCritic(shape, **TINY_CRITIC)
    x = torch.randn(6, *shape)
    assert critic(x).shape == (6, 16)
    assert Discriminator(critic)(x).shape == (6,)
    siamese = Siamese(critic)
    same = siamese(x, x)
    assert same.shape == (6,)
    assert torch.all(same > siamese(x, torch.randn_like(x)))  # identical images are the most alike


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 30, 26), (2, 7, 9)])
def test_inference_copy_equals_the_emulator(shape) -> None:
    """The sub-pixel, channels-last inference copy computes the same images (to float error)."""
    emu = ConvEmulator(shape, 3, width=16, hidden=32).eval()
    u = torch.rand(37, 3) * 2 - 1
    with torch.inference_mode():
        mean, std = emu(u)
        fast_mean, fast_std = emu.for_inference()(u)
    assert fast_mean.shape == mean.shape and fast_std.shape == std.shape
    torch.testing.assert_close(fast_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_std, std, atol=1e-5, rtol=1e-5)


def test_minibatch_std_sees_the_spread_of_a_batch() -> None:
    critic = ConvCritic((1, 8, 8), **TINY_CRITIC)
    d = Discriminator(critic, minibatch_std="mean")
    x = torch.randn(16, 1, 8, 8)
    narrow = x[:1].expand(16, -1, -1, -1)  # the same image 16 times: no spread at all
    with torch.no_grad():
        d.head.weight.zero_()
        d.head.weight[0, -1] = 1.0  # read only the spread feature
        assert torch.all(d(x) > d(narrow))
    with pytest.raises(ValueError, match="minibatch_std"):
        Discriminator(critic, minibatch_std="batch")


def test_generator_outputs_lie_in_the_unit_box() -> None:
    g = ParameterGenerator(3, noise_size=4)
    u = g.sample(1000)
    assert u.shape == (1000, 3) and u.abs().max() < 1


def test_image_scale_puts_pixels_inside_tanh_range() -> None:
    images = torch.randn(500, 1, 8, 8) * 3 + 10
    scale = ImageScale.fit(images)
    z = scale.normalise(images)
    assert 0.99 < (z.abs() <= 0.9).float().mean() <= 1.0
    torch.testing.assert_close(scale.denormalise(z), images)


def test_straight_through_gives_simulated_images_and_emulator_gradients() -> None:
    u = torch.tensor([[0.3, -0.2]], requires_grad=True)
    mean, std = u.sum() * torch.ones(1, 1, 2, 2), (u[:, 1].exp() * torch.ones(1, 1, 2, 2))
    simulated = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    x = cal.simulated_with_emulator_gradient(mean, std, simulated)
    torch.testing.assert_close(x, simulated)  # forward: exactly the simulator's images
    x.sum().backward()
    eps = (simulated - mean) / std
    expected = torch.tensor([4.0, 4.0]) + torch.tensor([0.0, float((std * eps).sum().detach())])
    torch.testing.assert_close(u.grad[0], expected.detach())  # backward: d(mean + std * eps)/du


# ---- pretraining -----------------------------------------------------------------------------
def test_likelihood_pretraining_learns_mean_and_noise(blob_emulator) -> None:
    sim = Blob()
    gen = torch.Generator().manual_seed(1)
    params = torch.tensor([[1.5, 0.05], [1.5, 0.25], [0.5, 0.1]])
    mean, std = blob_emulator.network(blob_emulator.to_unit(params))
    noiseless = params * torch.tensor([1.0, 0.0])
    blob = blob_emulator.scale.normalise(sim.simulate(noiseless, generator=gen))
    # the mean image is the noiseless blob; the learned noise grows with n
    assert (mean - blob).abs().mean() < 0.1
    sd = std.mean(dim=(1, 2, 3)) * blob_emulator.scale.scale
    assert sd[1] > 2.5 * sd[0]
    assert abs(float(sd[1]) - 0.25) < 0.08
    rmse = blob_emulator.info["losses"]["values"]["rmse"]
    assert rmse[-1] < 0.7 * rmse[0]


def test_pretraining_also_learns_to_read_parameters_off_images(blob_emulator) -> None:
    sim = Blob()
    gen = torch.Generator().manual_seed(2)
    params = sim.sample_uniform(500, generator=gen)
    with torch.no_grad():
        u_hat = blob_emulator.estimator(blob_emulator.scale.normalise(sim.simulate(params, generator=gen)))
    u = blob_emulator.to_unit(params)
    # the brightness is plain to see, the noise scale harder; both far better than guessing (var 1/3)
    errors = (u_hat - u).square().mean(0)
    assert errors[0] < 0.01 and errors[1] < 0.1, errors
    d = Discriminator.from_estimator(blob_emulator.estimator)
    assert d.estimate is not None and d.critic is not blob_emulator.estimator.critic  # a copy to train
    torch.testing.assert_close(d.estimate.weight, blob_emulator.estimator.estimate.weight)


def test_paper_recipe_pretrains_with_a_siamese_network() -> None:
    emu = cal.pretrain(
        Blob(),
        iterations=60,
        batch_size=32,
        recipe="paper",
        emulator_options=TINY_EMU,
        critic_options=TINY_CRITIC,
        progress=False,
    )
    values = emu.info["losses"]["values"]
    assert set(values) == {"siamese", "emulator", "rmse", "estimator"}
    assert all(np.isfinite(v).all() for v in values.values())
    assert values["rmse"][-1] < values["rmse"][0]  # fooling the Siamese network pulls E towards T


@pytest.mark.parametrize("recipe", ["likelihood", "paper"])
def test_pretraining_counts_the_simulator_images_it_makes(recipe: str) -> None:
    meter = metered(Blob())
    trainer = PRETRAINING[recipe](meter, iterations=12, batch_size=32, emulator_options=TINY_EMU,
                                  critic_options=TINY_CRITIC, progress=False)  # fmt: skip
    trainer.train()
    assert trainer.simulator_images(12) == meter.images == 4096 + 12 * 32 * (2 if recipe == "paper" else 1)


def test_unknown_recipe_and_architecture_are_named() -> None:
    with pytest.raises(ConfigError, match=r"--recipe.*likelihood, paper.*'fast'"):
        cal.pretrain(Blob(), iterations=1, recipe="fast", progress=False)
    with pytest.raises(Exception, match=r"No emulator named 'huge'.*conv"):
        cal.pretrain(Blob(), iterations=1, emulator_arch="huge", progress=False)


def test_emulator_round_trips_through_safetensors(blob_emulator, tmp_path) -> None:
    path = cal.save_emulator(blob_emulator, tmp_path / "emu")
    loaded = cal.load_emulator(tmp_path / "emu")
    assert (loaded.simulator, loaded.arch, loaded.image_shape) == ("blob", "conv", (1, 8, 8))
    assert loaded.parameter_names == ("b", "n") and loaded.scale == blob_emulator.scale
    params = torch.tensor([[1.0, 0.1], [1.8, 0.2]])
    a = blob_emulator.emulate(params, generator=torch.Generator().manual_seed(3))
    b = cal.load_emulator(path).emulate(params, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(loaded.estimator(x), blob_emulator.estimator(x))


def test_bad_emulator_files_are_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"no emulator.safetensors.*gangal pretrain"):
        cal.load_emulator(tmp_path)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match=r"junk.safetensors.*not a readable safetensors"):
        cal.load_emulator(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigError, match=r"other.safetensors.*not a gangal emulator"):
        cal.load_emulator(tmp_path / "other.safetensors")


def test_a_plugin_supplies_its_own_emulator_architecture(fake_plugin, builtin_entry_points) -> None:
    from gangal_core.plugins import build_registry

    eps = fake_plugin(
        "gangal_mlp",
        """
        import torch
        from torch import nn
        from gangal_core import hookimpl
        from gangal_core.networks import Emulator

        class MLPEmulator(Emulator):
            name = "mlp"
            def __init__(self, image_shape, n_parameters, *, hidden=16):
                super().__init__(image_shape, n_parameters, hidden=hidden)
                size = int(torch.tensor(image_shape).prod())
                self.net = nn.Sequential(
                    nn.Linear(n_parameters, hidden), nn.Tanh(), nn.Linear(hidden, 2 * size)
                )
            def forward(self, u):
                y = self.net(u).view(-1, 2, *self.image_shape[1:])
                return torch.tanh(y[:, :1]), nn.functional.softplus(y[:, 1:]) + 1e-3

        @hookimpl
        def register_emulators(register):
            register(MLPEmulator)
        """,
    )
    registry = build_registry(builtin_entry_points + eps)
    assert registry.get("emulator", "mlp").distribution == "gangal-fake"
    emu = cal.pretrain(
        Blob(),
        iterations=5,
        batch_size=16,
        emulator_arch="mlp",
        emulator_options={"hidden": 8},
        registry=registry,
        progress=False,
    )
    assert type(emu.network).__name__ == "MLPEmulator" and emu.network.options == {"hidden": 8}


# ---- calibration -----------------------------------------------------------------------------
def _calibrate(emu, true, **kw):
    options = {
        "iterations": 400,
        "batch_size": 64,
        "critic_options": TINY_CRITIC,
        "learning_rate": 2e-3,
        "n_samples": 4000,
        "progress": False,
    }
    options.update(kw)
    return cal.calibrate(Blob(), emu, true, **options)


@pytest.mark.parametrize("discriminator_input", ["simulated", "emulated"])
def test_generator_moves_to_a_known_truth(blob_emulator, discriminator_input) -> None:
    truth = {"b": (1.5, 0.1), "n": (0.1, 0.02)}
    _, true = cal.make_true_set(Blob(), truth, n=2000, seed=1)
    result = _calibrate(blob_emulator, true, discriminator_input=discriminator_input)
    assert result.samples.shape == (4000, 2) and result.names == ("b", "n")
    # the untrained generator sits near the middle of the ranges (b ~ 1.1, n ~ 0.16)
    assert abs(result.mean[0] - 1.5) < 0.1, result.mean
    assert abs(result.mean[1] - 0.1) < 0.03, result.mean
    # and its spread to the right order of magnitude
    assert 0.04 < result.std[0] < 0.25 and 0.008 < result.std[1] < 0.05, result.std


def test_other_truths_are_found_too(blob_emulator) -> None:
    _, true = cal.make_true_set(Blob(), {"b": (0.8, 0.1), "n": (0.2, 0.02)}, n=2000, seed=2)
    result = _calibrate(blob_emulator, true)
    assert abs(result.mean[0] - 0.8) < 0.1 and abs(result.mean[1] - 0.2) < 0.03, result.mean


def test_paper_training_recipe_runs(blob_emulator) -> None:
    _, true = cal.make_true_set(Blob(), Blob.reference_truth, n=500, seed=1)
    result = _calibrate(blob_emulator, true, iterations=50, recipe="paper")
    assert np.isfinite(result.samples).all()
    assert set(result.losses["values"]) == {"D", "G"}


def test_interrupted_run_resumes_to_the_same_result(blob_emulator, tmp_path, monkeypatch) -> None:
    _, true = cal.make_true_set(Blob(), Blob.reference_truth, n=500, seed=1)
    whole = _calibrate(blob_emulator, true, iterations=60)

    from gangal_core import training

    real_step_runner = training.TrainingLoop.run

    def interrupting_run(self):
        step = self.step

        def step_or_stop(i):
            if i == 37:
                raise KeyboardInterrupt
            return step(i)

        self.step = step_or_stop
        return real_step_runner(self)

    ckpt = tmp_path / "checkpoint.safetensors"
    monkeypatch.setattr(training.TrainingLoop, "run", interrupting_run)
    with pytest.raises(Interrupted, match=r"iteration 37 of 60.*--resume"):
        _calibrate(blob_emulator, true, iterations=60, checkpoint=ckpt, checkpoint_every=10)
    monkeypatch.setattr(training.TrainingLoop, "run", real_step_runner)
    assert ckpt.exists()
    resumed = _calibrate(
        blob_emulator, true, iterations=60, checkpoint=ckpt, checkpoint_every=10, resume=True
    )
    np.testing.assert_array_equal(resumed.samples, whole.samples)


def test_incompatible_inputs_are_refused(blob_emulator) -> None:
    with pytest.raises(ConfigError, match=r"--true-data: expected images of shape \(1, 8, 8\)"):
        _calibrate(blob_emulator, torch.zeros(10, 1, 9, 9))
    with pytest.raises(ConfigError, match="NaN"):
        _calibrate(blob_emulator, torch.full((10, 1, 8, 8), float("nan")))
    from gangal_core.plugins import get_registry

    with pytest.raises(ConfigError, match="pretrained for simulator 'blob', not 'circle'"):
        cal.calibrate(
            get_registry().simulator("circle"), blob_emulator, torch.zeros(10, 1, 28, 28), progress=False
        )


def test_true_set_is_a_truncated_gaussian_inside_the_ranges() -> None:
    params, images = cal.make_true_set(Blob(), {"b": (1.9, 0.2), "n": (0.1, 0.01)}, n=3000, seed=0)
    assert images.shape == (3000, 1, 8, 8)
    assert params[:, 0].max() <= 2.0 and params[:, 0].min() > 1.0
    assert abs(float(params[:, 1].mean()) - 0.1) < 0.002
    with pytest.raises(ConfigError, match=r"missing \['n'\]"):
        cal.make_true_set(Blob(), {"b": (1.0, 0.1)}, n=10)


# ---- the commands --------------------------------------------------------------------------------
def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


TINY_RUN = [
    "--iterations",
    30,
    "--pretrain-iterations",
    30,
    "--n-true",
    300,
    "--n-samples",
    500,
    "--batch-size",
    32,
    "--no-progress",
]


@pytest.fixture(scope="module")
def circle_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "circle"
    result = _run("calibrate", "--simulator", "circle", "--out", out, *TINY_RUN)
    assert result.exit_code == 0, result.output
    (out.parent / "printed.txt").write_text(result.output)
    return out


def test_calibrate_writes_results_plots_and_a_table(circle_run) -> None:
    doc = json.loads((circle_run / "calibration.json").read_text())
    assert doc["simulator"] == "circle" and doc["n_samples"] == 500 and doc["seconds"] > 0
    assert list(doc["parameters"]) == ["x0", "y0", "r", "n", "b"]
    assert doc["parameters"]["r"]["true_mean"] == 8 and doc["parameters"]["r"]["true_std"] == 0.5
    with open(circle_run / "samples.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["x0", "y0", "r", "n", "b"] and len(rows) == 501
    samples = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(samples.mean(0), [doc["parameters"][k]["mean"] for k in rows[0]], rtol=1e-4)
    for png in ("parameters.png", "generated.png", "losses.png", "emulator/emulator.png"):
        assert (circle_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (circle_run / "emulator" / "emulator.safetensors").exists()
    for v in doc["parameters"].values():  # standard errors of every best-match mean and spread
        assert 0 < v["mean_err"] < float("inf") and 0 < v["std_err"] < float("inf")
    check = doc["predictive_check"]
    assert doc["predictive_auc"] == check["auc"] and 0 <= check["auc"] <= 1 and check["auc_err"] > 0
    assert check["n_train"] == check["n_test"] == 150 and isinstance(check["flagged"], bool)


def test_calibrate_writes_units_correlations_an_ecsv_and_a_corner_plot(circle_run) -> None:
    from astropy.table import Table

    doc = json.loads((circle_run / "calibration.json").read_text())
    assert {v["unit"] for v in doc["parameters"].values()} == {"px", ""}  # n and b are unitless
    assert doc["parameters"]["r"]["unit"] == "px"
    samples = Table.read(circle_run / "samples.ecsv")
    assert samples.colnames == doc["correlation"]["parameters"] == ["x0", "y0", "r", "n", "b"]
    assert str(samples["r"].unit) == "px" and samples["n"].unit is None
    assert samples["r"].description == "radius of the ring" and samples.meta["simulator"] == "circle"
    with open(circle_run / "samples.csv") as fh:
        rows = np.array(list(csv.reader(fh))[1:], dtype=float)
    np.testing.assert_array_equal(np.column_stack([samples[n] for n in samples.colnames]), rows)
    matrix = np.array(doc["correlation"]["matrix"], dtype=float)
    np.testing.assert_allclose(matrix, np.corrcoef(rows, rowvar=False), atol=1e-3)
    assert (circle_run / "corner.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = " ".join((circle_run.parent / "printed.txt").read_text().split())
    assert "x0 [px]" in printed and "r [px]" in printed and "samples.ecsv" in printed


def test_calibrate_writes_the_losses_of_both_trainings_to_metrics_csv(circle_run) -> None:
    runs = {"metrics.csv": ["D", "G"], "emulator/metrics.csv": ["nll", "rmse", "estimator"]}
    for name, losses in runs.items():
        path = circle_run / name
        with open(path, newline="") as fh:
            header, *rows = list(csv.reader(fh))
        assert header == ["iteration", "seconds", *losses]
        assert [int(r[0]) for r in rows] == [10, 20, 30]  # TINY_RUN: 30 iterations each
        assert all(np.isfinite([float(v) for v in r[1:]]).all() for r in rows)


def test_pretrain_in_a_batch_log_prints_progress_lines(tmp_path) -> None:
    args = ["--iterations", 20, "--batch-size", 32, "--out", tmp_path / "emu"]
    result = _run("pretrain", "--simulator", "polynomial", *args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("[gangal] ")]
    stage = "[gangal] pretraining polynomial emulator"
    assert lines[0] == f"{stage}: 0/20 (0%) | 4,096 simulator images | 0:00 elapsed"
    last = lines[-1]
    assert last.startswith(f"{stage}: 20/20 (100%) | nll ") and " rmse " in last
    assert last.endswith(" | 4,736 simulator images | " + last.split(" | ")[-1]) and last.endswith(", done")
    assert (tmp_path / "emu" / "metrics.csv").exists()


def test_calibrate_refuses_to_overwrite_a_run(circle_run) -> None:
    result = _run("calibrate", "--simulator", "circle", "--out", circle_run, *TINY_RUN)
    assert result.exit_code == 2
    assert "already holds a run" in result.output and "--resume" in result.output


def test_calibrate_with_a_pretrained_emulator_and_true_data_files(circle_run, tmp_path) -> None:
    params, images = cal.make_true_set(
        get_registry().simulator("circle"),
        {"x0": (17, 0.6), "y0": (19, 0.6), "r": (7.5, 0.4), "n": (0.1, 0.03), "b": (0.95, 0.04)},
        n=300,
    )
    np.save(tmp_path / "true.npy", images.numpy())
    with open(tmp_path / "true.csv", "w") as fh:
        fh.write("x0,y0,r,n,b\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in params.tolist()))
    out = tmp_path / "run"
    result = _run(
        "calibrate",
        "--simulator",
        "circle",
        "--emulator",
        circle_run / "emulator",
        "--true-data",
        tmp_path / "true.npy",
        "--true-params",
        tmp_path / "true.csv",
        "--out",
        out,
        "--no-predictive-check",
        *TINY_RUN,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "calibration.json").read_text())
    assert "predictive_auc" not in doc and "Predictive check" not in result.output
    assert abs(doc["parameters"]["x0"]["true_mean"] - float(params[:, 0].mean())) < 1e-4
    assert doc["true_data"]["source"].endswith("true.npy")
    assert not (out / "emulator").exists()  # used the given emulator, no pretraining


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--truth", "r=8"], "--truth 'r=8': expected NAME=MEAN,STD"),
        (["--truth", "radius=8,0.5"], "'radius' is not a parameter"),
        (["--truth", "r=8,-1"], "positive standard deviation"),
        (["--true-params", "x.csv"], "--true-params describes --true-data"),
        (["--true-data", "missing.npy"], "missing.npy"),
        (["--recipe", "fancy"], "recipe"),
        (["--iterations", 0], "iterations"),
    ],
)
def test_calibrate_bad_options_are_named(tmp_path, args, message) -> None:
    result = _run("calibrate", "--simulator", "circle", "--out", tmp_path / "r", *TINY_RUN, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", " ")
    assert "Traceback" not in result.output


def test_true_params_in_a_unit_that_cannot_be_converted_are_refused(tmp_path) -> None:
    import astropy.units as u
    from astropy.table import Table

    np.save(tmp_path / "true.npy", np.zeros((3, 1, 28, 28), dtype=np.float32))
    columns = {"x0": [18.0] * 3 * u.s, "y0": [18.0] * 3 * u.pix, "r": [8.0] * 3, "n": [0.1] * 3,
               "b": [0.9] * 3}  # fmt: skip
    Table(columns).write(tmp_path / "true.ecsv")
    args = ["--true-data", tmp_path / "true.npy", "--true-params", tmp_path / "true.ecsv"]
    result = _run("calibrate", "--simulator", "circle", "--out", tmp_path / "r", *TINY_RUN, *args)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--true-params" in text and "true.ecsv" in text
    assert "column 'x0' is in 's', which cannot be converted to 'px'" in text


def test_pretrain_and_emulate_commands(tmp_path) -> None:
    emu_dir = tmp_path / "emu"
    result = _run(
        "pretrain",
        "--simulator",
        "polynomial",
        "--out",
        emu_dir,
        "--iterations",
        20,
        "--batch-size",
        32,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert (emu_dir / "emulator.safetensors").exists() and (emu_dir / "emulator.png").exists()
    (tmp_path / "p.csv").write_text("x0,m,c,xsteps\n10,1.5,0.5,9\n9,1,0.4,8\n")
    result = _run(
        "emulate", "--emulator", emu_dir, "--params", tmp_path / "p.csv", "--out", tmp_path / "i.npy"
    )
    assert result.exit_code == 0, result.output
    images = np.load(tmp_path / "i.npy")
    assert images.shape == (2, 1, 28, 28) and np.isfinite(images).all()
    from astropy.table import Table

    table = Table({"xsteps": [9.0, 8.0], "c": [0.5, 0.4], "m": [1.5, 1.0], "x0": [10.0, 9.0]})
    table.write(tmp_path / "p.ecsv")
    ecsv_args = ["--params", tmp_path / "p.ecsv", "--out", tmp_path / "e.npy"]
    result = _run("emulate", "--emulator", emu_dir, *ecsv_args)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), images)  # the same parameters, read from ECSV
    half_args = ["--out", tmp_path / "h.npy", "--precision", "bfloat16"]
    result = _run("emulate", "--emulator", emu_dir, "--params", tmp_path / "p.csv", *half_args)
    assert result.exit_code == 0, result.output
    half = np.load(tmp_path / "h.npy")  # same seed, same noise: only the network's arithmetic differs
    assert half.dtype == np.float32 and 0 < np.abs(half - images).max() < 0.1
    (tmp_path / "bad.csv").write_text("m,x0,c,xsteps\n1.5,10,0.5,20\n")
    result = _run(
        "emulate", "--emulator", emu_dir, "--params", tmp_path / "bad.csv", "--out", tmp_path / "j.npy"
    )
    assert result.exit_code == 2
    assert "line 2: xsteps = 20 is outside the range the emulator was trained on, [7, 11]" in result.output
    assert not (tmp_path / "j.npy").exists()


def test_resume_of_a_finished_run_keeps_its_result(circle_run) -> None:
    before = json.loads((circle_run / "calibration.json").read_text())
    result = _run("calibrate", "--simulator", "circle", "--out", circle_run, "--resume", *TINY_RUN)
    assert result.exit_code == 0, result.output
    after = json.loads((circle_run / "calibration.json").read_text())
    for name, v in before["parameters"].items():  # nothing retrained: the same generator, the same samples
        assert after["parameters"][name]["mean"] == v["mean"]
    assert after["timing_seconds"]["pretrain"] < 5  # the run's emulator was reloaded, not retrained


def test_a_damaged_checkpoint_is_named(tmp_path) -> None:
    from gangal_core.errors import GangalError
    from gangal_core.training import load_checkpoint

    bad = tmp_path / "checkpoint.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(GangalError, match=r"checkpoint .*checkpoint.safetensors cannot be read"):
        load_checkpoint(bad)


def test_ctrl_c_saves_and_exits_with_130(tmp_path, monkeypatch) -> None:
    from gangal_core import training

    def interrupted(self):
        self.save(0)
        raise training.Interrupted("interrupted at iteration 0 of 30; Run the same command with --resume")

    monkeypatch.setattr(training.TrainingLoop, "run", interrupted)
    result = _run(
        "pretrain", "--simulator", "polynomial", "--out", tmp_path / "e", "--iterations", 30, "--no-progress"
    )
    assert result.exit_code == 130
    assert "--resume" in result.output and "Traceback" not in result.output
    assert (tmp_path / "e" / "checkpoint.safetensors").exists()


def test_interrupted_pretraining_resumes_to_the_same_emulator(tmp_path, monkeypatch) -> None:
    from gangal_core import training

    def run(**kw):
        return cal.pretrain(
            Blob(), iterations=60, batch_size=32, emulator_options=TINY_EMU, progress=False, **kw
        )

    whole = run()
    real = training.TrainingLoop.run

    def interrupting_run(self):
        step = self.step
        self.step = lambda i: (_ for _ in ()).throw(KeyboardInterrupt) if i == 37 else step(i)
        return real(self)

    ckpt = tmp_path / "checkpoint.safetensors"
    monkeypatch.setattr(training.TrainingLoop, "run", interrupting_run)
    with pytest.raises(Interrupted, match="iteration 37 of 60"):
        run(checkpoint=ckpt, checkpoint_every=10)
    monkeypatch.setattr(training.TrainingLoop, "run", real)
    resumed = run(checkpoint=ckpt, checkpoint_every=10, resume=True)
    assert resumed.scale == whole.scale  # the run's own pixel scale comes back with it
    for a, b in zip(resumed.network.state_dict().values(), whole.network.state_dict().values(), strict=True):
        assert torch.equal(a, b)
