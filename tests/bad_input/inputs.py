"""Valid inputs to damage, and the strategies that damage them, shared by the bad-input tests.

Images in every format gangal reads, emulator and GAN-stage weight files, parameter-CSV cells and
TOML configuration lines.  Each builder makes its file afresh from a fixed seed, so that an
example's files never depend on the examples before it.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from astropy.io import fits
from hypothesis import strategies as st
from PIL import Image
from safetensors.numpy import save_file as save_numpy_file
from safetensors.torch import load as load_torch_bytes
from safetensors.torch import save as save_torch_bytes

from gangal_core import Parameter
from gangal_core import calibration as cal
from gangal_core import config as config_module
from gangal_core.calibration.networks import ConvCritic, ConvEmulator, ImageScale, ParameterEstimator
from gangal_core.chain.networks import DCGANGenerator
from gangal_core.chain.stages import save_network


# ---- images in every format read_images reads ----------------------------------------------------
def _rng() -> np.random.Generator:
    """A fresh generator per use, so that an example's files do not depend on the ones before it."""
    return np.random.default_rng(0)


#: Formats read_images reads, plus a folder of PNG files and a `gangal simulate` folder.
IMAGE_FORMATS = (".npy", ".npz", ".safetensors", ".fits", ".fits.gz", ".png", ".jpg", "folder", "simulation")
ARRAY_FORMATS = (".npy", ".npz", ".safetensors", ".fits", ".fits.gz")
MAGIC = {
    ".npy": b"\x93NUMPY\x01\x00",
    ".npz": b"PK\x03\x04",
    ".safetensors": (64).to_bytes(8, "little") + b'{"images":{',
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff",
    ".fits": b"SIMPLE  =                    T",
    ".fits.gz": b"\x1f\x8b\x08",
}


def _write_array(path: Path, arr: np.ndarray) -> Path:
    """Write ``arr`` in the format of ``path``'s suffix."""
    name = path.name
    if name.endswith(".npy"):
        np.save(path, arr, allow_pickle=arr.dtype == object)
    elif name.endswith(".npz"):
        np.savez(path, images=arr)
    elif name.endswith(".safetensors"):
        save_numpy_file({"images": np.ascontiguousarray(arr)}, str(path))
    elif name.endswith(".fits.gz"):
        buf = io.BytesIO()
        fits.PrimaryHDU(arr).writeto(buf)
        path.write_bytes(gzip.compress(buf.getvalue()))
    elif name.endswith(".fits"):
        fits.PrimaryHDU(arr).writeto(path)
    else:
        raise ValueError(name)
    return path


