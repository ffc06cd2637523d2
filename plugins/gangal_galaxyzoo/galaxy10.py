"""Galaxy10 HDF5 files (SDSS 69x69 or DECaLS 256x256) as a ``galaxyzoo`` data source.

The file holds the dataset ``images`` of shape ``(N, H, W, 3)``, uint8, and usually the
class of each image in ``ans`` (and, for DECaLS, ``ra``, ``dec``, ``redshift``...).  Any
1-D numeric dataset of length ``N`` can be selected on: ``select="ans==3"``.

Reading: a selection of at most :data:`MAX_IN_MEMORY` bytes (Galaxy10 SDSS: 0.3 GB) is
read into memory once, in large contiguous slices, at open: one sequential read is much
faster than tens of thousands of small ones, and reads from memory need no lock, so the
decoding threads run in parallel.  A larger selection (Galaxy10 DECaLS is 3.5 GB) is
read one image at a time; h5py already serialises every call into the HDF5 library with
a global lock, and a lock of our own around each read keeps that guarantee explicit.
Each image is read only once per run when :class:`gangal_core.data.ImageBatches` caches
the downscaled images.

h5py is an optional dependency: ``pip install "gangal[galaxy10]"``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from gangal_core import ConfigError, DataSource, ImageFormatError

from .selection import Condition, apply_selection, describe_selection, parse_selection

__all__ = ["MAX_IN_MEMORY", "Galaxy10Source"]

#: Selections up to this many bytes are read into memory when the source is opened.
MAX_IN_MEMORY = 2 * 1024**3
_SLICE = 1024  # images per sequential read when loading into memory


def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise ConfigError(
            "galaxyzoo: reading a Galaxy10 .h5 file needs h5py, which is not installed; "
            'run pip install "gangal[galaxy10]".'
        ) from exc
    return h5py


class Galaxy10Source(DataSource):
    """The images of a Galaxy10 HDF5 file, in file order.

    Parameters
    ----------
    path : path
        The ``.h5`` file.
    select : str, optional
        Selection on the file's 1-D datasets, e.g. ``"ans==3"``.
    limit : int, optional
        Keep the first ``limit`` images after selection.
    max_in_memory : int, optional
        Read the selected images into memory when they take at most this many bytes
        (default :data:`MAX_IN_MEMORY`); otherwise read each one on demand.

    Attributes
    ----------
    rows : ndarray of int64
        Row in the file of each image.
    """

    name = "galaxyzoo"
    channels = 3

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        select: str | None = None,
        limit: int | None = None,
        max_in_memory: int = MAX_IN_MEMORY,
    ) -> None:
        h5py = _import_h5py()
        self.path = Path(path).expanduser().resolve()
        conditions = parse_selection(select) if select is not None else []
        self.select = describe_selection(conditions) if conditions else None
        self.limit = limit
        self._lock = threading.Lock()
        self._file = None
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise ImageFormatError(f"galaxyzoo: {self.path} is not a readable HDF5 file ({exc}).") from exc
        self._memory: np.ndarray | None = None
        try:
            self._select_rows(h5py, conditions, select=select, limit=limit)
            if len(self.rows) * int(np.prod(self._dataset.shape[1:])) <= max_in_memory:
                self._memory = self._load(self.rows)
        except BaseException:
            self.close()
            raise
        if self._memory is not None:
            self.close()

    def _select_rows(
        self, h5py: Any, conditions: list[Condition], *, select: str | None, limit: int | None
    ) -> None:
        """Set :attr:`rows`, the file rows that pass the selection, and :attr:`resolution`."""
        self._dataset = _images_dataset(self._file, self.path)
        n = self._dataset.shape[0]
        rows = np.arange(n, dtype=np.int64)
        if conditions:
            columns = {
                key: ds
                for key, ds in self._file.items()
                if isinstance(ds, h5py.Dataset) and ds.shape == (n,) and ds.dtype.kind in "iufb"
            }
            where = f"Galaxy10 file {self.path} (1-D datasets of length {n})"
            rows = rows[apply_selection(conditions, columns, where=where, expr=select or "")]
            if not len(rows):
                raise ConfigError(f"galaxyzoo: select={select!r} kept none of the {n} images of {self.path}.")
        self.rows = rows[:limit] if limit is not None else rows
        self.resolution = int(self._dataset.shape[1])

    def _load(self, rows: np.ndarray) -> np.ndarray:
        """Images ``rows`` (sorted) as ``(len(rows), H, W, 3)``, read in contiguous slices."""
        out = np.empty((len(rows), *self._dataset.shape[1:]), dtype=np.uint8)
        done = 0
        for start in range(int(rows[0]), int(rows[-1]) + 1, _SLICE):
            wanted = rows[(rows >= start) & (rows < start + _SLICE)]
            if len(wanted):
                block = self._read(slice(start, start + _SLICE))
                out[done : done + len(wanted)] = block[wanted - start]
                done += len(wanted)
        return out

    def _read(self, where: int | slice) -> np.ndarray:
        try:
            return self._dataset[where]
        except (OSError, ValueError, RuntimeError) as exc:  # a damaged or truncated file
            rows = f"{where.start}:{where.stop}" if isinstance(where, slice) else where
            raise ImageFormatError(
                f"galaxyzoo: {self.path}: images[{rows}] cannot be read; the file may be truncated or "
                f"corrupt ({type(exc).__name__}: {exc})."
            ) from exc

    def __len__(self) -> int:
        """Number of images kept."""
        return len(self.rows)

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 ``(3, H, W)``."""
        if self._memory is not None:
            image = self._memory[index]
        else:
            with self._lock:
                if self._file is None:
                    raise ImageFormatError(f"galaxyzoo: {self.path} was closed; open the source again.")
                image = self._read(int(self.rows[index]))
        return image.transpose(2, 0, 1)

    def label(self, index: int) -> str:
        """``"<file name>[<row>]"``."""
        return f"{self.path.name}[{int(self.rows[index])}]"

    def describe(self) -> dict[str, Any]:
        """Provenance: file, its size, selection and image count."""
        return {
            "source": self.name,
            "format": "galaxy10-hdf5",
            "path": str(self.path),
            "file_bytes": self.path.stat().st_size,
            "n_images": len(self),
            "resolution": self.resolution,
            "select": self.select,
            "limit": self.limit,
        }

    def close(self) -> None:
        """Close the HDF5 file (images already read into memory stay readable)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _images_dataset(fh: Any, path: Path) -> Any:
    """The ``images`` dataset, checked to be ``(N, H, H, 3)`` uint8."""
    ds = fh.get("images")
    if ds is None or not hasattr(ds, "shape"):
        found = ", ".join(sorted(fh.keys())) or "nothing"
        raise ImageFormatError(
            f"galaxyzoo: {path} has no dataset 'images' (a Galaxy10 file holds images of shape "
            f"(N, H, W, 3)); it holds: {found}."
        )
    shape = tuple(ds.shape)
    if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2] or shape[0] == 0:
        raise ImageFormatError(
            f"galaxyzoo: {path}: dataset 'images' has shape {shape}; expected (N, H, H, 3) with N > 0: "
            "square RGB images, channels last, as in Galaxy10."
        )
    if ds.dtype != np.uint8:
        raise ImageFormatError(
            f"galaxyzoo: {path}: dataset 'images' holds {ds.dtype}; expected uint8 (0-255)."
        )
    return ds
