"""The isophote evaluator's fast path against photutils (the reference) on the same images.

    python benchmarks/isophote_agreement.py --data galaxyzoo:/work/shared/data/galaxyzoo2-sample --n 200
    python benchmarks/isophote_agreement.py --data synthetic --n 200

Images are read from the data source, resampled by nearest neighbour to ``--resolution``
(default 128) as ``gangal sample`` and the chained GAN's training data are, scaled to
``[0, 1]`` (``uint8 / 255``) and reduced to one band by summing the channels (the
evaluation framework's default).  Both methods measure the same images:

- ``photutils``: upscaled to ``--upscale`` (512), a process pool of ``--workers``;
  reported as CPU seconds per image in a worker and wall seconds per image of the pool;
- ``fast``: batched torch fitter with ``--workers`` threads; images per second (wall,
  preparation included, best of ``--repeats``), also at 64x64 (the same images resampled).

Prints (and with ``--out`` writes) JSON: the median agreement of the four quantities over
the images both methods measured (angle over reference ellipticity > 0.2, modulo 180
degrees; sma and flux relative), both failure rates with their reasons, the timings, and
for sources with a truth table (``synthetic``) both methods' errors against the truth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from gangal_isophote import IsophoteEvaluator

from gangal_core.data.sources import downscale_nearest, open_data_source
from gangal_core.evaluation.evaluator import Measurements


def load(spec: str, n: int, offset: int, resolution: int, seed: int) -> tuple[np.ndarray, dict | None]:
    """``n`` images from ``offset`` as one band ``(n, resolution, resolution)``, and their truth."""
    options: dict[str, Any] = {"n": offset + n, "seed": seed} if spec.split(":")[0] == "synthetic" else {}
    source = open_data_source(spec, **options)
    if len(source) < offset + n:
        raise SystemExit(f"{spec} holds {len(source)} images; asked for {n} from {offset}.")
    images = []
    for i in range(offset, offset + n):
        image = source.read(i)
        image = image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
        if image.shape[-1] != resolution:
            image = downscale_nearest(image, resolution)
        images.append(image.sum(0))
    truth = source.truth()
    truth = {k: np.asarray(v)[offset : offset + n] for k, v in truth.items()} if truth is not None else None
    return np.stack(images), truth


def angle_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b|`` in degrees for axes (modulo 180)."""
    return np.abs((a - b + 90.0) % 180.0 - 90.0)


def summary(x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    if not len(x):
        return {"n": 0}
    return {"median": float(np.median(x)), "p90": float(np.percentile(x, 90)), "n": len(x)}


def agreement(fast: Measurements, ref: Measurements) -> dict[str, Any]:
    both = fast.ok & ref.ok
    v, r = fast.values, ref.values
    elongated = both & (r["ellipticity"] > 0.2)
    return {
        "n_both_ok": int(both.sum()),
        "abs_d_ellipticity": summary(np.abs(v["ellipticity"] - r["ellipticity"])[both]),
        "abs_d_angle_deg_ellipticity_gt_0.2": summary(angle_difference(v["angle"], r["angle"])[elongated]),
        "rel_d_sma": summary(np.abs(v["sma"] / r["sma"] - 1.0)[both]),
        "rel_d_flux": summary(np.abs(v["flux"] / r["flux"] - 1.0)[both]),
        "identical_sma_fraction": float(np.mean(np.abs(v["sma"] / r["sma"] - 1.0)[both] < 1e-3)),
    }


def failures(m: Measurements) -> dict[str, Any]:
    return {"rate": m.failure_rate, "reasons": dict(Counter(str(s) for s in m.status[~m.ok]))}


def recovery(m: Measurements, truth: dict[str, np.ndarray]) -> dict[str, Any]:
    """Errors against the truth, over all measured galaxies and over those resolved (hlr >= 2 FWHM)."""
    out = {}
    resolved = truth["half_light_radius"] >= 2.0 * truth["psf_fwhm"]
    for label, use in (("all", m.ok), ("resolved", m.ok & resolved)):
        elongated = use & (truth["ellipticity"] > 0.2)
        out[label] = {
            "abs_d_ellipticity": summary(np.abs(m.values["ellipticity"] - truth["ellipticity"])[use]),
            "abs_d_angle_deg_ellipticity_gt_0.2": summary(
                angle_difference(m.values["angle"], truth["angle"])[elongated]
            ),
        }
    return out


def time_fast(images: np.ndarray, workers: int, batch_size: int, repeats: int) -> dict[str, float]:
    evaluator = IsophoteEvaluator(method="fast", workers=workers, batch_size=batch_size)
    best = min(_wall(lambda: evaluator.measure(images)) for _ in range(repeats))
    return {"images_per_second": len(images) / best, "seconds": best, "n": len(images)}


def _wall(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--data", default="synthetic", help="data source spec, SOURCE[:PATH]")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--offset", type=int, default=0, help="first image of the source")
    parser.add_argument("--seed", type=int, default=0, help="synthetic source's seed")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--upscale", type=int, default=512)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    images, truth = load(args.data, args.n, args.offset, args.resolution, args.seed)
    fast = IsophoteEvaluator(method="fast", workers=args.workers, batch_size=args.batch_size)
    fast_result = fast.measure(images)
    ref = IsophoteEvaluator(method="photutils", workers=args.workers, upscale=args.upscale)
    ref_result = ref.measure(images)
    small = np.stack([downscale_nearest(im, 64) for im in images])
    doc: dict[str, Any] = {
        "data": args.data, "n": args.n, "offset": args.offset, "resolution": args.resolution,
        "upscale": args.upscale, "workers": args.workers, "machine": platform.machine(),
        "agreement": agreement(fast_result, ref_result),
        "failures": {"photutils": failures(ref_result), "fast": failures(fast_result),
                     "fast_only": int((~fast_result.ok & ref_result.ok).sum()),
                     "photutils_only": int((fast_result.ok & ~ref_result.ok).sum())},
        "timing": {
            "photutils": {
                "cpu_seconds_per_image_per_core": ref.last_timing["cpu_seconds_per_fit"],
                "wall_seconds_per_image_pool": ref.last_timing["wall_seconds"] / args.n,
            },
            "fast": time_fast(images, args.workers, args.batch_size, args.repeats),
            "fast_64": time_fast(small, args.workers, args.batch_size, args.repeats),
        },
    }  # fmt: skip
    if truth is not None:
        doc["truth_recovery"] = {
            "photutils": recovery(ref_result, truth),
            "fast": recovery(fast_result, truth),
        }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
