"""Bad input, tried systematically.

Hypothesis feeds gangal's readers (images, emulators, GAN stages, checkpoints, parameter
CSVs, TOML configs) and its command line with empty, truncated, bit-flipped and garbage
files, wrong dtypes and shapes, NaN and infinite values, headers that declare huge
dimensions, and bad option values; and it installs simulator plugins that misbehave
(raise, return the wrong shape, dtype or type, NaN or infinite pixels).  Every case must
end in a :class:`~gangal_core.errors.GangalError` (exit status 2) whose message names the
file, option or plugin and the problem; on the command line there is no traceback, and
an output that existed before the failing command is byte-identical after it.

Every example is counted (:data:`CASES`); the last test prints how many were tried.
``GANGAL_BAD_INPUT_SCALE=10`` multiplies every test's number of examples for a deeper run;
``GANGAL_BAD_INPUT_SHRINK=1`` shrinks a failing example to its simplest form (slow).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import io
import json
import math
import os
import re
import signal
import struct
import tempfile
import traceback
import tracemalloc
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from astropy.io import fits
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.numpy import save_file as save_numpy_file
from safetensors.torch import load as load_torch_bytes
from safetensors.torch import save as save_torch_bytes
from typer.testing import CliRunner, Result

import gangal_core.plugins as plugins_module
from gangal_core import Parameter, Simulator
from gangal_core import calibration as cal
from gangal_core import config as config_module
from gangal_core.calibration.networks import ConvCritic, ConvEmulator, ImageScale, ParameterEstimator
from gangal_core.calibration.run import CHECKPOINT
from gangal_core.chain.networks import DCGANGenerator
from gangal_core.chain.stages import load_generator, save_network
from gangal_core.cli import app
from gangal_core.errors import GangalError
from gangal_core.io.checkpoint import load_checkpoint, save_checkpoint
from gangal_core.io.images import read_images
from gangal_core.plugins import RegisteredThing, build_registry
from gangal_core.simulation.engine import read_parameter_csv

#: Examples tried, by kind of bad input; and the tests of this module that have run.
CASES: Counter[str] = Counter()
RAN: set[str] = set()
SCALE = float(os.environ.get("GANGAL_BAD_INPUT_SCALE", "1"))
#: Shrinking a failure to its simplest form can take minutes; ask for it when debugging one.
SHRINK = os.environ.get("GANGAL_BAD_INPUT_SHRINK", "") not in ("", "0")


def _settings(examples: int) -> settings:
    """Deterministic, deadline-free settings (each example may build networks or run the CLI)."""
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        phases=tuple(Phase) if SHRINK else (Phase.explicit, Phase.reuse, Phase.generate, Phase.target),
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# ---- shared helpers ----------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _record_that_it_ran(request) -> Iterator[None]:
    yield
    RAN.add(request.node.originalname)


def _scratch(tmp_path: Path) -> Path:
    """A fresh folder for one example (``tmp_path`` is shared by all examples of a test)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def _expect_user_error(action: Callable[[], object], *names: object) -> GangalError:
    """``action()`` must raise a GangalError with exit code 2 whose message holds each of ``names``."""
    try:
        action()
    except GangalError as exc:
        message = str(exc)
        assert exc.exit_code == 2, (exc.exit_code, message)
        for name in names:
            assert str(name) in message, f"{str(name)!r} not in the message {message!r}"
        return exc
    except Exception as exc:
        raise AssertionError(f"bad input escaped as {type(exc).__name__}: {exc}") from exc
    raise AssertionError(f"bad input was accepted (expected an error naming {names})")


