"""Screen a moment adjustment of a calibration's best match, read through its parameter estimator.

    python benchmarks/moment_adjust.py RUN [--n-true 2000] [--seed S] [--sims 2000] [--boot 40]

RUN is a ``gangal calibrate`` folder of a closure test (``calibration.json`` records the truth;
the true set is drawn again from it as the run drew it, with ``--seed`` and ``--n-true``).
The run's parameter estimator R (trained beside the emulator) reads each image as a point in
parameter space.  Simulations at the best match (``--sims``, as the predictive check makes)
give a local linear model of the readouts, ``R(T(u)) = A u + c + e`` with ``Cov(e) = N``
(``u`` the parameters on ``[-1, 1]``).  The true images' readouts then give the true
distribution's first two moments by deconvolution::

    mu = A^-1 (mean R(true) - c),   Sigma = A^-1 (Cov R(true) - N) A^-T

and the best-match samples are moved by the affine map that carries their mean and
covariance to these.  Prints the bar (|dmu|/sigma_true and the sigma ratio) before and after.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from budget_runs import load_run

from gangal_core.calibration.truth import make_true_set
from gangal_core.simulation.simulator import simulate_in_chunks


def readouts(emulator, images: torch.Tensor) -> np.ndarray:
    est = emulator.estimator.eval()
    out = []
    with torch.no_grad():
        for part in images.split(1024):
            out.append(est(emulator.scale.normalise(part.float())).double())
    return torch.cat(out).numpy()


def adjust(u_sim: np.ndarray, r_sim: np.ndarray, r_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.column_stack([u_sim, np.ones(len(u_sim))])
    coef, *_ = np.linalg.lstsq(X, r_sim, rcond=None)
    A, c = coef[:-1].T, coef[-1]
    N = np.cov((r_sim - X @ coef).T)
    Ainv = np.linalg.inv(A)
    mu = Ainv @ (r_true.mean(0) - c)
    S = Ainv @ (np.cov(r_true.T) - N) @ Ainv.T
    w, V = np.linalg.eigh((S + S.T) / 2)
    S = (V * np.clip(w, 1e-12, None)) @ V.T
    return mu, S


def bootstrap_errors(
    u_sim: np.ndarray, r_sim: np.ndarray, r_true: np.ndarray, half: np.ndarray, *, seed: int, repeats: int
) -> tuple[np.ndarray, np.ndarray]:
    """Standard errors of the adjusted means and sigmas (physical units): the simulations and the
    true images resampled ``repeats`` times."""
    rng, boot = np.random.default_rng(seed), []
    for _ in range(repeats):
        i, j = rng.integers(0, len(u_sim), len(u_sim)), rng.integers(0, len(r_true), len(r_true))
        m_b, s_b = adjust(u_sim[i], r_sim[i], r_true[j])
        boot.append(np.r_[m_b * half, np.sqrt(np.diag(s_b)) * half])
    boot = np.array(boot)
    P = u_sim.shape[1]
    return boot[:, :P].std(0), boot[:, P:].std(0)


def noise_share(u_sim: np.ndarray, r_sim: np.ndarray, r_true: np.ndarray) -> np.ndarray:
    """The readouts' noise about their linear model, as a share of the true readouts' variance."""
    X = np.column_stack([u_sim, np.ones(len(u_sim))])
    resid = r_sim - X @ np.linalg.lstsq(X, r_sim, rcond=None)[0]
    return resid.var(0) / r_true.var(0)


def bar(names, mean, std, truth) -> str:
    cells, ok = [], True
    for j, n in enumerate(names):
        m, s = truth[n]["true_mean"], truth[n]["true_std"]
        d, r = abs(mean[j] - m) / s, std[j] / s
        ok &= d <= 0.15 and 0.75 <= r <= 1.35
        cells.append(f"{n} {d:.3f}/{r:.2f}")
    return ("PASS " if ok else "fail ") + ", ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--n-true", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--boot", type=int, default=40)
    args = parser.parse_args()
    emulator, simulator, doc = load_run(args.run)
    ranges = {p["name"]: (p["low"], p["high"]) for p in emulator.parameters}
    names = list(emulator.parameter_names)
    truth = doc["parameters"]
    drawn_from = {n: (truth[n]["true_mean"], truth[n]["true_std"]) for n in names}
    _, true_images = make_true_set(simulator, drawn_from, n=args.n_true, seed=args.seed)
    with open(args.run / "samples.csv", newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
    header, body = rows[0], np.array(rows[1:], dtype=np.float64)
    samples = body[:, [header.index(n) for n in names]]
    gen = torch.Generator().manual_seed(12345 + args.seed)
    rows = torch.randint(0, len(samples), (args.sims,), generator=gen).numpy()
    pick = torch.from_numpy(samples[rows]).float()
    sims = simulate_in_chunks(simulator, pick, generator=gen, where="the adjustment's simulations")
    u_sim = emulator.to_unit(pick).double().numpy()
    r_sim, r_true = readouts(emulator, sims), readouts(emulator, true_images)
    mu_u, S_u = adjust(u_sim, r_sim, r_true)
    lo = np.array([ranges[n][0] for n in names])
    hi = np.array([ranges[n][1] for n in names])
    half = (hi - lo) / 2
    mu, sd = lo + (mu_u + 1) * half, np.sqrt(np.diag(S_u)) * half
    print(f"{args.run}")
    print("  best match:", bar(names, samples.mean(0), samples.std(0, ddof=1), truth))
    print("  adjusted:  ", bar(names, mu, sd, truth))
    # the affine map of the samples: mean and covariance carried to the adjusted ones
    u = 2 * (samples - lo) / (hi - lo) - 1
    C = np.cov(u.T)
    L0, L1 = np.linalg.cholesky(C), np.linalg.cholesky(S_u + 1e-12 * np.eye(len(names)))
    moved = mu_u + (u - u.mean(0)) @ (L1 @ np.linalg.inv(L0)).T
    phys = lo + (np.clip(moved, -1, 1) + 1) * half
    print("  moved:     ", bar(names, phys.mean(0), phys.std(0, ddof=1), truth))
    # how noisy the adjustment is: resample the simulations and the true images
    se_mean, se_sd = bootstrap_errors(u_sim, r_sim, r_true, half, seed=args.seed, repeats=args.boot)
    sigma = np.array([truth[n]["true_std"] for n in names])
    print(
        "  bootstrap s.e. of the adjusted mean / sigma_true:",
        ", ".join(f"{n} {v:.3f}" for n, v in zip(names, se_mean / sigma, strict=True)),
    )
    print(
        "  bootstrap s.e. of the adjusted sigma ratio:      ",
        ", ".join(f"{n} {v:.3f}" for n, v in zip(names, se_sd / sigma, strict=True)),
    )
    print(
        "  readout noise share of the true readouts' variance:",
        ", ".join(f"{n} {v:.2f}" for n, v in zip(names, noise_share(u_sim, r_sim, r_true), strict=True)),
    )


if __name__ == "__main__":
    main()
