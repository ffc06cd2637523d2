"""Selections such as ``"Class1.1>0.6 & Class1.3<0.2"`` over a table of numeric columns.

A selection is a conjunction of comparisons ``COLUMN OP NUMBER`` joined by ``&``, with
``OP`` one of ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``.  Column names may hold
letters, digits, ``_`` and ``.`` (the Kaggle catalogue's ``Class1.1``).  The table comes
from a CSV catalogue keyed by ``GalaxyID`` (:func:`read_catalogue`) or from the 1-D
datasets of a Galaxy10 HDF5 file.
"""

from __future__ import annotations

import csv
import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gangal_core import ConfigError

__all__ = ["Condition", "apply_selection", "describe_selection", "parse_selection", "read_catalogue"]

ID_COLUMN = "GalaxyID"

_OPERATORS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_TERM = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Condition:
    """One comparison ``column op value``."""

    column: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.value:g}"


def parse_selection(expr: str) -> list[Condition]:
    """Parse ``"A>0.6 & B==1"`` into conditions.

    Parameters
    ----------
    expr : str
        Comparisons ``COLUMN OP NUMBER`` joined by ``&``.

    Raises
    ------
    ConfigError
        When a term is not a comparison of a column with a number.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(
            f"select={expr!r}: expected comparisons like 'spiral==1' or 'Class1.1>0.6 & Class1.3<0.2'."
        )
    conditions = []
    for term in expr.split("&"):
        match = _TERM.match(term)
        value = _number(match.group(3)) if match else None
        if match is None or value is None:
            raise ConfigError(
                f"select={expr!r}: cannot read the term {term.strip()!r}; expected COLUMN OP NUMBER with OP "
                "one of > >= < <= == !=, terms joined by '&' (e.g. 'Class1.1>0.6 & Class1.3<0.2')."
            )
        conditions.append(Condition(match.group(1), match.group(2), value))
    return conditions


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def describe_selection(conditions: Sequence[Condition]) -> str:
    """The canonical text of a selection (what provenance and fingerprints record)."""
    return " & ".join(str(c) for c in conditions)


def apply_selection(
    conditions: Sequence[Condition], columns: Mapping[str, np.ndarray], *, where: str, expr: str
) -> np.ndarray:
    """Boolean mask of the rows that pass every condition.

    Parameters
    ----------
    conditions : sequence of Condition
        From :func:`parse_selection`.
    columns : mapping of str to 1-D array
        The table, all columns of one length.
    where : str
        What holds the table, for messages (``"catalogue /data/gz2/labels.csv"``).
    expr : str
        The user's selection text, for messages.
    """
    n = len(next(iter(columns.values()))) if columns else 0
    mask = np.ones(n, dtype=bool)
    for c in conditions:
        if c.column not in columns:
            raise ConfigError(
                f"select={expr!r}: {where} has no column {c.column!r}; {_list_columns(columns, c.column)}."
            )
        mask &= _OPERATORS[c.op](np.asarray(columns[c.column], dtype=np.float64), c.value)
    return mask


def _list_columns(columns: Mapping[str, object], missing: str) -> str:
    names = [k for k in columns if k != ID_COLUMN]
    shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
    same_but_case = [n for n in names if n.lower() == missing.lower()]
    close = same_but_case or difflib.get_close_matches(missing, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"its columns are {shown}{hint}" if names else "it has no columns to select on"


def read_catalogue(
    path: Path, wanted: Sequence[str], *, expr: str | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read the ``GalaxyID`` column and the numeric columns ``wanted`` of a CSV file.

    Parameters
    ----------
    path : Path
        A CSV file with a header row holding ``GalaxyID``.
    wanted : sequence of str
        Columns to return as float64 arrays (those a selection names).
    expr : str, optional
        The user's selection text, for messages.

    Returns
    -------
    ids : ndarray of int64
        ``GalaxyID`` of each row.
    columns : dict of str to ndarray
        Each wanted column.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            _check_header(path, header, wanted, expr)
            where = [header.index(name) for name in (ID_COLUMN, *wanted)]
            rows = [
                (line, [row[k] if k < len(row) else "" for k in where]) for line, row in enumerate(reader, 2)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(
            f"catalogue {path}: cannot read it as a CSV file ({type(exc).__name__}: {exc})."
        ) from exc
    ids = np.empty(len(rows), dtype=np.int64)
    values = np.empty((len(wanted), len(rows)), dtype=np.float64)
    for r, (line, fields) in enumerate(rows):
        if not fields[0].strip().isdigit():
            raise ConfigError(
                f"catalogue {path}, line {line}: {ID_COLUMN} must be a whole number, found {fields[0]!r}."
            )
        ids[r] = int(fields[0])
        for k, text in enumerate(fields[1:]):
            try:
                values[k, r] = float(text)
            except ValueError:
                raise ConfigError(
                    f"catalogue {path}, line {line}: column {wanted[k]!r} must be a number, found {text!r}."
                ) from None
    return ids, {name: values[k] for k, name in enumerate(wanted)}


def _check_header(path: Path, header: list[str], wanted: Sequence[str], expr: str | None) -> None:
    if ID_COLUMN not in header:
        found = ", ".join(header[:10]) + (", ..." if len(header) > 10 else "") if header else "no header row"
        raise ConfigError(
            f"catalogue {path}: expected a CSV file with a {ID_COLUMN} column (as in the Kaggle "
            f"training_solutions_rev1.csv), found columns: {found}."
        )
    for name in wanted:
        if name not in header:
            raise ConfigError(
                f"select={expr!r}: catalogue {path} has no column {name!r}; "
                f"{_list_columns(dict.fromkeys(header), name)}."
            )
