"""How well the low-signal circle's true images can pin the brightness down, at best.

    python benchmarks/lowsignal_floor.py [--seeds 0 1 2] [--n-true 2000] [--bootstrap 500]

Case (c) of issue 17 asks for the brightness ``b ~ N(0.25, 0.05)`` of a ring under white noise
of standard deviation 0.5 within 0.15 sigma (mean) and 0.75-1.35 (spread).  This script asks
whether the 2,000 true images hold that information at all, with an estimator no calibration
can beat: one told every image's true ring geometry (x0, y0, r) and noise level n.

- Each image's brightness by the matched filter of its own ring profile ``R`` (the simulator at
  ``b = 1, n = 0``): ``b_i = sum(R x) / sum(R R)``, unbiased, with noise variance
  ``n_i^2 / sum(R R)``.
- The population by deconvolution: mean ``mean(b_i)``; variance ``var(b_i) - mean(noise var)``.
- Bootstrap over the images gives each figure's standard error.

``--exact`` adds the estimator that knows nothing per image: the population's maximum
likelihood with the simulator's exact likelihood (white Gaussian noise about the noiseless ring,
``log p(x|theta) = -|x - b R|^2 / (2 n^2) - npix log n``), every parameter's geometry and noise
integrated out per image.  The population is independent Gaussians in all five parameters;
each image's integral is estimated by importance sampling with ``--draws`` parameter sets
shared by all images, drawn from a Gaussian ``--widen`` times the truth's width; the inverse
Hessian of the log-likelihood gives the standard errors.  This is the floor for any method
that calibrates a Gaussian population from these 2,000 images.

Also printed: the drawn true parameters' own mean and spread against the truth (the sample's
share of any error).  The true sets are those ``gangal calibrate`` builds with the same options
(:func:`peers_sbi.true_set`).  Seconds on a CPU.
"""

from __future__ import annotations

import argparse

import torch
from peers_sbi import true_set


def matched_filter(
    case: str, n_true: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, tuple[float, float]]]:
    """Per-image brightness estimates, their noise variances, the true b's and the truth."""
    params, images, truth, sim = true_set(case, n_true, seed)
    names = sim.parameter_names()
    ib, i_n = names.index("b"), names.index("n")
    unit = params.clone()
    unit[:, ib], unit[:, i_n] = 1.0, 0.0  # the noiseless ring of brightness 1
    ring = sim.simulate(unit, generator=torch.Generator().manual_seed(0)).double().flatten(1)
    x = images.double().flatten(1)
    norm = (ring * ring).sum(1)
    estimate = (ring * x).sum(1) / norm
    noise_var = params[:, i_n].double() ** 2 / norm
    return estimate, noise_var, params[:, ib].double(), truth


def deconvolved(estimate: torch.Tensor, noise_var: torch.Tensor) -> tuple[float, float]:
    """The population's mean and spread, the per-image noise taken out of the variance."""
    var = float(estimate.var()) - float(noise_var.mean())
    return float(estimate.mean()), max(var, 0.0) ** 0.5


