"""Chained GAN: the paper's layer specs, the trainer, save/load, sampling and resume.

The networks are checked against parameter counts worked out by hand from the framed
specs of Fussell & Moews (2019); training runs on tiny widths and a few dozen in-memory
images, and each test asserts something a broken implementation would get wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gangal_stackgan import StackGANGenerator, StackGANRefiner
from torch import nn

from gangal_core.chain.networks import DCGANDiscriminator, DCGANGenerator, Refiner, validate_refiner_class
from gangal_core.chain.stages import load_generator, sample_chain, save_network
from gangal_core.chain.trainers import DCGANTrainer, RefinerTrainer
from gangal_core.data.sources import DataSource
from gangal_core.errors import GangalError


class Ellipses(DataSource):
    """Seeded bright ellipses on black, native 128x128, float in [0, 1]."""

    name = "ellipses"
    channels = 3
    resolution = 128

    def __init__(self, n: int = 48) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def read(self, index: int) -> np.ndarray:
        rng = np.random.default_rng(index)
        y, x = np.mgrid[:128, :128] - 63.5
        a, b = rng.uniform(6, 24), rng.uniform(4, 10)
        th = rng.uniform(0, np.pi)
        u, v = x * np.cos(th) + y * np.sin(th), -x * np.sin(th) + y * np.cos(th)
        im = np.exp(-((u / a) ** 2) - (v / b) ** 2)
        return np.stack([im, 0.8 * im, 0.6 * im]).astype(np.float32)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _convt(c_in: int, c_out: int, k: int = 4, bias: bool = False) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def _bn(c: int) -> int:
    return 2 * c


# ---- the paper's layer specs -------------------------------------------------------------------
@pytest.mark.parametrize("width", [128, 32])
def test_dcgan_64_matches_the_framed_spec(width: int) -> None:
    g, d = DCGANGenerator(width=width), DCGANDiscriminator(width=width)
    # generator 100 -> 8W -> 4W -> 2W -> W -> 3, BN after layers 2-4, bias where no BN follows
    c = [100, 8 * width, 4 * width, 2 * width, width, 3]
    expected_g = _convt(c[0], c[1], bias=True) + sum(
        _convt(c[i], c[i + 1]) + _bn(c[i + 1]) for i in (1, 2, 3)
    )
    expected_g += _convt(c[4], c[5], bias=True)
    assert _params(g) == expected_g
    # discriminator 3 -> W -> 2W -> 4W -> 8W -> 1
    c = [3, width, 2 * width, 4 * width, 8 * width, 1]
    expected_d = _convt(c[0], c[1], bias=True) + sum(
        _convt(c[i], c[i + 1]) + _bn(c[i + 1]) for i in (1, 2, 3)
    )
    expected_d += _convt(c[4], c[5], bias=True)
    assert _params(d) == expected_d
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == 5 and all(m.kernel_size == (4, 4) for m in convs)
    assert [m.stride[0] for m in convs] == [1, 2, 2, 2, 2]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 3
    d_convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [m.padding[0] for m in d_convs] == [3, 1, 1, 1, 0]
    assert [m.stride[0] for m in d_convs] == [2, 2, 2, 2, 1]


def test_dcgan_128_variant_has_six_layers_and_a_32_channel_discriminator() -> None:
    g, d = DCGANGenerator(resolution=128), DCGANDiscriminator(resolution=128)
    assert [m.out_channels for m in g.modules() if isinstance(m, nn.ConvTranspose2d)] == [
        2048, 1024, 512, 256, 128, 3,
    ]  # fmt: skip
    assert [m.out_channels for m in d.modules() if isinstance(m, nn.Conv2d)] == [32, 64, 128, 256, 512, 1]
    z = torch.randn(2, 100)
    x = g(z)
    assert x.shape == (2, 3, 128, 128) and x.abs().max() <= 1
    assert d(x).shape == (2,)


def test_discriminator_dropout_switches_on_at_the_chosen_epoch() -> None:
    trainer = DCGANTrainer(Ellipses(8), width=2, batch_size=4, dropout_from_epoch=3, folder=Path("unused"),
                           epochs=1, progress=False)  # fmt: skip
    trainer.on_epoch_start(1)  # second epoch
    assert trainer.discriminator.final_dropout.p == 0.0
    trainer.on_epoch_start(2)  # third epoch
    assert trainer.discriminator.final_dropout.p == 0.5


def test_stackgan_generator_matches_the_framed_spec() -> None:
    width = 128
    g = StackGANGenerator(width=width)
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16
    assert convs[0].kernel_size == (4, 4) and convs[0].stride == (2, 2)
    assert all(m.kernel_size == (3, 3) and m.stride == (1, 1) and m.padding == (1, 1) for m in convs[1:])
    assert [convs[-2].out_channels, convs[-1].in_channels, convs[-1].out_channels] == [512, 512, 3]
    bn = sum(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    assert bn == 14  # layers 2-15
    expected = (3 * 128 * 16 + 128) + 13 * (128 * 128 * 9 + 256) + (128 * 512 * 9 + 1024) + (512 * 3 * 9 + 3)
    assert _params(g) == expected

    sizes = []
    g.first.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    y = g(torch.rand(2, 3, 64, 64))
    assert sizes == [32]  # the information bottleneck
    assert y.shape == (2, 3, 128, 128) and y.min() >= -1 and y.max() <= 1


def test_stackgan_residual_paths_carry_the_first_layer_past_the_trunk() -> None:
    g = StackGANGenerator(width=4).eval()
    x = torch.rand(1, 3, 64, 64)
    base = g(x)
    with torch.no_grad():  # silence the trunk: the skip from layer 1 must still reach the output
        for pair in g.pairs:
            for block in pair:
                block[0].weight.zero_()
        g.trunk_end[0].weight.zero_()
    silenced = g(x)
    assert not torch.allclose(base, silenced)
    other = g(torch.rand(1, 3, 64, 64))
    assert (silenced - other).abs().max() > 1e-2 * silenced.abs().max()  # the input still gets through


def test_refiner_loss_is_the_dual_objective_on_channel_sums() -> None:
    refiner = StackGANRefiner(width=4)
    fake, real = torch.rand(3, 3, 8, 8) * 2 - 1, torch.rand(3, 3, 8, 8) * 2 - 1
    logits = torch.randn(3)
    loss, parts = refiner.generator_loss(logits, fake, real)
    pixel = ((real.sum(1) - fake.sum(1)) ** 2).mean()
    adversarial = -torch.log(torch.sigmoid(logits)).mean()
    assert torch.allclose(loss, 0.001 * adversarial + pixel, atol=1e-5)
    assert parts["L_P"] == pytest.approx(float(pixel), rel=1e-5)
    assert [refiner.learning_rate(e) for e in (0, 79, 80, 160)] == [2e-4, 2e-4, 1e-4, 5e-5]


def test_refiner_validation_names_what_is_missing() -> None:
    class Half(Refiner):
        name = "half"

    assert "abstract methods" in validate_refiner_class(Half)[0]
    assert validate_refiner_class(StackGANRefiner) == []
    assert "not a subclass" in validate_refiner_class(object)[0]


# ---- training, files, sampling -----------------------------------------------------------------
def _train_dcgan(folder: Path, *, epochs: int = 3, resume: bool = False, **kw) -> DCGANTrainer:
    trainer = DCGANTrainer(Ellipses(48), width=4, batch_size=8, folder=folder, epochs=epochs, seed=5,
                           progress=False, resume=resume, **kw)  # fmt: skip
    trainer.train()
    return trainer


def test_tiny_dcgan_training_moves_the_losses_and_writes_its_files(tmp_path: Path) -> None:
    start = DCGANGenerator(width=4)
    torch.manual_seed(5)
    start = DCGANGenerator(width=4, channels=3)
    trainer = _train_dcgan(tmp_path / "dcgan", epochs=4)
    values = trainer.history.values
    assert len(values["D"]) >= 8
    assert np.std(values["D"]) > 0.01 and np.std(values["G"]) > 0.01  # the losses move
    moved = sum(
        (a - b).abs().sum() for a, b in zip(trainer.generator.parameters(), start.parameters(), strict=True)
    )
    assert moved > 1.0
    names = {p.name for p in (tmp_path / "dcgan").iterdir()}
    assert {"generator.safetensors", "generator-ema.safetensors", "discriminator.safetensors",
            "training.json", "losses.png", "samples", "metrics.csv"} <= names  # fmt: skip
    assert len(list((tmp_path / "dcgan" / "samples").glob("epoch-*.png"))) == 4
    summary = json.loads((tmp_path / "dcgan" / "training.json").read_text())
    assert summary["epochs"] == 4 and summary["images_per_second"] > 0 and summary["batches_per_epoch"] == 6


def test_generator_reloads_from_its_file_alone_and_samples_are_seeded(tmp_path: Path) -> None:
    trainer = _train_dcgan(tmp_path / "dcgan", epochs=1)
    network, meta = load_generator(tmp_path / "dcgan")
    assert meta["stage"] == "dcgan" and meta["generator"]["width"] == 4
    z = torch.randn(5, 100)
    with torch.no_grad():
        expected = trainer.ema.model.eval()(z)
    assert torch.allclose(network(z), expected, atol=1e-6)
    a, _ = sample_chain([(network, meta)], 10, seed=3, batch_size=4)
    b, _ = sample_chain([(network, meta)], 10, seed=3, batch_size=10)
    c, _ = sample_chain([(network, meta)], 10, seed=4)
    assert torch.equal(a, b)  # independent of the batch size
    assert not torch.equal(a, c)
    assert a.shape == (10, 3, 64, 64) and a.min() >= 0 and a.max() <= 1
    raw, _ = load_generator(tmp_path / "dcgan", weights="raw")
    assert not torch.allclose(raw(z), network(z))


def test_resumed_training_ends_with_the_same_weights(tmp_path: Path) -> None:
    straight = _train_dcgan(tmp_path / "a", epochs=2, label_smoothing=0.3)
    _train_dcgan(tmp_path / "b", epochs=1, label_smoothing=0.3)
    resumed = _train_dcgan(tmp_path / "b", epochs=2, resume=True, label_smoothing=0.3)
    for x, y in zip(
        straight.generator.state_dict().values(), resumed.generator.state_dict().values(), strict=True
    ):
        assert torch.equal(x, y)
    for x, y in zip(
        straight.ema.model.state_dict().values(), resumed.ema.model.state_dict().values(), strict=True
    ):
        assert torch.equal(x, y)
    # metrics.csv: every 10th batch and the last; the first run's last (6) stays, then the extension's
    rows = {run: [line.split(",") for line in (tmp_path / run / "metrics.csv").read_text().splitlines()]
            for run in ("a", "b")}  # fmt: skip
    assert rows["a"][0] == rows["b"][0] == ["iteration", "seconds", "D", "G"]
    assert [r[0] for r in rows["a"][1:]] == ["10", "12"]
    assert [r[0] for r in rows["b"][1:]] == ["6", "10", "12"]
    assert [r[2:] for r in rows["a"][1:]] == [r[2:] for r in rows["b"][2:]]


def test_label_smoothing_draws_real_labels_in_the_band() -> None:
    trainer = DCGANTrainer(Ellipses(8), width=2, batch_size=4, label_smoothing=0.3, folder=Path("unused"),
                           epochs=1, progress=False)  # fmt: skip
    labels = trainer.real_labels(1000)
    assert labels.min() >= 0.7 and labels.max() <= 1.3 and labels.std() > 0.1


def test_refiner_trains_on_paired_images_and_chains_after_the_dcgan(tmp_path: Path) -> None:
    _train_dcgan(tmp_path / "dcgan", epochs=1)
    refiner = StackGANRefiner(width=4)
    trainer = RefinerTrainer(refiner, Ellipses(48), batch_size=8, folder=tmp_path / "stackgan", epochs=2,
                             progress=False)  # fmt: skip
    trainer.train()
    pixel = trainer.history.values["L_P"]
    assert pixel[-1] < pixel[0]  # the pixel term of the dual objective falls
    stages = [load_generator(tmp_path / "dcgan"), load_generator(tmp_path / "stackgan")]
    assert stages[1][1]["config"] == refiner.config()
    images, per_stage = sample_chain(stages, 6, seed=1)
    assert images.shape == (6, 3, 128, 128) and per_stage[0].shape == (6, 3, 64, 64)
    # the refiner sees the DCGAN's output mapped by (x + 1) / 2
    with torch.no_grad():
        expected = (stages[1][0](per_stage[0]) + 1) / 2
    assert torch.allclose(images, expected.clamp(0, 1), atol=1e-5)


def test_loading_refuses_files_that_are_not_stages(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    folder = tmp_path / "dcgan"
    folder.mkdir()
    save_file({"w": torch.zeros(2)}, str(folder / "generator-ema.safetensors"))
    with pytest.raises(GangalError, match="expected a gangal chain stage"):
        load_generator(folder)
    (folder / "generator-ema.safetensors").write_bytes(b"garbage")
    with pytest.raises(GangalError, match="not a readable safetensors"):
        load_generator(folder)
    with pytest.raises(GangalError, match="no such file"):
        load_generator(tmp_path / "missing")
    save_network(folder / "generator-ema.safetensors", DCGANGenerator(width=2), role="generator-ema",
                 stage="dcgan", generator={"resolution": 64, "width": 3, "channels": 3})  # fmt: skip
    with pytest.raises(GangalError, match="do not fit"):
        load_generator(folder)
