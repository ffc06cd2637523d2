"""Refusing, before any work, a count whose data could never fit in this machine's memory."""

from __future__ import annotations

import os

from gangal_core.errors import ConfigError

__all__ = ["check_fits_in_memory"]


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every system says
        return None


def check_fits_in_memory(option: str, count: int, per_item: int, what: str) -> None:
    """Raise a :class:`ConfigError` naming ``option`` if ``count`` items of ``per_item`` bytes,
    held in memory at once, exceed the machine's physical memory."""
    total = _physical_memory()
    needed = count * per_item
    if total is not None and needed > total:
        raise ConfigError(
            f"{option} {count}: {count:,} {what} of {per_item:,} bytes need {needed:,} bytes of memory "
            f"at once, more than this machine's {total:,}."
        )
