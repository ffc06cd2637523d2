"""Galaxy Zoo images as a gangal data source (``--data galaxyzoo:PATH``).

``PATH`` is one of

* the Kaggle "Galaxy Zoo - The Galaxy Challenge" layout: a folder holding
  ``images_training_rev1/<GalaxyID>.jpg`` (424x424 RGB JPEG), and optionally the
  catalogue ``training_solutions_rev1.csv``;
* a folder of ``<GalaxyID>.jpg`` files itself;
* a Galaxy10 HDF5 file (``.h5`` or ``.hdf5``, SDSS 69x69 or DECaLS 256x256) holding the
  dataset ``images`` of shape ``(N, H, W, 3)``; see :mod:`gangal_galaxyzoo.galaxy10`.

JPEG images are ordered by GalaxyID (numerically) and decoded on demand with Pillow,
which releases the GIL while decoding, so the decoding threads of
:class:`gangal_core.data.ImageBatches` run in parallel.

Options
-------
catalogue : path, optional
    A CSV file with a ``GalaxyID`` column.  Relative paths are looked up in the current
    folder, then in ``PATH``.  Default, when ``select`` is given: the Kaggle
    ``training_solutions_rev1.csv`` in ``PATH`` (or beside it when ``PATH`` is the
    ``images_training_rev1`` folder).  A catalogue given without ``select`` keeps the
    images it lists (a train/test split file, say).
select : str, optional
    Keep the images whose catalogue row passes, e.g. ``"Class1.1>0.6 & Class1.3<0.2"`` or
    ``"spiral==1"``: comparisons (``> >= < <= == !=``) of a column with a number, joined
    by ``&``.  For Galaxy10 files the columns are the file's 1-D datasets (``ans``...).
limit : int, optional
    Keep the first ``limit`` images after selection, in GalaxyID (or file) order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gangal_core import ConfigError, DataSource, ImageFormatError, hookimpl

from .selection import (
    ID_COLUMN,
    Condition,
    apply_selection,
    describe_selection,
    parse_selection,
    read_catalogue,
)

__all__ = ["NAME", "GalaxyZooSource", "open_galaxyzoo", "register_data_sources"]

NAME = "galaxyzoo"
KAGGLE_FOLDER = "images_training_rev1"
KAGGLE_CATALOGUE = "training_solutions_rev1.csv"
JPEG_SUFFIXES = (".jpg", ".jpeg")
HDF5_SUFFIXES = (".h5", ".hdf5")
EXPECTED = (
    f"a folder holding {KAGGLE_FOLDER}/<GalaxyID>.jpg (the Kaggle Galaxy Zoo layout), a folder of "
    "<GalaxyID>.jpg files, or a Galaxy10 .h5 file"
)


class GalaxyZooSource(DataSource):
    """Galaxy Zoo JPEG cut-outs named ``<GalaxyID>.jpg``, in GalaxyID order.

    Parameters
    ----------
    folder : path
        The Kaggle folder (holding ``images_training_rev1``) or the folder of JPEGs itself.
    catalogue : path, optional
        CSV file keyed by ``GalaxyID``; see the module's documentation.
    select : str, optional
        Selection on the catalogue's columns, e.g. ``"spiral==1"``.
    limit : int, optional
        Keep the first ``limit`` images after selection.

    Attributes
    ----------
    ids : ndarray of int64
        GalaxyID of each image.
    files : list of Path
        The JPEG of each image.
    """

    name = NAME
    channels = 3

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        catalogue: str | os.PathLike | None = None,
        select: str | None = None,
        limit: int | None = None,
    ) -> None:
        self.root = Path(folder).expanduser().resolve()
        nested = self.root / KAGGLE_FOLDER
        self.image_folder = nested if nested.is_dir() else self.root
        conditions = parse_selection(select) if select is not None else []
        self.select = describe_selection(conditions) if conditions else None
        self.limit = _positive_int("limit", limit)
        self.catalogue = _find_catalogue(self.root, catalogue, select)
        ids, files = _list_galaxies(self.image_folder)
        if self.catalogue is not None:
            keep = _catalogue_filter(self.catalogue, conditions, ids, select=select, folder=self.image_folder)
            ids, files = ids[keep], [f for f, k in zip(files, keep, strict=True) if k]
        if self.limit is not None:
            ids, files = ids[: self.limit], files[: self.limit]
        self.ids, self.files = ids, files
        self.resolution = _probe_size(files[0])

    def __len__(self) -> int:
        """Number of images kept."""
        return len(self.files)

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 ``(3, H, W)``; a file that is not a JPEG of the right size raises."""
        path = self.files[index]
        try:
            with Image.open(path) as img:
                img.load()
                array = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for bad files
            raise ImageFormatError(
                f"galaxyzoo: {path} is not a readable JPEG; it may be truncated or corrupt "
                f"({type(exc).__name__}: {exc})."
            ) from exc
        r = self.resolution
        if array.shape != (r, r, 3):
            raise ImageFormatError(
                f"galaxyzoo: {path} is {array.shape[1]}x{array.shape[0]} pixels, expected {r}x{r} like the "
                f"first image, {self.files[0].name}; every image of a source must have one size."
            )
        return array.transpose(2, 0, 1)

    def label(self, index: int) -> str:
        """The file name of image ``index`` (``"<GalaxyID>.jpg"``)."""
        return self.files[index].name

    def describe(self) -> dict[str, Any]:
        """Provenance: folder, catalogue, selection, image count and the first and last GalaxyID."""
        return {
            "source": NAME,
            "format": "galaxyzoo-jpeg",
            "path": str(self.image_folder),
            "n_images": len(self),
            "resolution": self.resolution,
            "catalogue": str(self.catalogue) if self.catalogue is not None else None,
            "select": self.select,
            "limit": self.limit,
            "first_id": int(self.ids[0]),
            "last_id": int(self.ids[-1]),
        }


