"""Run a simulator at scale and write its images: the engine behind ``gangal simulate``.

Work is cut into fixed *chunks* of ``chunk_size`` images.  Chunk ``k`` draws its
parameters and its noise from a generator seeded by ``(seed, k)`` alone, so the images
are the same whatever the number of threads, shards or batch-system jobs.  Chunks are
simulated on a thread pool (torch releases the GIL) and written straight to their
place in the output file; files are written atomically, so a killed run leaves only
finished shards, and re-running the same command finishes the rest.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gangal_core import __version__
from gangal_core.errors import ConfigError
from gangal_core.io.atomic import fsync_dir
from gangal_core.io.writers import file_format

from .outputs import output_kind, pack_output, prepare_output, remove_staging, staging_path
from .simulator import Parameter, Simulator, call_simulator

if TYPE_CHECKING:
    from astropy.table import Table

__all__ = [
    "SimulationPlan",
    "SimulationSummary",
    "check_parameter_ranges",
    "chunk_generator",
    "parse_shard",
    "read_parameter_csv",
    "run_simulation",
]

FORMAT = "gangal-simulation"


def chunk_generator(seed: int, chunk: int) -> torch.Generator:
    """The generator of chunk ``chunk`` of a run seeded with ``seed``."""
    state = np.random.SeedSequence([int(seed), int(chunk)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def read_parameter_csv(path: Path, simulator: Simulator, *, option: str = "--params") -> np.ndarray:
    """Read a table of parameters whose columns name the simulator's parameters (any order).

    CSV, ECSV or FITS (:func:`gangal_core.io.tables.read_parameter_table`): a column with a unit
    is converted to the unit the simulator declares, or refused when it cannot be.  Returns
    ``(n, P)`` float32 in the simulator's column order.
    """
    from gangal_core.io.tables import read_parameter_table

    declared = getattr(simulator, "parameters", None)
    units = [getattr(p, "unit", "") or "" for p in declared] if declared else None
    return read_parameter_table(path, simulator.parameter_names(), units=units, option=option,
                                owner=f"simulator {simulator.name!r}")  # fmt: skip


def check_parameter_ranges(
    values: np.ndarray,
    parameters: Sequence[Parameter],
    *,
    path: str | os.PathLike,
    option: str = "--params",
    bounds: str = "the declared range",
    remedy: str = "",
) -> None:
    """Refuse a table of parameters (:func:`read_parameter_csv`) with a value outside its range.

    Parameters
    ----------
    values : numpy.ndarray
        ``(N, P)`` parameters, columns in the order of ``parameters``; row ``i`` is line
        ``i + 2`` of the CSV file.
    parameters : sequence of Parameter
        The ranges, ``[low, high]`` with both ends allowed.
    path : path-like
        The CSV file, named in the message with ``option``.
    option : str, optional
        The option that gave the file.
    bounds : str, optional
        What the ranges are, for the message (``"the range the emulator was trained on"``).
    remedy : str, optional
        A sentence added to the message: how to go on.

    Raises
    ------
    ConfigError
        Naming the first value outside, its line and its range, and how many rows are outside.
    """
    # the ranges in the values' own precision: 1.1 in a CSV is float32(1.1), just above 1.1
    low = np.array([p.low for p in parameters], dtype=values.dtype)
    high = np.array([p.high for p in parameters], dtype=values.dtype)
    outside = (values < low) | (values > high)
    if not outside.any():
        return
    row, col = (int(i) for i in np.argwhere(outside)[0])
    rows = int(outside.any(axis=1).sum())
    more = f" ({rows - 1} more row(s) are outside too)" if rows > 1 else ""
    p = parameters[col]
    raise ConfigError(
        f"{option} {path}, line {row + 2}: {p.name} = {values[row, col]:g} is outside {bounds}, "
        f"[{p.low:g}, {p.high:g}]{more}." + (f" {remedy}" if remedy else "")
    )


@dataclass(frozen=True)
class SimulationPlan:
    """Where every image of a run goes: files, each made of consecutive chunks."""

    n: int
    seed: int
    chunk_size: int
    shard_size: int

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk_size)

    def chunk_range(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_size
        return start, min(self.n, start + self.chunk_size)

    def shards(self) -> list[dict]:
        return [
            {"file": f"shard-{i:05d}.safetensors", "start": s, "count": min(self.shard_size, self.n - s)}
            for i, s in enumerate(range(0, self.n, self.shard_size))
        ]


@dataclass(frozen=True)
class SimulationSummary:
    """A simulation run: what it is, and what this call wrote.

    :meth:`to_dict` is exactly the JSON that describes the run: ``manifest.json`` of a folder
    of shards, ``<stem>.json`` beside an ``.npy`` file, or the description inside an ``.npz``
    or FITS file (:func:`~gangal_core.io.writers.read_file_description`).  Its run identity
    (:meth:`run_key`) is what a re-run must match to resume.

    Attributes
    ----------
    out : Path
        The ``.npy``, ``.npz`` or FITS file, or the folder of shards.
    simulator : str
        The simulator's name.
    image_shape : tuple of int
        ``(C, H, W)``.
    parameters : tuple of Parameter
        The simulator's parameters, with the ranges of this run.
    plan : SimulationPlan
        Images, seed, chunk and shard sizes.
    params_sha256 : str or None
        Digest of the given parameters (None: drawn uniformly).
    written : int
        Images this call wrote.
    skipped : int or None
        Images already there (None for one shard of a batch-system job).
    files : tuple of str
        The image files this call wrote.
    """

    out: Path
    simulator: str
    image_shape: tuple[int, ...]
    parameters: tuple[Parameter, ...]
    plan: SimulationPlan
    params_sha256: str | None = None
    written: int = 0
    skipped: int | None = None
    files: tuple[str, ...] = ()

    def run_key(self) -> dict[str, Any]:
        """What identifies the run: a folder holding another is refused, the same one resumed."""
        return {
            "simulator": self.simulator,
            "image_shape": list(self.image_shape),
            "parameter_names": [p.name for p in self.parameters],
            # uniform draws depend on the ranges, which --range may change: part of the identity
            "parameter_ranges": {p.name: [p.low, p.high] for p in self.parameters},
            "n": self.plan.n,
            "seed": self.plan.seed,
            "chunk_size": self.plan.chunk_size,
            "shard_size": self.plan.shard_size,
            "params_sha256": self.params_sha256,
        }

    def to_dict(self) -> dict[str, Any]:
        """The run's JSON description, exactly as written: the manifest, or the output file's own."""
        kind = file_format(self.out)
        if kind == "npy":
            return {
                "format": f"{FORMAT}-npy",
                "version": 1,
                **self.run_key(),
                "gangal_version": __version__,
                "images": self.out.name,
                "parameters_file": self.out.with_suffix(".parameters.npy").name,
            }
        parameters = [{"name": p.name, "low": p.low, "high": p.high, "unit": p.unit,
                       "description": p.description} for p in self.parameters]  # fmt: skip
        if kind is not None:  # .npz, FITS: the description travels inside the file
            return {"format": f"{FORMAT}-{kind}", "version": 1, **self.run_key(), "parameters": parameters,
                    "gangal_version": __version__}  # fmt: skip
        return {"format": FORMAT, "version": 1, **self.run_key(), "parameters": parameters,
                "gangal_version": __version__, "shards": self.plan.shards()}  # fmt: skip

    def to_table(self) -> Table:
        """The parameter ranges drawn from, as an astropy :class:`~astropy.table.Table`.

        One column per parameter, in its unit (:attr:`Parameter.unit`), and the rows ``low``
        and ``high`` (column ``bound``); ``table.meta`` holds the simulator, the output, the
        number of images, the seed and how many images this call wrote.
        """
        from astropy.table import Column, Table

        meta = {"simulator": self.simulator, "out": str(self.out), "n": self.plan.n,
                "seed": self.plan.seed, "written": self.written}  # fmt: skip
        table = Table(meta=meta)
        table["bound"] = Column(["low", "high"], dtype=str)
        for p in self.parameters:
            table[p.name] = Column([p.low, p.high], unit=p.unit or None, description=p.description)
        return table

    def __getitem__(self, key: str) -> Any:
        """``summary["written"]``: the dict :func:`run_simulation` returned before it returned this."""
        legacy = {"out": str(self.out), "n": self.plan.n, "written": self.written,
                  "skipped": self.skipped, "files": list(self.files)}  # fmt: skip
        return legacy[key]


# ---- file layouts -------------------------------------------------------------------------
def _safetensors_header(count: int, image_shape: tuple, n_params: int, metadata: dict) -> bytes:
    image_bytes = count * int(np.prod(image_shape)) * 4
    header = {
        "__metadata__": {k: str(v) for k, v in metadata.items()},
        "images": {"dtype": "F32", "shape": [count, *image_shape], "data_offsets": [0, image_bytes]},
        "parameters": {
            "dtype": "F32",
            "shape": [count, n_params],
            "data_offsets": [image_bytes, image_bytes + count * n_params * 4],
        },
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def _npy_header(shape: tuple) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()


@dataclass
class _OutputFile:
    """One file being written: the chunks it holds and where their bytes go."""

    path: Path
    header: bytes
    first_image: int
    count: int
    image_bytes: int  # bytes per image; 0 when the file holds no images
    param_offset: int | None  # where parameters start inside the data, if the file holds them
    chunks_left: int
    fd: int = -1
    tmp: Path | None = None

    def open(self) -> None:
        self.tmp = self.path.with_name(f".{self.path.name}.part")
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.pwrite(self.fd, self.header, 0)

    def write_chunk(self, start: int, images: np.ndarray, params: np.ndarray | None) -> None:
        if self.image_bytes:
            offset = len(self.header) + (start - self.first_image) * self.image_bytes
            _pwrite_all(self.fd, memoryview(images).cast("B"), offset)
        if self.param_offset is not None:
            offset = len(self.header) + self.param_offset + (start - self.first_image) * params.shape[1] * 4
            _pwrite_all(self.fd, memoryview(params).cast("B"), offset)

    def finish(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)
        os.replace(self.tmp, self.path)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


# ---- the run ------------------------------------------------------------------------------
class _Writer:
    """Simulates chunks on a thread pool and routes each to its file."""

    def __init__(self, simulator, plan, files, chunk_files, params):
        self.simulator, self.plan, self.files = simulator, plan, files
        self.chunk_files, self.params = chunk_files, params
        self.lock = threading.Lock()

    def run_chunk(self, chunk: int) -> int:
        start, stop = self.plan.chunk_range(chunk)
        generator = chunk_generator(self.plan.seed, chunk)
        if self.params is not None:
            params = torch.from_numpy(self.params[start:stop])  # float32, made so in run_simulation
        else:
            params = self.simulator.sample_uniform(stop - start, generator=generator)
        images = call_simulator(
            self.simulator,
            params,
            generator=generator,
            where=f"chunk {chunk}",
            span=f"images {start}-{stop - 1}",
        )
        params_np = np.ascontiguousarray(params.numpy(), dtype=np.float32)
        # a view (transposed, sliced) or a tensor that needs grad is still a valid answer
        images_np = images.detach().contiguous().numpy()
        for index in self.chunk_files(chunk):
            file = self.files[index]
            with self.lock:
                if file.fd < 0:
                    file.open()
            file.write_chunk(start, images_np, params_np)
            with self.lock:
                file.chunks_left -= 1
                done = file.chunks_left == 0
            if done:
                file.finish()
        return stop - start

    def abandon(self) -> None:
        for file in self.files:
            if file.fd >= 0 and file.chunks_left > 0:
                os.close(file.fd)
                file.fd = -1
                if file.tmp is not None and file.tmp.exists():
                    file.tmp.unlink()


def _layout(simulator, plan, out, shard):
    """Files to write, a map chunk -> indices of its files, and the chunks to run."""
    image_bytes = int(np.prod(simulator.image_shape)) * 4
    n_params = len(simulator.parameters)
    if file_format(out) == "npy":  # images and parameters in two .npy files, both streamed
        images = _OutputFile(
            out, _npy_header((plan.n, *simulator.image_shape)), 0, plan.n, image_bytes, None, plan.n_chunks
        )
        params = _OutputFile(
            out.with_suffix(".parameters.npy"),
            _npy_header((plan.n, n_params)),
            0,
            plan.n,
            0,
            0,
            plan.n_chunks,
        )
        return [images, params], (lambda chunk: (0, 1)), list(range(plan.n_chunks))
    per_shard = plan.shard_size // plan.chunk_size
    files, chunks = [], []
    index = {}
    for i, spec in enumerate(plan.shards()):
        path = out / spec["file"]
        if shard is not None and i % shard[1] != shard[0]:
            continue
        if path.exists():  # finished earlier: files appear only once complete
            continue
        meta = {"simulator": simulator.name, "start": spec["start"], "seed": plan.seed}
        header = _safetensors_header(spec["count"], simulator.image_shape, n_params, meta)
        index[i] = len(files)
        files.append(
            _OutputFile(
                path, header, spec["start"], spec["count"], image_bytes, spec["count"] * image_bytes, 0
            )
        )
        first = spec["start"] // plan.chunk_size
        last = -(-(spec["start"] + spec["count"]) // plan.chunk_size)
        files[-1].chunks_left = last - first
        chunks.extend(range(first, last))
    return files, (lambda chunk: (index[chunk // per_shard],)), chunks


def run_simulation(
    simulator: Simulator,
    *,
    n: int,
    out: str | os.PathLike,
    seed: int = 0,
    params: np.ndarray | None = None,
    shard: tuple[int, int] | None = None,
    chunk_size: int = 4096,
    shard_size: int = 65536,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> SimulationSummary:
    """Simulate ``n`` images and write them to ``out``.

    Parameters
    ----------
    simulator : Simulator
        The simulator to run.
    n : int
        Number of images.
    out : path-like
        A path ending in ``.npy`` gets one ``(n, C, H, W)`` float32 array, with the
        parameters in ``<stem>.parameters.npy`` and a description in ``<stem>.json``;
        one ending in ``.npz`` or ``.fits`` (``.fit``, ``.fts``) one file holding all three
        (:func:`~gangal_core.io.writers.write_image_file`); a path without a suffix, or an
        existing folder, a folder of safetensors shards (tensors ``images`` and
        ``parameters``) described by ``manifest.json``.  Any other suffix is refused.
    seed : int, optional
        Seed of the whole run.
    params : numpy.ndarray, optional
        ``(n, P)`` parameters to simulate; by default drawn uniformly within the
        declared ranges.
    shard : (int, int), optional
        ``(i, N)``: write only the shards ``s`` with ``s % N == i`` (a batch-system job).
    chunk_size, shard_size : int, optional
        Images per random-number chunk and per shard file; ``shard_size`` must be a
        multiple of ``chunk_size``.  Both are part of the run's identity.
    workers : int, optional
        Threads; by default one per CPU core.
    progress : callable, optional
        Called with the number of images just finished.
    overwrite : bool, optional
        Replace an output file that holds another run, or files gangal did not write (refused
        by default).  A folder of shards is never replaced.

    Returns
    -------
    SimulationSummary
        The run and what this call wrote (``summary["written"]`` works as the dict it once was).

    Raises
    ------
    ConfigError
        A bad size or suffix, or an ``out`` that holds another run.
    """
    out = Path(out)
    kind = output_kind(out)
    if n < 1 or chunk_size < 1 or shard_size < 1 or shard_size % chunk_size:
        raise ConfigError(
            f"need n >= 1 and shard_size a multiple of chunk_size; got n={n}, "
            f"chunk_size={chunk_size}, shard_size={shard_size}."
        )
    if params is not None and params.shape != (n, len(simulator.parameters)):
        raise ConfigError(f"params must have shape ({n}, {len(simulator.parameters)}), found {params.shape}.")
    if params is not None:
        params = np.ascontiguousarray(params, dtype=np.float32)  # the contract: float32 in
    if kind is not None and shard is not None:
        raise ConfigError(f"--shard needs a folder --out (shards are files); {out.name} is one file.")
    _check_disk_space(out, n, simulator, shard, copies=2 if kind in ("npz", "fits") else 1)
    plan = SimulationPlan(n=n, seed=seed, chunk_size=chunk_size, shard_size=shard_size)
    digest = None
    if params is not None:
        import hashlib

        digest = hashlib.sha256(np.ascontiguousarray(params, dtype=np.float32).tobytes()).hexdigest()
    summary = SimulationSummary(out, simulator.name, tuple(simulator.image_shape),
                                tuple(simulator.parameters), plan, digest)  # fmt: skip
    prepare_output(summary, overwrite=overwrite)
    streamed = out if kind is None else staging_path(out)  # a file appears, complete, at the end
    files, chunk_files, chunks = _layout(simulator, plan, streamed, shard)
    try:
        _run_chunks(_Writer(simulator, plan, files, chunk_files, params), chunks, workers, progress)
    except BaseException:
        if kind is not None:
            remove_staging(streamed)
        raise
    written = sum(f.count for f in files if f.image_bytes)
    summary = replace(summary, written=written, skipped=n - written if shard is None else None,
                      files=(str(out),) if kind is not None else
                      tuple(str(f.path) for f in files if f.image_bytes))  # fmt: skip
    if kind is None:
        fsync_dir(out)
    else:
        pack_output(summary, streamed)
    return summary


def _run_chunks(
    writer: _Writer, chunks: list[int], workers: int | None, progress: Callable[[int], None] | None
) -> None:
    """Simulate and write ``chunks`` on a pool of ``workers`` threads; a failure abandons unfinished files."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(chunks) or 1))
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    try:
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(writer.run_chunk, c) for c in chunks]
            try:
                for future in futures:
                    done = future.result()
                    if progress is not None:
                        progress(done)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    except BaseException:
        writer.abandon()
        raise
    finally:
        torch.set_num_threads(old_threads)


def _check_disk_space(out: Path, n: int, simulator: Simulator, shard: tuple[int, int] | None, *,
                      copies: int = 1) -> None:  # fmt: skip
    """Refuse, before anything is written or listed, a run whose files cannot fit on the disk.

    ``copies``: 2 for an ``.npz`` or FITS file, packed from a streamed copy at the end.
    """
    per_image = (int(np.prod(simulator.image_shape)) + len(simulator.parameters)) * 4 * copies
    needed = n * per_image // (shard[1] if shard else 1)
    where = next((p for p in (out, *out.parents) if p.exists()), Path.cwd())
    free = shutil.disk_usage(where).free
    if needed > free:
        raise ConfigError(
            f"-n {n}: {n:,} {simulator.name} images of {per_image:,} bytes need {needed:,} bytes"
            f"{' for this shard' if shard else ''}, and the disk holding {where} has {free:,} bytes free."
        )


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard i/N`` (``0 <= i < N``)."""
    try:
        i, total = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like i/N (e.g. 3/16), found {text!r}.") from None
    if not (total >= 1 and 0 <= i < total):
        raise ConfigError(f"--shard {text}: need 0 <= i < N.")
    return i, total
