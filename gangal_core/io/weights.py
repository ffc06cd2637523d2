"""Network weights in safetensors with a JSON metadata document that says how to rebuild them.

Every weight file gangal writes (an emulator, a GAN stage) is one safetensors file whose
metadata holds, under the key ``gangal``, a JSON document with a ``format`` string and
whatever rebuilds the networks.  One kind of file is one :class:`WeightsMetadata` subclass
(a pydantic model); :func:`save_weights` writes a file, :func:`read_metadata` reads and
validates its document, and :func:`load_checked` loads the weights into the networks the
document describes.

A weight file is input like any other: its metadata may describe a network that cannot be
built, or one of absurd size, and its tensors may not fit, hold another dtype, or NaN.
:func:`load_checked` builds the networks first on the ``meta`` device (no memory), compares
them with the names and shapes in the file's header, and only then builds them for real and
loads tensors that fit, of the networks' own dtypes and finite.  Every problem is an error
naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from pydantic import BaseModel, StrictStr, ValidationError, field_validator
from torch import nn

from gangal_core.errors import ConfigError, GangalError

from .atomic import atomic_open

__all__ = ["METADATA_KEY", "WeightsMetadata", "load_checked", "read_metadata", "save_weights"]

#: The safetensors metadata key under which gangal keeps its JSON document.
METADATA_KEY = "gangal"


class WeightsMetadata(BaseModel):
    """The JSON document a gangal weight file carries; subclass it once per kind of file.

    A subclass declares its fields (pydantic validates a file's document against them before
    anything is built) and two class constants: ``FORMAT``, the ``format`` string its files
    carry (``"gangal-emulator/1"``), and ``KIND``, what such a file is in words, for messages
    (``"a gangal emulator"``).
    """

    FORMAT: ClassVar[str]
    KIND: ClassVar[str]

    format: StrictStr

    @field_validator("format")
    @classmethod
    def _is_this_kind(cls, value: str) -> str:
        if value != cls.FORMAT:
            raise ValueError(f"expected {cls.FORMAT!r}")
        return value


Metadata = TypeVar("Metadata", bound=WeightsMetadata)


def save_weights(
    path: Path, networks: Mapping[str, nn.Module], kind: type[WeightsMetadata], fields: Mapping[str, Any]
) -> Path:
    """Write the networks' weights with the metadata document that rebuilds them, atomically.

    Parameters
    ----------
    path : Path
        Destination ``.safetensors`` file; its folder must exist.
    networks : mapping of str to nn.Module
        ``{prefix: module}``: the module's tensor ``name`` is stored as ``prefix + name``,
        as :func:`load_checked` reads it back.
    kind : type of WeightsMetadata
        The kind of file; its ``FORMAT`` is the document's first entry.
    fields : mapping
        The rest of the document, in the order written.  Values JSON cannot hold are
        written as their ``str()``.
    """
    from safetensors.torch import save

    tensors = {
        prefix + name: tensor.detach().cpu().contiguous()
        for prefix, module in networks.items()
        for name, tensor in module.state_dict().items()
    }
    document = json.dumps({"format": kind.FORMAT, **fields}, default=str)
    with atomic_open(path, "wb") as fh:
        fh.write(save(tensors, metadata={METADATA_KEY: document}))
    return path


def read_metadata(
    file: Path,
    kind: type[Metadata],
    *,
    label: str,
    error: type[GangalError] = ConfigError,
    missing: str = "",
) -> Metadata:
    """The metadata document of weight file ``file``, validated as ``kind``.

    Parameters
    ----------
    file : Path
        The ``.safetensors`` file.
    kind : type of WeightsMetadata
        What the file must be.
    label : str
        Starts every message (``"--emulator FILE"``).
    error : type of GangalError, optional
        The error raised for every problem.
    missing : str, optional
        What to do when there is no such file, added to that message.

    Raises
    ------
    GangalError
        ``error`` naming the file: it is missing, not safetensors, not ``kind`` (another
        format or no gangal metadata), or its document does not validate (each field and
        problem named).
    """
    if not file.is_file():
        raise error(f"{label}: no such file{'; ' + missing if missing else ''}.")
    document = _read_document(file, kind, label=label, error=error)
    try:
        return kind.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors()[:5]
        )
        raise error(f"{label}: its gangal metadata is damaged ({problems}).") from None
    except RecursionError:
        raise error(f"{label}: its gangal metadata is damaged (nested too deeply to check).") from None


def _read_document(file: Path, kind: type[WeightsMetadata], *, label: str, error: type[GangalError]) -> dict:
    """The JSON object under :data:`METADATA_KEY`, which must name ``kind``'s format."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as fh:
            text = (fh.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise error(f"{label}: not a readable safetensors file ({type(exc).__name__}: {exc}).") from None
    document: Any = None
    if text is None:
        found = "no gangal metadata"
    else:
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            found = f"gangal metadata that is not JSON ({type(exc).__name__}: {exc})"
        else:
            found = (
                f"format {document.get('format')!r}"
                if isinstance(document, dict)
                else f"gangal metadata that is a JSON {type(document).__name__}, not an object"
            )
    if not isinstance(document, dict) or document.get("format") != kind.FORMAT:
        expected = f"expected {kind.KIND}, metadata format {kind.FORMAT!r}"
        raise error(f"{label}: not {kind.KIND} ({expected}; found {found}).")
    return document


def load_checked(
    file: Path,
    build: Callable[[], dict[str, nn.Module]],
    *,
    label: str,
    error: type[GangalError] = ConfigError,
    ignore: tuple[str, ...] = (),
) -> dict[str, nn.Module]:
    """Build the networks ``build()`` returns, ``{prefix: module}``, and load ``file`` into them.

    The file's tensor ``prefix + name`` is the module's ``name`` (the longest matching prefix
    wins; ``""`` matches all).  Tensors whose names start with one of ``ignore`` are skipped.
    ``label`` (``"--emulator FILE"``) starts every message.
    """
    from safetensors import safe_open

    try:
        with torch.device("meta"):
            planned = build()
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise error(
            f"{label}: its metadata describes no network that can be built ({type(exc).__name__}: {exc})."
        ) from None
    wanted = {p + k: v for p, m in planned.items() for k, v in m.state_dict().items()}
    with safe_open(str(file), framework="pt") as fh:
        shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys() if not k.startswith(ignore)}
        missing = sorted(set(wanted) - set(shapes))
        unexpected = sorted(set(shapes) - set(wanted))
        wrong = [
            f"{k} is {list(shapes[k])}, expected {list(v.shape)}"
            for k, v in wanted.items()
            if k in shapes and shapes[k] != tuple(v.shape)
        ]
        if missing or unexpected or wrong:
            problems = [f"missing {', '.join(missing[:5])}"] if missing else []
            problems += [f"unexpected {', '.join(unexpected[:5])}"] if unexpected else []
            raise error(
                f"{label}: the weights do not fit the network its metadata describes "
                f"({'; '.join(problems + wrong[:5])})."
            )
        tensors = {k: fh.get_tensor(k) for k in wanted}
    for name, t in tensors.items():
        if t.dtype != wanted[name].dtype:
            raise error(f"{label}: tensor {name!r} holds {t.dtype}; the network's is {wanted[name].dtype}.")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise error(f"{label}: tensor {name!r} holds NaN or infinite values; the file is damaged.")
    networks = build()
    for prefix, module in networks.items():
        own = {
            k[len(prefix) :]: t
            for k, t in tensors.items()
            if max((p for p in networks if k.startswith(p)), key=len) == prefix
        }
        module.load_state_dict(own)
    return networks