def _positive_int(option: str, value: Any) -> int | None:
    """``value`` as a positive int (command-line options may arrive as text), or None."""
    if value is None:
        return None
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < 1:
        raise ConfigError(f"{option}={value!r}: expected a positive whole number.")
    return number


def _list_galaxies(folder: Path) -> tuple[np.ndarray, list[Path]]:
    """GalaxyIDs and files of the ``<GalaxyID>.jpg`` files in ``folder``, sorted by GalaxyID."""
    try:
        names = [e.name for e in os.scandir(folder) if not e.name.startswith(".") and e.is_file()]
    except OSError as exc:
        raise ImageFormatError(f"galaxyzoo: cannot list {folder} ({type(exc).__name__}: {exc}).") from exc
    jpegs = [n for n in names if n.lower().endswith(JPEG_SUFFIXES)]
    if not jpegs:
        others = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise ImageFormatError(
            f"galaxyzoo: {folder} holds no <GalaxyID>.jpg images; expected {EXPECTED}. "
            + (f"It holds {len(names)} other file(s): {others}." if names else "It is empty.")
        )
    bad = [n for n in jpegs if not n.rsplit(".", 1)[0].isdigit()]
    if bad:
        raise ImageFormatError(
            f"galaxyzoo: {folder / bad[0]} is not named <GalaxyID>.jpg (a whole number, as in 100008.jpg); "
            f"{len(bad)} of the {len(jpegs)} JPEGs there are not. Read other folders of pictures with "
            "gangal_core.io.read_images."
        )
    pairs = sorted((int(n.rsplit(".", 1)[0]), n) for n in jpegs)
    return np.array([i for i, _ in pairs], dtype=np.int64), [folder / n for _, n in pairs]


