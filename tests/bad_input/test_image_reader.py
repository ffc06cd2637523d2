"""The image reader: damaged files, wrong dtypes and shapes, NaN and inf, huge declared sizes."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from astropy.io import fits
from hypothesis import assume, given
from hypothesis import strategies as st

from gangal_core.io.images import read_images

from .conftest import (
    CASES,
    _deadline,
    _expect_user_error,
    _low_memory,
    _scratch,
    _settings,
    _user_error_or,
)
from .inputs import (
    ARRAY_FORMATS,
    IMAGE_FORMATS,
    MAGIC,
    _rng,
    _safetensors_bytes,
    _valid_images,
    _write_array,
    _write_simulation,
)


# ---- 1. the image reader: garbage, truncation, flipped bytes -------------------------------------
@_settings(60)
@given(
    fmt=st.sampled_from(IMAGE_FORMATS),
    damage=st.sampled_from(["garbage", "magic+garbage", "empty", "truncate", "flip", "manifest"]),
    garbage=st.binary(max_size=256),
    where=st.floats(0, 1, exclude_max=True),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8),
)
def test_read_images_damaged_files(tmp_path, fmt, damage, garbage, where, flips) -> None:
    CASES["image file damaged"] += 1
    root, target = _valid_images(_scratch(tmp_path), fmt)
    intact = read_images(root)
    if damage == "manifest":  # the simulation folder's description instead of its shard
        if fmt != "simulation":
            damage = "garbage"
        else:
            target = root / "manifest.json"
    raw = target.read_bytes()
    if damage in ("garbage", "manifest"):
        target.write_bytes(garbage)
    elif damage == "magic+garbage":
        target.write_bytes(MAGIC.get(target.suffix if fmt != ".fits.gz" else fmt, b"") + garbage)
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "truncate":
        target.write_bytes(raw[: int(where * len(raw))])
    else:
        data = bytearray(raw)
        for at, xor in flips:
            data[int(at * len(data))] ^= xor
        target.write_bytes(bytes(data))
    out, error = _user_error_or(lambda: read_images(root, what="test images"), root)
    if error is not None:
        assert "test images" in str(error)
        return
    # read despite the damage: acceptable only if what came back is a sound image array
    assert out.dtype == np.float32 and out.ndim == 4 and np.isfinite(out).all()
    if damage == "truncate":  # a cut that lost nothing (FITS padding, a trailing marker) only
        np.testing.assert_array_equal(out, intact)
    assert damage in ("truncate", "flip"), f"a {fmt} file with {damage} was read as {out.shape}"


# ---- 2. the image reader: wrong dtype, wrong shape, NaN and inf ----------------------------------
NON_NUMERIC = {
    "bool": np.ones((2, 4, 4), bool),
    "complex64": np.ones((2, 4, 4), np.complex64),
    "complex128": np.ones((2, 4, 4), np.complex128),
    "text": np.full((2, 4, 4), "x"),
    "bytes": np.full((2, 4, 4), b"x"),
    "object": np.array([[None, 1.0], [2.0, 3.0]], dtype=object),
    "datetime": np.zeros((2, 4, 4), "datetime64[s]"),
    "timedelta": np.zeros((2, 4, 4), "timedelta64[s]"),
    "structured": np.zeros((2, 4, 4), [("a", "<f4"), ("b", "<i2")]),
}


@_settings(30)
@given(
    kind=st.sampled_from(sorted(NON_NUMERIC)),
    fmt=st.sampled_from([".npy", ".npz", ".safetensors"]),
    safetensors_dtype=st.sampled_from(["BOOL", "C64", "F8_E4M3", "F8_E5M2", "BF16"]),
)
def test_read_images_wrong_dtype(tmp_path, kind, fmt, safetensors_dtype) -> None:
    CASES["image file wrong dtype"] += 1
    folder = _scratch(tmp_path)
    if fmt == ".safetensors":  # safetensors holds few dtypes: write the header by hand
        size = {"BOOL": 1, "C64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "BF16": 2}[safetensors_dtype]
        header = {"images": {"dtype": safetensors_dtype, "shape": [2, 4, 4], "data_offsets": [0, 32 * size]}}
        path = folder / f"{safetensors_dtype}.safetensors"
        path.write_bytes(_safetensors_bytes(header, bytes(32 * size)))
        found = safetensors_dtype
    else:
        path = _write_array(folder / f"{kind}{fmt}", NON_NUMERIC[kind])
        found = kind
    out, error = _user_error_or(lambda: read_images(path), path)
    if error is None:  # only a floating-point format numpy lacks may be read (as its float32 values)
        assert found in ("BF16", "F8_E4M3", "F8_E5M2") and out.dtype == np.float32, (found, out)
        return
    message = str(error)
    assert "dtype" in message or "objects" in message, message
    assert "truncated or corrupt" not in message, f"an intact {found} file called damaged: {message}"


@_settings(40)
@given(
    fmt=st.sampled_from(ARRAY_FORMATS),
    shape=st.one_of(
        st.lists(st.integers(1, 3), min_size=0, max_size=1),  # 0-D and 1-D
        st.lists(st.integers(1, 2), min_size=5, max_size=6),  # 5-D and 6-D
        st.lists(st.integers(0, 3), min_size=2, max_size=4).filter(lambda s: 0 in s),  # empty
    ),
)
def test_read_images_wrong_shape(tmp_path, fmt, shape) -> None:
    if fmt.startswith(".fits"):  # a FITS image has 1 to 999 axes
        assume(len(shape) >= 1)
    CASES["image file wrong shape"] += 1
    path = _write_array(_scratch(tmp_path) / f"shape{fmt}", np.zeros(shape, np.float32))
    _expect_user_error(lambda: read_images(path), path)


@_settings(30)
@given(
    fmt=st.sampled_from([*ARRAY_FORMATS, "simulation"]),
    shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9), st.integers(2, 9)),
    expected=st.tuples(st.integers(1, 3), st.integers(2, 9), st.integers(2, 9)),
)
def test_read_images_unexpected_image_shape(tmp_path, fmt, shape, expected) -> None:
    assume(shape[1:] != expected)
    CASES["image file unexpected shape"] += 1
    images = _rng().normal(size=shape).astype(np.float32)
    folder = _scratch(tmp_path)
    path = (
        _write_simulation(folder / "run", images)
        if fmt == "simulation"
        else _write_array(folder / f"x{fmt}", images)
    )
    _expect_user_error(lambda: read_images(path, expected_shape=expected), path, expected, shape[1:])


@_settings(40)
@given(
    fmt=st.sampled_from([*ARRAY_FORMATS, "simulation", "fits folder"]),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 2), st.integers(2, 6), st.integers(2, 6)),
    dtype=st.sampled_from([np.float32, np.float64, np.float16]),
    bad=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from([np.nan, np.inf, -np.inf])),
        min_size=1,
        max_size=5,
    ),
)
def test_read_images_nan_and_inf(tmp_path, fmt, shape, dtype, bad) -> None:
    CASES["image file NaN/inf"] += 1
    images = _rng().normal(size=shape).astype(dtype)
    flat = images.reshape(-1)
    for at, value in bad:
        flat[int(at * flat.size)] = value
    if dtype == np.float16 and fmt.startswith(".fits"):  # FITS has no 16-bit floats
        images = images.astype(np.float32)
    folder = _scratch(tmp_path)
    if fmt == "simulation":
        path = _write_simulation(folder / "run", images.astype(np.float32))
    elif fmt == "fits folder":
        path = folder / "fits"
        path.mkdir()
        for k, image in enumerate(images.astype(np.float32)):
            fits.PrimaryHDU(image).writeto(path / f"{k:03d}.fits")
    else:
        path = _write_array(folder / f"x{fmt}", images)
    _expect_user_error(lambda: read_images(path), path, "NaN or infinite")


# ---- 3. the image reader: headers that declare huge dimensions -----------------------------------
def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _fits_header(axes: list[int]) -> bytes:
    cards = [("SIMPLE", "T"), ("BITPIX", "-32"), ("NAXIS", str(len(axes)))]
    cards += [(f"NAXIS{k + 1}", str(n)) for k, n in enumerate(axes)]
    text = b"".join(f"{key:<8}= {value:>20}".ljust(80).encode() for key, value in cards)
    return (text + b"END".ljust(80)).ljust(2880, b" ")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


HUGE = st.integers(10**5, 10**13)


@_settings(40)
@given(
    fmt=st.sampled_from([".npy", ".npz", ".fits", ".safetensors", ".png", "simulation"]),
    dims=st.tuples(HUGE, st.integers(1, 10**4), st.integers(1, 10**4)),
    tail=st.binary(min_size=0, max_size=64),
)
def test_read_images_huge_declared_dimensions(tmp_path, fmt, dims, tail) -> None:
    """A few bytes that claim terabytes: an error naming the file, and nothing that size allocated.

    (No address-space cap here: it would turn the allocation into a MemoryError and hide it.)
    """
    CASES["image file huge header"] += 1
    n, h, w = dims
    folder = _scratch(tmp_path)
    path = folder / f"huge{fmt}"
    if fmt == ".npy":
        path.write_bytes(_npy_header((n, h, w)) + tail)
    elif fmt == ".npz":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("images.npy", _npy_header((n, h, w)) + tail)
    elif fmt == ".fits":
        path.write_bytes(_fits_header([w, h, n]) + tail.ljust(2880, b"\0"))
    elif fmt == ".safetensors":
        header = {"images": {"dtype": "F32", "shape": [n, h, w], "data_offsets": [0, len(tail) // 4 * 4]}}
        path.write_bytes(_safetensors_bytes(header, tail[: len(tail) // 4 * 4]))
    elif fmt == ".png":
        ihdr = struct.pack(">IIBBBBB", min(n, 2**31 - 1), h, 8, 0, 0, 0, 0)
        idat = zlib.compress(tail)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat))
    else:  # a manifest that promises n images of h x w pixels, beside a shard of 2 tiny ones
        path = _write_simulation(folder / "run", np.zeros((2, 1, 4, 4), np.float32), n=n, shape=[1, h, w])
    with _deadline(10), _low_memory():
        _expect_user_error(lambda: read_images(path), path)