def _user_error_or(action: Callable[[], Any], *names: object) -> tuple[Any, GangalError | None]:
    """Run ``action``: a GangalError must name ``names``; any other exception fails the test."""
    try:
        return action(), None
    except GangalError as exc:
        message = str(exc)
        assert exc.exit_code == 2, (exc.exit_code, message)
        for name in names:
            assert str(name) in message, f"{str(name)!r} not in the message {message!r}"
        return None, exc
    except Exception as exc:
        raise AssertionError(f"bad input escaped as {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def _low_memory(limit_mb: float = 64) -> Iterator[None]:
    """Fail if the block allocates more than ``limit_mb`` through Python or numpy."""
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < limit_mb * 2**20, f"tried to allocate {peak / 2**20:.0f} MiB for a file of a few bytes"


class _TooSlow(BaseException):
    """Raised by :func:`_deadline`: a BaseException, so that neither gangal nor click catch it."""


@contextlib.contextmanager
def _deadline(cpu_seconds: float) -> Iterator[None]:
    """Interrupt the block after ``cpu_seconds`` of CPU time, all threads counted.

    SIGPROF, so pytest-timeout keeps SIGALRM; the main thread gets it even while it waits on a
    worker thread.
    """

    def expire(signum: int, frame: object) -> None:
        raise _TooSlow(f"still busy after {cpu_seconds} s of CPU time")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@contextlib.contextmanager
def _limits(*, file_mib: int, extra_gib: float) -> Iterator[None]:
    """For the block, no file may grow past ``file_mib`` and the address space by ``extra_gib``.

    A command that would write terabytes or allocate them then fails at once (EFBIG, MemoryError)
    instead of filling the disk or the memory of the machine running the tests.
    """
    import resource

    with open("/proc/self/status") as fh:
        size = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    limits = {
        resource.RLIMIT_FSIZE: file_mib * 2**20,
        resource.RLIMIT_AS: size + int(extra_gib * 2**30),
    }
    saved = {kind: resource.getrlimit(kind) for kind in limits}
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    try:
        for kind, cap in limits.items():
            _, hard = saved[kind]
            resource.setrlimit(kind, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
        yield
    finally:
        for kind, limit in saved.items():
            resource.setrlimit(kind, limit)
        signal.signal(signal.SIGXFSZ, previous)


def _cli(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


_BOX = re.compile(r"[\s│╭╮╰╯─]+")


def _text(result: Result) -> str:
    """The output on one line, without the frame click draws around usage errors."""
    return _BOX.sub(" ", result.output).strip()


def _assert_cli_user_error(result: Result, *parts: object) -> str:
    """Exit status 2, no traceback, and an output holding each of ``parts``."""
    text = _text(result)
    exc = result.exception
    if result.exit_code != 2 or not isinstance(exc, SystemExit):
        if exc is None or isinstance(exc, SystemExit):
            raise AssertionError(f"exit status {result.exit_code}, expected 2; output {text!r}")
        detail = "".join(traceback.format_exception(exc))
        raise AssertionError(
            f"exit status {result.exit_code}, expected 2: {type(exc).__name__}: {exc}\n{detail}"
        )
    assert "Traceback" not in result.output, result.output
    for part in parts:
        assert str(part) in text, f"{str(part)!r} not in the output {text!r}"
    return text


def _snapshot(*roots: Path) -> dict[Path, bytes]:
    """Every file under ``roots`` (files or folders) and its bytes."""
    files: dict[Path, bytes] = {}
    for root in roots:
        if root.is_file():
            files[root] = root.read_bytes()
        elif root.is_dir():
            files.update({p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()})
    return files


def _assert_untouched(before: dict[Path, bytes], *roots: Path) -> None:
    """Every file of ``before`` is still there, byte-identical, and no temporary file is left."""
    for path, data in before.items():
        assert path.is_file(), f"{path} was removed"
        assert path.read_bytes() == data, f"{path} was changed"
    for root in roots:
        folder = root if root.is_dir() else root.parent
        assert not list(folder.rglob("*.part")), f"temporary files left in {folder}"


def _sentinel(path: Path, seed: int = 0) -> Path:
    """An output that exists before a command runs: random bytes that must survive a failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(64))
    return path


# ---- valid files to damage ---------------------------------------------------------------------
def _rng() -> np.random.Generator:
    """A fresh generator per use, so that an example's files do not depend on the ones before it."""
    return np.random.default_rng(0)


#: Formats read_images reads, plus a folder of PNG files and a `gangal simulate` folder.
IMAGE_FORMATS = (".npy", ".npz", ".safetensors", ".fits", ".fits.gz", ".png", ".jpg", "folder", "simulation")
ARRAY_FORMATS = (".npy", ".npz", ".safetensors", ".fits", ".fits.gz")
MAGIC = {
    ".npy": b"\x93NUMPY\x01\x00",
    ".npz": b"PK\x03\x04",
    ".safetensors": (64).to_bytes(8, "little") + b'{"images":{',
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff",
    ".fits": b"SIMPLE  =                    T",
    ".fits.gz": b"\x1f\x8b\x08",
}


def _write_array(path: Path, arr: np.ndarray) -> Path:
    """Write ``arr`` in the format of ``path``'s suffix."""
    name = path.name
    if name.endswith(".npy"):
        np.save(path, arr, allow_pickle=arr.dtype == object)
    elif name.endswith(".npz"):
        np.savez(path, images=arr)
    elif name.endswith(".safetensors"):
        save_numpy_file({"images": np.ascontiguousarray(arr)}, str(path))
    elif name.endswith(".fits.gz"):
        buf = io.BytesIO()
        fits.PrimaryHDU(arr).writeto(buf)
        path.write_bytes(gzip.compress(buf.getvalue()))
    elif name.endswith(".fits"):
        fits.PrimaryHDU(arr).writeto(path)
    else:
        raise ValueError(name)
    return path


def _write_simulation(folder: Path, images: np.ndarray, *, n: int | None = None, shape: Any = None) -> Path:
    """A folder as `gangal simulate` writes it: manifest.json and one safetensors shard."""
    folder.mkdir(parents=True, exist_ok=True)
    count = len(images)
    save_numpy_file(
        {"images": np.ascontiguousarray(images), "parameters": np.zeros((count, 1), np.float32)},
        str(folder / "shard-00000.safetensors"),
    )
    n = count if n is None else n
    manifest = {
        "format": "gangal-simulation",
        "version": 1,
        "image_shape": list(images.shape[1:]) if shape is None else shape,
        "parameter_names": ["a"],
        "n": n,
        "shards": [{"file": "shard-00000.safetensors", "start": 0, "count": n}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _valid_images(where: Path, fmt: str) -> tuple[Path, Path]:
    """A readable file or folder of format ``fmt`` and the file in it to damage."""
    if fmt in ARRAY_FORMATS:
        path = _write_array(where / f"images{fmt}", _rng().normal(size=(3, 2, 8, 8)).astype(np.float32))
        return path, path
    if fmt in (".png", ".jpg"):
        path = where / f"image{fmt}"
        Image.fromarray(_rng().integers(0, 256, size=(16, 16), dtype=np.uint8)).save(path)
        return path, path
    if fmt == "folder":
        folder = where / "pictures"
        folder.mkdir()
        for k in range(2):
            Image.fromarray(_rng().integers(0, 256, size=(8, 8), dtype=np.uint8)).save(folder / f"{k}.png")
        return folder, folder / "1.png"
    folder = _write_simulation(where / "run", _rng().normal(size=(3, 1, 4, 4)).astype(np.float32))
    return folder, folder / "shard-00000.safetensors"


# ---- 1. the image reader: garbage, truncation, flipped bytes ----------------------------------
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


# ---- 2. the image reader: wrong dtype, wrong shape, NaN and inf -------------------------------
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


def _safetensors_bytes(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data


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


# ---- 3. the image reader: headers that declare huge dimensions --------------------------------
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


# ---- 4. weight files: the emulator and the GAN stages ----------------------------------------
def _split_safetensors(raw: bytes) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """gangal's JSON metadata and the tensors (copied out of ``raw``, never mapped from a file)."""
    size = int.from_bytes(raw[:8], "little")
    meta = json.loads(json.loads(raw[8 : 8 + size])["__metadata__"]["gangal"])
    return meta, dict(load_torch_bytes(raw))


def _weights_file(meta: Any, tensors: dict[str, torch.Tensor]) -> bytes:
    return save_torch_bytes(tensors, metadata={"gangal": json.dumps(meta)})


TOY_PARAMETERS = (Parameter("a", 0.0, 1.0), Parameter("b", 0.1, 1.0))


@functools.cache
def _emulator_parts() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A small, valid emulator file (with a parameter estimator) for simulator 'flaky', split up."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        emulator = cal.TrainedEmulator(
            network=ConvEmulator((1, 8, 8), 2, width=8, hidden=16),
            scale=ImageScale(offset=0.5, scale=0.6),
            simulator="flaky",
            parameters=[{"name": p.name, "low": p.low, "high": p.high, "unit": ""} for p in TOY_PARAMETERS],
            arch="conv",
            info={},
            estimator=ParameterEstimator(ConvCritic((1, 8, 8), width=8, encoding_size=16), 2),
        )
    with tempfile.TemporaryDirectory() as folder:
        return _split_safetensors(cal.save_emulator(emulator, Path(folder)).read_bytes())


@functools.cache
def _stage_parts() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A small, valid DCGAN stage file (generator-ema.safetensors), split up."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        generator = DCGANGenerator(resolution=64, width=2, channels=1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generator-ema.safetensors"
        save_network(path, generator, role="generator-ema", stage="dcgan", generator=generator.config)
        return _split_safetensors(path.read_bytes())


#: JSON values to put where a file's metadata expects something else.
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**18), 10**18),
    st.floats(-1e6, 1e6),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0]),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)
ABSURD = st.one_of(st.integers(10**13, 10**18), st.integers(-(10**6), 0))  # sizes no network can have
BAD_WEIGHT_DTYPES = (torch.int8, torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64)


WEIGHT_DAMAGES = (
    "garbage",
    "truncate",
    "empty",
    "no metadata",
    "metadata not JSON",
    "metadata not a dict",
    "drop key",
    "bad value",
    "random value",
    "weight dtype",
    "weight NaN",
    "weight shape",
    "missing weight",
    "extra weight",
)


@st.composite
def weight_damage(draw, parts: Callable[[], tuple[dict, dict]], fields: dict[str, Any]) -> dict[str, Any]:
    """A readable recipe for damaging a weight file; :func:`_damaged_weights` applies it.

    ``fields`` maps metadata keys the loader needs to strategies of bad values for them.
    """
    meta, tensors = parts()
    how = draw(st.sampled_from(WEIGHT_DAMAGES))
    recipe: dict[str, Any] = {"how": how}
    if how == "garbage":
        recipe["bytes"] = draw(st.binary(max_size=300))
    elif how == "truncate":
        recipe["keep"] = draw(st.floats(0, 1, exclude_max=True))
    elif how == "metadata not JSON":
        recipe["text"] = draw(st.text(max_size=30)) + "{"
    elif how == "metadata not a dict":
        recipe["value"] = draw(st.lists(JSON_SCALARS, max_size=3) | JSON_SCALARS)
    elif how == "drop key":
        recipe["key"] = draw(st.sampled_from(sorted(fields)))
    elif how == "bad value":
        recipe["key"] = key = draw(st.sampled_from(sorted(fields)))
        recipe["value"] = draw(fields[key])
    elif how == "random value":
        recipe["key"] = draw(st.sampled_from(sorted(meta)))
        recipe["value"] = draw(JSON_VALUES)
    elif how != "empty" and how != "no metadata":
        candidates = sorted(k for k, t in tensors.items() if how != "weight NaN" or t.is_floating_point())
        names = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3, unique=True))
        if how == "weight dtype":
            recipe["tensors"] = {name: draw(st.sampled_from(BAD_WEIGHT_DTYPES)) for name in names}
        elif how == "weight NaN":
            recipe["tensors"] = {
                name: (draw(st.floats(0, 1, exclude_max=True)), draw(st.sampled_from([math.nan, math.inf])))
                for name in names
            }
        elif how == "weight shape":
            shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
            recipe["tensors"] = {
                name: draw(shapes.filter(lambda s, n=name: s != tuple(tensors[n].shape))) for name in names
            }
        else:
            recipe["tensors"] = names
    return recipe