def _write_simulation(folder: Path, images: np.ndarray, *, n: int | None = None, shape: Any = None) -> Path:
    """A folder as `gangal simulate` writes it: manifest.json and one safetensors shard."""
    folder.mkdir(parents=True, exist_ok=True)
    count = len(images)
    save_numpy_file(
        {"images": np.ascontiguousarray(images), "parameters": np.zeros((count, 1), np.float32)},
        str(folder / "shard-00000.safetensors"),
    )
    n = count if n is None else n
    manifest = {
        "format": "gangal-simulation",
        "version": 1,
        "image_shape": list(images.shape[1:]) if shape is None else shape,
        "parameter_names": ["a"],
        "n": n,
        "shards": [{"file": "shard-00000.safetensors", "start": 0, "count": n}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _valid_images(where: Path, fmt: str) -> tuple[Path, Path]:
    """A readable file or folder of format ``fmt`` and the file in it to damage."""
    if fmt in ARRAY_FORMATS:
        path = _write_array(where / f"images{fmt}", _rng().normal(size=(3, 2, 8, 8)).astype(np.float32))
        return path, path
    if fmt in (".png", ".jpg"):
        path = where / f"image{fmt}"
        Image.fromarray(_rng().integers(0, 256, size=(16, 16), dtype=np.uint8)).save(path)
        return path, path
    if fmt == "folder":
        folder = where / "pictures"
        folder.mkdir()
        for k in range(2):
            Image.fromarray(_rng().integers(0, 256, size=(8, 8), dtype=np.uint8)).save(folder / f"{k}.png")
        return folder, folder / "1.png"
    folder = _write_simulation(where / "run", _rng().normal(size=(3, 1, 4, 4)).astype(np.float32))
    return folder, folder / "shard-00000.safetensors"


def _safetensors_bytes(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data


# ---- weight files: the emulator and the GAN stages -----------------------------------------------
def _split_safetensors(raw: bytes) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """gangal's JSON metadata and the tensors (copied out of ``raw``, never mapped from a file)."""
    size = int.from_bytes(raw[:8], "little")
    meta = json.loads(json.loads(raw[8 : 8 + size])["__metadata__"]["gangal"])
    return meta, dict(load_torch_bytes(raw))


def _weights_file(meta: Any, tensors: dict[str, torch.Tensor]) -> bytes:
    return save_torch_bytes(tensors, metadata={"gangal": json.dumps(meta)})


TOY_PARAMETERS = (Parameter("a", 0.0, 1.0), Parameter("b", 0.1, 1.0))


@functools.cache
def _emulator_parts() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A small, valid emulator file (with a parameter estimator) for simulator 'flaky', split up."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        emulator = cal.TrainedEmulator(
            network=ConvEmulator((1, 8, 8), 2, width=8, hidden=16),
            scale=ImageScale(offset=0.5, scale=0.6),
            simulator="flaky",
            parameters=[{"name": p.name, "low": p.low, "high": p.high, "unit": ""} for p in TOY_PARAMETERS],
            arch="conv",
            info={},
            estimator=ParameterEstimator(ConvCritic((1, 8, 8), width=8, encoding_size=16), 2),
        )
    with tempfile.TemporaryDirectory() as folder:
        return _split_safetensors(cal.save_emulator(emulator, Path(folder)).read_bytes())


@functools.cache
def _stage_parts() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A small, valid DCGAN stage file (generator-ema.safetensors), split up."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        generator = DCGANGenerator(resolution=64, width=2, channels=1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generator-ema.safetensors"
        save_network(path, generator, role="generator-ema", stage="dcgan", generator=generator.config)
        return _split_safetensors(path.read_bytes())


#: JSON values to put where a file's metadata expects something else.
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**18), 10**18),
    st.floats(-1e6, 1e6),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0]),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)
ABSURD = st.one_of(st.integers(10**13, 10**18), st.integers(-(10**6), 0))  # sizes no network can have
BAD_WEIGHT_DTYPES = (torch.int8, torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64)


WEIGHT_DAMAGES = (
    "garbage",
    "truncate",
    "empty",
    "no metadata",
    "metadata not JSON",
    "metadata not a dict",
    "drop key",
    "bad value",
    "random value",
    "weight dtype",
    "weight NaN",
    "weight shape",
    "missing weight",
    "extra weight",
)


@st.composite
def weight_damage(draw, parts: Callable[[], tuple[dict, dict]], fields: dict[str, Any]) -> dict[str, Any]:
    """A readable recipe for damaging a weight file; :func:`_damaged_weights` applies it.

    ``fields`` maps metadata keys the loader needs to strategies of bad values for them.
    """
    meta, tensors = parts()
    how = draw(st.sampled_from(WEIGHT_DAMAGES))
    recipe: dict[str, Any] = {"how": how}
    if how == "garbage":
        recipe["bytes"] = draw(st.binary(max_size=300))
    elif how == "truncate":
        recipe["keep"] = draw(st.floats(0, 1, exclude_max=True))
    elif how == "metadata not JSON":
        recipe["text"] = draw(st.text(max_size=30)) + "{"
    elif how == "metadata not a dict":
        recipe["value"] = draw(st.lists(JSON_SCALARS, max_size=3) | JSON_SCALARS)
    elif how == "drop key":
        recipe["key"] = draw(st.sampled_from(sorted(fields)))
    elif how == "bad value":
        recipe["key"] = key = draw(st.sampled_from(sorted(fields)))
        recipe["value"] = draw(fields[key])
    elif how == "random value":
        recipe["key"] = draw(st.sampled_from(sorted(meta)))
        recipe["value"] = draw(JSON_VALUES)
    elif how != "empty" and how != "no metadata":
        candidates = sorted(k for k, t in tensors.items() if how != "weight NaN" or t.is_floating_point())
        names = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3, unique=True))
        if how == "weight dtype":
            recipe["tensors"] = {name: draw(st.sampled_from(BAD_WEIGHT_DTYPES)) for name in names}
        elif how == "weight NaN":
            recipe["tensors"] = {
                name: (draw(st.floats(0, 1, exclude_max=True)), draw(st.sampled_from([math.nan, math.inf])))
                for name in names
            }
        elif how == "weight shape":
            shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
            recipe["tensors"] = {
                name: draw(shapes.filter(lambda s, n=name: s != tuple(tensors[n].shape))) for name in names
            }
        else:
            recipe["tensors"] = names
    return recipe


