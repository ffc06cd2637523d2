"""Example gangal plugin: a folder of FITS cut-outs as a data source (``--data fitsdir:PATH``).

``PATH`` is a folder of FITS files (``.fits``, ``.fit``, ``.fts``, optionally gzipped as
``.gz``), one image per file: a 2-D image, or a 3-D cube of bands ``(band, y, x)``, all of
one square size.  The images are ordered by file name and read on demand with astropy,
one file per call, so :class:`gangal_core.data.ImageBatches`' decoding threads can read
several at once.

gangal's data sources hand out images with values in ``[0, 1]``, so each image is mapped
there by an *interval* and a *stretch* (``astropy.visualization``):

* the interval ``[vmin, vmax]`` is either fixed for the whole set (options ``vmin`` and
  ``vmax``: relative brightness is kept from image to image), or, by default, taken per
  image from the percentiles of its pixels, all of its bands together (option
  ``percentile``, default 99.5: from the 0.25th to the 99.75th percentile), so colours
  are kept within an image;
* ``t = clip((x - vmin) / (vmax - vmin), 0, 1)`` then goes through the stretch:
  ``linear`` (``t``), ``sqrt`` (``sqrt(t)``), ``log`` (``log(1000 t + 1) / log(1001)``) or
  ``asinh`` (default, ``asinh(t / a) / asinh(1 / a)`` with ``a = softening``, default 0.1;
  Lupton et al. 2004).

Rows are kept in file order, as gangal's own FITS reader and writer keep them (row 0 is
the first row of the FITS array, which DS9 shows at the bottom).

Options (``--data-option KEY=VALUE``, or keywords of :func:`open_fitsdir`)
--------------------------------------------------------------------------
hdu : int or str, optional
    The HDU to read, by index (``0`` is the primary) or name (``SCI``).  Default: the first
    HDU that holds image data.
bands : int or str or sequence of int, optional
    Planes of a cube to keep, in order: ``2,1,0`` turns an ``(g, r, i)`` cube into
    ``(i, r, g)`` for RGB; ``1`` keeps one band.  Default: every plane.
stretch : {"asinh", "linear", "sqrt", "log"}, optional
    See above (default ``asinh``).
softening : float, optional
    ``a`` of the asinh stretch (default 0.1): smaller lifts faint light more.
percentile : float, optional
    Per-image interval holding this percentage of the pixels (default 99.5).
vmin, vmax : float, optional
    A fixed interval for every image instead; give both.
nan : {"error", "median"}, optional
    A file with NaN or infinite pixels is an error (default), or they are replaced by the
    median of the finite pixels of their band (``median``: masked survey edges).
limit : int, optional
    Keep the first ``limit`` files, in name order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gangal_core import ConfigError, DataSource, ImageFormatError, hookimpl

__all__ = [
    "FITS_SUFFIXES",
    "NAME",
    "OPTIONS",
    "STRETCHES",
    "FitsFolder",
    "open_fitsdir",
    "register_data_sources",
]

NAME = "fitsdir"
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
STRETCHES = ("asinh", "linear", "sqrt", "log")
NAN_POLICIES = ("error", "median")
#: The keyword options of :func:`open_fitsdir` (``--data-option KEY=VALUE``).
OPTIONS = ("hdu", "bands", "stretch", "softening", "percentile", "vmin", "vmax", "nan", "limit")


class FitsFolder(DataSource):
    """The FITS files of one folder, in name order, stretched to ``[0, 1]``.

    Parameters
    ----------
    folder : path
        The folder of FITS files.
    hdu, bands, stretch, softening, percentile, vmin, vmax, nan, limit
        See the module's documentation; each is checked here, with a
        :class:`gangal_core.ConfigError` naming the option when it is invalid.

    Attributes
    ----------
    files : list of Path
        The FITS file of each image.
    channels : int
        Bands of every image (after ``bands``).
    resolution : int
        Side of the square images, in pixels.

    Raises
    ------
    gangal_core.ImageFormatError
        If the folder holds no FITS file, or the first file cannot be read as an image.

    Notes
    -----
    Only the first file is read when the source is opened, to learn the images' shape;
    every other file is checked when it is read, and a bad one raises
    :class:`gangal_core.ImageFormatError` naming it.  :meth:`check` reads them all.
    """

    name = NAME

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        hdu: int | str | None = None,
        bands: int | str | Sequence[int] | None = None,
        stretch: str = "asinh",
        softening: float = 0.1,
        percentile: float = 99.5,
        vmin: float | None = None,
        vmax: float | None = None,
        nan: str = "error",
        limit: int | None = None,
    ) -> None:
        from astropy.visualization import AsinhStretch, LinearStretch, LogStretch, SqrtStretch

        self.folder = Path(folder).expanduser().resolve()
        self.hdu = _hdu_option(hdu)
        self.bands = _bands_option(bands)
        if stretch not in STRETCHES:
            raise ConfigError(f"fitsdir: stretch={stretch!r}; expected one of {', '.join(STRETCHES)}.")
        self.stretch = stretch
        self.softening = _number("softening", softening, low=0.0, high=None)
        self.percentile = _number("percentile", percentile, low=0.0, high=100.0)
        if (vmin is None) != (vmax is None):
            raise ConfigError(
                f"fitsdir: vmin={vmin!r}, vmax={vmax!r}; give both (a fixed interval for every image) "
                "or neither (a per-image percentile interval)."
            )
        self.vmin = None if vmin is None else _number("vmin", vmin)
        self.vmax = None if vmax is None else _number("vmax", vmax)
        if self.vmin is not None and not self.vmax > self.vmin:
            raise ConfigError(f"fitsdir: vmin={vmin!r}, vmax={vmax!r}; vmax must be larger than vmin.")
        if nan not in NAN_POLICIES:
            raise ConfigError(f"fitsdir: nan={nan!r}; expected one of {', '.join(NAN_POLICIES)}.")
        self.nan = nan
        self.limit = None if limit is None else int(_number("limit", limit, low=0.0, whole=True))
        self._stretch = {
            "asinh": AsinhStretch(a=self.softening),
            "linear": LinearStretch(),
            "sqrt": SqrtStretch(),
            "log": LogStretch(),
        }[stretch]
        self.files = _list_fits(self.folder)[: self.limit]
        signature = hashlib.sha256()
        for path in self.files:
            stat = path.stat()
            signature.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        self._signature = signature.hexdigest()[:16]
        first = self._load(self.files[0])
        self.channels = first.shape[0]
        self.resolution = first.shape[1]
        if first.shape[1] != first.shape[2]:
            raise ImageFormatError(
                f"fitsdir: {self.files[0]} is {first.shape[2]}x{first.shape[1]} pixels (width x height); "
                "expected square cut-outs."
            )

    def __len__(self) -> int:
        """Number of FITS files."""
        return len(self.files)

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` as float32 ``(channels, resolution, resolution)`` in ``[0, 1]``.

        Raises
        ------
        gangal_core.ImageFormatError
            Naming the file, if it cannot be read, holds no image of the source's shape,
            has NaN or infinite pixels (with ``nan="error"``) or, with a per-image interval,
            is flat.
        """
        path = self.files[index]
        data = self._load(path)
        shape = (self.channels, self.resolution, self.resolution)
        if data.shape != shape:
            raise ImageFormatError(
                f"fitsdir: {path} holds {_describe(data.shape)} but the first file, {self.files[0].name}, "
                f"holds {_describe(shape)}; every image of a source must have one shape."
            )
        data = self._finite(path, data)
        if self.vmin is not None:
            low, high = self.vmin, self.vmax
        else:
            low, high = np.percentile(data, [(100.0 - self.percentile) / 2, (100.0 + self.percentile) / 2])
            if not high > low:
                raise ImageFormatError(
                    f"fitsdir: {path} is flat: at least {self.percentile:g}% of its pixels equal {low:g}, so "
                    "a per-image interval cannot stretch it; remove the file or give a fixed vmin and vmax."
                )
        scaled = np.clip((data - low) / (high - low), 0.0, 1.0)
        return np.clip(self._stretch(scaled, clip=True), 0.0, 1.0).astype(np.float32)

    def label(self, index: int) -> str:
        """The file name of image ``index``."""
        return self.files[index].name

    def describe(self) -> dict[str, Any]:
        """Provenance: folder, options, image count and shape, and a signature of the files.

        The signature hashes every file's name, size and modification time when the source
        was opened, so :meth:`fingerprint` (which names gangal's decoded caches) changes
        when a file does.
        """
        return {
            "source": NAME,
            "path": str(self.folder),
            "n_images": len(self),
            "channels": self.channels,
            "resolution": self.resolution,
            "hdu": self.hdu,
            "bands": list(self.bands) if self.bands is not None else None,
            "stretch": self.stretch,
            "softening": self.softening if self.stretch == "asinh" else None,
            "interval": f"percentile {self.percentile:g}" if self.vmin is None else [self.vmin, self.vmax],
            "nan": self.nan,
            "limit": self.limit,
            "first_file": self.files[0].name,
            "last_file": self.files[-1].name,
            "files_signature": self._signature,
        }

    def check(self) -> list[str]:
        """Read every file and return one message per bad one (empty when all are good)."""
        problems = []
        for index in range(len(self)):
            try:
                self.read(index)
            except ImageFormatError as exc:
                problems.append(str(exc))
        return problems

    # ---- reading one file ------------------------------------------------------------------
    def _load(self, path: Path) -> np.ndarray:
        """The raw ``(bands, y, x)`` float64 array of ``path``, after ``hdu`` and ``bands``."""
        from astropy.io import fits

        try:
            with fits.open(path, memmap=False) as hdul:
                data = self._pick_hdu(path, hdul)
        except ImageFormatError:
            raise
        except Exception as exc:  # astropy raises OSError, ValueError, TypeError... for bad files
            raise ImageFormatError(
                f"fitsdir: {path} is not a readable FITS file; it may be truncated or corrupt "
                f"({type(exc).__name__}: {exc})."
            ) from exc
        while data.ndim > 3 and data.shape[0] == 1:  # (1, 1, y, x) from radio and IFU pipelines
            data = data[0]
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise ImageFormatError(
                f"fitsdir: {path} holds an array of shape {data.shape}; expected a 2-D image (y, x) or "
                "a 3-D cube (band, y, x)."
            )
        if self.bands is not None:
            if max(self.bands) >= data.shape[0]:
                raise ImageFormatError(
                    f"fitsdir: {path} holds {data.shape[0]} band(s), 0 to {data.shape[0] - 1}; "
                    f"bands={','.join(map(str, self.bands))} asks for more."
                )
            data = data[list(self.bands)]
        return np.asarray(data, dtype=np.float64)

    def _pick_hdu(self, path: Path, hdul: Any) -> np.ndarray:
        listing = ", ".join(
            f"{i}: {h.name or '?'} ({type(h).__name__}, {_hdu_shape(h)})" for i, h in enumerate(hdul)
        )
        if self.hdu is None:
            for hdu in hdul:
                if hdu.is_image and hdu.data is not None:
                    return hdu.data
            raise ImageFormatError(f"fitsdir: {path}: none of its HDUs holds image data ({listing}).")
        try:
            hdu = hdul[self.hdu]
        except (IndexError, KeyError):
            raise ImageFormatError(f"fitsdir: {path} has no HDU {self.hdu!r}; it holds {listing}.") from None
        if not hdu.is_image or hdu.data is None:
            raise ImageFormatError(
                f"fitsdir: {path}: HDU {self.hdu!r} holds no image data; it holds {listing}."
            )
        return hdu.data

    def _finite(self, path: Path, data: np.ndarray) -> np.ndarray:
        bad = ~np.isfinite(data)
        if not bad.any():
            return data
        if self.nan == "error":
            band, row, col = (int(i) for i in np.argwhere(bad)[0])
            raise ImageFormatError(
                f"fitsdir: {path} has {int(bad.sum())} NaN or infinite pixel(s) (the first at band {band}, "
                f"row {row}, column {col}); replace them, or open the source with nan=median."
            )
        data = data.copy()
        for band in range(len(data)):
            if bad[band].all():
                raise ImageFormatError(f"fitsdir: {path}: band {band} has no finite pixel at all.")
            data[band][bad[band]] = np.median(data[band][~bad[band]])
        return data


