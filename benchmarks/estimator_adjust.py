"""Screen the moment adjustment with a parameter estimator trained for it on the run's own banks.

    python benchmarks/estimator_adjust.py RUN [--seed S] [--epochs 20] [--width 16] [--sims 2000]

Session 18's ``moment_adjust.py`` read the true images through the estimator trained beside the
emulator, whose readouts of the low-signal ring were 82-98% noise: the deconvolved spreads came
with bootstrap errors of 0.19-0.38.  ``lowsignal_floor.py`` shows a reader that knows the ring's
geometry reaches 70% noise on the brightness.  This script trains a fresh estimator (a
``ConvCritic`` plus a linear head, mean squared error on the parameters scaled to [-1, 1]) for
``--epochs`` over every simulation the run stored (``simulations/round-*``: the budget's first
bank and rounds, no new simulator calls), then applies ``moment_adjust.adjust`` with
``--sims`` simulations at the run's best match (as many as the predictive check makes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from budget_runs import load_run
from moment_adjust import adjust, bar, bootstrap_errors, noise_share

from gangal_core.calibration.networks import ConvCritic, ParameterEstimator
from gangal_core.calibration.truth import make_true_set
from gangal_core.simulation.bank import load_bank
from gangal_core.simulation.simulator import simulate_in_chunks


def train_estimator(emulator, bank, *, epochs: int, width: int, seed: int) -> ParameterEstimator:
    """A fresh estimator fitted to the bank (a seeded tenth held out and reported)."""
    torch.manual_seed(seed)
    x = emulator.scale.normalise(bank.images)
    u = emulator.to_unit(bank.parameters).float()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    held, train = order[: len(x) // 10], order[len(x) // 10 :]
    est = ParameterEstimator(ConvCritic(tuple(emulator.image_shape), width=width), u.shape[1])
    steps = epochs * (len(train) // 128)
    opt = torch.optim.Adam(est.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    start = time.perf_counter()
    for _ in range(epochs):
        for rows in train[torch.randperm(len(train), generator=g)].split(128):
            if len(rows) < 128:
                continue
            loss = (est(x[rows]) - u[rows]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        mse = (est.eval()(x[held]) - u[held]).square().mean(0)
    print(
        f"  estimator: {steps} steps in {time.perf_counter() - start:.0f} s; held-out rmse (unit) "
        + ", ".join(f"{v:.3f}" for v in mse.sqrt().tolist())
    )
    return est


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-true", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--sims", type=int, default=2000)
    args = parser.parse_args()
    emulator, simulator, doc = load_run(args.run)
    banks = sorted((args.run / "simulations").glob("round-*"), key=lambda p: int(p.name.split("-")[1]))
    bank = load_bank(banks[0], simulator)
    for more in banks[1:]:
        bank = bank.concatenate(load_bank(more, simulator))
    print(f"{args.run}: {len(bank):,} stored simulations")
    emulator.estimator = train_estimator(emulator, bank, epochs=args.epochs, width=args.width, seed=args.seed)
    names, truth = list(emulator.parameter_names), doc["parameters"]
    _, true_images = make_true_set(
        simulator,
        {n: (truth[n]["true_mean"], truth[n]["true_std"]) for n in names},
        n=args.n_true,
        seed=args.seed,
    )
    samples = np.loadtxt(args.run / "samples.csv", delimiter=",", comments="#", skiprows=1)
    gen = torch.Generator().manual_seed(12345 + args.seed)
    pick = torch.from_numpy(
        samples[torch.randint(0, len(samples), (args.sims,), generator=gen).numpy()]
    ).float()
    sims = simulate_in_chunks(simulator, pick, generator=gen, where="the adjustment's simulations")

    def read(images: torch.Tensor) -> np.ndarray:
        return emulator.estimator(emulator.scale.normalise(images)).double().detach().numpy()

    u_sim = emulator.to_unit(pick).double().numpy()
    with torch.no_grad():
        r_sim, r_true = read(sims), read(true_images)
    mu_u, S_u = adjust(u_sim, r_sim, r_true)
    lo, hi = (b.numpy().astype(np.float64) for b in simulator.bounds())
    half = (hi - lo) / 2
    print("  best match:", bar(names, samples.mean(0), samples.std(0, ddof=1), truth))
    print("  adjusted:  ", bar(names, lo + (mu_u + 1) * half, np.sqrt(np.diag(S_u)) * half, truth))
    se_mean, se_sd = bootstrap_errors(u_sim, r_sim, r_true, half, seed=args.seed, repeats=40)
    sigma = np.array([truth[n]["true_std"] for n in names])
    print(
        "  bootstrap s.e. (mean / sigma_true; sigma ratio):",
        ", ".join(
            f"{n} {a:.3f}; {b:.3f}" for n, a, b in zip(names, se_mean / sigma, se_sd / sigma, strict=True)
        ),
    )
    print(
        "  readout noise share of the true readouts' variance:",
        ", ".join(f"{n} {v:.2f}" for n, v in zip(names, noise_share(u_sim, r_sim, r_true), strict=True)),
    )


if __name__ == "__main__":
    main()
