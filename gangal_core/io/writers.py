"""Writing images to one file: ``.npy``, ``.npz`` or FITS, atomically and in bounded memory.

:func:`write_image_file` is the one writer of an image file that every command uses
(``gangal simulate`` and ``gangal emulate`` with a file ``--out``); :func:`read_images`
reads each back.  The format follows the suffix of the path (:data:`FILE_FORMATS`):

* ``.npy``: the images ``(N, C, H, W)``; the parameters, when given, go to
  ``NAME.parameters.npy`` and the run's description to ``NAME.json`` (an ``.npy`` file holds
  one array only);
* ``.npz``: one archive holding ``images``, ``parameters``, ``parameter_names`` and
  ``description`` (the run's description as JSON text), readable with
  ``numpy.load(path, allow_pickle=False)``;
* ``.fits`` (``.fit``, ``.fts``): the images as the primary HDU (``NAXIS4 = N``), the run's
  description as JSON in its ``GANGAL`` header card, and the parameters as a binary table
  HDU named ``PARAMETERS``, one column per parameter with its unit.

Arrays are written block by block, so a memory-mapped array of any size is written without
being loaded, and every file is written to a temporary name and renamed
(:mod:`.atomic`): a file with its final name is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from .atomic import atomic_open, atomic_write_json

__all__ = [
    "FILE_FORMATS",
    "describe_file_formats",
    "file_format",
    "image_file_parts",
    "read_file_description",
    "read_file_parameters",
    "write_image_file",
]

#: The suffixes :func:`write_image_file` writes (matched case-insensitively), and their formats.
FILE_FORMATS = {".npy": "npy", ".npz": "npz", ".fits": "fits", ".fit": "fits", ".fts": "fits"}
#: Bytes of an array converted and written at a time.
BLOCK_BYTES = 16 * 2**20
_FITS_BLOCK = 2880


def file_format(path: str | os.PathLike) -> str | None:
    """The format :func:`write_image_file` writes to ``path``.

    Parameters
    ----------
    path : path-like
        An output path; only its suffix counts, in any case.

    Returns
    -------
    str or None
        ``"npy"``, ``"npz"`` or ``"fits"``; None for any other suffix.
    """
    return FILE_FORMATS.get(Path(path).suffix.lower())


def describe_file_formats() -> str:
    """Say in a few words which image files :func:`write_image_file` writes."""
    return "a .npy file, a .npz archive or a FITS file (.fits, .fit or .fts)"


def image_file_parts(path: str | os.PathLike) -> tuple[Path, ...]:
    """Every file an output ``path`` consists of.

    Parameters
    ----------
    path : path-like
        An output path of :func:`write_image_file`.

    Returns
    -------
    tuple of Path
        ``(NAME.npy, NAME.parameters.npy, NAME.json)`` for an ``.npy`` path; ``(path,)`` otherwise.
    """
    path = Path(path)
    if file_format(path) == "npy":
        return path, path.with_suffix(".parameters.npy"), path.with_suffix(".json")
    return (path,)


def write_image_file(
    path: str | os.PathLike,
    images: np.ndarray,
    *,
    parameters: np.ndarray | None = None,
    parameter_names: Sequence[str] = (),
    parameter_units: Sequence[str] = (),
    description: Mapping[str, Any] | None = None,
) -> None:
    """Write images, with their parameters and a description of the run, to one image file.

    Parameters
    ----------
    path : path-like
        Where to write; its suffix chooses the format (:data:`FILE_FORMATS`).  Its folder must
        exist.  An ``.npy`` path also gets ``NAME.parameters.npy`` (with ``parameters``) and
        ``NAME.json`` (with ``description``), written after the images.
    images : numpy.ndarray
        ``(N, C, H, W)`` images, written as float32; a memory-mapped array is written a block
        at a time.
    parameters : numpy.ndarray, optional
        ``(N, P)`` parameters of the images, written as float32.
    parameter_names, parameter_units : sequence of str, optional
        The ``P`` column names (required with ``parameters``) and their units (FITS ``TUNITn``).
    description : mapping, optional
        What :func:`read_file_description` gives back: the run's options, as JSON-able values.

    Raises
    ------
    ValueError
        An unknown suffix, or arrays of the wrong shapes.
    """
    path = Path(path)
    kind = file_format(path)
    if kind is None:
        raise ValueError(f"{path}: expected a path ending in {', '.join(FILE_FORMATS)}")
    found = None if parameters is None else parameters.shape
    if images.ndim != 4 or found not in (None, (len(images), len(parameter_names))):
        raise ValueError(f"expected images (N, C, H, W) and parameters (N, P); found {images.shape}, {found}")
    text = None if description is None else json.dumps(dict(description), ensure_ascii=True)
    if kind == "npy":
        _write_npy(path, images, parameters, description)
    elif kind == "npz":
        members = {"images": images}
        if parameters is not None:
            members |= {"parameters": parameters, "parameter_names": np.array(list(parameter_names), str)}
        if text is not None:
            members["description"] = np.array(text)
        with atomic_open(path, "wb") as fh:
            _write_npz(fh, members)
    else:
        with atomic_open(path, "wb") as fh:
            _write_fits(fh, images, parameters, list(parameter_names), list(parameter_units), text)


def read_file_description(path: str | os.PathLike) -> dict[str, Any] | None:
    """The description :func:`write_image_file` stored with ``path``, or None if there is none.

    Parameters
    ----------
    path : path-like
        An ``.npy`` (its ``NAME.json`` is read), ``.npz`` or FITS file.

    Returns
    -------
    dict or None
        The description; None also for a file gangal did not write, or one it cannot read:
        the caller decides what an unknown file means.
    """
    path = Path(path)
    kind = file_format(path)
    # whatever fails to read (a foreign file, a damaged one) holds no description gangal wrote
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "npy":
            text = path.with_suffix(".json").read_text(encoding="utf-8")
        elif kind == "npz":
            with np.load(path, allow_pickle=False) as archive:
                text = str(archive["description"][()])
        elif kind == "fits":
            text = _fits_description(path)
        else:
            return None
        found = json.loads(text)
        return found if isinstance(found, dict) else None
    return None


def read_file_parameters(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """The parameters :func:`write_image_file` stored with ``path``, and their names.

    Parameters
    ----------
    path : path-like
        An ``.npy`` (with its ``NAME.parameters.npy`` and ``NAME.json``), ``.npz`` or FITS file.

    Returns
    -------
    parameters : numpy.ndarray
        float32 ``(N, P)``.
    names : list of str
        The ``P`` column names.

    Raises
    ------
    ValueError
        ``path`` holds no parameters gangal wrote; the message says why.
    """
    path = Path(path)
    kind = file_format(path)
    try:
        if kind == "npy":
            names = [str(n) for n in json.loads(path.with_suffix(".json").read_text())["parameter_names"]]
            values = np.load(path.with_suffix(".parameters.npy"), allow_pickle=False)
        elif kind == "npz":
            with np.load(path, allow_pickle=False) as archive:
                values, names = archive["parameters"], [str(n) for n in archive["parameter_names"]]
        else:
            from astropy.io import fits

            with fits.open(path) as hdul:
                table = hdul["PARAMETERS"]
                names = list(table.columns.names)
                values = np.column_stack([np.asarray(table.data[n]) for n in names])
    except Exception as exc:  # any library's failure: the file holds no parameters it can give
        raise ValueError(f"no parameters gangal wrote ({type(exc).__name__}: {exc})") from exc
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != len(names):
        raise ValueError(f"parameters of shape {values.shape} for {len(names)} names")
    return values, names


# ---- the formats ------------------------------------------------------------------------------
def _blocks(array: np.ndarray) -> Iterator[np.ndarray]:
    """``array`` a block of rows at a time, each at most about :data:`BLOCK_BYTES`."""
    rows = max(1, BLOCK_BYTES // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        yield array[start : start + rows]


def _write_npy(path: Path, images: np.ndarray, parameters: np.ndarray | None,
               description: Mapping[str, Any] | None) -> None:  # fmt: skip
    for target, array in ((path, images), (path.with_suffix(".parameters.npy"), parameters)):
        if array is not None:
            with atomic_open(target, "wb") as fh:
                _write_array(fh, array)
    if description is not None:  # last: a description says the files beside it are complete
        atomic_write_json(path.with_suffix(".json"), dict(description))


def _write_array(fh: IO[bytes], array: np.ndarray) -> None:
    """One ``.npy`` array, float32 unless it is text, written a block at a time."""
    dtype = array.dtype if array.dtype.kind == "U" else np.dtype("<f4")
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": array.shape}
    np.lib.format.write_array_header_1_0(fh, header)
    for block in _blocks(array) if array.ndim else [array]:
        fh.write(np.ascontiguousarray(block, dtype=dtype).tobytes())


def _write_npz(fh: IO[bytes], members: Mapping[str, np.ndarray]) -> None:
    """An ``.npz`` archive (uncompressed, as ``numpy.savez`` writes), one ``NAME.npy`` per member."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in members.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                _write_array(member, array)


