"""Shuffled, flipped minibatches at the resolutions a chain needs, drawn from a data source.

Shuffling and flips depend only on ``(seed, epoch)``, so a resumed run sees exactly the
batches an uninterrupted one would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from gangal_core.errors import ConfigError, GangalError
from gangal_core.io.atomic import atomic_open

from .sources import DataSource, downscale_nearest

__all__ = ["ImageBatches"]


class ImageBatches:
    """Shuffled, flipped minibatches of a data source at one or more resolutions.

    Parameters
    ----------
    source : DataSource
        Where the images come from.
    resolutions : sequence of int
        Sides of the images in each batch, e.g. ``(64,)`` or ``(64, 128)`` for the refiner.
    batch_size : int
        Images per batch; the last incomplete batch of an epoch is dropped (batch
        normalisation is unstable on tiny batches), so an epoch has ``len(source) //
        batch_size`` batches.
    seed : int, optional
        Seed of the shuffling and flips; together with the epoch it fixes every batch.
    flips : bool, optional
        Flip each image horizontally and vertically with probability 0.5 (default True).
    cache : {"memory", "none"} or path, optional
        ``"memory"`` (default) keeps decoded, downscaled images in memory after their first
        read; a folder keeps them in ``.npy`` files there, reused by later runs on the same
        source; ``"none"`` decodes every time.
    workers : int, optional
        Decoding threads (default: one per core).
    rows : slice, optional
        Under ``torchrun``: this process's rows of every global batch; only they are read
        and decoded (default: all rows).  The batches themselves, their order and flips do
        not depend on it.
    """

    def __init__(
        self,
        source: DataSource,
        *,
        resolutions: Sequence[int],
        batch_size: int,
        seed: int = 0,
        flips: bool = True,
        cache: str | os.PathLike = "memory",
        workers: int | None = None,
        rows: slice | None = None,
    ) -> None:
        if batch_size < 1 or batch_size > len(source):
            raise ConfigError(
                f"--batch-size {batch_size}: must be between 1 and the {len(source)} images of the source."
            )
        self.source = source
        self.resolutions = tuple(int(r) for r in resolutions)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.flips = flips
        self.rows = rows or slice(0, self.batch_size)
        self.workers = workers or os.cpu_count() or 1
        self._pool: ThreadPoolExecutor | None = None
        self._cache: dict[int, np.ndarray] | None = None
        self._filled: np.ndarray | None = None
        if cache == "memory":
            self._cache, self._filled = {}, np.zeros(len(source), dtype=bool)
        elif cache != "none":
            self._open_disk_cache(Path(cache))

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.source) // self.batch_size

    def _open_disk_cache(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{self.source.name}-{self.source.fingerprint()}"
        paths = {r: Path(f"{stem}-{r}.npy") for r in self.resolutions}
        # decode image 0 only to learn the dtype of cache files still to be made
        dtype = None if all(p.exists() for p in paths.values()) else np.asarray(self.source.read(0)).dtype
        self._cache = {}
        for r, path in paths.items():
            shape = (len(self.source), self.source.channels, r, r)
            try:
                if path.exists():
                    arr = np.lib.format.open_memmap(path, mode="r+")
                else:
                    arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            except (OSError, ValueError) as exc:
                raise GangalError(
                    f"decoded cache {path} cannot be opened ({exc}); delete it, re-run."
                ) from exc
            if arr.shape != shape or (dtype is not None and arr.dtype != dtype):
                raise GangalError(f"decoded cache {path} does not match the source; delete it and re-run.")
            dtype = arr.dtype
            self._cache[r] = arr
        filled = Path(f"{stem}-filled.npy")
        self._filled_path = filled
        try:
            if filled.exists():
                self._filled = np.load(filled, allow_pickle=False)  # never unpickle a cache
            else:
                self._filled = np.zeros(len(self.source), dtype=bool)
        except (OSError, ValueError) as exc:
            raise GangalError(f"decoded cache {filled} cannot be read ({exc}); delete it, re-run.") from exc
        if self._filled.shape != (len(self.source),) or self._filled.dtype != bool:
            raise GangalError(f"decoded cache {filled} does not match the source; delete it and re-run.")

    def _decode(self, index: int) -> list[np.ndarray]:
        image = np.asarray(self.source.read(index))
        expected = (self.source.channels, self.source.resolution, self.source.resolution)
        if image.shape != expected:
            raise GangalError(
                f"data source {self.source.name!r}: image {self.source.label(index)} has shape "
                f"{image.shape}, expected {expected}."
            )
        return [downscale_nearest(image, r) for r in self.resolutions]

    def _gather(self, indices: np.ndarray) -> list[np.ndarray]:
        """Decoded images for ``indices`` at each resolution, through the cache."""
        if self._cache is not None and self._filled is not None:
            missing = indices[~self._filled[indices]]
            if len(missing):
                for i, images in zip(missing, self._map(missing), strict=True):
                    if not self._cache:  # memory cache: allocated once the first image shows its dtype
                        n, c = len(self.source), self.source.channels
                        for r, im in zip(self.resolutions, images, strict=True):
                            self._cache[r] = np.empty((n, c, r, r), dtype=im.dtype)
                    for r, im in zip(self.resolutions, images, strict=True):
                        self._cache[r][i] = im
                self._filled[missing] = True
                if hasattr(self, "_filled_path"):
                    for arr in self._cache.values():
                        arr.flush()
                    with atomic_open(self._filled_path) as fh:  # a killed run leaves the old flags
                        np.save(fh, self._filled)
            order = np.sort(indices)  # contiguous reads are faster from a memory map
            back = np.argsort(np.argsort(indices))
            return [self._cache[r][order][back] for r in self.resolutions]
        decoded = list(self._map(indices))
        return [np.stack([d[k] for d in decoded]) for k in range(len(self.resolutions))]

    def _map(self, indices: np.ndarray) -> Iterator[list[np.ndarray]]:
        if self.workers <= 1 or len(indices) < 4:
            return map(self._decode, (int(i) for i in indices))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gangal-decode")
        return self._pool.map(self._decode, (int(i) for i in indices))

    def epoch(self, epoch: int, *, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """The batches of ``epoch``, from batch ``start`` on (for resuming mid-epoch).

        Yields one float32 tensor ``(batch, channels, r, r)`` with values in ``[0, 1]`` per
        resolution, in the order of ``resolutions``.
        """
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(len(self.source))
        flip = rng.random((len(self.source), 2)) < 0.5
        for b in range(start, len(self)):
            first = b * self.batch_size
            mine = slice(first + self.rows.start, first + self.rows.stop)
            arrays = self._gather(order[mine])
            yield tuple(self._to_tensor(a, flip[mine]) for a in arrays)

    def _to_tensor(self, images: np.ndarray, flip: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(images))
        t = t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()
        if self.flips:
            h, v = torch.from_numpy(flip[:, 0]), torch.from_numpy(flip[:, 1])
            t[h] = t[h].flip(-1)
            t[v] = t[v].flip(-2)
        return t

    def close(self) -> None:
        """Stop the decoding threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