# ---- options, checked with messages that name them --------------------------------------------
def _hdu_option(hdu: Any) -> int | str | None:
    """``hdu`` as an index, a name or None (the command line gives ``1`` as an int, ``SCI`` as text)."""
    text = hdu.strip() if isinstance(hdu, str) else None
    if hdu is None:
        return None
    if text:
        return int(text) if text.isdigit() else text
    if isinstance(hdu, int | np.integer) and not isinstance(hdu, bool) and hdu >= 0:
        return int(hdu)
    raise ConfigError(f"fitsdir: hdu={hdu!r}; expected an HDU number (0 is the primary) or name (SCI).")


def _bands_option(bands: Any) -> tuple[int, ...] | None:
    """``bands`` as a tuple of band numbers: ``2,1,0`` (text), ``1`` (an int) or ``[2, 1, 0]``."""
    if bands is None:
        return None
    if isinstance(bands, str):
        items: list[Any] = bands.split(",")
    elif isinstance(bands, int | np.integer) and not isinstance(bands, bool):
        items = [bands]
    elif isinstance(bands, list | tuple):
        items = list(bands)
    else:
        items = []
    picked = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if isinstance(text, str) and text.isdigit():
            picked.append(int(text))
        elif isinstance(text, int | np.integer) and not isinstance(text, bool) and text >= 0:
            picked.append(int(text))
        else:
            picked = []
            break
    if not picked:
        raise ConfigError(
            f"fitsdir: bands={bands!r}; expected band numbers counting from 0, e.g. 2,1,0 or 1."
        )
    return tuple(picked)


