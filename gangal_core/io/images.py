"""Reading images: the one reader every gangal command uses.

:func:`read_images` turns a file or folder into a float32 array of shape
``(N, C, H, W)``.  It reads

* ``.npy`` arrays (memory-mapped, never unpickled), ``.npz`` archives (the array named
  ``images``, or the only array) and ``.safetensors`` files (the tensor named ``images``,
  or the only tensor).  A 2-D array ``(H, W)`` is one image, a 3-D array ``(N, H, W)`` is
  ``N`` single-channel images and a 4-D array is ``(N, C, H, W)``;
* FITS files (``.fits``, ``.fit``, ``.fts``, each optionally gzipped as ``.gz``): the
  first image HDU that holds data, with the same rules, so a 3-D cube is read as ``N``
  single-channel images, never as one multi-channel image;
* PNG and JPEG pictures: greyscale is one channel, RGB and RGBA are three (alpha is
  dropped), and 8-bit and 16-bit values are scaled to ``[0, 1]``;
* a folder of PNG, JPEG or FITS files, one image per file (there a 3-D FITS file is one
  ``(C, H, W)`` image), read in order of file name, all of one size;
* a folder written by ``gangal simulate``, whose ``manifest.json`` lists safetensors
  shards; :func:`read_simulation_folder` also returns the parameters of each image.

Integer values in array and FITS files are converted to float32 without scaling.  Every
problem raises :class:`~gangal_core.errors.ImageFormatError` with a one-paragraph message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import operator
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gangal_core.errors import ImageFormatError

__all__ = ["IMAGE_SUFFIXES", "MANIFEST_NAME", "describe_supported", "read_images", "read_simulation_folder"]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz", ".safetensors")
FOLDER_SUFFIXES = PICTURE_SUFFIXES + FITS_SUFFIXES
#: Every file suffix :func:`read_images` reads (matched case-insensitively).
IMAGE_SUFFIXES = ARRAY_SUFFIXES + FITS_SUFFIXES + PICTURE_SUFFIXES
#: The file that marks a folder written by ``gangal simulate``.
MANIFEST_NAME = "manifest.json"
SIMULATION_FORMAT = "gangal-simulation"
SIMULATION_VERSION = 1

_LONGEST_FIRST = tuple(sorted(IMAGE_SUFFIXES, key=len, reverse=True))
_FINITE_CHUNK_VALUES = 1 << 22  # values checked for NaN/inf at a time
#: safetensors floating-point dtypes numpy cannot hold; read through torch as float32.
_TORCH_ONLY_DTYPES = ("BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4")
_DTYPE_KINDS = {
    "b": "booleans",
    "c": "complex numbers",
    "O": "Python objects",
    "U": "text",
    "S": "bytes",
    "V": "structured records",
    "M": "dates",
    "m": "time spans",
}


@dataclass(frozen=True)
class _Request:
    """What the caller asked for, carried through the readers."""

    what: str
    limit: int | None
    band: int | None

    def __post_init__(self) -> None:
        if self.limit is not None and (operator.index(self.limit) < 1):
            raise ValueError(f"limit must be a positive number of images, found {self.limit!r}")
        if self.band is not None:
            operator.index(self.band)


@dataclass(frozen=True)
class _Manifest:
    image_shape: tuple[int, int, int]
    parameter_names: list[str]
    n: int
    shards: list[tuple[str, int, int]]  # (file, start, count)


def describe_supported() -> str:
    """Say in one sentence which files and folders :func:`read_images` reads."""
    return (
        "a .npy, .npz or .safetensors array file; a FITS file (.fits, .fit or .fts, optionally "
        "gzipped as .fits.gz, .fit.gz or .fts.gz); a PNG or JPEG picture (.png, .jpg, .jpeg); "
        "a folder of PNG, JPEG or FITS files; or a folder written by `gangal simulate`"
    )


def read_images(
    path: str | os.PathLike,
    *,
    expected_shape: tuple[int, int, int] | None = None,
    band: int | None = None,
    what: str = "images",
    limit: int | None = None,
) -> np.ndarray:
    """Read a file or folder of images as a float32 ``(N, C, H, W)`` array.

    Parameters
    ----------
    path : path-like
        A file or folder in one of the formats of :func:`describe_supported`.
    expected_shape : tuple of int, optional
        ``(C, H, W)`` every image must have (after ``band`` is applied).
    band : int, optional
        Keep only this channel (counting from 0), so ``C`` becomes 1.  By default every
        channel is kept.
    what : str, optional
        The role of the images, used in error messages (``"true data"``...).
    limit : int, optional
        Read at most this many images, the first ones; the rest are not loaded.

    Returns
    -------
    numpy.ndarray
        C-contiguous, writeable float32 array of shape ``(N, C, H, W)``, all finite.

    Raises
    ------
    ImageFormatError
        The path is missing or unreadable, has an unknown format, holds no images, images
        of the wrong shape or type, or NaN or infinite values.
    ValueError
        ``limit`` is below 1.
    """
    req = _Request(what, limit, band)
    path = Path(path)
    names: list[str] | None = None
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            images, _, _ = _read_simulation(path, req, with_parameters=False)
        else:
            images, names = _read_image_folder(path, req)
    elif path.is_file():
        images = _read_file(path, req)
    elif path.exists():
        raise _error(req, path, "it is neither a file nor a folder")
    else:
        raise _error(req, path, "no such file or folder")
    _check_expected_shape(images, expected_shape, path, req)
    _check_finite(images, path, req, names)
    return images


def read_simulation_folder(
    path: str | os.PathLike, *, limit: int | None = None, what: str = "simulated images"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a folder written by ``gangal simulate``: its images and their parameters.

    Parameters
    ----------
    path : path-like
        The folder holding ``manifest.json`` and the shards it lists.
    limit : int, optional
        Read at most this many images (and parameter rows), the first ones.
    what : str, optional
        The role of the images, used in error messages.

    Returns
    -------
    images : numpy.ndarray
        float32 array ``(N, C, H, W)``.
    parameters : numpy.ndarray
        float32 array ``(N, P)``, row ``i`` holding the parameters of image ``i``.
    parameter_names : list of str
        The ``P`` parameter names, in column order.
    """
    req = _Request(what, limit, None)
    folder = Path(path)
    if not (folder / MANIFEST_NAME).is_file():
        found = "a folder without one" if folder.is_dir() else "no such folder"
        raise _error(
            req, folder, f"expected a folder written by `gangal simulate` with {MANIFEST_NAME}, found {found}"
        )
    images, parameters, names = _read_simulation(folder, req, with_parameters=True)
    _check_finite(images, folder, req, None)
    assert parameters is not None
    return images, parameters, names