def _damaged_weights(parts: Callable[[], tuple[dict, dict]], recipe: dict[str, Any]) -> tuple[bytes, bool]:
    """The bytes of the damaged file, and whether it must be refused (else: refused or usable)."""
    meta, tensors = parts()
    meta, tensors = json.loads(json.dumps(meta)), dict(tensors)
    how = recipe["how"]
    if how == "garbage":
        return recipe["bytes"], True
    if how == "empty":
        return b"", True
    if how == "truncate":
        raw = _weights_file(meta, tensors)
        return raw[: int(recipe["keep"] * len(raw))], True
    if how == "no metadata":
        return save_torch_bytes(tensors), True
    if how == "metadata not JSON":
        return save_torch_bytes(tensors, metadata={"gangal": recipe["text"]}), True
    if how == "metadata not a dict":
        meta = recipe["value"]
    elif how == "drop key":
        del meta[recipe["key"]]
    elif how in ("bad value", "random value"):
        meta[recipe["key"]] = recipe["value"]
    elif how == "weight dtype":
        tensors.update({name: tensors[name].to(dtype) for name, dtype in recipe["tensors"].items()})
    elif how == "weight NaN":
        for name, (at, value) in recipe["tensors"].items():
            t = tensors[name].clone()
            t.view(-1)[int(at * t.numel())] = value
            tensors[name] = t
    elif how == "weight shape":
        tensors.update({name: torch.zeros(shape) for name, shape in recipe["tensors"].items()})
    elif how == "missing weight":
        for name in recipe["tensors"]:
            del tensors[name]
    else:
        tensors.update({name + ".extra": tensors[name].clone() for name in recipe["tensors"]})
    # without its "estimator" entry an emulator file is still a sound emulator (its critic unused)
    optional = how == "random value" or (how == "drop key" and recipe["key"] == "estimator")
    return _weights_file(meta, tensors), not optional


EMULATOR_FIELDS = {
    "format": st.one_of(st.text(max_size=10), JSON_SCALARS),
    "simulator": st.one_of(st.none(), st.integers(), st.lists(st.text(max_size=3), max_size=2)),
    "parameters": st.one_of(
        st.just([]),
        st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=4), "low": JSON_SCALARS, "high": JSON_SCALARS, "unit": st.just("")}
            ),
            min_size=1,
            max_size=3,
        ),
        JSON_SCALARS,
    ),
    "image_shape": st.one_of(
        st.lists(ABSURD, min_size=3, max_size=3),
        st.lists(st.integers(1, 9), min_size=0, max_size=5).filter(lambda s: len(s) != 3),
        JSON_SCALARS,
    ),
    "arch": st.one_of(st.text(max_size=8).filter(lambda s: s != "conv"), st.integers(), st.none()),
    "options": st.one_of(
        st.fixed_dictionaries({"width": ABSURD, "hidden": st.just(16)}),
        st.fixed_dictionaries({"width": st.just(8), "hidden": ABSURD}),
        st.dictionaries(st.sampled_from(["bogus", "depth", "Width"]), JSON_SCALARS, min_size=1, max_size=2),
        st.lists(JSON_SCALARS, max_size=2),
        st.text(max_size=4),
    ),
    "scale": st.one_of(
        st.fixed_dictionaries(
            {"offset": st.sampled_from([math.nan, math.inf, "x", None]), "scale": st.just(1.0)}
        ),
        st.fixed_dictionaries({"offset": st.just(0.0), "scale": st.sampled_from([0.0, -1.0, math.nan, "x"])}),
        st.dictionaries(st.sampled_from(["offset", "scale", "shift"]), JSON_SCALARS, max_size=2),
        JSON_SCALARS,
    ),
    "estimator": st.one_of(
        st.fixed_dictionaries({"arch": st.just("conv")}),
        st.fixed_dictionaries({"arch": st.just("conv"), "options": st.fixed_dictionaries({"width": ABSURD})}),
        st.fixed_dictionaries({"arch": st.text(max_size=5), "options": st.just({})}),
        JSON_SCALARS,
    ),
}