def exact_fit(case: str, n_true: int, seed: int, *, draws: int, widen: float) -> tuple[list[str], dict, list]:
    """The population maximum-likelihood fit with the exact likelihood (see the module docs)."""
    _, images, truth, sim = true_set(case, n_true, seed)
    names = sim.parameter_names()
    ib, i_n = names.index("b"), names.index("n")
    mu0 = torch.tensor([truth[k][0] for k in names], dtype=torch.float64)
    sd0 = torch.tensor([truth[k][1] for k in names], dtype=torch.float64) * widen
    g = torch.Generator().manual_seed(seed + 23)
    lo, hi = (b.double() for b in sim.bounds())
    theta = (mu0 + sd0 * torch.randn(draws, len(names), generator=g, dtype=torch.float64)).clamp(lo, hi)
    log_q0 = torch.distributions.Normal(mu0, sd0).log_prob(theta).sum(1)
    x = images.double().flatten(1)  # (N, npix)
    npix = x.shape[1]
    loglik = torch.empty(len(x), draws, dtype=torch.float32)
    for cols in torch.arange(draws).split(8192):
        unit = theta[cols].float().clone()
        unit[:, ib], unit[:, i_n] = 1.0, 0.0
        ring = sim.simulate(unit, generator=g).double().flatten(1)  # (K, npix), brightness 1
        b, n = theta[cols, ib], theta[cols, i_n]
        cross = x @ ring.T  # (N, K)
        quad = (x * x).sum(1, keepdim=True) - 2 * b * cross + (b * b * (ring * ring).sum(1))
        loglik[:, cols] = (-quad / (2 * n * n) - npix * n.log()).float()
    loglik = loglik.double() - log_q0  # importance weights' log, up to the population's density

    def negative(p: torch.Tensor) -> torch.Tensor:
        mu, log_sd = p[: len(names)], p[len(names) :]
        log_q = torch.distributions.Normal(mu, log_sd.exp()).log_prob(theta).sum(1)
        return -(torch.logsumexp(loglik + log_q, 1)).sum()

    p = torch.cat([mu0, (sd0 / widen).log()]).requires_grad_(True)
    opt = torch.optim.LBFGS([p], max_iter=200, line_search_fn="strong_wolfe", tolerance_change=1e-10)

    def closure():
        opt.zero_grad()
        value = negative(p)
        value.backward()
        return value

    opt.step(closure)
    hess = torch.autograd.functional.hessian(negative, p.detach())
    cov = torch.linalg.inv(hess)
    weights = torch.softmax(
        loglik + torch.distributions.Normal(p[: len(names)], p[len(names) :].exp()).log_prob(theta).sum(1), 1
    )
    ess = 1.0 / (weights * weights).sum(1)
    rows = []
    for j, name in enumerate(names):
        m, sd_true = truth[name]
        s = float(p[len(names) + j].detach().exp())
        se_m = float(cov[j, j].sqrt())
        se_s = s * float(cov[len(names) + j, len(names) + j].sqrt())
        rows.append((name, (float(p[j].detach()) - m) / sd_true, se_m / sd_true, s / sd_true, se_s / sd_true))
    return names, {"ess_median": float(ess.median()), "ess_min": float(ess.min())}, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-true", type=int, default=2000)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--exact", action="store_true", help="also the exact-likelihood population fit")
    parser.add_argument("--draws", type=int, default=100_000)
    parser.add_argument("--widen", type=float, default=2.0)
    args = parser.parse_args()
    print(
        "| seed | drawn b: dmu/sigma / sigma ratio | oracle matched filter: dmu/sigma / sigma ratio "
        "(bootstrap s.e.) | per-image noise / sigma |"
    )
    print("| ---: | --- | --- | ---: |")
    for seed in args.seeds:
        est, nv, b, truth = matched_filter("circle-lowsignal", args.n_true, seed)
        mu, sd = truth["b"]
        m, s = deconvolved(est, nv)
        g = torch.Generator().manual_seed(seed + 11)
        boot = []
        for _ in range(args.bootstrap):
            rows = torch.randint(0, len(est), (len(est),), generator=g)
            boot.append(deconvolved(est[rows], nv[rows]))
        bm, bs = torch.tensor(boot).T
        print(
            f"| {seed} | {(float(b.mean()) - mu) / sd:+.3f} / {float(b.std()) / sd:.3f} "
            f"| {(m - mu) / sd:+.3f} ({float(bm.std()) / sd:.3f}) "
            f"/ {s / sd:.3f} ({float(bs.std()) / sd:.3f}) "
            f"| {float(nv.mean()) ** 0.5 / sd:.2f} |"
        )
    if not args.exact:
        return
    print(
        "\n| seed | exact-likelihood population fit: dmu/sigma (s.e.) / sigma ratio (s.e.), per parameter "
        "| importance samples per image: median (min) |"
    )
    print("| ---: | --- | --- |")
    for seed in args.seeds:
        _, ess, rows = exact_fit("circle-lowsignal", args.n_true, seed, draws=args.draws, widen=args.widen)
        cells = ", ".join(f"{n} {d:+.3f} ({e:.3f}) / {r:.3f} ({f:.3f})" for n, d, e, r, f in rows)
        print(f"| {seed} | {cells} | {ess['ess_median']:.0f} ({ess['ess_min']:.1f}) |")


if __name__ == "__main__":
    main()
