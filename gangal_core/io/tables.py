"""Parameter tables: CSV, ECSV and FITS, read and written with units.

A parameter table has one column per parameter, named after it, and one row per parameter
set (``--params``, ``--true-params``, ``--bank-parameters``, ``samples.csv``).  Three formats:

* **CSV**: a header of names, then numbers, read by the :mod:`csv` module; it has no units, so
  its values are taken in the units the simulator declares (:attr:`Parameter.unit
  <gangal_core.Parameter.unit>`).
* **ECSV** (astropy's enhanced CSV, first line ``# %ECSV``, or a ``.ecsv`` name) and **FITS**
  tables (the first table HDU; a ``.fits``, ``.fit`` or ``.fts`` name, gzipped or not, or a file
  that starts as FITS does), read through :class:`astropy.table.Table`.  A column with a unit
  other than the declared one is converted with :mod:`astropy.units` when the two are
  convertible (``deg`` to ``rad``, ``MeV`` to ``GeV``) and refused, with the column and both
  units named, when they are not.  A column without a unit is taken in the declared unit.

Units are parsed with a few aliases astropy lacks (:data:`UNIT_ALIASES`: ``px`` is astropy's
``pix``), so a table written with ``u.pix`` fits a simulator that declares ``"px"``.  A unit
astropy does not know at all must be spelled exactly as the simulator spells it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gangal_core.errors import ConfigError

from .atomic import atomic_open, atomic_write_bytes

__all__ = ["TABLE_SUFFIXES", "UNIT_ALIASES", "read_parameter_table", "table_format", "unit_aliases",
           "write_parameter_table"]  # fmt: skip

FITS_TABLE_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
#: File names gangal reads and writes parameter tables under, longest first.
TABLE_SUFFIXES = (*FITS_TABLE_SUFFIXES, ".ecsv", ".csv")
#: Unit spellings simulators use that astropy does not know, and the astropy unit each means.
UNIT_ALIASES = {"px": "pix", "pixels": "pix", "photons": "ph"}
_KINDS = {"U": "text", "S": "text", "b": "true/false values", "c": "complex numbers", "O": "Python objects",
          "M": "dates", "m": "time spans"}  # fmt: skip


@contextlib.contextmanager
def unit_aliases() -> Iterator[None]:
    """Within the block, astropy parses the spellings of :data:`UNIT_ALIASES`."""
    import astropy.units as u

    with u.add_enabled_aliases({alias: u.Unit(unit) for alias, unit in UNIT_ALIASES.items()}):
        yield


def table_format(path: Path) -> str:
    """``"fits"``, ``"ecsv"`` or ``"csv"``: by the name, else by the first bytes (plain CSV by default)."""
    name = path.name.lower()
    if name.endswith(FITS_TABLE_SUFFIXES):
        return "fits"
    if name.endswith(".ecsv"):
        return "ecsv"
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return "csv"  # the CSV reader names the problem
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.removeprefix(b"\xef\xbb\xbf").startswith(b"# %ECSV"):
        return "ecsv"
    return "csv"


# ---- reading ------------------------------------------------------------------------------------
def read_parameter_table(
    path: Path,
    names: Sequence[str],
    *,
    units: Sequence[str] | None = None,
    option: str = "--params",
    owner: str = "the simulator",
) -> np.ndarray:
    """Read a CSV, ECSV or FITS table of parameters into ``(n, P)`` float32, columns in ``names``' order.

    Parameters
    ----------
    path : Path
        The table.
    names : sequence of str
        The parameters its columns must name, each once (in any order).
    units : sequence of str, optional
        The unit each parameter is declared in (``""``: none); table columns with units are
        converted to these.  Default: none declared.
    option : str, optional
        What the error messages call the file (the option that gave it).
    owner : str, optional
        Whose parameters these are, for the messages (``"simulator 'circle'"``).
    """
    path = Path(path)
    names = list(names)
    units = list(units) if units is not None else [""] * len(names)
    kind = table_format(path)
    if kind == "csv":
        values = _read_csv(path, names, option, owner)
    else:
        values = _read_astropy(path, kind, names, units, option, owner)
    return values.astype(np.float32)


def _check_names(found: list[str], names: list[str], path: Path, option: str, owner: str, *,
                 what: str) -> None:  # fmt: skip
    """The ``what`` (header or columns) names each parameter once, and nothing else."""
    repeated = sorted({h for h in found if found.count(h) > 1})
    if repeated:
        raise ConfigError(f"{option} {path}: the {what} names {', '.join(repeated)} more than once.")
    missing = [n for n in names if n not in found]
    extra = [h for h in found if h not in names]
    if missing or extra:
        raise ConfigError(
            f"{option} {path}: the {what} must name the parameters of {owner}: "
            f"{', '.join(names)}. Found {what} {found}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {extra}" if extra else "")
            + "."
        )


def _read_csv(path: Path, names: list[str], option: str, owner: str) -> np.ndarray:
    """A plain CSV: header of names, rows of numbers; a bad value names its line."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets write a BOM
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            rows = [row for row in reader if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{option} {path}: cannot read it as CSV ({exc}).") from exc
    _check_names(header, names, path, option, owner, what="header")
    if not rows:
        raise ConfigError(f"{option} {path}: the file has a header but no rows of parameters.")
    order = [header.index(n) for n in names]
    values = np.empty((len(rows), len(names)), dtype=np.float64)
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ConfigError(
                f"{option} {path}, line {i + 2}: expected {len(header)} values, found {len(row)}."
            )
        try:
            values[i] = [float(row[j]) for j in order]
        except ValueError as exc:
            raise ConfigError(f"{option} {path}, line {i + 2}: {exc}.") from exc
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise ConfigError(f"{option} {path}, line {int(np.argmax(bad)) + 2}: values must be finite numbers.")
    return values


def _read_astropy(path: Path, kind: str, names: list[str], units: list[str], option: str,
                  owner: str) -> np.ndarray:  # fmt: skip
    """An ECSV or FITS table: columns named as the parameters, numbers, units converted."""
    label = "an ECSV" if kind == "ecsv" else "a FITS"
    with unit_aliases():
        table = _load_table(path, kind, option, label)
        _check_names(list(table.colnames), names, path, option, owner, what="columns")
        if len(table) == 0:
            raise ConfigError(f"{option} {path}: the table has columns {names} but no rows of parameters.")
        columns = [_column_values(table[name], unit, path, option, owner)
                   for name, unit in zip(names, units, strict=True)]  # fmt: skip
        values = np.column_stack(columns)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise ConfigError(f"{option} {path}, row {int(np.argmax(bad)) + 1}: values must be finite numbers.")
    return values


def _load_table(path: Path, kind: str, option: str, label: str) -> Any:
    """The file read by astropy; whatever astropy raises on a damaged file becomes a ConfigError."""
    from astropy.table import Table

    if not path.is_file():
        raise ConfigError(f"{option} {path}: no such file.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return Table.read(path, format="ascii.ecsv" if kind == "ecsv" else "fits")
        except Exception as exc:  # astropy's readers raise many kinds on a damaged file
            said = "; ".join(dict.fromkeys(" ".join(str(w.message).split())[:200] for w in caught))
            detail = f"{type(exc).__name__}: {exc}"[:300] + (f"; warnings: {said[:300]}" if said else "")
            raise ConfigError(
                f"{option} {path}: cannot read it as {label} table ({detail}). Expected a table with one "
                "column per parameter, written by astropy (Table.write) or a FITS binary table."
            ) from None


def _column_values(column: Any, declared: str, path: Path, option: str, owner: str) -> np.ndarray:
    """One column as float64 in the declared unit; refused when it holds no numbers or a foreign unit."""
    name = column.info.name
    if column.ndim != 1:
        raise ConfigError(
            f"{option} {path}: column {name!r} holds arrays of shape {tuple(column.shape[1:])} per row; "
            "expected one number per row."
        )
    if column.dtype.kind not in "iuf":
        found = _KINDS.get(column.dtype.kind, "values that are not numbers")
        raise ConfigError(
            f"{option} {path}: column {name!r} holds {found} (dtype {column.dtype}); expected numbers."
        )
    mask = np.ma.getmaskarray(column)
    if mask.any():
        row = int(np.argmax(mask)) + 1
        raise ConfigError(
            f"{option} {path}, row {row}: column {name!r} has no value there (a masked or NaN cell)."
        )
    values = np.asarray(np.ma.getdata(column), dtype=np.float64)
    if column.unit is None:
        return values
    return _converted(values, column.unit, declared, name, path, option, owner)


def _converted(values: np.ndarray, found: Any, declared: str, name: str, path: Path, option: str,
               owner: str) -> np.ndarray:  # fmt: skip
    """``values`` in unit ``found`` expressed in the ``declared`` unit, or a ConfigError naming both."""
    import astropy.units as u

    expected = u.Unit(declared, parse_strict="silent")  # "" is dimensionless
    if found == expected:
        return values
    try:
        if isinstance(found, u.UnrecognizedUnit) or isinstance(expected, u.UnrecognizedUnit):
            raise u.UnitsError("astropy does not know one of the two units")
        return (values * found).to_value(expected)
    except (u.UnitsError, ValueError, TypeError) as exc:
        shown = found.to_string()
        if not declared:
            raise ConfigError(
                f"{option} {path}: column {name!r} is in {shown!r}, but {owner} declares no unit for "
                f"{name}, so it cannot be converted. Leave the column's unit out (its values are then "
                "taken as they are)."
            ) from None
        raise ConfigError(
            f"{option} {path}: column {name!r} is in {shown!r}, which cannot be converted to {declared!r}, "
            f"the unit {owner} declares for {name} ({exc}). Write the column in {declared!r} or in a unit "
            "astropy can convert to it."
        ) from None


# ---- writing ------------------------------------------------------------------------------------
def write_parameter_table(
    path: Path,
    names: Sequence[str],
    values: np.ndarray,
    *,
    units: Sequence[str] | None = None,
    descriptions: Sequence[str] | None = None,
    meta: Mapping[str, Any] | None = None,
    digits: int = 6,
    command: str = "",
) -> None:
    """Write ``(n, P)`` parameter values as CSV, ECSV or FITS, by the name's suffix (atomic).

    Values are rounded to ``digits`` significant digits in every format, so the CSV and ECSV
    of one table hold the same numbers.  CSV gets the names alone; ECSV and FITS also carry
    each column's unit and description and the table's ``meta`` (FITS: the header cards of
    :func:`~gangal_core.io.fits_headers.provenance_header`, ``CREATOR`` naming ``command``, and
    ``meta`` as extra cards).
    """
    path = Path(path)
    values = np.asarray(values, dtype=np.float64)
    rounded = [[f"{v:.{digits}g}" for v in row] for row in values]
    kind = next((s for s in TABLE_SUFFIXES if path.name.lower().endswith(s)), None)
    if kind is None:
        raise ConfigError(f"{path}: a parameter table is written as {', '.join(TABLE_SUFFIXES)}; "
                          f"found the name {path.name!r}.")  # fmt: skip
    if kind == ".csv":
        with atomic_open(path, "w") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(names)
            writer.writerows(rounded)
        return
    table = _astropy_table(names, np.array(rounded, dtype=np.float64).reshape(values.shape),
                           units=units, descriptions=descriptions, meta=meta)  # fmt: skip
    if kind == ".ecsv":
        buffer = io.StringIO()
        table.write(buffer, format="ascii.ecsv")
        atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))
    else:
        _write_fits_table(path, table, command)