def _damaged_weights(parts: Callable[[], tuple[dict, dict]], recipe: dict[str, Any]) -> tuple[bytes, bool]:
    """The bytes of the damaged file, and whether it must be refused (else: refused or usable)."""
    meta, tensors = parts()
    meta, tensors = json.loads(json.dumps(meta)), dict(tensors)
    how = recipe["how"]
    if how == "garbage":
        return recipe["bytes"], True
    if how == "empty":
        return b"", True
    if how == "truncate":
        raw = _weights_file(meta, tensors)
        return raw[: int(recipe["keep"] * len(raw))], True
    if how == "no metadata":
        return save_torch_bytes(tensors), True
    if how == "metadata not JSON":
        return save_torch_bytes(tensors, metadata={"gangal": recipe["text"]}), True
    if how == "metadata not a dict":
        meta = recipe["value"]
    elif how == "drop key":
        del meta[recipe["key"]]
    elif how in ("bad value", "random value"):
        meta[recipe["key"]] = recipe["value"]
    elif how == "weight dtype":
        tensors.update({name: tensors[name].to(dtype) for name, dtype in recipe["tensors"].items()})
    elif how == "weight NaN":
        for name, (at, value) in recipe["tensors"].items():
            t = tensors[name].clone()
            t.view(-1)[int(at * t.numel())] = value
            tensors[name] = t
    elif how == "weight shape":
        tensors.update({name: torch.zeros(shape) for name, shape in recipe["tensors"].items()})
    elif how == "missing weight":
        for name in recipe["tensors"]:
            del tensors[name]
    else:
        tensors.update({name + ".extra": tensors[name].clone() for name in recipe["tensors"]})
    # without its "estimator" entry an emulator file is still a sound emulator (its critic unused)
    optional = how == "random value" or (how == "drop key" and recipe["key"] == "estimator")
    return _weights_file(meta, tensors), not optional


EMULATOR_FIELDS = {
    "format": st.one_of(st.text(max_size=10), JSON_SCALARS),
    "simulator": st.one_of(st.none(), st.integers(), st.lists(st.text(max_size=3), max_size=2)),
    "parameters": st.one_of(
        st.just([]),
        st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=4), "low": JSON_SCALARS, "high": JSON_SCALARS, "unit": st.just("")}
            ),
            min_size=1,
            max_size=3,
        ),
        JSON_SCALARS,
    ),
    "image_shape": st.one_of(
        st.lists(ABSURD, min_size=3, max_size=3),
        st.lists(st.integers(1, 9), min_size=0, max_size=5).filter(lambda s: len(s) != 3),
        JSON_SCALARS,
    ),
    "arch": st.one_of(st.text(max_size=8).filter(lambda s: s != "conv"), st.integers(), st.none()),
    "options": st.one_of(
        st.fixed_dictionaries({"width": ABSURD, "hidden": st.just(16)}),
        st.fixed_dictionaries({"width": st.just(8), "hidden": ABSURD}),
        st.dictionaries(st.sampled_from(["bogus", "depth", "Width"]), JSON_SCALARS, min_size=1, max_size=2),
        st.lists(JSON_SCALARS, max_size=2),
        st.text(max_size=4),
    ),
    "scale": st.one_of(
        st.fixed_dictionaries(
            {"offset": st.sampled_from([math.nan, math.inf, "x", None]), "scale": st.just(1.0)}
        ),
        st.fixed_dictionaries({"offset": st.just(0.0), "scale": st.sampled_from([0.0, -1.0, math.nan, "x"])}),
        st.dictionaries(st.sampled_from(["offset", "scale", "shift"]), JSON_SCALARS, max_size=2),
        JSON_SCALARS,
    ),
    "estimator": st.one_of(
        st.fixed_dictionaries({"arch": st.just("conv")}),
        st.fixed_dictionaries({"arch": st.just("conv"), "options": st.fixed_dictionaries({"width": ABSURD})}),
        st.fixed_dictionaries({"arch": st.text(max_size=5), "options": st.just({})}),
        JSON_SCALARS,
    ),
}


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


STAGE_FIELDS = {
    "format": st.one_of(st.text(max_size=10), JSON_SCALARS),
    "stage": st.one_of(st.text(max_size=8).filter(lambda s: s != "dcgan"), JSON_SCALARS),
    "generator": st.one_of(
        st.fixed_dictionaries({"resolution": st.just(64), "width": ABSURD, "channels": st.just(1)}),
        st.fixed_dictionaries({"resolution": st.just(64), "width": st.just(2), "channels": ABSURD}),
        st.fixed_dictionaries(
            {"resolution": st.integers(-5, 500).filter(lambda r: r not in (64, 128)), "width": st.just(2)}
        ),
        st.dictionaries(st.sampled_from(["bogus", "depth"]), JSON_SCALARS, min_size=1, max_size=2),
        st.lists(JSON_SCALARS, max_size=2),
        JSON_SCALARS,
    ),
}


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


# ---- 5. checkpoints ----------------------------------------------------------------------------
def _checkpoint_bytes(state: Any, metadata: dict | None = None) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.safetensors"
        save_checkpoint(path, state, metadata=metadata)
        return path.read_bytes()


@functools.cache
def _valid_checkpoint() -> bytes:
    state = {
        "iteration": 3,
        "seconds": 1.5,
        "state": {"models": {"m": {"w": torch.ones(2, 3)}}, "rng": np.arange(4), "pair": (1, 2.5)},
    }
    return _checkpoint_bytes(state)


def _rebuild_safetensors(raw: bytes, edit: Callable[[dict], Any]) -> bytes:
    """``raw`` with its JSON header replaced by ``edit(header)`` (tensor data unchanged)."""
    size = int.from_bytes(raw[:8], "little")
    header = edit(json.loads(raw[8 : 8 + size]))
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + raw[8 + size :]


def _nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


@st.composite
def checkpoint_damage(draw) -> dict[str, Any]:
    how = draw(
        st.sampled_from(
            ["garbage", "truncate", "empty", "pickle", "header", "metadata", "format", "tree", "deep tree"]
        )
    )
    recipe: dict[str, Any] = {"how": how}
    if how == "garbage":
        recipe["bytes"] = draw(st.binary(max_size=200))
    elif how == "truncate":
        recipe["keep"] = draw(st.floats(0, 1, exclude_max=True))
    elif how in ("header", "metadata", "format"):
        recipe["value"] = draw(JSON_VALUES)
    elif how == "tree":
        markers = st.sampled_from(["__tensor__", "__ndarray__", "__tuple__", "__dict__", "__float__"])
        recipe["tree"] = draw(
            st.one_of(JSON_VALUES, st.dictionaries(markers, JSON_VALUES, min_size=1, max_size=1))
        )
    elif how == "deep tree":
        recipe["depth"] = draw(st.integers(1000, 100_000))
        recipe["kind"] = draw(st.sampled_from(["list", "dict"]))
    return recipe


def _damaged_checkpoint(recipe: dict[str, Any]) -> tuple[bytes, bool]:
    """The damaged checkpoint, and whether it must be refused (else: refused or read)."""
    raw, how = _valid_checkpoint(), recipe["how"]
    if how == "garbage":
        return recipe["bytes"], True
    if how == "truncate":
        return raw[: int(recipe["keep"] * len(raw))], True
    if how == "empty":
        return b"", True
    if how == "pickle":
        buf = io.BytesIO()
        torch.save({"iteration": 1, "state": {}}, buf)
        return buf.getvalue(), True
    if how == "header":
        return _rebuild_safetensors(raw, lambda h: {**h, "__metadata__": recipe["value"]}), True
    if how == "metadata":
        return _rebuild_safetensors(
            raw, lambda h: {**h, "__metadata__": {"format": "gangal-checkpoint/1", "tree": recipe["value"]}}
        ), True
    if how == "format":
        return _rebuild_safetensors(
            raw, lambda h: {**h, "__metadata__": {**h["__metadata__"], "format": recipe["value"]}}
        ), True
    tree = json.dumps(recipe["tree"]) if how == "tree" else _nested(recipe["depth"], recipe["kind"])
    return _rebuild_safetensors(
        raw, lambda h: {**h, "__metadata__": {**h["__metadata__"], "tree": tree}}
    ), how != "tree"


