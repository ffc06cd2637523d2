"""What KS statistic a perfect generator scores against a held-out set of a given size.

    python benchmarks/ks_floor.py [--held-out 200] [--generated 1000] [--trials 4000]

Issue 18 measures 1,000 generated galaxies against 200 held-out ones and asks for KS <= 0.10
on each of four isophote quantities.  Drawing both sets from one continuous distribution gives
the statistic's spread when the generator is exact (and that of the Wasserstein distance
over the real standard deviation, W/std, for a normal quantity): its mean, its 95th percentile, and how
often it stays within the target, for one quantity and for four independent ones.  (The
Kolmogorov distribution does not depend on the distribution sampled, so a normal serves.)
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", type=int, default=200)
    parser.add_argument("--generated", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--target", type=float, default=0.10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ks, w = np.empty(args.trials), np.empty(args.trials)
    for i in range(args.trials):
        real, fake = rng.normal(size=args.held_out), rng.normal(size=args.generated)
        ks[i] = stats.ks_2samp(real, fake).statistic
        w[i] = stats.wasserstein_distance(real, fake) / real.std()
    within = float((ks <= args.target).mean())
    print(f"{args.generated} generated against {args.held_out} held out, {args.trials} trials:")
    p95 = np.quantile(ks, 0.95)
    print(f"  KS mean {ks.mean():.3f}, median {np.median(ks):.3f}, 95th percentile {p95:.3f}")
    print(f"  P(KS <= {args.target}) = {within:.3f} for one quantity, {within**4:.3f} for four independent")
    print(f"  W/std (normal): mean {w.mean():.3f}, 95th percentile {np.quantile(w, 0.95):.3f}")


if __name__ == "__main__":
    main()
