"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A training state is a tree of dicts, lists, tuples, tensors, numpy arrays and plain
values (numbers, strings, booleans, ``None``): networks' and optimisers' ``state_dict``,
random-number-generator states, loss histories.  :func:`save_checkpoint` stores every
tensor of the tree in one safetensors file and the tree itself, with each tensor
replaced by a reference, as JSON in the file's metadata.  :func:`load_checkpoint` reads
it back.  Neither runs code from the file: a checkpoint from someone else can at worst
be refused, with a message naming it.

The tree's JSON keeps what JSON alone would lose: tuples (``{"__tuple__": [...]}``),
dictionaries with keys that are not strings, such as an optimiser's per-parameter state
keyed by integers (``{"__dict__": [[key, value], ...]}``), and numpy arrays
(``{"__ndarray__": name}``).
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gangal_core.errors import GangalError

from .atomic import atomic_open

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "gangal-checkpoint/1"
_MARKERS = ("__tensor__", "__ndarray__", "__tuple__", "__dict__", "__float__")
_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


class CheckpointError(GangalError):
    """A checkpoint file is missing, damaged, or not a gangal checkpoint."""


def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"{where}: numpy arrays of Python objects cannot be checkpointed")
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": key}
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else {"__float__": repr(value)}  # JSON has no inf/nan
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _MARKERS for k in obj):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        return {
            "__dict__": [
                [_encode(k, tensors, f"{where} key"), _encode(v, tensors, f"{where}[{k!r}]")]
                for k, v in obj.items()
            ]
        }
    raise TypeError(f"{where}: a {type(obj).__name__} cannot be checkpointed (tensors and plain values only)")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        ((marker, value),) = obj.items()
        if marker == "__tensor__":
            return tensors[value]
        if marker == "__ndarray__":
            return tensors[value].numpy()
        if marker == "__tuple__":
            return tuple(_decode(v, tensors) for v in value)
        if marker == "__float__":
            return float(value)
        if marker == "__dict__":
            return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in value}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list | tuple) else key


def save_checkpoint(path: str | os.PathLike, state: Any, *, metadata: dict[str, Any] | None = None) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename).

    Parameters
    ----------
    path : path-like
        Destination, conventionally ``checkpoint.safetensors``; its folder must exist.
    state : tree
        Dicts, lists, tuples, tensors, numpy arrays and plain values.
    metadata : dict, optional
        Extra JSON-serialisable facts stored beside the tree (e.g. the iteration).

    Raises
    ------
    TypeError
        If the tree holds anything else (a function, an arbitrary object).
    """
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors, "state")
    header = {"format": CHECKPOINT_FORMAT, "tree": json.dumps(tree, allow_nan=False)}
    if metadata:
        header["metadata"] = json.dumps(metadata, allow_nan=False)
    data = save(tensors, metadata=header)
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def _refuse(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} cannot be read: {problem}. Delete it (or choose another --out) to start "
        "afresh, or point --resume at the run's own folder."
    )


def load_checkpoint(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    state : tree
        The tree as saved (tensors on the CPU).
    metadata : dict
        The ``metadata`` given to :func:`save_checkpoint` (empty if none).

    Raises
    ------
    CheckpointError
        If the file is missing, truncated, not safetensors, or not a gangal checkpoint;
        the message names the file and what is wrong.  Nothing in the file is executed.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _refuse(path, exc.strerror or str(exc)) from None
    if len(data) < 8:
        raise _refuse(path, f"it holds {len(data)} bytes, not a safetensors file")
    (n_header,) = struct.unpack("<Q", data[:8])
    if n_header > min(_MAX_HEADER, len(data) - 8):
        kind = "a pickle (torch.save) file" if data[:2] in (b"PK", b"\x80\x02") else "not a safetensors file"
        raise _refuse(path, f"its first bytes do not start a safetensors header ({kind}, or truncated)")
    try:
        header = json.loads(data[8 : 8 + n_header])
        meta = header.get("__metadata__") or {}
    except (ValueError, AttributeError, RecursionError) as exc:
        raise _refuse(path, f"its header is not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise _refuse(path, f"its metadata is a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise _refuse(path, f"format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    try:
        tensors = load(data)
        tree = json.loads(meta["tree"])
        extra = json.loads(meta["metadata"]) if "metadata" in meta else {}
        return _decode(tree, tensors), extra
    except (SafetensorError, KeyError, ValueError, TypeError, RecursionError) as exc:
        raise _refuse(path, f"it is damaged ({type(exc).__name__}: {exc})") from None