# ---- shared helpers ---------------------------------------------------------------------
def _error(req: _Request, source: Path | str, problem: str) -> ImageFormatError:
    return ImageFormatError(f"Cannot read the {req.what} at {source}: {problem}")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no details"
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}"


@contextlib.contextmanager
def _wrapping(req: _Request, path: Path, kind: str) -> Iterator[None]:
    """Turn any library exception raised inside the block into an ImageFormatError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except ImageFormatError:
            raise
        except Exception as exc:
            # the library's warnings (astropy's, mostly) explain the failure: fold them in
            said = "; ".join(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
            detail = _short(exc) + (f"; warnings: {said[:300]}" if said else "")
            problem = f"it is not a readable {kind} file; it may be truncated or corrupt ({detail})"
            raise _error(req, path, problem) from exc
    for w in caught:  # a file read despite warnings: pass them on
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _suffix_of(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in _LONGEST_FIRST if name.endswith(s)), None)


def _check_dtype(dtype: np.dtype, source: Path, req: _Request) -> None:
    if dtype.kind in "iuf":
        return
    found = _DTYPE_KINDS.get(dtype.kind, "non-numeric values")
    raise _error(
        req, source, f"it holds {found} (dtype {dtype}); expected real numbers, integer or floating point"
    )


def _check_band(channels: int, source: Path, req: _Request) -> None:
    if req.band is not None and not 0 <= req.band < channels:
        raise _error(
            req,
            source,
            f"band {req.band} was asked for but the images have {channels} channel(s), "
            f"so the band must be between 0 and {channels - 1}",
        )


def _to_nchw(arr: Any, source: Path, req: _Request, *, one_image: bool = False) -> np.ndarray:
    """Check a raw array, make it 4-D, cut it to ``limit`` and ``band``; return float32.

    The result never shares memory with ``arr``, which may be a view of a mapped file.
    """
    _check_dtype(arr.dtype, source, req)
    shape = tuple(arr.shape)
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[None] if one_image else arr[:, None]
    elif arr.ndim != 4 or one_image:
        expected = (
            "(H, W) or (C, H, W) for the one image of a file in a folder"
            if one_image
            else "(H, W) for one image, (N, H, W) for single-channel images, or (N, C, H, W)"
        )
        raise _error(req, source, f"it holds a {arr.ndim}-D array of shape {shape}; expected {expected}")
    if 0 in arr.shape:
        raise _error(req, source, f"it holds no images (an empty array of shape {shape})")
    if req.limit is not None:
        arr = arr[: req.limit]
    _check_band(arr.shape[1], source, req)
    if req.band is not None:
        arr = arr[:, req.band : req.band + 1]
    out = np.asarray(arr, dtype=np.float32, order="C")
    if np.may_share_memory(out, arr) or not out.flags.writeable:
        out = out.copy()
    return out


def _pick_key(keys: Sequence[str], source: Path, req: _Request, noun: str) -> str:
    if "images" in keys:
        return "images"
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise _error(req, source, f"it holds no {noun}s")
    listed = ", ".join(repr(k) for k in keys[:10]) + (", ..." if len(keys) > 10 else "")
    raise _error(
        req,
        source,
        f"it holds {len(keys)} {noun}s ({listed}) and none is named 'images'; "
        f"expected a single {noun} or one named 'images'",
    )


# ---- single files ----------------------------------------------------------------------
def _read_file(path: Path, req: _Request, *, one_image: bool = False) -> np.ndarray:
    suffix = _suffix_of(path)
    if suffix is None:
        found = f"the extension {path.suffix!r}" if path.suffix else "no extension"
        raise _error(
            req, path, f"its name has {found}, which gangal does not read; expected {describe_supported()}"
        )
    if suffix == ".npy":
        return _read_npy(path, req)
    if suffix == ".npz":
        return _read_npz(path, req)
    if suffix == ".safetensors":
        return _read_safetensors(path, req)
    if suffix in FITS_SUFFIXES:
        return _read_fits(path, req, one_image=one_image)
    return _read_picture(path, req)


def _check_npy_header(fh: Any, size: int, source: Path, req: _Request) -> None:
    """Refuse a .npy header that declares more data than the ``size`` bytes of its file hold.

    Checked before numpy sees the file: numpy allocates what the header declares first.
    """
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        return  # numpy's own reader explains other versions
    if dtype.hasobject:
        return  # refused by name later, never unpickled
    declared = math.prod(shape) * dtype.itemsize
    held = size - fh.tell()
    if declared > held:
        short = EOFError(f"{declared:,} bytes of data declared, {max(held, 0):,} present")
        raise _error(
            req,
            source,
            f"its header declares an array of shape {tuple(shape)} and dtype {dtype} ({declared:,} bytes) "
            f"but the file holds {max(held, 0):,} bytes of data; it is truncated or corrupt",
        ) from short


def _read_npy(path: Path, req: _Request) -> np.ndarray:
    with _wrapping(req, path, ".npy"):
        with open(path, "rb") as fh:
            _check_npy_header(fh, os.fstat(fh.fileno()).st_size, path, req)
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError:
            try:  # not mappable: read it plainly, for numpy's own explanation
                arr = np.load(path, allow_pickle=False)
            except ValueError as exc:
                if "object" in str(exc).lower() or "pickle" in str(exc).lower():
                    problem = "it holds Python objects, which gangal never unpickles; save a numeric array"
                    raise _error(req, path, problem) from exc
                raise
        if not isinstance(arr, np.ndarray):
            arr.close()
            raise _error(req, path, "it is a .npz archive, not a .npy array; rename it to .npz")
        return _to_nchw(arr, path, req)


def _read_npz(path: Path, req: _Request) -> np.ndarray:
    with _wrapping(req, path, ".npz"):
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a .npy array under a .npz name
            return _to_nchw(loaded, path, req)
        with loaded as archive:
            key = _pick_key(list(archive.files), path, req, "array")
            member = f"{key}.npy" if f"{key}.npy" in archive.zip.namelist() else key
            with archive.zip.open(member) as fh:
                _check_npy_header(fh, archive.zip.getinfo(member).file_size, path, req)
            arr = archive[key]
        return _to_nchw(arr, path, req)


def _read_safetensors(path: Path, req: _Request) -> np.ndarray:
    from safetensors import safe_open

    with _wrapping(req, path, ".safetensors"), safe_open(str(path), framework="np") as fh:
        key = _pick_key(list(fh.keys()), path, req, "tensor")
        shape = fh.get_slice(key).get_shape()
        dtype = fh.get_slice(key).get_dtype()
        if dtype in _TORCH_ONLY_DTYPES:  # numpy has no such floats: read them through torch
            with safe_open(str(path), framework="pt") as pt:
                arr = pt.get_tensor(key).float().numpy()
        elif req.limit is not None and len(shape) in (3, 4) and shape[0] > req.limit:
            arr = fh.get_slice(key)[: req.limit]
        else:
            arr = fh.get_tensor(key)
        return _to_nchw(arr, path, req)


def _read_fits(path: Path, req: _Request, *, one_image: bool = False) -> np.ndarray:
    from astropy.io import fits

    with _wrapping(req, path, "FITS"), fits.open(path) as hdul:
        kinds = []
        for hdu in hdul:
            kinds.append(f"{hdu.name or '?'} ({type(hdu).__name__})")
            if hdu.is_image and hdu.data is not None:
                return _to_nchw(hdu.data, path, req, one_image=one_image)
        raise _error(req, path, f"none of its HDUs holds image data (found {', '.join(kinds) or 'no HDUs'})")


def _read_picture(path: Path, req: _Request) -> np.ndarray:
    from PIL import Image

    with _wrapping(req, path, "PNG or JPEG"), Image.open(path) as img:
        img.load()
        return _to_nchw(_picture_to_chw(img), path, req, one_image=True)


def _picture_to_chw(img: Any) -> np.ndarray:
    """Pillow image -> float32 ``(C, H, W)``, greyscale C=1 and colour C=3, in [0, 1]."""
    mode = img.mode
    if mode in ("1", "L", "LA", "La"):
        return (np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255))[None]
    if mode == "F":
        return np.asarray(img, dtype=np.float32)[None]
    if mode.startswith("I"):  # 16-bit greyscale ("I;16", "I;16B"...; older Pillow says "I")
        return (np.asarray(img).astype(np.float32) / np.float32(65535))[None]
    rgb = np.asarray(img.convert("RGBA" if mode in ("P", "PA", "RGBA") else "RGB"))[..., :3]
    return np.moveaxis(rgb.astype(np.float32) / np.float32(255), -1, 0)


# ---- folders of pictures ---------------------------------------------------------------
def _list_image_files(folder: Path, req: _Request) -> list[Path]:
    try:
        entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
        entries = [p for p in entries if p.is_file()]
    except OSError as exc:
        raise _error(req, folder, f"the folder could not be listed ({_short(exc)})") from exc
    files = [p for p in entries if _suffix_of(p) in FOLDER_SUFFIXES]
    if not files:
        problem = f"the folder holds no image files (looked for {', '.join(FOLDER_SUFFIXES)})"
        if entries:
            shown = ", ".join(p.name for p in entries[:3]) + (", ..." if len(entries) > 3 else "")
            problem += f"; it holds {len(entries)} other file(s) ({shown}), which a folder may not hold"
        raise _error(req, folder, problem)
    return files if req.limit is None else files[: req.limit]


def _describe_image(shape: tuple[int, ...]) -> str:
    c, h, w = shape
    return f"{h}x{w} pixels (height x width) with {c} channel(s)"


def _read_image_folder(folder: Path, req: _Request) -> tuple[np.ndarray, list[str]]:
    files = _list_image_files(folder, req)
    one = dataclasses.replace(req, limit=None)
    first = _read_file(files[0], one, one_image=True)
    out = np.empty((len(files), *first.shape[1:]), dtype=np.float32)
    out[0] = first[0]
    for i, file in enumerate(files[1:], start=1):
        image = _read_file(file, one, one_image=True)
        if image.shape[1:] != first.shape[1:]:
            raise _error(
                req,
                folder,
                f"{file.name} is {_describe_image(image.shape[1:])} but the first file, {files[0].name}, "
                f"is {_describe_image(first.shape[1:])}; every image in a folder must have the same size",
            )
        out[i] = image[0]
    return out, [p.name for p in files]


# ---- folders written by `gangal simulate` ------------------------------------------------
def _is_count(value: Any, *, positive: bool = False) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= (1 if positive else 0)


def _parse_manifest(raw: Any) -> _Manifest:
    """Check a decoded manifest; raise ValueError, KeyError or TypeError saying what is wrong."""
    if not isinstance(raw, dict):
        raise TypeError(f"expected a JSON object, found {type(raw).__name__}")
    if raw.get("format") != SIMULATION_FORMAT:
        raise ValueError(f'expected "format": "{SIMULATION_FORMAT}", found {raw.get("format")!r}')
    if raw.get("version") != SIMULATION_VERSION:
        raise ValueError(f"expected version {SIMULATION_VERSION}, found {raw.get('version')!r}")
    shape, names, n = raw["image_shape"], raw["parameter_names"], raw["n"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_count(v, positive=True) for v in shape)):
        raise ValueError(f"image_shape must be [C, H, W] of positive integers, found {shape!r}")
    if not (isinstance(names, list) and all(isinstance(s, str) for s in names)):
        raise ValueError(f"parameter_names must be a list of names, found {names!r}")
    if not _is_count(n):
        raise ValueError(f"n must be a count of images, found {n!r}")
    shards, start = [], 0
    for entry in raw["shards"]:
        file, first, count = entry["file"], entry["start"], entry["count"]
        if not isinstance(file, str) or file in ("", ".", "..") or Path(file).name != file:
            raise ValueError(f"a shard's file must be a plain file name, found {file!r}")
        if first != start or not _is_count(count):
            raise ValueError(
                f"shard {file} should start at {start} with a count, found start={first!r} count={count!r}"
            )
        shards.append((file, first, count))
        start += count
    if start != n:
        raise ValueError(f"the shards hold {start} images but n is {n}")
    return _Manifest((shape[0], shape[1], shape[2]), list(names), n, shards)


def _load_manifest(folder: Path, req: _Request) -> _Manifest:
    path = folder / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _error(req, path, f"the manifest is not readable JSON ({_short(exc)})") from exc
    try:
        return _parse_manifest(raw)
    except KeyError as exc:
        raise _error(req, path, f"the manifest has no {exc} field") from exc
    except (TypeError, ValueError) as exc:
        raise _error(req, path, f"the manifest is not a valid gangal simulation manifest: {exc}") from exc


def _read_simulation(
    folder: Path, req: _Request, *, with_parameters: bool
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    manifest = _load_manifest(folder, req)
    missing = [file for file, _, _ in manifest.shards if not (folder / file).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise _error(
            req,
            folder,
            f"the simulation run is incomplete: {len(missing)} of the {len(manifest.shards)} shard files "
            f"listed in {MANIFEST_NAME} are missing ({shown}); re-run the same `gangal simulate` command "
            "to finish it",
        )
    if manifest.n == 0:
        raise _error(req, folder, f"it holds no images ({MANIFEST_NAME} says n is 0)")
    channels, height, width = manifest.image_shape
    _check_band(channels, folder, req)
    total = manifest.n if req.limit is None else min(manifest.n, req.limit)
    needed = total * channels * height * width * 4  # float32 images, before anything is allocated
    held = sum((folder / file).stat().st_size for file, start, _ in manifest.shards if start < total)
    if needed > held:
        raise _error(
            req,
            folder / MANIFEST_NAME,
            f"it promises {total:,} images of {channels}x{height}x{width} pixels ({needed:,} bytes) but the "
            f"shard files hold {held:,} bytes; it does not describe the shards beside it",
        )
    images = np.empty((total, 1 if req.band is not None else channels, height, width), dtype=np.float32)
    params = np.empty((total, len(manifest.parameter_names)), dtype=np.float32) if with_parameters else None
    for file, start, count in manifest.shards:
        if start >= total:
            break
        stop = min(start + count, total)
        _read_shard(
            folder / file,
            req,
            (count, *manifest.image_shape),
            images[start:stop],
            None if params is None else params[start:stop],
        )
    return images, params, list(manifest.parameter_names)


def _read_shard(
    path: Path, req: _Request, shape: tuple[int, ...], images: np.ndarray, params: np.ndarray | None
) -> None:
    """Fill ``images`` (and ``params``) with the first rows of one shard."""
    from safetensors import safe_open

    take = len(images)
    with _wrapping(req, path, ".safetensors shard"), safe_open(str(path), framework="np") as fh:
        wanted = {"images": shape}
        if params is not None:
            wanted["parameters"] = (shape[0], params.shape[1])
        for key, expected in wanted.items():
            if key not in fh.keys():
                raise _error(req, path, f"the shard has no tensor named {key!r} (found {sorted(fh.keys())})")
            found = tuple(fh.get_slice(key).get_shape())
            if found != expected:
                raise _error(
                    req, path, f"its {key!r} tensor has shape {found} but the manifest implies {expected}"
                )
            arr = fh.get_slice(key)[:take]
            _check_dtype(arr.dtype, path, req)
            if key == "images":
                images[...] = arr if req.band is None else arr[:, req.band : req.band + 1]
            else:
                params[...] = arr


# ---- final checks -----------------------------------------------------------------------
def _check_expected_shape(
    images: np.ndarray, expected: Sequence[int] | None, source: Path, req: _Request
) -> None:
    if expected is None:
        return
    expected = tuple(int(v) for v in expected)
    found = tuple(images.shape[1:])
    if found == expected:
        return
    problem = f"expected images of shape (C, H, W) = {expected}, found {found}"
    if found[0] != expected[0]:
        if expected[0] == 1:
            problem += "; keep one channel with `band` (--band on the command line) or sum the channels first"
        else:
            problem += f"; the images must have {expected[0]} channels"
    if found[1:] != expected[1:]:
        problem += f"; the images must be resized to {expected[1]}x{expected[2]} (height x width) first"
    raise _error(req, source, problem)


def _check_finite(images: np.ndarray, source: Path, req: _Request, names: Sequence[str] | None) -> None:
    per_image = max(1, int(np.prod(images.shape[1:])))
    rows = max(1, _FINITE_CHUNK_VALUES // per_image)
    bad_values = bad_images = 0
    first: int | None = None
    for start in range(0, len(images), rows):
        finite = np.isfinite(images[start : start + rows])
        if finite.all():
            continue
        counts = (~finite).reshape(len(finite), -1).sum(axis=1)
        bad_values += int(counts.sum())
        bad_images += int(np.count_nonzero(counts))
        if first is None:
            first = start + int(np.flatnonzero(counts)[0])
    if first is None:
        return
    where = f"image {first}" + (f" ({names[first]})" if names else "") + " counting from 0"
    raise _error(
        req,
        source,
        f"{bad_values} value(s) in {bad_images} image(s) are NaN or infinite; the first bad one is {where}",
    )
