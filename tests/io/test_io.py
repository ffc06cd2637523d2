"""Tests for gangal_core.io: every format, the shape rules, and every error message."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.numpy import save_file

from gangal_core.errors import ImageFormatError
from gangal_core.io.images import IMAGE_SUFFIXES, describe_supported, read_images, read_simulation_folder

RNG = np.random.default_rng(0)


def _images(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def _match(source: Path, *parts: str) -> str:
    """A regex matching a message that names ``source`` and then each of ``parts`` in order."""
    return ".*".join(re.escape(p) for p in (str(source), *parts))


def _check(out: np.ndarray, expected: np.ndarray) -> None:
    assert out.dtype == np.float32
    assert out.flags.c_contiguous and out.flags.writeable
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected.astype(np.float32))


def _write(path: Path, arr: np.ndarray) -> Path:
    """Write ``arr`` in the format ``path``'s suffix names."""
    if path.suffix == ".npy":
        np.save(path, arr)
    elif path.suffix == ".npz":
        np.savez(path, images=arr)
    elif path.suffix == ".safetensors":
        save_file({"images": np.ascontiguousarray(arr)}, str(path))
    else:
        fits.PrimaryHDU(arr).writeto(path)
    return path


# ---- array formats ----------------------------------------------------------------------
ARRAY_FORMATS = [".npy", ".npz", ".safetensors", ".fits"]


@pytest.mark.parametrize("suffix", ARRAY_FORMATS)
def test_round_trip_4d(tmp_path: Path, suffix: str) -> None:
    data = _images(3, 2, 5, 4)
    _check(read_images(_write(tmp_path / f"x{suffix}", data)), data)


@pytest.mark.parametrize("suffix", ARRAY_FORMATS)
def test_2d_is_one_image(tmp_path: Path, suffix: str) -> None:
    data = _images(5, 4)
    _check(read_images(_write(tmp_path / f"x{suffix}", data)), data[None, None])


@pytest.mark.parametrize("suffix", ARRAY_FORMATS)
def test_3d_is_single_channel_images(tmp_path: Path, suffix: str) -> None:
    data = _images(6, 5, 4)  # for FITS: a cube is N images, not one C-channel image
    _check(read_images(_write(tmp_path / f"x{suffix}", data)), data[:, None])


@pytest.mark.parametrize("suffix", ARRAY_FORMATS)
def test_integers_are_converted_without_scaling(tmp_path: Path, suffix: str) -> None:
    data = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) * 100
    out = read_images(_write(tmp_path / f"x{suffix}", data))
    _check(out, data[:, None].astype(np.float32))


@pytest.mark.parametrize("suffix", ARRAY_FORMATS)
def test_limit_reads_the_first_images(tmp_path: Path, suffix: str) -> None:
    data = _images(7, 1, 3, 3)
    _check(read_images(_write(tmp_path / f"x{suffix}", data), limit=2), data[:2])
    _check(read_images(tmp_path / f"x{suffix}", limit=50), data)


@pytest.mark.parametrize("suffix", ARRAY_FORMATS)
def test_band_keeps_one_channel(tmp_path: Path, suffix: str) -> None:
    data = _images(2, 3, 4, 4)
    _check(read_images(_write(tmp_path / f"x{suffix}", data), band=2), data[:, 2:3])


def test_npy_fortran_order_and_float64(tmp_path: Path) -> None:
    data = np.asfortranarray(RNG.normal(size=(2, 1, 3, 5)))
    np.save(tmp_path / "f.npy", data)
    _check(read_images(tmp_path / "f.npy"), data.astype(np.float32))


def test_npz_prefers_images_key(tmp_path: Path) -> None:
    data = _images(2, 1, 3, 3)
    np.savez(tmp_path / "a.npz", labels=np.zeros(2), images=data)
    _check(read_images(tmp_path / "a.npz"), data)


def test_npz_single_array_of_any_name(tmp_path: Path) -> None:
    data = _images(2, 3, 3)
    np.savez_compressed(tmp_path / "a.npz", cube=data)
    _check(read_images(tmp_path / "a.npz"), data[:, None])


def test_npz_several_arrays_without_images_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", first=_images(2, 3, 3), second=_images(2, 3, 3))
    with pytest.raises(ImageFormatError, match=_match(tmp_path / "a.npz", "2 arrays", "'first'", "'second'")):
        read_images(tmp_path / "a.npz")