def _probe_size(path: Path) -> int:
    """Side of the square first image (read from its header)."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Exception as exc:
        raise ImageFormatError(
            f"galaxyzoo: {path} is not a readable JPEG ({type(exc).__name__}: {exc})."
        ) from exc
    if width != height:
        raise ImageFormatError(
            f"galaxyzoo: {path} is {width}x{height} pixels; expected square cut-outs (424x424)."
        )
    return width


def _find_catalogue(root: Path, catalogue: str | os.PathLike | None, select: str | None) -> Path | None:
    """The catalogue file to filter with, or None when there is nothing to filter."""
    if catalogue is None:
        if select is None:
            return None
        # PATH may be the Kaggle folder or its images_training_rev1 folder itself
        places = [root, root.parent] if root.name == KAGGLE_FOLDER else [root]
        for default in (place / KAGGLE_CATALOGUE for place in places):
            if default.is_file():
                return default
        others = sorted(p.name for p in root.glob("*.csv"))
        found = f" (it holds {', '.join(others[:5])})" if others else ""
        raise ConfigError(
            f"select={select!r} needs a catalogue: give catalogue=FILE.csv (a CSV with a {ID_COLUMN} "
            f"column); there is no {KAGGLE_CATALOGUE} in {root}{found}."
        )
    given = Path(catalogue).expanduser()
    tried = [given] if given.is_absolute() else [Path.cwd() / given, root / given]
    for candidate in tried:
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(
        f"catalogue={str(catalogue)!r}: no such file (looked for {' and '.join(str(t) for t in tried)}); "
        f"expected a CSV file with a {ID_COLUMN} column."
    )


def _catalogue_filter(
    catalogue: Path, conditions: list[Condition], ids: np.ndarray, *, select: str | None, folder: Path
) -> np.ndarray:
    """Mask over ``ids`` of the galaxies whose catalogue row passes ``conditions``."""
    wanted = list(dict.fromkeys(c.column for c in conditions))
    cat_ids, columns = read_catalogue(catalogue, wanted, expr=select)
    passed = cat_ids
    if conditions:
        passed = cat_ids[
            apply_selection(conditions, columns, where=f"catalogue {catalogue}", expr=select or "")
        ]
    keep = np.isin(ids, passed)
    if not keep.any():
        how = (
            f"select={select!r} kept {len(passed)} of its {len(cat_ids)} rows"
            if conditions
            else (f"it lists {len(cat_ids)} GalaxyIDs")
        )
        raise ConfigError(
            f"galaxyzoo: no image is left: catalogue {catalogue}: {how}, and none of those matches any of "
            f"the {len(ids)} images in {folder}."
        )
    return keep


def open_galaxyzoo(
    path: str | os.PathLike | None,
    *,
    catalogue: str | os.PathLike | None = None,
    select: str | None = None,
    limit: int | None = None,
) -> DataSource:
    """The ``galaxyzoo`` factory: a Kaggle folder, a folder of JPEGs or a Galaxy10 HDF5 file.

    Parameters
    ----------
    path : path or None
        What ``--data galaxyzoo:PATH`` names; required.
    catalogue, select, limit
        See the module's documentation.
    """
    if path is None:
        raise ConfigError(f"--data galaxyzoo needs a path: galaxyzoo:PATH, with PATH {EXPECTED}.")
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"--data galaxyzoo:{path}: no such file or folder; expected {EXPECTED}.")
    if path.is_file() and path.suffix.lower() in HDF5_SUFFIXES:
        if catalogue is not None:
            raise ConfigError(
                f"catalogue={str(catalogue)!r}: a Galaxy10 file ({path}) carries its own labels; select on "
                "its datasets instead, e.g. select='ans==3'."
            )
        from .galaxy10 import Galaxy10Source

        return Galaxy10Source(path, select=select, limit=_positive_int("limit", limit))
    if not path.is_dir():
        raise ConfigError(f"--data galaxyzoo:{path}: this is a file, not a folder; expected {EXPECTED}.")
    return GalaxyZooSource(path, catalogue=catalogue, select=select, limit=limit)


@hookimpl
def register_data_sources(register):
    """Register the ``galaxyzoo`` data source."""
    register(NAME, open_galaxyzoo)