def _number(
    option: str, value: Any, *, low: float | None = None, high: float | None = None, whole: bool = False
) -> float:
    """``value`` as a finite float with ``low < value <= high`` (command-line options may be text)."""
    try:
        number = float(str(value).strip()) if not isinstance(value, bool) else float("nan")
    except ValueError:
        number = float("nan")
    ok = np.isfinite(number) and (low is None or number > low) and (high is None or number <= high)
    if whole:
        ok = ok and number == int(number)
    if not ok:
        bounds = [f"> {low:g}"] if low is not None else []
        bounds += [f"<= {high:g}"] if high is not None else []
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"fitsdir: {option}={value!r}; expected {' '.join([kind, *bounds])}.")
    return number


def _list_fits(folder: Path) -> list[Path]:
    try:
        entries = sorted(e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))
    except OSError as exc:
        raise ImageFormatError(f"fitsdir: cannot list {folder} ({type(exc).__name__}: {exc}).") from exc
    files = [folder / n for n in entries if n.lower().endswith(FITS_SUFFIXES)]
    if not files:
        others = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ImageFormatError(
            f"fitsdir: {folder} holds no FITS files ({', '.join(FITS_SUFFIXES)}); "
            + (f"it holds {len(entries)} other file(s): {others}." if entries else "it is empty.")
        )
    return files


