"""Training for small real sets: differentiable augmentation, R1, and the two dropout readings."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from gangal_core.chain.augment import AUGMENTATIONS, DifferentiableAugment, parse_augment, r1_penalty
from gangal_core.chain.trainers import LEARNING_RATE, DCGANTrainer, DiscriminatorWonWarning
from gangal_core.errors import ConfigError

from .test_chain import Ellipses, _train_dcgan


def _augment(*policy: str, seed: int = 0) -> DifferentiableAugment:
    return DifferentiableAugment(policy, generator=torch.Generator().manual_seed(seed))


def _batch(n: int = 64, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_parse_augment_orders_names_and_refuses_unknown_ones() -> None:
    assert parse_augment("cutout, flip") == ("flip", "cutout")
    assert parse_augment("none") == () and parse_augment(None) == ()
    assert parse_augment(list(AUGMENTATIONS)) == AUGMENTATIONS
    with pytest.raises(ConfigError, match=r"--augment: unknown augmentation 'colour'.*flip, rot90"):
        parse_augment("flip,colour")


def test_flips_and_rotations_only_move_pixels_and_draw_per_image() -> None:
    x = _batch()
    for name in ("flip", "rot90"):
        y = _augment(name)(x, real=True)
        # each image is one of the 8 symmetries of the square: its sorted pixels are unchanged
        assert torch.equal(y.flatten(1).sort(dim=1).values, x.flatten(1).sort(dim=1).values)
        changed = (y != x).flatten(1).any(dim=1)
        assert 0.4 * len(x) < changed.sum() < len(x)  # per image, most but not all moved
    rotated = _augment("rot90", seed=3)(x, real=True)
    kinds = {
        next(k for k in range(4) if torch.equal(rotated[i], torch.rot90(x[i], k, dims=(-2, -1))))
        for i in range(len(x))
    }
    assert kinds == {0, 1, 2, 3}


def test_translation_shifts_whole_images_and_repeats_the_edges() -> None:
    x = _batch(n=32, size=16)
    y = _augment("translation", seed=2)(x, real=False)
    shifts = set()
    for i in range(len(x)):
        padded = torch.nn.functional.pad(x[i : i + 1], (2, 2, 2, 2), mode="replicate")[0]
        match = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(y[i], padded[:, 2 - dy : 18 - dy, 2 - dx : 18 - dx])]  # fmt: skip
        assert match, f"image {i} is not a shift of at most 2 px (1/8 of 16) with repeated edges"
        shifts.add(match[0])
    assert len(shifts) > 5


def test_cutout_zeroes_one_square_of_half_the_side_at_most() -> None:
    x = _batch(n=32, size=16) + 3.0  # no pixel is 0 before
    y = _augment("cutout", seed=4)(x, real=False)
    zeroed = y == 0
    assert torch.equal(y[~zeroed], x[~zeroed])
    per_image = zeroed[:, 0].flatten(1).sum(1)
    assert per_image.max() == 64 and per_image.min() >= 1  # an 8x8 square, clipped at the edges
    assert torch.equal(zeroed[:, 0], zeroed[:, 2])  # the same square in every channel


def test_gradients_pass_through_every_augmentation() -> None:
    x = _batch(n=8).requires_grad_(True)
    y = _augment(*AUGMENTATIONS)(x, real=True)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the gradient of a pixel that survived is 2y at its place: the map is a selection
    assert torch.allclose(x.grad.abs().sum(), (2 * y.abs()).sum().detach(), rtol=1e-5)


def test_same_seed_same_augmentations() -> None:
    x = _batch()
    for real in (True, False):
        same = _augment(*AUGMENTATIONS, seed=7)(x, real=real), _augment(*AUGMENTATIONS, seed=7)(x, real=real)
        assert torch.equal(*same)
        assert not torch.equal(same[0], _augment(*AUGMENTATIONS, seed=8)(x, real=real))


def test_symmetries_turn_real_images_only() -> None:
    # a uniformly drawn flip or rotation on both sets would hide a generator's preferred
    # orientation from the discriminator; the sky has none, so only real images are turned
    x = _batch()
    assert torch.equal(_augment("flip", "rot90")(x, real=False), x)
    assert not torch.equal(_augment("flip", "rot90")(x, real=True), x)
    turned = _augment(*AUGMENTATIONS, seed=5)(x, real=True)
    shifted = _augment(*AUGMENTATIONS, seed=5)(x, real=False)
    assert not torch.equal(turned, shifted)
    # generated images get exactly the shift and the cutout, nothing else
    assert torch.equal(shifted, _augment("translation", "cutout", seed=5)(x, real=False))


def test_r1_penalty_is_the_squared_gradient_norm() -> None:
    w = torch.randn(3 * 4 * 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (x.flatten(1) * w).sum(1)  # grad_x D = w for every image
    assert torch.isclose(r1_penalty(logits, x), w.square().sum())


def test_training_with_augmentation_and_r1_records_them_and_resumes_exactly(tmp_path: Path) -> None:
    options = {"augment": ("flip", "rot90", "translation", "cutout"), "r1_gamma": 1.0}
    straight = _train_dcgan(tmp_path / "a", epochs=2, **options)
    _train_dcgan(tmp_path / "b", epochs=1, **options)
    resumed = _train_dcgan(tmp_path / "b", epochs=2, resume=True, **options)
    for x, y in zip(straight.generator.state_dict().values(), resumed.generator.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(x, y)
    plain = _train_dcgan(tmp_path / "c", epochs=2)
    pairs = zip(plain.generator.state_dict().values(), straight.generator.state_dict().values(), strict=True)
    assert any(not torch.equal(x, y) for x, y in pairs)
    summary = json.loads((tmp_path / "a" / "training.json").read_text())
    assert summary["small_data"] == {"augment": list(options["augment"]), "r1_gamma": 1.0}
    assert "small_data" not in json.loads((tmp_path / "c" / "training.json").read_text())
    assert straight.history.values["R1"] and min(straight.history.values["R1"]) > 0


def test_the_two_dropout_readings() -> None:
    def dropout(epoch: int, **reading: int) -> float:
        trainer = DCGANTrainer(Ellipses(8), width=2, batch_size=4, folder=Path("unused"), epochs=1,
                               progress=False, **reading)  # fmt: skip
        trainer.on_epoch_start(epoch - 1)  # epochs counted from 1
        return trainer.discriminator.final_dropout.p

    assert [dropout(e, dropout_until_epoch=2) for e in (1, 2, 3)] == [0.5, 0.5, 0.0]
    assert [dropout(e, dropout_from_epoch=2) for e in (1, 2, 3)] == [0.0, 0.5, 0.5]
    with pytest.raises(ConfigError, match="two readings"):
        dropout(1, dropout_from_epoch=2, dropout_until_epoch=2)


def test_the_learning_rate_stays_then_falls_linearly_from_lr_decay_from() -> None:
    def rates(epochs: int, **schedule: int) -> list[float]:
        trainer = DCGANTrainer(Ellipses(8), width=2, batch_size=4, folder=Path("unused"), epochs=epochs,
                               progress=False, **schedule)  # fmt: skip
        return [trainer.learning_rate(e) for e in range(epochs)]

    assert rates(5) == [LEARNING_RATE] * 5  # the paper's constant rate by default
    assert rates(5, lr_decay_from=3) == pytest.approx([LEARNING_RATE * f for f in (1, 1, 1, 2 / 3, 1 / 3)])
    assert rates(2, lr_decay_from=9) == [LEARNING_RATE] * 2  # a start after the end: constant
    with pytest.raises(ConfigError, match="lr_decay_from"):
        rates(2, lr_decay_from=0)


def test_training_follows_the_learning_rate_schedule(tmp_path: Path) -> None:
    trained = _train_dcgan(tmp_path / "a", epochs=3, lr_decay_from=2)
    summary = json.loads((tmp_path / "a" / "training.json").read_text())
    assert summary["options"]["lr_decay_from"] == 2
    assert trained.opt_g.param_groups[0]["lr"] == pytest.approx(LEARNING_RATE / 2)  # the last epoch's


def test_the_docs_small_data_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "chained-gan.md").read_text(encoding="utf-8")
    section = text.split("### Training on a small set of real images", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/chained-gan.md", "exec"), {})
    meta = json.loads((tmp_path / "small-data-model" / "dcgan" / "training.json").read_text())
    assert meta["small_data"] == {"augment": ["flip", "rot90", "translation"], "r1_gamma": 0.2}


def test_a_discriminator_that_has_won_is_reported_once() -> None:
    trainer = DCGANTrainer(Ellipses(8), width=2, batch_size=4, folder=Path("unused"), epochs=1,
                           progress=False)  # fmt: skip

    def epoch(mean_d: float) -> list[warnings.WarningMessage]:
        trainer._d_losses = [mean_d * 0.5, mean_d * 1.5]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.watch_discriminator(1)
        return [w for w in caught if issubclass(w.category, DiscriminatorWonWarning)]

    assert not epoch(0.001) and not epoch(0.001) and not epoch(0.5)  # a healthy epoch resets the count
    assert not epoch(0.001) and not epoch(0.001)
    (caught,) = epoch(0.001)  # the third low epoch in a row
    assert "the discriminator has won" in str(caught.message) and "--seed" in str(caught.message)
    assert "8 now" in str(caught.message)
    assert not epoch(0.001)  # once


def test_the_command_line_shows_a_training_warning_as_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from gangal_core import cli

    cli._show_warning(DiscriminatorWonWarning("dcgan: the discriminator has won"), DiscriminatorWonWarning,
                      "trainers.py", 1)  # fmt: skip
    assert capsys.readouterr().err.strip() == "warning: dcgan: the discriminator has won"
