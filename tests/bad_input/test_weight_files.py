"""Weight files: the emulator and GAN-stage loaders refuse damaged files, by name."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from gangal_core import calibration as cal
from gangal_core.chain.stages import load_generator

from .conftest import (
    CASES,
    _deadline,
    _expect_user_error,
    _scratch,
    _settings,
    _user_error_or,
)
from .inputs import (
    EMULATOR_FIELDS,
    STAGE_FIELDS,
    _damaged_weights,
    _emulator_parts,
    _stage_parts,
    weight_damage,
)


def _check_emulator_works(emulator: cal.TrainedEmulator) -> None:
    """An emulator the loader accepted must make finite float32 images of its declared shape."""
    names = emulator.parameter_names
    params = emulator.to_physical(torch.zeros(3, len(names)))
    images = emulator.emulate(params, generator=torch.Generator().manual_seed(0))
    assert images.dtype == torch.float32 and tuple(images.shape) == (3, *emulator.image_shape)
    assert torch.isfinite(images).all(), "the loaded emulator makes NaN or infinite images"


@_settings(80)
@given(damage=weight_damage(_emulator_parts, EMULATOR_FIELDS), as_folder=st.booleans())
def test_emulator_loader_refuses_damaged_files(tmp_path, damage, as_folder) -> None:
    CASES["emulator file damaged"] += 1
    raw, must_fail = _damaged_weights(_emulator_parts, damage)
    folder = _scratch(tmp_path)
    path = folder / "emulator.safetensors"
    path.write_bytes(raw)
    target = folder if as_folder else path
    with _deadline(20):
        if must_fail:
            _expect_user_error(lambda: cal.load_emulator(target), path)
            return
        emulator, _ = _user_error_or(lambda: cal.load_emulator(target), path)
        if emulator is not None:
            _check_emulator_works(emulator)


@_settings(60)
@given(damage=weight_damage(_stage_parts, STAGE_FIELDS), weights=st.sampled_from(["ema", "raw"]))
def test_stage_loader_refuses_damaged_files(tmp_path, damage, weights) -> None:
    CASES["GAN stage file damaged"] += 1
    raw, must_fail = _damaged_weights(_stage_parts, damage)
    folder = _scratch(tmp_path) / "dcgan"
    folder.mkdir()
    path = folder / ("generator-ema.safetensors" if weights == "ema" else "generator.safetensors")
    path.write_bytes(raw)
    with _deadline(20):
        if must_fail:
            _expect_user_error(lambda: load_generator(folder, weights=weights), path)
            return
        loaded, _ = _user_error_or(lambda: load_generator(folder, weights=weights), path)
        if loaded is not None and loaded[1].get("stage") == "dcgan":  # it must make finite images
            images = loaded[0](torch.randn(2, 100))
            assert images.ndim == 4 and len(images) == 2 and torch.isfinite(images).all()