def test_safetensors_single_tensor_of_any_name(tmp_path: Path) -> None:
    data = _images(2, 2, 3, 3)
    save_file({"x": data}, str(tmp_path / "a.safetensors"))
    _check(read_images(tmp_path / "a.safetensors"), data)


def test_fits_4d_and_first_hdu_with_data(tmp_path: Path) -> None:
    data = _images(2, 3, 4, 5)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data), fits.ImageHDU(_images(4, 4))]).writeto(
        tmp_path / "m.fit"
    )
    _check(read_images(tmp_path / "m.fit"), data)


def test_fits_big_endian_is_made_native(tmp_path: Path) -> None:
    data = _images(2, 4, 4).astype(">f4")
    fits.PrimaryHDU(data).writeto(tmp_path / "b.fts")
    out = read_images(tmp_path / "b.fts")
    assert out.dtype == np.dtype("=f4") and out.dtype.isnative
    np.testing.assert_array_equal(out[:, 0], data.astype(np.float32))


def test_fits_gzipped(tmp_path: Path) -> None:
    data = _images(3, 4, 4)
    fits.PrimaryHDU(data).writeto(tmp_path / "c.fits")
    (tmp_path / "c.fits.gz").write_bytes(gzip.compress((tmp_path / "c.fits").read_bytes()))
    _check(read_images(tmp_path / "c.fits.gz"), data[:, None])


def test_fits_without_image_data(tmp_path: Path) -> None:
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.zeros(3))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(tmp_path / "t.fits")
    with pytest.raises(
        ImageFormatError, match=_match(tmp_path / "t.fits", "none of its HDUs holds image data")
    ):
        read_images(tmp_path / "t.fits")


# ---- pictures and folders ---------------------------------------------------------------
def test_png_greyscale_8bit_scaled(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(tmp_path / "g.png")
    _check(read_images(tmp_path / "g.png"), (pixels / 255.0)[None, None])


def test_png_greyscale_16bit_scaled(tmp_path: Path) -> None:
    pixels = np.array([[0, 65535, 1000], [2, 40000, 300]], dtype=np.uint16)
    Image.fromarray(pixels).save(tmp_path / "g16.png")
    out = read_images(tmp_path / "g16.png")
    assert out.shape == (1, 1, 2, 3)
    np.testing.assert_allclose(out[0, 0], pixels / 65535.0, rtol=1e-6)


def test_png_rgb_and_rgba_drop_alpha(tmp_path: Path) -> None:
    rgba = RNG.integers(0, 256, size=(4, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba[..., :3], mode="RGB").save(tmp_path / "rgb.png")
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    expected = np.moveaxis(rgba[..., :3] / 255.0, -1, 0)[None]
    _check(read_images(tmp_path / "rgb.png"), expected)
    _check(read_images(tmp_path / "rgba.png"), expected)


def test_jpeg_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8, 3), (200, 100, 0), dtype=np.uint8)).save(tmp_path / "a.jpeg", quality=100)
    out = read_images(tmp_path / "a.jpeg")
    assert out.shape == (1, 3, 8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0, 0], [200 / 255, 100 / 255, 0.0], atol=0.03)


def _grey_folder(folder: Path, count: int = 3) -> np.ndarray:
    folder.mkdir()
    pixels = RNG.integers(0, 256, size=(count, 4, 5), dtype=np.uint8)
    for i in reversed(range(count)):  # written out of order; read by name
        Image.fromarray(pixels[i]).save(folder / f"img{i:02d}.png")
    return (pixels / 255.0)[:, None]


def test_folder_sorted_ignoring_hidden_files_and_subfolders(tmp_path: Path) -> None:
    expected = _grey_folder(tmp_path / "pics")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "pics" / ".hidden.png")
    (tmp_path / "pics" / "sub").mkdir()
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "pics" / "sub" / "deep.png")
    _check(read_images(tmp_path / "pics"), expected)


def test_folder_limit_reads_only_the_first_files(tmp_path: Path) -> None:
    expected = _grey_folder(tmp_path / "pics", count=4)
    (tmp_path / "pics" / "zzz.png").write_bytes(b"not a png")  # never opened
    _check(read_images(tmp_path / "pics", limit=2), expected[:2])