STAGE_FIELDS = {
    "format": st.one_of(st.text(max_size=10), JSON_SCALARS),
    "stage": st.one_of(st.text(max_size=8).filter(lambda s: s != "dcgan"), JSON_SCALARS),
    "generator": st.one_of(
        st.fixed_dictionaries({"resolution": st.just(64), "width": ABSURD, "channels": st.just(1)}),
        st.fixed_dictionaries({"resolution": st.just(64), "width": st.just(2), "channels": ABSURD}),
        st.fixed_dictionaries(
            {"resolution": st.integers(-5, 500).filter(lambda r: r not in (64, 128)), "width": st.just(2)}
        ),
        st.dictionaries(st.sampled_from(["bogus", "depth"]), JSON_SCALARS, min_size=1, max_size=2),
        st.lists(JSON_SCALARS, max_size=2),
        JSON_SCALARS,
    ),
}


# ---- parameter CSV cells -------------------------------------------------------------------------
def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(exclude_characters="\n\r\x00"), max_size=8),
    st.sampled_from(
        ["nan", "NaN", "inf", "-inf", "1e999", "", " ", "1,5", "0x10", "∞", "1e-999", "--1", "١٢"]
    ),
)


# ---- TOML configuration files --------------------------------------------------------------------
COMMAND_MODELS = {
    "simulate": config_module.SimulateConfig,
    "pretrain": config_module.PretrainConfig,
    "calibrate": config_module.CalibrateConfig,
    "emulate": config_module.EmulateConfig,
    "train": config_module.TrainConfig,
    "sample": config_module.SampleConfig,
    "evaluate": config_module.EvaluateConfig,
}


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes, which TOML shares, and DEL escaped as TOML wants."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml(value: Any) -> str:
    """``value`` as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_string(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _required(command: str, folder: Path) -> str:
    """TOML lines with the options ``command`` needs, writing only into ``folder``, and tiny sizes.

    Should gangal accept a bad line beside them, the command then fails or ends in seconds.
    """
    values = {
        "simulate": {"simulator": "toy8", "out": folder / "images.npy", "n": 4},
        "pretrain": {"simulator": "toy8", "out": folder / "emulator", "iterations": 1, "batch_size": 2},
        "calibrate": {
            "simulator": "toy8",
            "out": folder / "run",
            "iterations": 1,
            "pretrain_iterations": 1,
            "batch_size": 2,
            "n_true": 8,
            "n_samples": 2,
        },
        "emulate": {
            "emulator": folder / "emulator",
            "params": folder / "params.csv",
            "out": folder / "e.npy",
        },
        "train": {
            "out": folder / "model",
            "chain": ["dcgan"],
            "epochs": [1],
            "width": [2],
            "batch_size": [4],
            "data_option": ["n=8"],
        },
        "sample": {"model": folder / "model", "out": folder / "samples", "n": 2},
        "evaluate": {
            "real": str(folder / "real.npy"),
            "generated": str(folder / "generated.npy"),
            "out": folder / "evaluation",
            "n": 4,
        },
    }[command]
    return "\n".join(f"{k} = {_toml(str(v) if isinstance(v, Path) else v)}" for k, v in values.items())