def _describe(shape: tuple[int, ...]) -> str:
    c, h, w = shape
    return f"{c} band(s) of {w}x{h} pixels (width x height)"


def _hdu_shape(hdu: Any) -> str:
    shape = getattr(hdu, "shape", None) if hdu.is_image else None
    return f"shape {tuple(shape)}" if shape else "no image data"


def open_fitsdir(path: str | os.PathLike | None, **options: Any) -> FitsFolder:
    """The ``fitsdir`` factory: ``--data fitsdir:PATH``.

    Parameters
    ----------
    path : path or None
        The folder of FITS files; required.
    **options
        ``hdu``, ``bands``, ``stretch``, ``softening``, ``percentile``, ``vmin``, ``vmax``,
        ``nan``, ``limit``: see the module's documentation.

    Raises
    ------
    gangal_core.ConfigError
        If ``path`` is missing or not a folder, or an option is unknown or invalid.
    gangal_core.ImageFormatError
        If the folder holds no FITS file or its first file is not a usable image.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"fitsdir: unknown option {unknown[0]!r}; the options are {', '.join(OPTIONS)} "
            "(--data-option KEY=VALUE)."
        )
    if path is None:
        raise ConfigError("--data fitsdir needs a folder: fitsdir:PATH, with PATH a folder of FITS files.")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ConfigError(f"--data fitsdir:{path}: no such folder.")
    if not folder.is_dir():
        raise ConfigError(
            f"--data fitsdir:{path}: this is a file; give the folder that holds the FITS files."
        )
    return FitsFolder(folder, **options)


@hookimpl
def register_data_sources(register):
    """Register the ``fitsdir`` data source."""
    register(NAME, open_fitsdir)
