"""Simulator throughput of ``gangal simulate``: 10k, 100k and 1M images of each built-in.

Every figure is the wall time of the real command (``gangal simulate ...`` in a fresh
process, start-up included), best of ``--repeats`` runs, against baselines measured in
the same run:

* ``dd``: writing the same number of bytes with ``dd bs=16M`` (and ``conv=fsync`` on a
  real disk), i.e. the cost of the bytes alone;
* ``start-up``: ``gangal --version``, the cost of starting Python and importing torch.

Usage::

    python benchmarks/simulate_throughput.py --ram /dev/shm --disk benchmarks/out --repeats 2

Writes ``benchmarks/simulate_throughput.json`` and prints a Markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

PAPER_1M = {"polynomial": 213.798, "circle": 4773.626}  # Table III, Xeon E5-2698 v4, seconds
BYTES_PER_IMAGE = 28 * 28 * 4


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def best(cmd: list[str], target: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        shutil.rmtree(target, ignore_errors=True)
        target.unlink(missing_ok=True) if target.suffix else None
        times.append(timed(cmd))
    shutil.rmtree(target, ignore_errors=True)
    return min(times)


def dd_time(folder: Path, n_bytes: int, *, fsync: bool, repeats: int) -> float:
    target = folder / "gangal-dd-baseline"
    count = -(-n_bytes // (16 << 20))
    cmd = ["dd", "if=/dev/zero", f"of={target}", "bs=16M", f"count={count}"] + (
        ["conv=fsync"] if fsync else []
    )
    times = []
    for _ in range(repeats):
        target.unlink(missing_ok=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    target.unlink(missing_ok=True)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ram", type=Path, default=Path("/dev/shm"))
    parser.add_argument("--disk", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    args.disk.mkdir(parents=True, exist_ok=True)
    gangal = [sys.executable, "-m", "gangal_core"]
    startup = min(timed([*gangal, "--version"]) for _ in range(3))
    rows = []
    for sim in ("polynomial", "circle"):
        for n in args.sizes:
            for where, folder in (("ram", args.ram), ("disk", args.disk)):
                if where == "disk" and n != max(args.sizes):
                    continue
                out = folder / f"gangal-bench-{sim}-{n}"
                cmd = [
                    *gangal,
                    "simulate",
                    "--simulator",
                    sim,
                    "-n",
                    str(n),
                    "--seed",
                    "1",
                    "--out",
                    str(out),
                ]
                seconds = best(cmd, out, args.repeats)
                dd = dd_time(folder, n * BYTES_PER_IMAGE, fsync=where == "disk", repeats=args.repeats)
                rows.append(
                    {
                        "simulator": sim,
                        "n": n,
                        "where": where,
                        "seconds": seconds,
                        "images_per_s": n / seconds,
                        "dd_seconds": dd,
                        "ratio_to_dd": seconds / dd,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.processor() or ''}",
        "cpus": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "startup_seconds": startup,
        "peak_rss_mb_any_run": peak_rss_mb,
        "rows": rows,
    }
    Path("benchmarks/simulate_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nstart-up (gangal --version): {startup:.2f} s; peak RSS of any run: {peak_rss_mb:.0f} MB\n")
    print(
        "| simulator | images | output | gangal simulate (s) | images/s "
        "| dd same bytes (s) | ratio | paper (s) |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        paper = PAPER_1M[r["simulator"]] * r["n"] / 1_000_000
        print(
            f"| {r['simulator']} | {r['n']:,} | {r['where']} | {r['seconds']:.2f} "
            f"| {r['images_per_s']:,.0f} | "
            f"{r['dd_seconds']:.2f} | {r['ratio_to_dd']:.2f} | {paper:,.1f} |"
        )


if __name__ == "__main__":
    main()