def _astropy_table(names: Sequence[str], values: np.ndarray, *, units: Sequence[str] | None,
                   descriptions: Sequence[str] | None, meta: Mapping[str, Any] | None) -> Any:  # fmt: skip
    from astropy.table import Column, Table

    units = list(units) if units is not None else [""] * len(names)
    descriptions = list(descriptions) if descriptions is not None else [""] * len(names)
    table = Table(meta=dict(meta or {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a unit astropy does not know is written as it is spelled
        for j, name in enumerate(names):
            table[name] = Column(values[:, j], unit=units[j] or None, description=descriptions[j] or None)
    return table


def _write_fits_table(path: Path, table: Any, command: str) -> None:
    """A primary HDU with the provenance cards, then the table (units as FITS spells them)."""
    from astropy.io import fits

    from .fits_headers import provenance_header

    header = provenance_header(command=command, extra=table.meta)
    with unit_aliases(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for column in table.columns.values():
            if column.unit is not None:
                import astropy.units as u

                column.unit = u.Unit(column.unit.to_string())  # px -> pix: a unit FITS knows
        table.meta = {}
        hdu = fits.table_to_hdu(table)
    with atomic_open(path, "wb") as fh:
        fits.HDUList([fits.PrimaryHDU(header=header), hdu]).writeto(fh)
