"""Record seeded tiny runs of every command, and compare two recordings byte for byte.

A restructure must not change what gangal writes. Before moving anything::

    python benchmarks/behaviour_snapshot.py record benchmarks/out/snapshot-before

and after it::

    python benchmarks/behaviour_snapshot.py record benchmarks/out/snapshot-after
    python benchmarks/behaviour_snapshot.py compare benchmarks/out/snapshot-{before,after}

Each run goes through the ``gangal`` command line in a subprocess (the user's path), with small
iteration counts so the whole recording takes about two minutes on 2 cores. Every file written
is hashed: JSON and the JSON metadata of safetensors files are hashed after removing wall-clock
fields (keys naming seconds or a rate per second) and with the recording's folder
replaced by a placeholder, which differ between any two runs; everything else
(CSV, NPY, PNG, FITS, tensors) is hashed as raw bytes. ``compare`` lists every file that is
missing, new or different, and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

TINY_CALIBRATE = ["--iterations", "30", "--pretrain-iterations", "30", "--n-true", "300",
                  "--n-samples", "500", "--batch-size", "32", "--no-progress", "--seed", "3"]  # fmt: skip
TINY_CHAIN = ["--data", "synthetic", "--data-option", "n=48", "--width", "4", "--batch-size", "16,16",
              "--no-progress", "--epochs", "2,1", "--seed", "5"]  # fmt: skip


def runs(root: Path) -> list[tuple[str, list[str]]]:
    """The commands recorded, each ``(name, gangal arguments)``; outputs go under ``root``."""
    r = str(root)
    params_csv = root / "params.csv"
    params_csv.write_text("m,x0,c,xsteps\n0.5,9.0,0.5,8.0\n1.5,10.0,0.25,10.0\n2.0,11.5,0.8,7.5\n")
    return [
        ("simulate-npy", ["simulate", "-s", "circle", "-n", "300", "--seed", "2", "--out", f"{r}/sim.npy"]),
        ("simulate-shards", ["simulate", "-s", "polynomial", "-n", "300", "--seed", "2",
                             "--shard-size", "128", "--chunk-size", "64", "--out", f"{r}/sim-shards"]),
        ("simulate-params", ["simulate", "-s", "polynomial", "--params", str(params_csv),
                             "--out", f"{r}/sim-params.npy"]),
        ("pretrain-likelihood", ["pretrain", "-s", "polynomial", "--iterations", "30", "--batch-size", "32",
                                 "--seed", "4", "--no-progress", "--out", f"{r}/emu-likelihood"]),
        ("pretrain-paper", ["pretrain", "-s", "circle", "--recipe", "paper", "--iterations", "20",
                            "--batch-size", "32", "--seed", "4", "--no-progress", "--out", f"{r}/emu-paper"]),
        ("calibrate-polynomial-default", ["calibrate", "-s", "polynomial", *TINY_CALIBRATE,
                                          "--out", f"{r}/cal-poly-default"]),
        ("calibrate-polynomial-paper", ["calibrate", "-s", "polynomial", *TINY_CALIBRATE, "--recipe", "paper",
                                        "--pretrain-recipe", "paper", "--out", f"{r}/cal-poly-paper"]),
        ("calibrate-circle-default", ["calibrate", "-s", "circle", *TINY_CALIBRATE,
                                      "--out", f"{r}/cal-circle-default"]),
        ("calibrate-circle-paper", ["calibrate", "-s", "circle", *TINY_CALIBRATE, "--recipe", "paper",
                                    "--pretrain-recipe", "paper", "--discriminator-input", "emulated",
                                    "--out", f"{r}/cal-circle-paper"]),
        ("calibrate-pretrained", ["calibrate", "-s", "polynomial", *TINY_CALIBRATE,
                                  "--emulator", f"{r}/emu-likelihood", "--out", f"{r}/cal-pretrained"]),
        ("emulate", ["emulate", "--emulator", f"{r}/emu-likelihood", "--params", str(params_csv),
                     "--seed", "6", "--out", f"{r}/emulated.npy"]),
        ("train", ["train", *TINY_CHAIN, "--out", f"{r}/chain"]),
        ("sample", ["sample", "--model", f"{r}/chain", "-n", "6", "--seed", "7", "--fits",
                    "--out", f"{r}/samples"]),
        ("sample-dcgan", ["sample", "--chain", "dcgan", "--model", f"{r}/chain", "-n", "4", "--seed", "7",
                          "--out", f"{r}/samples-64"]),
        ("evaluate", ["evaluate", "--real", "synthetic", "--real-option", "n=40", "--generated",
                      f"{r}/samples", "-n", "6", "--n-closest", "2", "--no-progress",
                      "--out", f"{r}/evaluation"]),
    ]  # fmt: skip


def _is_clock(key: str) -> bool:
    return "seconds" in key or "per_second" in key


def _normalise(tree):
    """A JSON tree without wall-clock fields."""
    if isinstance(tree, dict):
        return {k: ("<wall time>" if _is_clock(k) else _normalise(v)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_normalise(v) for v in tree]
    return tree


def _json_hash(text: str | bytes) -> str:
    tree = _normalise(json.loads(text))  # key order kept: a reordered document is a different file
    return hashlib.sha256(json.dumps(tree).encode()).hexdigest()


def file_hash(path: Path, root: Path) -> str:
    """sha256 of a file, with wall-clock fields removed from JSON and safetensors metadata.

    The run's own folder, which JSON files name, is replaced by ``<root>`` first.
    """
    data = path.read_bytes().replace(str(root).encode(), b"<root>")
    if path.suffix == ".json":
        return _json_hash(data)
    if path.suffix == ".safetensors":
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + size])
        meta = header.pop("__metadata__", {}) or {}
        meta = {k: _json_hash(v) if v[:1] in "{[" else v for k, v in meta.items()}
        digest = hashlib.sha256(json.dumps([header, meta], sort_keys=True).encode())
        digest.update(data[8 + size :])
        return digest.hexdigest()
    return hashlib.sha256(data).hexdigest()


def record(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=False)
    out = root / "runs"
    out.mkdir()
    env = {**os.environ, "COLUMNS": "100", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    timings = {}
    for name, args in runs(out):
        start = time.perf_counter()
        proc = subprocess.run(["gangal", *args], capture_output=True, text=True, env=env)
        timings[name] = round(time.perf_counter() - start, 2)
        (root / f"{name}.log").write_text(proc.stdout + proc.stderr)
        print(f"{name:32s} exit {proc.returncode}  {timings[name]:6.1f} s", flush=True)
        if proc.returncode != 0:
            sys.exit(f"{name} failed:\n{proc.stdout}\n{proc.stderr}")
    manifest = {
        str(p.relative_to(out)): file_hash(p, out)
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.endswith(".part")
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (root / "root.txt").write_text(f"{out}\n")  # the folder the files name, if the recording moves
    (root / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    print(f"{len(manifest)} files hashed in {root / 'manifest.json'}")


def _hashes(root: Path) -> dict[str, str]:
    """The recording's file hashes, computed afresh from its runs (so a changed hash rule applies)."""
    out = root / "runs"
    if not out.is_dir():
        return json.loads((root / "manifest.json").read_text())
    recorded = Path((root / "root.txt").read_text().strip()) if (root / "root.txt").is_file() else out
    return {str(p.relative_to(out)): file_hash(p, recorded)
            for p in sorted(out.rglob("*")) if p.is_file() and not p.name.endswith(".part")}  # fmt: skip


def compare(before: Path, after: Path) -> int:
    a, b = _hashes(before), _hashes(after)
    missing = sorted(set(a) - set(b))
    new = sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    for label, names in (("missing", missing), ("new", new), ("different", changed)):
        for name in names:
            print(f"{label:9s} {name}")
    same = len(set(a) & set(b)) - len(changed)
    print(
        f"{same} of {len(a)} files identical; {len(missing)} missing, {len(new)} new, "
        f"{len(changed)} different"
    )
    return 1 if missing or new or changed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("record").add_argument("folder", type=Path)
    cmp = sub.add_parser("compare")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.what == "record":
        record(args.folder)
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