def _write_fits(fh: IO[bytes], images: np.ndarray, parameters: np.ndarray | None, names: list[str],
                units: list[str], description: str | None) -> None:  # fmt: skip
    """Images as the primary HDU, big-endian float32; the parameters as a binary table after them."""
    from astropy.io import fits

    from gangal_core import __version__

    n, channels, height, width = images.shape
    primary = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 4), ("NAXIS1", width),
                           ("NAXIS2", height), ("NAXIS3", channels), ("NAXIS4", n),
                           ("EXTEND", True)])  # fmt: skip
    primary["ORIGIN"] = (f"gangal {__version__}", "the program that wrote this file")
    primary.extend(_provenance(description, names, units))
    if description is not None:
        primary["GANGAL"] = (description, "the run, as JSON")
    fh.write(primary.tostring().encode("ascii"))
    _write_fits_data(fh, images)
    if parameters is None:
        return
    table = fits.Header([("XTENSION", "BINTABLE"), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", 4 * len(names)),
                         ("NAXIS2", n), ("PCOUNT", 0), ("GCOUNT", 1), ("TFIELDS", len(names))])  # fmt: skip
    for i, name in enumerate(names, start=1):
        table[f"TTYPE{i}"] = name
        table[f"TFORM{i}"] = "E"
        if i <= len(units) and units[i - 1]:
            table[f"TUNIT{i}"] = units[i - 1]
    table["EXTNAME"] = "PARAMETERS"
    fh.write(table.tostring().encode("ascii"))
    _write_fits_data(fh, parameters)


def _provenance(description: str | None, names: list[str], units: list[str]) -> Any:
    """The provenance cards (:func:`~gangal_core.io.fits_headers.provenance_header`) of a run."""
    from .fits_headers import provenance_header

    run = json.loads(description) if description else {}
    run = run if isinstance(run, dict) else {}
    kinds = {"gangal-simulation": "simulate", "gangal-emulation": "emulate"}
    command = next((c for prefix, c in kinds.items() if str(run.get("format", "")).startswith(prefix)), "")
    seed = run.get("seed") if isinstance(run.get("seed"), int) else None
    named = [(name, units[i] if i < len(units) else "", None) for i, name in enumerate(names)]
    return provenance_header(command=command, seed=seed, parameters=named)


def _write_fits_data(fh: IO[bytes], array: np.ndarray) -> None:
    """Big-endian float32 rows, then zeros up to the next 2880-byte block."""
    written = 0
    for block in _blocks(array):
        data = np.ascontiguousarray(block, dtype=">f4").tobytes()
        fh.write(data)
        written += len(data)
    fh.write(b"\0" * (-written % _FITS_BLOCK))


def _fits_description(path: Path) -> str:
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdul:  # the header only: the data are never read
        return str(hdul[0].header["GANGAL"])
