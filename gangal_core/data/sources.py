"""Image data sources and the batches the chained-GAN trainer draws from them.

A :class:`DataSource` is a fixed, indexable set of images at their native resolution:
the Galaxy Zoo 2 JPEGs, a Galaxy10 HDF5 file, seeded synthetic galaxies, or anything a
plugin registers through ``register_data_sources``.  :class:`ImageBatches` turns one
into shuffled minibatches at the resolutions a chain needs (64x64 for the DCGAN, paired
64x64/128x128 for the refiner), downscaled by nearest neighbour as in Fussell & Moews
(2019, section 3.1), flipped horizontally and vertically with probability 0.5 (the same
flips for every resolution of one image), decoded by a pool of worker threads and kept
in a decoded cache so that the second epoch decodes nothing.

Shuffling and flips depend only on ``(seed, epoch)``, so a resumed run sees exactly the
batches an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gangal_core.errors import ConfigError, GangalError, PluginError

__all__ = ["DataSource", "downscale_nearest", "open_data_source", "parse_data_options", "parse_data_spec"]


class DataSource(ABC):
    """A fixed, indexable set of images at their native resolution.

    Subclasses set :attr:`name`, :attr:`channels` and :attr:`resolution` and implement
    :meth:`__len__` and :meth:`read`.  A plugin registers a factory with
    ``register(name, factory)`` in its ``register_data_sources`` hook;
    ``factory(path, **options)`` returns the source (``path`` is ``None`` when the user
    wrote ``--data NAME`` without ``:PATH``).

    Attributes
    ----------
    name : str
        Registry name (``"galaxyzoo"``, ``"synthetic"``...).
    channels : int
        Channels of every image (3 for gri composites in RGB).
    resolution : int
        Side of the square native images (424 for Galaxy Zoo 2).
    """

    name: ClassVar[str] = ""
    channels: int = 3
    resolution: int = 0

    @abstractmethod
    def __len__(self) -> int:
        """Number of images."""

    @abstractmethod
    def read(self, index: int) -> np.ndarray:
        """Image ``index`` as ``(channels, resolution, resolution)``.

        Returns ``uint8`` (0-255) or floating point values in ``[0, 1]``.  Called from
        several worker threads at once.
        """

    def label(self, index: int) -> str:
        """What a person calls image ``index`` (a file name, a catalogue id); default its index."""
        return str(index)

    def truth(self) -> dict[str, np.ndarray] | None:
        """Known properties of every image (e.g. the true shapes of synthetic galaxies), or ``None``."""
        return None

    def describe(self) -> dict[str, Any]:
        """Provenance written beside models and evaluations (JSON-serialisable)."""
        return {"source": self.name, "n_images": len(self), "resolution": self.resolution}

    def fingerprint(self) -> str:
        """A short hash of :meth:`describe`: which decoded cache files belong to this source."""
        text = json.dumps(self.describe(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def downscale_nearest(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resampling of ``(..., H, W)`` to ``(..., size, size)``.

    Output pixel ``i`` takes input pixel ``floor((i + 0.5) * H / size)``, the pixel whose
    area holds the output pixel's centre (what PIL's ``Image.NEAREST`` does), so 424 -> 64
    picks every 6.625-th pixel without any averaging, as in the paper.
    """
    height, width = image.shape[-2:]
    rows = np.minimum(((np.arange(size) + 0.5) * height / size).astype(np.intp), height - 1)
    cols = np.minimum(((np.arange(size) + 0.5) * width / size).astype(np.intp), width - 1)
    return image[..., rows[:, None], cols[None, :]]


def parse_data_spec(spec: str) -> tuple[str, Path | None]:
    """Split ``--data``: ``"galaxyzoo:/data/gz2"`` -> ``("galaxyzoo", Path("/data/gz2"))``, ``"synthetic"`` -> ``("synthetic", None)``."""  # noqa: E501
    name, sep, path = spec.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"--data {spec!r}: expected SOURCE or SOURCE:PATH, e.g. galaxyzoo:/data/gz2.")
    if sep and not path:
        raise ConfigError(f"--data {spec!r}: nothing after the ':'; give SOURCE:PATH or just SOURCE.")
    return name, Path(path).expanduser() if path else None


def open_data_source(spec: str, **options: Any) -> DataSource:
    """Build the data source a ``--data SOURCE[:PATH]`` option names.

    Parameters
    ----------
    spec : str
        ``SOURCE`` or ``SOURCE:PATH``; ``SOURCE`` is a registered data source name.
    **options
        Passed to the source's factory (e.g. ``n`` or ``seed`` for the synthetic source).
    """
    from gangal_core.plugins import get_registry

    name, path = parse_data_spec(spec)
    thing = get_registry().get("data_source", name)
    try:  # an option the factory does not take is the user's mistake ...
        inspect.signature(thing.obj).bind(path, **options)
    except TypeError as exc:
        raise ConfigError(f"--data {spec!r}: {exc}") from exc
    except ValueError:  # no signature to check: let the call decide
        pass
    try:
        source = thing.obj(path, **options)
    except GangalError:
        raise
    except Exception as exc:  # ... anything else failing inside the factory is the plugin's
        raise PluginError(
            f"data source {name!r} from {thing.distribution} failed to open {spec!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(source, DataSource):
        raise GangalError(
            f"data source {name!r} from {thing.distribution} returned {type(source).__name__}, "
            "not a gangal_core.data.DataSource."
        )
    if len(source) == 0:
        raise ConfigError(f"--data {spec!r}: the source holds no images.")
    return source


def parse_data_options(items: tuple[str, ...]) -> dict[str, Any]:
    """``("n=512", "select=spiral==1")`` to ``{"n": 512, "select": "spiral==1"}``."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"--data-option {item!r}: expected KEY=VALUE, e.g. n=512 or select=spiral==1.")
        value = value.strip()
        for kind in (int, float):
            try:
                options[key.strip()] = kind(value)
                break
            except ValueError:
                continue
        else:
            options[key.strip()] = value
    return options