@_settings(60)
@given(damage=checkpoint_damage())
def test_checkpoint_loader_refuses_damaged_files(tmp_path, damage) -> None:
    CASES["checkpoint damaged"] += 1
    raw, must_fail = _damaged_checkpoint(damage)
    path = _scratch(tmp_path) / "checkpoint.safetensors"
    path.write_bytes(raw)
    with _deadline(20):
        if must_fail:
            _expect_user_error(lambda: load_checkpoint(path), path)
        else:
            _user_error_or(lambda: load_checkpoint(path), path)


# ---- 6. parameter CSV files --------------------------------------------------------------------
class Toy(Simulator):
    """A flat level ``a`` plus noise of scale ``b`` on 8x8 pixels: quick to simulate and to emulate."""

    name = "toy8"
    image_shape = (1, 8, 8)
    parameters = TOY_PARAMETERS
    reference_truth = {"a": (0.5, 0.1), "b": (0.5, 0.1)}  # noqa: RUF012

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(len(params), 1, 8, 8, generator=generator)
        return params[:, 0, None, None, None] + params[:, 1, None, None, None] * noise


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(exclude_characters="\n\r\x00"), max_size=8),
    st.sampled_from(
        ["nan", "NaN", "inf", "-inf", "1e999", "", " ", "1,5", "0x10", "∞", "1e-999", "--1", "١٢"]
    ),
)


@_settings(60)
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.sampled_from([b"", b"\xef\xbb\xbf", b"a,b\n", b"a,a\n1,2\n", b"a,b\n1\n", b"a,b,c\n1,2,3\n"]),
        st.lists(st.lists(CELLS, min_size=1, max_size=4), min_size=1, max_size=4).map(
            lambda rows: "\n".join(",".join(r) for r in [["a", "b"], *rows]).encode()
        ),
    ),
    name=st.sampled_from(["params.csv", "p a r a m s.csv", "[bold]params.csv", "ünï:smile:.csv", "params"]),
)
def test_parameter_csv_garbage(tmp_path, content, name) -> None:
    CASES["parameter CSV garbage"] += 1
    path = _scratch(tmp_path) / name
    path.write_bytes(content)
    values, _ = _user_error_or(lambda: read_parameter_csv(path, Toy()), path)
    if values is not None:  # accepted: then it must be sound
        assert values.dtype == np.float32 and values.shape[1] == 2 and np.isfinite(values).all()


@_settings(60)
@given(
    rows=st.integers(1, 5),
    bad_row=st.integers(0, 4),
    bad_column=st.integers(0, 1),
    cell=CELLS.filter(lambda c: not _is_number(c)),
)
def test_parameter_csv_bad_value_names_the_line(tmp_path, rows, bad_row, bad_column, cell) -> None:
    CASES["parameter CSV bad value"] += 1
    table = [["0.5", "0.5"] for _ in range(rows)]
    table[bad_row % rows][bad_column] = cell
    path = _scratch(tmp_path) / "params.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["b", "a"], *table])
    _expect_user_error(lambda: read_parameter_csv(path, Toy()), path, f"line {bad_row % rows + 2}")