def test_folder_of_fits_images_with_band(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    data = _images(2, 3, 4, 4)  # in a folder a 3-D FITS file is one (C, H, W) image
    for i in range(2):
        fits.PrimaryHDU(data[i]).writeto(tmp_path / "f" / f"{i}.fits")
    _check(read_images(tmp_path / "f"), data)
    _check(read_images(tmp_path / "f", band=1), data[:, 1:2])


def test_folder_size_mismatch_names_the_file(tmp_path: Path) -> None:
    _grey_folder(tmp_path / "pics")
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(tmp_path / "pics" / "img01b.png")
    pattern = _match(tmp_path / "pics", "img01b.png is 6x5", "img00.png, is 4x5", "same size")
    with pytest.raises(ImageFormatError, match=pattern):
        read_images(tmp_path / "pics")


def test_empty_folder_lists_extensions(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "notes.txt").write_text("hi")
    with pytest.raises(
        ImageFormatError, match=_match(tmp_path / "e", "no image files", ".png", ".fits.gz", "notes")
    ):
        read_images(tmp_path / "e")


# ---- folders written by `gangal simulate` -----------------------------------------------
def _simulation(folder: Path, counts: tuple[int, ...] = (4, 3)) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir()
    images, params = _images(sum(counts), 2, 3, 3), _images(sum(counts), 2)
    shards, start = [], 0
    for i, count in enumerate(counts):
        name = f"shard-{i:05d}.safetensors"
        part = {"images": images[start : start + count], "parameters": params[start : start + count]}
        save_file({k: np.ascontiguousarray(v) for k, v in part.items()}, str(folder / name))
        shards.append({"file": name, "start": start, "count": count})
        start += count
    manifest = {
        "format": "gangal-simulation",
        "version": 1,
        "image_shape": [2, 3, 3],
        "parameter_names": ["r", "sigma"],
        "n": start,
        "shards": shards,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return images, params


def test_simulation_folder_round_trip(tmp_path: Path) -> None:
    images, params = _simulation(tmp_path / "sim")
    got_images, got_params, names = read_simulation_folder(tmp_path / "sim")
    _check(got_images, images)
    _check(got_params, params)
    assert names == ["r", "sigma"]
    _check(read_images(tmp_path / "sim"), images)
    _check(read_images(tmp_path / "sim", band=0), images[:, :1])


def test_simulation_folder_limit_spans_shards(tmp_path: Path) -> None:
    images, params = _simulation(tmp_path / "sim", counts=(4, 3, 3))
    (tmp_path / "sim" / "shard-00002.safetensors").write_bytes(b"corrupt")  # not needed, not opened
    got_images, got_params, _ = read_simulation_folder(tmp_path / "sim", limit=5)
    _check(got_images, images[:5])
    _check(got_params, params[:5])


def test_simulation_folder_missing_shard(tmp_path: Path) -> None:
    _simulation(tmp_path / "sim", counts=(2, 2, 2))
    (tmp_path / "sim" / "shard-00001.safetensors").unlink()
    pattern = _match(
        tmp_path / "sim", "incomplete", "1 of the 3", "shard-00001.safetensors", "gangal simulate"
    )
    with pytest.raises(ImageFormatError, match=pattern):
        read_images(tmp_path / "sim")


def test_simulation_folder_bad_manifest(tmp_path: Path) -> None:
    _simulation(tmp_path / "sim")
    manifest = tmp_path / "sim" / "manifest.json"
    manifest.write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(ImageFormatError, match=_match(manifest, "gangal-simulation", "something-else")):
        read_simulation_folder(tmp_path / "sim")
    manifest.write_text("{not json")
    with pytest.raises(ImageFormatError, match=_match(manifest, "not readable JSON")):
        read_images(tmp_path / "sim")


def test_read_simulation_folder_needs_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ImageFormatError, match=_match(tmp_path, "manifest.json")):
        read_simulation_folder(tmp_path)


# ---- errors -----------------------------------------------------------------------------
def test_missing_path_names_the_role(tmp_path: Path) -> None:
    with pytest.raises(
        ImageFormatError, match=r"true data .*" + _match(tmp_path / "nope.npy", "no such file")
    ):
        read_images(tmp_path / "nope.npy", what="true data")


def test_unknown_extension_lists_supported(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("1 2 3")
    with pytest.raises(ImageFormatError, match=_match(tmp_path / "a.txt", "'.txt'", describe_supported())):
        read_images(tmp_path / "a.txt")
    assert ".npy" in IMAGE_SUFFIXES and ".fits.gz" in IMAGE_SUFFIXES


@pytest.mark.parametrize("suffix", [*ARRAY_FORMATS, ".fits.gz", ".png", ".jpg"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    if suffix in (".png", ".jpg"):
        Image.fromarray(RNG.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(path)
    elif suffix == ".fits.gz":
        path.write_bytes(gzip.compress(_write(tmp_path / "t.fits", _images(3, 2, 8, 8)).read_bytes()))
    else:
        _write(path, _images(3, 2, 8, 8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.raises(ImageFormatError, match=_match(path, "truncated or corrupt")) as info:
        read_images(path)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("suffix", ARRAY_FORMATS)
def test_empty_array(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"e{suffix}", np.zeros((0, 4, 4), np.float32))
    with pytest.raises(ImageFormatError, match=_match(path, "no images")):
        read_images(path)


@pytest.mark.parametrize("shape", [(5,), (1, 1, 2, 2, 2)])
def test_wrong_ndim(tmp_path: Path, shape: tuple[int, ...]) -> None:
    np.save(tmp_path / "w.npy", np.zeros(shape, np.float32))
    with pytest.raises(
        ImageFormatError, match=_match(tmp_path / "w.npy", f"{len(shape)}-D array", "(N, C, H, W)")
    ):
        read_images(tmp_path / "w.npy")


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (np.array([["a", "b"], ["c", "d"]]), "text"),
        (np.ones((2, 2), np.complex64), "complex"),
        (np.ones((2, 2), bool), "booleans"),
    ],
)
def test_non_numeric_dtype(tmp_path: Path, data: np.ndarray, found: str) -> None:
    np.save(tmp_path / "d.npy", data)
    with pytest.raises(ImageFormatError, match=_match(tmp_path / "d.npy", found, "real numbers")):
        read_images(tmp_path / "d.npy")


def test_object_array_is_never_unpickled(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(ImageFormatError, match=_match(tmp_path / "o.npy", "Python objects")):
        read_images(tmp_path / "o.npy")


def test_nan_and_inf_are_counted(tmp_path: Path) -> None:
    data = _images(5, 1, 3, 3)
    data[2, 0, 1, 1] = np.nan
    data[4, 0, 0, :2] = np.inf
    np.save(tmp_path / "n.npy", data)
    with pytest.raises(
        ImageFormatError, match=_match(tmp_path / "n.npy", "3 value(s) in 2 image(s)", "image 2")
    ):
        read_images(tmp_path / "n.npy")
    _check(read_images(tmp_path / "n.npy", limit=2), data[:2])


def test_expected_shape_channels_hint_band(tmp_path: Path) -> None:
    np.save(tmp_path / "c.npy", _images(2, 3, 8, 8))
    with pytest.raises(ImageFormatError, match=_match(tmp_path / "c.npy", "(1, 8, 8)", "(3, 8, 8)", "band")):
        read_images(tmp_path / "c.npy", expected_shape=(1, 8, 8))
    assert read_images(tmp_path / "c.npy", expected_shape=(1, 8, 8), band=0).shape == (2, 1, 8, 8)


def test_expected_shape_size_hint_resize(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", _images(2, 1, 8, 8))
    with pytest.raises(ImageFormatError, match=_match(tmp_path / "s.npy", "resized to 16x12")):
        read_images(tmp_path / "s.npy", expected_shape=(1, 16, 12))


def test_band_out_of_range(tmp_path: Path) -> None:
    np.save(tmp_path / "b.npy", _images(2, 3, 4, 4))
    with pytest.raises(ImageFormatError, match=_match(tmp_path / "b.npy", "band 3", "3 channel(s)")):
        read_images(tmp_path / "b.npy", band=3)
    with pytest.raises(ImageFormatError, match="band -1"):
        read_images(tmp_path / "b.npy", band=-1)


def test_limit_must_be_positive(tmp_path: Path) -> None:
    np.save(tmp_path / "l.npy", _images(2, 4, 4))
    with pytest.raises(ValueError, match="limit"):
        read_images(tmp_path / "l.npy", limit=0)


# ---- garbage never escapes as another exception -----------------------------------------
MAGIC = {
    ".npy": b"\x93NUMPY\x01\x00",
    ".npz": b"PK\x03\x04",
    ".safetensors": (64).to_bytes(8, "little") + b'{"images":{',
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff",
    ".jpeg": b"\xff\xd8\xff\xe0",
    ".fits": b"SIMPLE  =                    T",
    ".fits.gz": b"\x1f\x8b\x08",
}


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=200), with_magic=st.booleans())
def test_garbage_raises_image_format_error(
    tmp_path: Path, suffix: str, garbage: bytes, with_magic: bool
) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes((MAGIC.get(suffix, b"") if with_magic else b"") + garbage)
    with pytest.raises(ImageFormatError, match=re.escape(str(path))):
        read_images(path)
