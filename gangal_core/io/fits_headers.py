"""Provenance for every FITS file gangal writes: who wrote it, when, from what, with which seed.

Every FITS file gangal writes (``gangal sample --fits`` images, parameter tables written as
FITS) carries these cards in its primary header:

=========  ================================================================
GANGALV    the gangal version
CREATOR    ``gangal COMMAND``: the program and the command that wrote the file
DATE       when, in UTC (``YYYY-MM-DDThh:mm:ss``, the FITS standard's form)
SEED       the run's seed, when it has one
...        what the command adds (``MODEL``, ``CHAIN``, ``WEIGHTS``, ``IMAGENUM``...)
PNAMEn     for simulated images: parameter ``n``'s name (1-based), with
PUNITn     its unit (when declared) and
PVALn      its value for this image (when known)
=========  ================================================================

The data are written exactly as given.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_open

__all__ = ["provenance_header", "write_fits_image"]


def provenance_header(
    *,
    command: str,
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
    parameters: Sequence[tuple[str, str, float | None]] | None = None,
) -> Any:
    """The provenance cards of a FITS file, as an :class:`astropy.io.fits.Header`.

    Parameters
    ----------
    command : str
        The gangal command that writes the file (``"sample"``, ``"simulate"``).
    seed : int, optional
        The run's seed.
    extra : mapping, optional
        More cards, ``{keyword: value}`` (strings, numbers or booleans); a keyword longer than
        eight characters is written as a ``HIERARCH`` card.
    parameters : sequence of (name, unit, value), optional
        A simulated image's parameters: ``PNAMEn``, ``PUNITn`` (when the unit is not empty) and
        ``PVALn`` (when the value is not None).
    """
    from astropy.io import fits

    from gangal_core import __version__

    header = fits.Header()
    header["GANGALV"] = (__version__, "gangal version")
    header["CREATOR"] = (f"gangal {command}".strip(), "program and command that wrote this file")
    now = datetime.datetime.now(datetime.UTC)
    header["DATE"] = (now.strftime("%Y-%m-%dT%H:%M:%S"), "UTC date and time the file was written")
    if seed is not None:
        header["SEED"] = (int(seed), "seed of the run")
    for key, value in (extra or {}).items():
        keyword = key.upper() if len(key) <= 8 else f"HIERARCH {key}"
        header[keyword] = value.item() if isinstance(value, np.generic) else value
    for n, (name, unit, value) in enumerate(parameters or (), start=1):
        header[f"PNAME{n}"] = (name, f"name of parameter {n}")
        if unit:
            header[f"PUNIT{n}"] = (unit, f"unit of {name}")
        if value is not None:
            header[f"PVAL{n}"] = (float(value), f"{name} of this image")
    return header


def write_fits_image(path: str | Path, data: np.ndarray, header: Any) -> None:
    """Write ``data`` unchanged as the primary HDU of ``path`` with ``header``'s cards (atomic)."""
    from astropy.io import fits

    hdu = fits.PrimaryHDU(data)
    hdu.header.extend(header, unique=True)
    with atomic_open(path, "wb") as fh:
        hdu.writeto(fh)