# ---- 7. TOML configuration files ---------------------------------------------------------------
COMMAND_MODELS = {
    "simulate": config_module.SimulateConfig,
    "pretrain": config_module.PretrainConfig,
    "calibrate": config_module.CalibrateConfig,
    "emulate": config_module.EmulateConfig,
    "train": config_module.TrainConfig,
    "sample": config_module.SampleConfig,
    "evaluate": config_module.EvaluateConfig,
}


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes, which TOML shares, and DEL escaped as TOML wants."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml(value: Any) -> str:
    """``value`` as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_string(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


TOML_SCALARS = st.one_of(
    st.sampled_from(["run\x00.npy", "a\x00b", "\x00"]),  # NUL: a path no file system accepts
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=10),
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=5,
)


@example(command="simulate", body=("keys", {"simulator": "toy8", "out": "run\x00.npy"}), in_section=False)
@_settings(80)
@given(
    command=st.sampled_from(sorted(COMMAND_MODELS)),
    body=st.one_of(
        st.binary(max_size=120).map(lambda b: ("bytes", b)),
        st.dictionaries(
            st.one_of(
                st.sampled_from(sorted({f for m in COMMAND_MODELS.values() for f in m.model_fields})),
                st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True),
            ),
            TOML_VALUES,
            min_size=1,
            max_size=4,
        ).map(lambda d: ("keys", d)),
    ),
    in_section=st.booleans(),
)
def test_config_file_errors_name_the_file_and_key(tmp_path, command, body, in_section) -> None:
    CASES["TOML config"] += 1
    model = COMMAND_MODELS[command]
    path = _scratch(tmp_path) / "config.toml"
    kind, payload = body
    if kind == "bytes":
        path.write_bytes(payload)
        keys: list[str] = []
    else:
        keys = list(payload)
        lines = [f"{_toml_string(k)} = {_toml(v)}" for k, v in payload.items()]
        path.write_text((f"[{command}]\n" if in_section else "") + "\n".join(lines) + "\n", encoding="utf-8")
    resolve = functools.partial(
        config_module.resolve_config, model, command_line={}, config_file=path, section=command
    )
    cfg, error = _user_error_or(resolve, path)
    if error is not None:
        named = set(model.model_fields) | {k.replace("-", "_") for k in keys} | set(keys)
        assert kind == "bytes" or any(k in str(error) for k in named), str(error)
        return
    assert isinstance(cfg, model)
    for field in model.model_fields:  # a path the file system cannot open is no valid option
        value = getattr(cfg, field)
        assert not (isinstance(value, Path) and "\x00" in str(value)), f"{field} = {value!r} from {path}"


def _required(command: str, folder: Path) -> str:
    """TOML lines with the options ``command`` needs, writing only into ``folder``, and tiny sizes.

    Should gangal accept a bad line beside them, the command then fails or ends in seconds.
    """
    values = {
        "simulate": {"simulator": "toy8", "out": folder / "images.npy", "n": 4},
        "pretrain": {"simulator": "toy8", "out": folder / "emulator", "iterations": 1, "batch_size": 2},
        "calibrate": {
            "simulator": "toy8",
            "out": folder / "run",
            "iterations": 1,
            "pretrain_iterations": 1,
            "batch_size": 2,
            "n_true": 8,
            "n_samples": 2,
        },
        "emulate": {
            "emulator": folder / "emulator",
            "params": folder / "params.csv",
            "out": folder / "e.npy",
        },
        "train": {
            "out": folder / "model",
            "chain": ["dcgan"],
            "epochs": [1],
            "width": [2],
            "batch_size": [4],
            "data_option": ["n=8"],
        },
        "sample": {"model": folder / "model", "out": folder / "samples", "n": 2},
        "evaluate": {
            "real": str(folder / "real.npy"),
            "generated": str(folder / "generated.npy"),
            "out": folder / "evaluation",
            "n": 4,
        },
    }[command]
    return "\n".join(f"{k} = {_toml(str(v) if isinstance(v, Path) else v)}" for k, v in values.items())


@pytest.mark.parametrize("command", sorted(COMMAND_MODELS))
def test_config_file_with_a_misspelt_section(tmp_path, command) -> None:
    """``[simualte]`` is neither a command nor an option: it must not be silently ignored."""
    CASES["TOML config"] += 1
    path = tmp_path / "config.toml"
    misspelt = command[:2] + command[3] + command[2] + command[4:]
    required = _required(command, tmp_path)
    path.write_text(f"{required}\n[{misspelt}]\nseed = 3\n", encoding="utf-8")
    model = COMMAND_MODELS[command]
    _expect_user_error(
        lambda: config_module.resolve_config(model, command_line={}, config_file=path, section=command),
        path,
        misspelt,
    )


# ---- 8. the command line: bad files given to options -------------------------------------------
class Flaky(Toy):
    """A simulator plugin that misbehaves from its ``from_call``-th call on, as ``fault`` says."""

    name = "flaky"

    def __init__(self, fault: Fault | None = None, from_call: int = 1) -> None:
        self.fault, self.from_call, self.calls = fault, from_call, 0

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> Any:
        images = super().simulate(params, generator=generator)
        self.calls += 1
        return images if self.fault is None or self.calls < self.from_call else self.fault.apply(images)


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch, builtin_entry_points, tmp_path) -> Callable[[Simulator], None]:
    """`gangal` sees the built-in plugins, ``toy8``, and whatever simulator instance is put in."""
    registry = build_registry(entry_points=builtin_entry_points)
    monkeypatch.setattr(plugins_module, "_registry", registry)
    monkeypatch.chdir(tmp_path)  # whatever a command writes by a relative default lands here

    def put(sim: Simulator) -> None:
        registry.things["simulator"][sim.name] = RegisteredThing(
            sim.name, "simulator", sim, "gangal_flaky", "gangal-flaky", "0.1"
        )

    put(Toy())
    return put


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """Valid inputs for the commands: true images, a parameter CSV, an emulator, a chain model."""
    folder = tmp_path_factory.mktemp("good")
    with torch.random.fork_rng():
        torch.manual_seed(1)
        images = Toy().simulate(
            Toy.sample_uniform(6, generator=torch.Generator().manual_seed(1)),
            generator=torch.Generator().manual_seed(2),
        )
    np.save(folder / "true.npy", images.numpy())
    (folder / "params.csv").write_text("a,b\n0.5,0.5\n0.2,0.3\n")
    (folder / "emulator").mkdir()
    (folder / "emulator" / "emulator.safetensors").write_bytes(_weights_file(*_emulator_parts()))
    (folder / "model" / "dcgan").mkdir(parents=True)
    (folder / "model" / "dcgan" / "generator-ema.safetensors").write_bytes(_weights_file(*_stage_parts()))
    np.save(folder / "generated.npy", _rng().random((4, 1, 16, 16)).astype(np.float32))
    return {
        "true": folder / "true.npy",
        "params": folder / "params.csv",
        "emulator": folder / "emulator",
        "model": folder / "model",
        "generated": folder / "generated.npy",
    }


#: Names of bad inputs: the message must show each exactly as it is (rich markup, emoji codes...).
FILE_NAMES = st.sampled_from(
    ["input", "with space", "ünïcödé", "[bold]input", "[red]in[/red]put", "x:smile:y", "a[1]", "[link=x]in"]
)  # "[red]in[/red]put" is a file "red]put" in a folder "[red]in["
MUST_FAIL_IMAGE_DAMAGE = st.sampled_from(["garbage", "empty", "NaN", "wrong shape", "wrong dtype"])


def _bad_images(where: Path, fmt: str, damage: str, garbage: bytes, stem: str) -> Path:
    """A file (or folder) of format ``fmt`` that holds no usable (N, 1, 8, 8) images."""
    where = where / stem
    where.mkdir(parents=True)
    if damage in ("NaN", "wrong shape", "wrong dtype") and fmt in ARRAY_FORMATS:
        shape = (3, 2, 8, 8) if damage == "wrong shape" else (3, 1, 8, 8)
        images = _rng().normal(size=shape).astype(np.float32)
        if damage == "NaN":
            images[1, 0, 2, 3] = np.nan
        if damage == "wrong dtype":
            images = images > 0 if not fmt.startswith(".fits") else images.astype(np.float32) + np.inf
        return _write_array(where / f"images{fmt}", images)
    root, target = _valid_images(where, fmt)
    target.write_bytes(garbage if damage != "empty" else b"")
    return root


@_settings(25)
@given(
    fmt=st.sampled_from(IMAGE_FORMATS),
    damage=MUST_FAIL_IMAGE_DAMAGE,
    garbage=st.binary(max_size=100),
    stem=FILE_NAMES,
)
def test_cli_calibrate_bad_true_data(tmp_path, install, fmt, damage, garbage, stem) -> None:
    CASES["CLI --true-data"] += 1
    folder = _scratch(tmp_path)
    bad = _bad_images(folder, fmt, damage, garbage, stem)
    out = folder / "run"
    before = _snapshot(_sentinel(out / "notes.txt"), bad)
    result = _cli(
        "calibrate",
        "-s",
        "toy8",
        "--true-data",
        bad,
        "-o",
        out,
        "--iterations",
        1,
        "--pretrain-iterations",
        1,
        "--batch-size",
        2,
        "--n-samples",
        2,
        "--no-progress",
    )
    _assert_cli_user_error(result, bad, "--true-data")
    _assert_untouched(before, out)


@_settings(25)
@given(
    fmt=st.sampled_from(IMAGE_FORMATS),
    damage=MUST_FAIL_IMAGE_DAMAGE,
    garbage=st.binary(max_size=100),
    stem=FILE_NAMES,
)
def test_cli_evaluate_bad_real_images(tmp_path, install, good, fmt, damage, garbage, stem) -> None:
    folder = _scratch(tmp_path)
    bad = _bad_images(folder, fmt, damage, garbage, stem)
    if damage == "wrong shape":  # evaluate takes any shape; a shape unlike --generated's is the error
        assume(fmt in ARRAY_FORMATS)
    CASES["CLI --real"] += 1
    out = folder / "evaluation"
    before = _snapshot(_sentinel(out / "histograms.png"), bad)
    result = _cli(
        "evaluate", "--real", bad, "--generated", good["generated"], "-o", out, "-n", 4, "--no-progress"
    )
    _assert_cli_user_error(result, bad if damage != "wrong shape" else "--real")
    _assert_untouched(before, out)


BAD_CELLS = CELLS.filter(lambda c: not _is_number(c))


@_settings(25)
@given(
    command=st.sampled_from(["simulate", "emulate", "calibrate"]),
    cell=BAD_CELLS,
    at=st.tuples(st.integers(0, 1), st.integers(0, 1)),
    garbage=st.one_of(st.none(), st.binary(max_size=60)),
    stem=FILE_NAMES,
)
def test_cli_bad_parameter_csv(tmp_path, install, good, command, cell, at, garbage, stem) -> None:
    folder = _scratch(tmp_path)
    bad = folder / f"{stem}.csv"
    bad.parent.mkdir(parents=True, exist_ok=True)
    if garbage is None:
        table = [["a", "b"], ["0.5", "0.5"], ["0.2", "0.3"]]
        table[1 + at[0]][at[1]] = cell
        with open(bad, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(table)
    else:
        bad.write_bytes(garbage)
        assume(_user_error_or(lambda: read_parameter_csv(bad, Toy()))[1] is not None)  # really bad
    CASES["CLI parameter CSV"] += 1
    if command == "simulate":
        out, option = folder / "images.npy", "--params"
        sentinels = [
            _sentinel(out),
            _sentinel(out.with_suffix(".parameters.npy")),
            _sentinel(out.with_suffix(".json")),
        ]
        args = ["simulate", "-s", "toy8", "--params", bad, "-o", out]
    elif command == "emulate":
        out, option = folder / "images.npy", "--params"
        sentinels = [_sentinel(out)]
        args = ["emulate", "--emulator", good["emulator"], "--params", bad, "-o", out]
    else:
        out, option = folder / "run", "--true-params"
        sentinels = [_sentinel(out / "samples.csv")]
        args = [
            "calibrate",
            "-s",
            "toy8",
            "--true-data",
            good["true"],
            "--true-params",
            bad,
            "-o",
            out,
            "--iterations",
            1,
            "--pretrain-iterations",
            1,
            "--batch-size",
            2,
            "--n-samples",
            2,
            "--no-progress",
        ]
    before = _snapshot(*sentinels, bad)
    _assert_cli_user_error(_cli(*args), bad, option)
    _assert_untouched(before, out)


@_settings(25)
@given(
    damage=weight_damage(_emulator_parts, EMULATOR_FIELDS),
    stem=FILE_NAMES,
    command=st.sampled_from(["emulate", "calibrate"]),
)
def test_cli_bad_emulator_file(tmp_path, install, good, damage, stem, command) -> None:
    raw, must_fail = _damaged_weights(_emulator_parts, damage)
    assume(must_fail)
    CASES["CLI --emulator"] += 1
    folder = _scratch(tmp_path)
    bad = folder / stem / "emulator.safetensors"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(raw)
    install(Flaky())
    if command == "emulate":
        out = folder / "images.npy"
        args = ["emulate", "--emulator", bad.parent, "--params", good["params"], "-o", out]
    else:
        out = folder / "run" / "notes.txt"
        args = [
            "calibrate",
            "-s",
            "flaky",
            "--emulator",
            bad.parent,
            "--true-data",
            good["true"],
            "-o",
            out.parent,
            "--iterations",
            1,
            "--batch-size",
            2,
            "--n-samples",
            2,
            "--no-progress",
        ]
    before = _snapshot(_sentinel(out), bad)
    _assert_cli_user_error(_cli(*args), bad)
    _assert_untouched(before, out)


@_settings(25)
@given(damage=weight_damage(_stage_parts, STAGE_FIELDS), stem=FILE_NAMES)
def test_cli_sample_bad_model(tmp_path, install, damage, stem) -> None:
    raw, must_fail = _damaged_weights(_stage_parts, damage)
    assume(must_fail)
    CASES["CLI --model"] += 1
    folder = _scratch(tmp_path)
    bad = folder / stem / "dcgan" / "generator-ema.safetensors"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(raw)
    out = folder / "samples"
    before = _snapshot(_sentinel(out / "contact_sheet.png"), bad)
    result = _cli("sample", "--chain", "dcgan", "--model", bad.parent.parent, "-n", 2, "-o", out, "--no-png")
    _assert_cli_user_error(result, bad)
    _assert_untouched(before, out)


ALL_FIELDS = sorted({field for model in COMMAND_MODELS.values() for field in model.model_fields})
BAD_CONFIG_LINES = st.one_of(
    st.sampled_from(
        [
            "bogus = 1",
            "seed = 'x'",
            "seed = -1",
            "seed = 1.5",
            "seed = [1, 2]",
            "seed = 1979-05-27",
            "out = {a = 1}",
            "out = 3",
            'out = "a\\u0000b"',
            "out = ",
            "seed = 1\nseed = 2",
            "= 1",
            "[[seed]]",
        ]
    ),
    st.from_regex(r"[a-z_]{1,10} = (1|'x'|true|\[\]|1979-05-27)", fullmatch=True).filter(
        lambda line: line.split("=")[0].strip() not in ALL_FIELDS
    ),
)


@example(command="simulate", content='out = "a\\u0000b"', in_section=False, stem="input")
@_settings(30)
@given(
    command=st.sampled_from(sorted(COMMAND_MODELS)),
    content=st.one_of(st.binary(max_size=80), BAD_CONFIG_LINES),
    in_section=st.booleans(),
    stem=FILE_NAMES,
)
def test_cli_bad_config_file(tmp_path, install, command, content, in_section, stem) -> None:
    CASES["CLI --config"] += 1
    folder = _scratch(tmp_path)
    bad = folder / f"{stem}.toml"
    bad.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:  # the command's required options, and one bad line
        required = _required(command, folder)
        bad.write_text(
            (f"[{command}]\n" if in_section else "") + f"{required}\n{content}\n", encoding="utf-8"
        )
    before = _snapshot(bad)
    _assert_cli_user_error(_cli(command, "--config", bad), bad)
    _assert_untouched(before, bad)


# ---- 9. the command line: bad option values ----------------------------------------------------
def _base_args(command: str, good: dict[str, Path], out: Path) -> list[object]:
    """Valid, tiny options for ``command``, writing into the folder ``out`` (made here)."""
    out.mkdir(parents=True, exist_ok=True)
    tiny = ["--iterations", 1, "--batch-size", 2, "--no-progress"]
    return {
        "simulate": ["simulate", "-s", "toy8", "-n", 4, "-o", out / "images.npy"],
        "pretrain": ["pretrain", "-s", "toy8", "-o", out, *tiny],
        "calibrate": [
            "calibrate",
            "-s",
            "toy8",
            "--true-data",
            good["true"],
            "-o",
            out,
            "--pretrain-iterations",
            1,
            "--n-samples",
            2,
            *tiny,
        ],
        "calibrate-truth": [
            "calibrate",
            "-s",
            "toy8",
            "--n-true",
            8,
            "-o",
            out,
            "--pretrain-iterations",
            1,
            "--n-samples",
            2,
            *tiny,
        ],
        "emulate": [
            "emulate",
            "--emulator",
            good["emulator"],
            "--params",
            good["params"],
            "-o",
            out / "images.npy",
        ],
        "sample": ["sample", "--chain", "dcgan", "--model", good["model"], "-n", 2, "-o", out, "--no-png"],
        "evaluate": [
            "evaluate",
            "--real",
            good["generated"],
            "--generated",
            good["generated"],
            "-o",
            out,
            "-n",
            4,
            "--no-progress",
        ],
        "train": [
            "train",
            "--chain",
            "dcgan",
            "--data",
            "synthetic",
            "--data-option",
            "n=8",
            "--epochs",
            1,
            "--width",
            2,
            "--batch-size",
            4,
            "-o",
            out / "model",
            "--no-progress",
        ],
    }[command]


VALUE = object()  # in BAD_OPTIONS: the bad value itself, quoted in the message, names the option
NOT_AN_INT = st.sampled_from(["abc", "1.5", "", " ", "1e3", "0x10", "--", "½", "[/]"])
NOT_A_FLOAT = st.sampled_from(["abc", "", "1,5", "--", "[/]"])


def _not(valid: Callable[[str], bool]) -> Callable[[str], bool]:
    def invalid(text: str) -> bool:
        try:
            return not valid(text)
        except (ValueError, TypeError):
            return True

    return invalid


def _valid_shard(text: str) -> bool:
    i, n = (int(v) for v in text.split("/"))
    return n >= 1 and 0 <= i < n


def _valid_band(text: str) -> bool:
    return text == "sum" or int(text) == 0  # the --generated images have one channel


def _count_values(low: int) -> st.SearchStrategy:
    """Values of an option that must be at least ``low``."""
    return st.one_of(st.integers(-(10**6), low - 1).map(str), NOT_AN_INT)


def _words(*valid: str) -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(["", " ", "[/]", "NONE", *(v.upper() for v in valid)]), st.text(max_size=8)
    ).filter(lambda v: v not in valid)


#: (command, option, names the message may use for it, bad values); a value here must never be accepted.
BAD_OPTIONS = [
    ("simulate", "-n", ("'-n'", "n:"), _count_values(1)),
    ("simulate", "--seed", ("--seed", "seed:"), st.one_of(st.integers(-(10**6), -1).map(str), NOT_AN_INT)),
    (
        "simulate",
        "--shard",
        ("--shard",),
        st.one_of(st.text(max_size=8), st.sampled_from(["1/0", "2/2", "-1/3", "1/2/3", "/"])).filter(
            _not(_valid_shard)
        ),
    ),
    ("simulate", "--shard-size", ("--shard-size", "shard_size"), _count_values(1)),
    (
        "simulate",
        "--chunk-size",
        ("--chunk-size", "chunk_size"),
        st.one_of(_count_values(1), st.sampled_from(["3", "7", "65535"])),
    ),
    ("simulate", "--workers", ("--workers", "workers:"), _count_values(1)),
    ("pretrain", "--iterations", ("--iterations", "iterations:"), _count_values(1)),
    ("pretrain", "--batch-size", ("--batch-size", "batch_size:"), _count_values(2)),
    ("pretrain", "--recipe", ("--recipe", "recipe:"), _words("likelihood", "paper")),
    ("pretrain", "--checkpoint-every", ("--checkpoint-every", "checkpoint_every:"), _count_values(1)),
    ("pretrain", "--emulator-arch", ("--emulator-arch", "emulator_arch", "emulator named"), _words("conv")),
    ("pretrain", "--critic-arch", ("--critic-arch", "critic_arch", "critic named"), _words("conv")),
    ("calibrate", "--iterations", ("--iterations", "iterations:"), _count_values(1)),
    ("calibrate", "--n-samples", ("--n-samples", "n_samples:"), _count_values(2)),
    ("calibrate", "--recipe", ("--recipe", "recipe:"), _words("default", "paper")),
    (
        "calibrate",
        "--pretrain-recipe",
        ("--pretrain-recipe", "pretrain_recipe:"),
        _words("likelihood", "paper"),
    ),
    (
        "calibrate",
        "--discriminator-input",
        ("--discriminator-input", "discriminator_input:"),
        _words("simulated", "emulated"),
    ),
    ("calibrate", "--truth", ("--truth",), _words()),
    (
        "calibrate-truth",
        "--truth",
        ("--truth",),
        st.one_of(
            st.text(max_size=10),
            st.sampled_from(["a=1", "a=1,0", "a=1,-1", "a=nan,1", "c=1,1", "=1,1", "a=1,2,3"]),
        ),
    ),
    ("calibrate-truth", "--n-true", ("--n-true", "n_true:"), _count_values(2)),
    ("emulate", "--batch-size", ("--batch-size", "batch_size:"), _count_values(1)),
    ("emulate", "--precision", ("--precision", "precision:"), _words("float32", "bfloat16")),
    ("sample", "-n", ("'-n'", "n:"), _count_values(1)),
    ("sample", "--batch-size", ("--batch-size", "batch_size:"), _count_values(1)),
    ("sample", "--weights", ("--weights", "weights:"), _words("ema", "raw")),
    ("sample", "--chain", ("--chain", "chain:", VALUE), _words("dcgan", "dcgan,stackgan")),
    ("evaluate", "-n", ("'-n'", "n:"), _count_values(2)),
    (
        "evaluate",
        "--band",
        ("--band",),
        st.one_of(st.text(max_size=4), st.sampled_from(["1", "-1", "SUM", "3"])).filter(_not(_valid_band)),
    ),
    ("evaluate", "--resolution", ("--resolution", "resolution:"), _count_values(8)),
    ("evaluate", "--n-closest", ("--n-closest", "n_closest:"), _count_values(1)),
    ("evaluate", "--workers", ("--workers", "workers:"), _count_values(1)),
    ("evaluate", "--method", ("--method",), _words("fast", "photutils")),
    ("evaluate", "--evaluator", ("--evaluator", "evaluator named"), _words("isophote")),
    (
        "train",
        "--epochs",
        ("--epochs", "epochs:", "epochs."),
        st.sampled_from(["0", "-1", "a", "1,2", "1,,x", "1.5"]),
    ),
    ("train", "--width", ("--width", "width:", "width."), st.sampled_from(["0", "-3", "a", "2,2", "", ","])),
    (
        "train",
        "--batch-size",
        ("--batch-size", "batch_size:", "batch_size."),
        st.sampled_from(["0", "-3", "a", "4,4"]),
    ),
    (
        "train",
        "--resolution",
        ("--resolution", "resolution:"),
        st.one_of(st.integers(-100, 300).filter(lambda r: r not in (64, 128)).map(str), NOT_AN_INT),
    ),
    (
        "train",
        "--label-smoothing",
        ("--label-smoothing", "label_smoothing:"),
        st.one_of(st.sampled_from(["1", "1.5", "-0.1", "nan", "inf"]), NOT_A_FLOAT),
    ),
    (
        "train",
        "--ema-decay",
        ("--ema-decay", "ema_decay:"),
        st.one_of(st.sampled_from(["1", "2", "-0.5", "nan", "-inf"]), NOT_A_FLOAT),
    ),
    (
        "train",
        "--spatial-dropout",
        ("--spatial-dropout", "spatial_dropout:"),
        _words("none", "generator", "discriminator", "both"),
    ),
    ("train", "--dropout-from-epoch", ("--dropout-from-epoch", "dropout_from_epoch:"), _count_values(1)),
    (
        "train",
        "--data",
        ("--data", "data source named"),
        st.sampled_from(["nosuch", ":", "synthetic:", "galaxyzoo", "galaxyzoo:/no/such/folder", " "]),
    ),
    (
        "train",
        "--data-option",
        ("--data-option", "synthetic: n=", "'bogus'"),
        st.sampled_from(["n=-5", "n=0", "n=abc", "noequals", "=3", "bogus=1", "n=1e999"]),
    ),
]


@example(case=(("simulate", "--shard", ("--shard",)), ""))  # an unset $SHARD in a batch script
@_settings(150)
@given(case=st.sampled_from(BAD_OPTIONS).flatmap(lambda c: st.tuples(st.just(c[:3]), c[3])))
def test_cli_bad_option_values(tmp_path, install, good, case) -> None:
    CASES["CLI option value"] += 1
    (command, option, names), value = case
    out = _scratch(tmp_path) / "out"
    sentinel = [] if command in ("train", "simulate", "emulate") else [_sentinel(out / "notes.txt")]
    before = _snapshot(*sentinel)
    args = _base_args(command, good, out)
    with _deadline(30):
        result = _cli(*args, option, value)
    text = _assert_cli_user_error(result)
    names = tuple(str(value) if name is VALUE else name for name in names)
    assert any(name in text for name in names), (
        f"{option} {value!r}: the message names none of {names}: {text!r}"
    )
    _assert_untouched(before, out)


#: Seeds a run cannot take, for commands that seed torch: refused by name, or taken (hashed, reduced).
@_settings(12)
@given(
    command=st.sampled_from(["simulate", "pretrain", "calibrate", "emulate", "sample", "evaluate", "train"]),
    seed=st.integers(2**64, 2**80),
)
def test_cli_huge_seed_is_taken_or_refused_by_name(tmp_path, install, good, command, seed) -> None:
    CASES["CLI huge seed"] += 1
    out = _scratch(tmp_path) / "out"
    with _deadline(60):
        result = _cli(*_base_args(command, good, out), "--seed", seed)
    if result.exit_code != 0:
        text = _assert_cli_user_error(result)
        assert "--seed" in text or "seed:" in text, text


@_settings(8)
@given(
    case=st.sampled_from(
        [
            ("simulate", "-n", ".npy"),
            ("simulate", "-n", "folder"),
            ("sample", "-n", ""),
            ("calibrate-truth", "--n-true", ""),
        ]
    ),
    n=st.integers(10**13, 10**18),
)
def test_cli_huge_counts_are_refused_up_front(tmp_path, install, good, case, n) -> None:
    """A count whose images could never fit on the disk or in memory: refused by name, at once.

    The counts start at 10**13 so that, while the bug is there, the command fails at once on its
    first huge list instead of starting millions of chunks that then all have to run.
    """
    CASES["CLI huge count"] += 1
    command, option, kind = case
    out = _scratch(tmp_path) / "out"
    args = _base_args(command, good, out)
    if kind == "folder":
        args[args.index(out / "images.npy")] = out / "images"
    with _deadline(5), _limits(file_mib=64, extra_gib=3):
        result = _cli(*args, option, n)
    text = _assert_cli_user_error(result)
    assert option in text or f"{option.strip('-').replace('-', '_')}:" in text, text


# ---- 10. simulator plugins that misbehave ------------------------------------------------------
TRICKY_MESSAGES = ["[/]", "[bold]boom[/bold]", "[link=file:///etc]x", ":smile:", "100%", "{}", "\\", "é"]
EXCEPTIONS = (
    RuntimeError,
    ValueError,
    KeyError,
    ZeroDivisionError,
    TypeError,
    OSError,
    AssertionError,
    IndexError,
)


class Fault:
    """What a misbehaving simulator does instead of returning its images, and the words that say so."""

    def __init__(self, kind: str, detail: Any) -> None:
        self.kind, self.detail = kind, detail
        self.expected: list[str] = []

    def __repr__(self) -> str:
        return f"Fault({self.kind!r}, {self.detail!r})"

    def apply(self, images: torch.Tensor) -> Any:
        kind, detail = self.kind, self.detail
        if kind == "raises":
            exc_type, message = detail
            exc = exc_type(message)
            self.expected = [exc_type.__name__, " ".join(str(exc).split())]
            raise exc
        if kind == "shape":
            shape = detail(len(images))
            self.expected = [str(shape)]
            return torch.zeros(shape)
        if kind == "dtype":
            self.expected = [str(detail).removeprefix("torch.")]
            return images.to(detail)
        if kind == "nan":
            flat = images.reshape(-1)
            for at, value in detail:
                flat[int(at * flat.numel())] = value
            self.expected = ["NaN"]
            return images
        if kind == "numpy":
            self.expected = ["ndarray"]
            return images.numpy()
        if kind == "list":
            self.expected = ["list"]
            return images.tolist()
        if kind == "none":
            self.expected = ["NoneType"]
            return None
        self.expected = ["meta"]
        return torch.empty(images.shape, device="meta")


WRONG_SHAPES = {
    "one more image": lambda b: (b + 1, 1, 8, 8),
    "one image fewer": lambda b: (b - 1, 1, 8, 8),
    "no channel axis": lambda b: (b, 8, 8),
    "extra axis": lambda b: (b, 1, 1, 8, 8),
    "three channels": lambda b: (b, 3, 8, 8),
    "7x9 pixels": lambda b: (b, 1, 7, 9),
    "flat": lambda b: (b, 64),
}


class _Named:
    """A callable with a readable repr, for falsifying examples."""

    def __init__(self, name: str, fn: Callable) -> None:
        self.name, self.fn = name, fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __repr__(self) -> str:
        return self.name


FAULTS = st.one_of(
    st.tuples(
        st.sampled_from(EXCEPTIONS),
        st.one_of(
            st.sampled_from(TRICKY_MESSAGES),
            st.text(alphabet=st.characters(exclude_characters="│╭╮╰╯─"), max_size=20),
        ),
    ).map(lambda d: Fault("raises", d)),
    st.sampled_from(sorted(WRONG_SHAPES)).map(lambda k: Fault("shape", _Named(k, WRONG_SHAPES[k]))),
    st.sampled_from(
        [torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.uint8, torch.bool, torch.complex64]
    ).map(lambda d: Fault("dtype", d)),
    st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from([math.nan, math.inf, -math.inf])),
        min_size=1,
        max_size=3,
    ).map(lambda d: Fault("nan", d)),
    st.sampled_from(["numpy", "list", "none", "meta"]).map(lambda k: Fault(k, None)),
)


def _assert_names_the_simulator(result: Result, flaky: Flaky) -> None:
    text = _assert_cli_user_error(result, "'flaky'", *flaky.fault.expected)
    assert "simulator" in text.lower(), text
    assert flaky.calls >= flaky.from_call, "the fault never happened"


@_settings(25)
@given(fault=FAULTS, from_call=st.integers(1, 2), to_npy=st.booleans())
def test_cli_simulate_with_a_misbehaving_simulator(tmp_path, install, fault, from_call, to_npy) -> None:
    CASES["misbehaving simulator: simulate"] += 1
    flaky = Flaky(fault, from_call)
    install(flaky)
    folder = _scratch(tmp_path)
    out = folder / ("images.npy" if to_npy else "images")
    sentinels = (
        [_sentinel(out), _sentinel(out.with_suffix(".parameters.npy")), _sentinel(out.with_suffix(".json"))]
        if to_npy
        else []
    )
    before = _snapshot(*sentinels)
    result = _cli(
        "simulate", "-s", "flaky", "-n", 16, "--chunk-size", 8, "--shard-size", 8, "--workers", 1, "-o", out
    )
    _assert_names_the_simulator(result, flaky)
    _assert_untouched(before, out)


@_settings(12)
@given(fault=FAULTS, from_call=st.integers(1, 2))
def test_cli_pretrain_with_a_misbehaving_simulator(tmp_path, install, fault, from_call) -> None:
    CASES["misbehaving simulator: pretrain"] += 1
    flaky = Flaky(fault, from_call)
    install(flaky)
    out = _scratch(tmp_path) / "emulator"
    before = _snapshot(_sentinel(out / "notes.txt"))
    with _deadline(60):
        result = _cli(
            "pretrain", "-s", "flaky", "-o", out, "--iterations", 2, "--batch-size", 4, "--no-progress"
        )
    _assert_names_the_simulator(result, flaky)
    _assert_untouched(before, out)


@_settings(15)
@given(
    fault=FAULTS,
    path=st.sampled_from(["true set from the truth", "pretraining first", "given emulator"]),
    from_call=st.integers(1, 2),
)
def test_cli_calibrate_with_a_misbehaving_simulator(tmp_path, install, good, fault, path, from_call) -> None:
    CASES["misbehaving simulator: calibrate"] += 1
    flaky = Flaky(fault, from_call if path == "pretraining first" else 1)
    install(flaky)
    out = _scratch(tmp_path) / "run"
    args: list[object] = [
        "calibrate",
        "-s",
        "flaky",
        "-o",
        out,
        "--iterations",
        2,
        "--pretrain-iterations",
        2,
        "--batch-size",
        4,
        "--n-samples",
        4,
        "--no-progress",
    ]
    if path == "true set from the truth":
        args += ["--n-true", 8]
    else:
        args += ["--true-data", good["true"]]
    if path == "given emulator":
        args += ["--emulator", good["emulator"]]
    before = _snapshot(_sentinel(out / "notes.txt"))
    with _deadline(60):
        result = _cli(*args)
    _assert_names_the_simulator(result, flaky)
    _assert_untouched(before, out)


# ---- 11. resuming from a checkpoint that is not this run's --------------------------------------
TREE = st.recursive(
    st.one_of(JSON_SCALARS, st.builds(torch.zeros, st.integers(0, 3)), st.builds(np.ones, st.integers(0, 3))),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["models", "optimisers", "emulator", "generator", "extra", "history", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)


@_settings(10)
@given(
    state=st.one_of(TREE.map(lambda tree: ("a state tree", tree)), st.just(("a damaged file", None))),
    iteration=st.one_of(st.integers(-5, 5), st.just(10**30), st.text(max_size=3), st.none()),
    damage=checkpoint_damage(),
)
def test_cli_resume_from_a_foreign_checkpoint(tmp_path, install, state, iteration, damage) -> None:
    out = _scratch(tmp_path) / "emulator"
    out.mkdir()
    checkpoint = out / CHECKPOINT
    kind, tree = state
    if kind == "a damaged file":
        raw, must_fail = _damaged_checkpoint(damage)
        assume(must_fail)
        checkpoint.write_bytes(raw)
    else:  # a sound checkpoint file, of some other run or program
        save_checkpoint(checkpoint, {"iteration": iteration, "seconds": 0.0, "state": tree})
    CASES["CLI --resume foreign checkpoint"] += 1
    before = _snapshot(out)
    with _deadline(60):
        result = _cli(
            "pretrain",
            "-s",
            "toy8",
            "-o",
            out,
            "--resume",
            "--iterations",
            2,
            "--batch-size",
            4,
            "--no-progress",
        )
    _assert_cli_user_error(result, checkpoint)
    _assert_untouched(before, out)


# ---- the count ----------------------------------------------------------------------------------
def test_zz_how_many_cases_were_tried(request, capsys) -> None:
    """Print how many bad inputs were tried (the module's last test, so it runs after the others)."""
    others = {name for name in dir(request.module) if name.startswith("test_")} - {request.node.originalname}
    total = sum(CASES.values())
    if not others <= RAN:  # deselected (-k) or not yet run (another order)
        pytest.skip(f"{len(others - RAN)} test(s) of the module did not run before this one ({total} cases)")
    lines = [f"bad input: {total} cases tried, in {len(CASES)} kinds"]
    lines += [f"  {count:5d}  {kind}" for kind, count in sorted(CASES.items())]
    with capsys.disabled():  # shown even when the test passes
        print("\n" + "\n".join(lines))
    if request.session.testsfailed:  # a failing property stops at its first failing example
        pytest.skip(f"{request.session.testsfailed} test(s) failed, so fewer cases ran: {total}")
    assert total >= 500 * min(SCALE, 1), lines
