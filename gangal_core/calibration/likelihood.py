"""The population fit by the emulator's likelihood, corrected by the predictive check's simulations.

The emulator learns each pixel's mean and spread given the parameters: a Gaussian likelihood
``p(x | theta)`` that costs no simulator calls.  Where the true images say little about each
image's own parameters (a faint signal at the noise level), the adversarial calibration is not
an efficient estimator of the population: on the low-signal circle of ``benchmarks/RESULTS.md``
(issue 17) its brightness stays 0.2 sigma off with any number of simulations, where the exact
likelihood reads it to 0.05 sigma from the same 2,000 images.  This module fits the population
by maximum likelihood instead, with the generator's best match as the starting point:

1. :func:`fit_population`: independent Gaussians (truncated to the declared ranges), each true
   image's parameters integrated out by importance sampling with parameter sets shared by all
   images, drawn around the best match :data:`WIDEN` times wider.  The fit is trusted only
   when each image's integral rests on enough draws (:data:`MIN_EFFECTIVE_DRAWS`, the median
   effective sample size); where the images pin each parameter set down sharply (the paper's
   Tables I and II), :func:`fit_population_per_image` fits instead: each image's own
   maximum-likelihood parameters, draws about them shaped by the likelihood's curvature
   (Laplace), the same maximisation with each image's own draws.
2. :func:`likelihood_refinement`: the emulator is not the simulator, and its error biases the
   fit (on the low-signal circle, by -0.3 sigma in the brightness).  So the simulator makes
   the predictive check's images from the fitted population, the same fit is run on them,
   and its offset from the population they were drawn from is taken out (a parametric
   bootstrap).  The generator's samples are then moved and scaled, parameter by parameter, to
   the corrected mean and spread: the shape and correlations of the best match stay the
   generator's.  With sharp images the simulations are drawn from the generator's best match
   instead, and they calibrate, parameter by parameter, first the emulator's parameter
   estimator (:func:`estimator_calibration`), then, for the parameters it cannot read, the
   per-image fit.
3. :func:`estimator_calibration`: the regression network pretrained beside the emulator on
   every simulation reads each image's parameters directly.  On the simulations of known
   parameters, a straight line from the parameters to the estimates and the scatter about it
   are fitted; the true images' estimates, the line undone and the scatter taken out of their
   spread, give the population (regression calibration, a measurement-error deconvolution).
   It is taken where the estimator is sharp and unbiased on those simulations
   (:data:`ESTIMATOR_MAX_SLOPE_OFF`, :data:`ESTIMATOR_MAX_SCATTER`): on the polynomial it
   reads the line's sub-pixel offset to 0.1 of its spread per image, where inverting the
   emulator reads it to 1.2-1.5.  The per-image fit then takes a parameter only where its
   correction is small (:data:`MAX_CORRECTION` of its spread): where the emulator is that far
   off on the population, a first-order correction is not to be trusted.  A parameter
   neither can take keeps the generator's answer (its discriminator saw the simulator's
   images).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gangal_core.simulation.simulator import Simulator, simulate_in_chunks

from .emulator import TrainedEmulator

__all__ = [
    "DRAWS",
    "ESTIMATOR_MAX_SCATTER",
    "ESTIMATOR_MAX_SLOPE_OFF",
    "FROM_BEST_MATCH",
    "LOCAL_DRAWS",
    "MAX_CORRECTION",
    "MIN_EFFECTIVE_DRAWS",
    "MIN_LOCAL_EFFECTIVE_DRAWS",
    "ROUND_EFFECTIVE_DRAWS",
    "WIDEN",
    "EstimatorCalibration",
    "PopulationFit",
    "Refinement",
    "SharedDraws",
    "estimator_calibration",
    "fit_population",
    "fit_population_per_image",
    "images_are_sharp",
    "likelihood_refinement",
    "population_for_rounds",
    "screen_effective_draws",
]

#: Parameter sets shared by all images in the importance sampling.
DRAWS = 30_000
#: How much wider than the best match the shared draws are spread.
WIDEN = 1.5
#: The median effective draws per true image below which the fit is not trusted.
MIN_EFFECTIVE_DRAWS = 50
#: The effective draws per image a round's fit aims at (:func:`population_for_rounds`): three
#: times :data:`MIN_EFFECTIVE_DRAWS`.  That fit only places the next round's simulations, so it
#: takes as many shared draws as this needs by the screen, at most :data:`DRAWS`.
ROUND_EFFECTIVE_DRAWS = 150
#: Draws and images of the screen that skips the fit where it could not be trusted.
SCREEN_DRAWS, SCREEN_IMAGES = 3000, 500
#: Draws per image of the per-image fit (sharp images), about each image's own best parameters.
LOCAL_DRAWS = 128
#: How much wider than the likelihood's curvature says (Laplace) the per-image draws are spread.
LOCAL_WIDEN = 1.5
#: The median effective draws per image below which the per-image fit is not trusted.
MIN_LOCAL_EFFECTIVE_DRAWS = 10
#: Steps of the per-image maximum-likelihood search (Adam, all images at once).
LOCAL_STEPS = 120
#: The largest correction, in units of the simulated population's spread, with which a
#: parameter takes the per-image fit; above it the generator's best match stands for it.
MAX_CORRECTION = 0.1
#: The parameter estimator reads a parameter where the slope of its estimates on the true
#: parameters, over the simulations, is within this of 1 ...
ESTIMATOR_MAX_SLOPE_OFF = 0.1
#: ... and their scatter about that line is at most this fraction of the simulated spread.
ESTIMATOR_MAX_SCATTER = 0.5
#: The log-likelihood of a draw outside the declared ranges (finite, so that an image whose
#: draws all fall outside weighs them equally instead of making the fit NaN).
OUTSIDE = -1e30
#: The floor of an image's log-weights relative to its largest in the importance sampling: its
#: exponential (1.6e-38) is float32's smallest normal number, below which ``exp`` takes a slow
#: path on x86 CPUs (10-30 times slower, most of a fit's time with shared draws); such a weight
#: counts for nothing beside the largest, which is 1.
EXP_FLOOR = -87.0
#: ``simulated_from`` in the record of a fit whose simulations came from the generator's best
#: match (the per-image fit): they serve the predictive check whether or not it was adopted.
FROM_BEST_MATCH = "the generator's best match"


@dataclass
class PopulationFit:
    """A Gaussian population fitted by the emulator's likelihood.

    Attributes
    ----------
    mean, std : numpy.ndarray
        ``(P,)`` the population's mean and spread, physical units.
    mean_err, std_err : numpy.ndarray
        ``(P,)`` their standard errors (the inverse of the outer product of the images' scores).
    effective_draws : float
        The median over images of the importance sampling's effective sample size.
    seconds : float
        Wall time of the likelihoods and the fit.
    min_effective_draws : float
        The median effective draws below which the fit is not trusted.
    """

    mean: np.ndarray
    std: np.ndarray
    mean_err: np.ndarray
    std_err: np.ndarray
    effective_draws: float
    seconds: float
    min_effective_draws: float = MIN_EFFECTIVE_DRAWS

    def trusted(self) -> bool:
        """Whether each image's integral rests on enough draws (:attr:`min_effective_draws`)."""
        return bool(self.effective_draws >= self.min_effective_draws)


@dataclass
class SharedDraws:
    """The shared parameter sets (unit scale) and the log density they were drawn from."""

    unit: torch.Tensor
    log_proposal: torch.Tensor


@dataclass
class Refinement:
    """What :func:`likelihood_refinement` did, as ``calibration.json`` records it.

    Attributes
    ----------
    samples : numpy.ndarray or None
        The best-match samples moved to the corrected fit (None: not adopted).
    mean_err, std_err : numpy.ndarray or None
        Standard errors of the corrected mean and spread.
    simulated : torch.Tensor or None
        The images simulated from the fitted population (the predictive check's).
    record : dict
        The fit, its correction and why it was or was not adopted.
    """

    samples: np.ndarray | None = None
    mean_err: np.ndarray | None = None
    std_err: np.ndarray | None = None
    simulated: torch.Tensor | None = None
    record: dict[str, Any] = field(default_factory=dict)


def fit_population(
    emulator: TrainedEmulator,
    images: torch.Tensor,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    draws: int = DRAWS,
    widen: float = WIDEN,
    seed: int = 0,
    shared: SharedDraws | None = None,
) -> tuple[PopulationFit, SharedDraws]:
    """Fit a Gaussian population to ``images`` by the emulator's likelihood.

    Parameters
    ----------
    emulator : TrainedEmulator
        Its per-pixel Gaussian is the likelihood.
    images : torch.Tensor
        ``(n, C, H, W)`` images, the simulator's pixel units.
    mean, std : numpy.ndarray
        ``(P,)`` where to start, physical units: the shared draws are spread about ``mean``,
        ``widen`` times ``std``.
    draws : int, optional
        Parameter sets shared by all images.
    widen : float, optional
        Spread of the draws about ``mean``, in units of ``std``.
    seed : int, optional
        Seeds the draws.
    shared : optional
        The draws of an earlier fit, to fit other images with the same draws (the second value
        returned); ``mean``, ``std``, ``draws`` and ``widen`` then only start the optimiser.

    Returns
    -------
    (PopulationFit, draws)
    """
    started = time.perf_counter()
    start_mean, start_std = _unit_population(emulator, mean, std)
    if shared is None:
        shared = _draw(start_mean, widen * start_std, draws, seed=seed)
    loglik = _log_likelihood(emulator, images, shared.unit) - shared.log_proposal
    found = _maximise(loglik, shared.unit, start_mean, start_std)
    return _population_fit(emulator, *found, started=started, min_effective_draws=MIN_EFFECTIVE_DRAWS), shared


def fit_population_per_image(
    emulator: TrainedEmulator,
    images: torch.Tensor,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    draws: int = LOCAL_DRAWS,
    widen: float = LOCAL_WIDEN,
    steps: int = LOCAL_STEPS,
    seed: int = 0,
) -> PopulationFit:
    """Fit a Gaussian population to sharp ``images``, each image with its own draws.

    Where each image pins its parameters down, draws shared by all images miss most images'
    likely parameters (:func:`fit_population`).  Here each image gets ``draws`` of its own:

    1. its maximum-likelihood parameters under the emulator, from the best of
       :data:`SCREEN_DRAWS` draws about ``(mean, std)``, by ``steps`` of Adam on all images at
       once (within the declared ranges);
    2. the likelihood's curvature there (its Fisher information, by central differences);
    3. ``draws`` from a Student t (5 degrees of freedom) about the best parameters with that
       curvature's covariance, ``widen`` times wider;

    and the population is fitted by the same importance-sampled maximum likelihood.

    Parameters
    ----------
    emulator : TrainedEmulator
        Its per-pixel Gaussian is the likelihood.
    images : torch.Tensor
        ``(n, C, H, W)`` images, the simulator's pixel units.
    mean, std : numpy.ndarray
        ``(P,)`` where to start, physical units.
    draws : int, optional
        Draws per image.
    widen : float, optional
        Spread of the draws, in units of the likelihood's own.
    steps : int, optional
        Steps of the per-image search.
    seed : int, optional
        Seeds the draws.

    Returns
    -------
    PopulationFit
        Trusted when the median effective draws per image reach
        :data:`MIN_LOCAL_EFFECTIVE_DRAWS`.
    """
    started = time.perf_counter()
    start_mean, start_std = _unit_population(emulator, mean, std)
    x = _normalised(emulator, images)
    screen = _draw(start_mean, WIDEN * start_std, SCREEN_DRAWS, seed=seed)
    best = screen.unit[_log_likelihood(emulator, images, screen.unit).argmax(1)]
    best = _best_parameters(emulator, x, best, steps=steps)
    cov = _laplace_covariance(emulator, best)
    unit, log_proposal = _local_draws(best, cov, draws, widen=widen, seed=seed)
    loglik = _each_log_likelihood(emulator, x, unit) - log_proposal
    found = _maximise(loglik, unit, start_mean, start_std)
    return _population_fit(emulator, *found, started=started, min_effective_draws=MIN_LOCAL_EFFECTIVE_DRAWS)


def _population_fit(
    emulator: TrainedEmulator,
    mu: torch.Tensor,
    log_sd: torch.Tensor,
    cov: torch.Tensor,
    ess: torch.Tensor,
    *,
    started: float,
    min_effective_draws: float,
) -> PopulationFit:
    """The maximiser's unit-scale answer in physical units."""
    half = _width(emulator).double() / 2
    sd = log_sd.exp()
    return PopulationFit(
        mean=emulator.to_physical(mu.float()).double().numpy(),
        std=(sd * half).numpy(),
        mean_err=(cov.diagonal()[: len(mu)].sqrt() * half).numpy(),
        std_err=(cov.diagonal()[len(mu) :].sqrt() * sd * half).numpy(),
        effective_draws=float(ess.median()) if torch.isfinite(cov).all() else 0.0,
        seconds=time.perf_counter() - started,
        min_effective_draws=min_effective_draws,
    )


def _normalised(emulator: TrainedEmulator, images: torch.Tensor) -> torch.Tensor:
    """``images`` in the emulator's normalised pixel units, one row per image."""
    return ((images.float() - emulator.scale.offset) / emulator.scale.scale).flatten(1)


def _best_parameters(
    emulator: TrainedEmulator, x: torch.Tensor, start: torch.Tensor, *, steps: int
) -> torch.Tensor:
    """Each image's maximum-likelihood parameters (unit scale), by Adam from ``start``, in the box.

    Images are independent and Adam works element by element, so the search runs in chunks
    of images (:func:`_image_chunks`) with the same result as on all at once.
    """
    network, was_training = emulator.network, emulator.network.training
    network.eval()
    found = []
    for rows in _image_chunks(x.shape[0], x.shape[1]):
        u = start[rows].clone().requires_grad_(True)
        opt = torch.optim.Adam([u], lr=0.02)
        for _ in range(steps):
            mean, std = network(u)
            m, s = mean.flatten(1), std.flatten(1)
            loss = (0.5 * ((x[rows] - m) / s).square() + s.log()).sum()
            (u.grad,) = torch.autograd.grad(loss, u)  # the network's own weights get no gradient
            opt.step()
            with torch.no_grad():
                u.clamp_(-1, 1)
        found.append(u.detach())
    network.train(was_training)
    return torch.cat(found)


def _image_chunks(n: int, pixels: int) -> tuple[torch.Tensor, ...]:
    """Indices of ``n`` images of ``pixels`` each, in chunks of about 2 million pixels (all 2,000
    28x28 images at once; 128 images of 128x128), which bounds the network's activations."""
    return torch.arange(n).split(max(64, 2**21 // max(1, pixels)))


@torch.no_grad()
def _laplace_covariance(emulator: TrainedEmulator, u: torch.Tensor, *, step: float = 1e-3) -> torch.Tensor:
    """``(n, P, P)`` the inverse Fisher information of each image's likelihood at ``u`` (unit scale).

    For a Gaussian of mean ``m(u)`` and spread ``s(u)`` per pixel, the information is
    ``sum_pixels dm dm^T / s^2 + 2 dlog s dlog s^T``; the derivatives by central differences.
    """
    network = emulator.network.for_inference()
    P = u.shape[1]
    info = torch.empty(u.shape[0], P, P, dtype=torch.float64)
    for rows in _image_chunks(u.shape[0], math.prod(emulator.image_shape)):
        d_mean, d_log_std = [], []
        for p in range(P):
            shift = torch.zeros(P)
            shift[p] = step
            (m_up, s_up), (m_down, s_down) = network(u[rows] + shift), network(u[rows] - shift)
            d_mean.append((m_up - m_down).flatten(1) / (2 * step))
            d_log_std.append((s_up.log() - s_down.log()).flatten(1) / (2 * step))
        _, std = network(u[rows])
        jac, jac_s = torch.stack(d_mean, 2) / std.flatten(1).unsqueeze(2), torch.stack(d_log_std, 2)
        info[rows] = (jac.transpose(1, 2) @ jac + 2 * jac_s.transpose(1, 2) @ jac_s).double()
    return torch.linalg.inv(info + 1e-6 * torch.eye(P, dtype=torch.float64)).float()


def _local_draws(
    centre: torch.Tensor, cov: torch.Tensor, k: int, *, widen: float, seed: int, dof: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, k, P)`` Student-t draws about each image's ``centre`` with covariance ``widen**2 cov``,
    and their log density up to each image's own constant (which the maximisation ignores)."""
    gen = torch.Generator().manual_seed(seed + 83)
    n, P = centre.shape
    z = torch.randn(n, k, P, generator=gen)
    chi2 = torch.randn(n, k, dof, generator=gen).square().sum(2, keepdim=True)
    t = z / (chi2 / dof).sqrt()
    root = torch.linalg.cholesky(widen**2 * cov.double()).float()
    unit = centre.unsqueeze(1) + t @ root.transpose(1, 2)
    return unit, -0.5 * (dof + P) * torch.log1p(t.square().sum(2) / dof)


@torch.inference_mode()
def _each_log_likelihood(emulator: TrainedEmulator, x: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """``(n, k)`` ``log p(x_i | theta_ik)`` for each image's own draws; ``-inf`` outside the ranges."""
    n, k, P = unit.shape
    network = emulator.network.for_inference()
    flat, out = unit.reshape(-1, P), torch.empty(n * k)
    for rows in torch.arange(n * k).split(8192):
        mean, std = network(flat[rows])
        m, s = mean.flatten(1), std.flatten(1)
        out[rows] = -(0.5 * ((x[rows // k] - m) / s).square() + s.log()).sum(1)
    out = out.view(n, k)
    return out.masked_fill_(~(unit.abs() <= 1).all(2), OUTSIDE)


def screen_effective_draws(
    emulator: TrainedEmulator,
    images: torch.Tensor,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    seed: int = 0,
    draws: int = DRAWS,
) -> float:
    """The median effective draws per image a fit would start from, estimated cheaply.

    :data:`SCREEN_DRAWS` draws about the population ``(mean, std)`` (physical units), weighed
    by it for each of ``images`` (at most :data:`SCREEN_IMAGES` are used); the median
    effective sample size is scaled to a fit's ``draws``, as it grows in proportion.
    """
    centre, spread = _unit_population(emulator, mean, std)
    shared = _draw(centre, WIDEN * spread, SCREEN_DRAWS, seed=seed)
    loglik = _log_likelihood(emulator, images[:SCREEN_IMAGES], shared.unit) - shared.log_proposal
    log_pop = (-0.5 * ((shared.unit - centre) / spread).square()).sum(1)
    weights = torch.softmax(loglik + log_pop, 1)
    return float((1.0 / weights.square().sum(1)).median()) * draws / SCREEN_DRAWS


def images_are_sharp(
    emulator: TrainedEmulator, images: torch.Tensor, samples: np.ndarray, *, seed: int = 0, draws: int = DRAWS
) -> tuple[bool, float]:
    """Whether ``images`` pin each parameter set down, about the best-match ``samples``.

    :func:`likelihood_refinement` then fits each image on its own and reads the parameter
    estimator first; otherwise it fits with shared draws and reads no estimator.  Decided by
    :func:`screen_effective_draws` about the samples' mean and spread: sharp below
    :data:`MIN_EFFECTIVE_DRAWS`.

    Returns
    -------
    (bool, float)
        Whether the images are sharp, and the screen's effective draws per image.
    """
    centre, spread = samples.mean(0), samples.std(0, ddof=1)
    screen = screen_effective_draws(emulator, images, centre, spread, seed=seed, draws=draws)
    return screen < MIN_EFFECTIVE_DRAWS, screen


def population_for_rounds(
    emulator: TrainedEmulator, images: torch.Tensor, samples: np.ndarray, *, seed: int = 0, draws: int = DRAWS
) -> np.ndarray | None:
    """The best match a shared-draws fit reads from ``emulator``, about ``samples``, to lead a round.

    Where the images are faint (:func:`images_are_sharp` says no), the population comes from
    :func:`fit_population` and the generator's best match only says where to draw: a run in
    rounds then simulates about this fit's best match instead of continuing the generator
    (:func:`~gangal_core.calibration.rounds.calibrate_in_rounds`).  It is not corrected by
    simulations (:func:`likelihood_refinement` does that after the rounds): it only places them.

    The fit takes as many shared draws as :data:`ROUND_EFFECTIVE_DRAWS` effective draws per
    image need by the screen (at most ``draws``): about 12,700 of the final fit's 30,000 on the
    low-signal circle.  The best match is drawn from the fitted population itself, each
    parameter's Gaussian truncated to the declared ranges: not ``samples`` moved to it, whose
    shape (the correlations of a generator trained one round, up to 0.7 where the truth has
    none) the fit does not model, and whose images would then make the correction after the
    rounds measure that misfit instead of the emulator's bias (``benchmarks/RESULTS.md``,
    issue 17, session 30).

    Returns
    -------
    numpy.ndarray or None
        As many parameter sets as ``samples``, physical units; None where the images are sharp
        or the fit cannot be trusted.
    """
    sharp, screen = images_are_sharp(emulator, images, samples, seed=seed, draws=draws)
    if sharp:
        return None
    # the screen's effective draws grow in proportion to the draws: take what the aim needs
    needed = min(draws, max(SCREEN_DRAWS, math.ceil(draws * ROUND_EFFECTIVE_DRAWS / screen)))
    centre, spread = samples.mean(0), samples.std(0, ddof=1)
    fit, _ = fit_population(emulator, images, centre, spread, seed=seed, draws=needed)
    if not fit.trusted():
        return None
    from scipy.stats import truncnorm

    low, high = (b.double().numpy() for b in emulator._bounds())
    lo, hi = (low - fit.mean) / fit.std, (high - fit.mean) / fit.std
    rng = np.random.default_rng(seed + 15485863)
    draws_ = truncnorm.rvs(lo, hi, loc=fit.mean, scale=fit.std, size=samples.shape, random_state=rng)
    return np.clip(draws_, low, high).astype(samples.dtype)


def _unit_population(
    emulator: TrainedEmulator, mean: np.ndarray, std: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """A population's mean and spread on the unit scale of :meth:`TrainedEmulator.to_unit`."""
    centre = emulator.to_unit(torch.as_tensor(mean, dtype=torch.float32))
    return centre, (2 * torch.as_tensor(std, dtype=torch.float32) / _width(emulator)).clamp_min(1e-3)


def _width(emulator: TrainedEmulator) -> torch.Tensor:
    return torch.tensor([p["high"] - p["low"] for p in emulator.parameters], dtype=torch.float32)


def _draw(mean: torch.Tensor, std: torch.Tensor, n: int, *, seed: int) -> SharedDraws:
    """``n`` draws from N(mean, std) truncated to the unit box, by rejection, and their log density."""
    gen = torch.Generator().manual_seed(seed + 61)
    kept: list[torch.Tensor] = []
    found = 0
    for _ in range(1000):
        batch = mean + std * torch.randn(max(n, 1024), mean.numel(), generator=gen)
        batch = batch[(batch.abs() <= 1).all(1)]
        kept.append(batch)
        found += batch.shape[0]
        if found >= n:
            break
    unit = torch.cat(kept)[:n]
    if unit.shape[0] < n:  # the best match lies almost wholly outside the ranges: draw uniformly
        unit = torch.rand(n, mean.numel(), generator=gen) * 2 - 1
        return SharedDraws(unit, torch.zeros(n))
    # the truncation's normalisation is a constant: it cancels in the maximisation
    return SharedDraws(unit, torch.distributions.Normal(mean, std).log_prob(unit).sum(1))


@torch.inference_mode()
def _log_likelihood(emulator: TrainedEmulator, images: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """``log p(x_i | theta_k)`` under the emulator's per-pixel Gaussian, ``(n_images, n_draws)``."""
    x = _normalised(emulator, images)
    xx = x * x
    network = emulator.network.for_inference()
    out = torch.empty(x.shape[0], unit.shape[0])
    for cols in torch.arange(unit.shape[0]).split(2048):
        mean, std = network(unit[cols])
        m, s = mean.flatten(1).float(), std.flatten(1).float()
        w = s.pow(-2)
        const = (m * m * w).sum(1) + 2 * s.log().sum(1)
        out[:, cols] = -0.5 * (xx @ w.T - 2 * x @ (m * w).T + const)
    return out


def _maximise(
    loglik: torch.Tensor, unit: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The population (mean, log spread) maximising the importance-sampled likelihood; covariance; ESS.

    The likelihood of image ``i`` is ``log sum_k exp(loglik[i, k] + log_pop(theta_k))``; its
    gradient is the weights ``softmax_k(...)`` times the gradient of ``log_pop``, so each
    step makes one pass over the ``(images, draws)`` matrix, in place, outside autograd.  The
    covariance is the inverse of the outer product of the images' scores.  ``unit`` is
    ``(draws, P)`` shared by all images, or ``(images, draws, P)`` each image's own.
    """
    n, P = loglik.shape[0], unit.shape[-1]
    own = unit.dim() == 3
    weights = torch.empty_like(loglik)
    unit64 = unit.double()

    def log_population(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # kept within 100 times the declared ranges, where the images would say nothing anyway
        mu, log_sd = p[:P].clamp(-100, 100), p[P:].clamp(-12, 5)
        sd = log_sd.exp()
        # the population is truncated to the declared ranges, as the draws are: its normalisation
        mass = torch.special.ndtr((1 - mu) / sd) - torch.special.ndtr((-1 - mu) / sd)
        log_pop = -0.5 * ((unit64 - mu) / sd).square() - log_sd
        return log_pop.sum(-1), mass.clamp_min(1e-300).log().sum()

    def softmax(log_pop: torch.Tensor) -> torch.Tensor:
        """Fill ``weights`` with each image's normalised weights; return each image's log-sum."""
        torch.add(loglik, log_pop.float(), out=weights)
        top = weights.amax(1, keepdim=True)
        # floored at EXP_FLOOR: below it exp leaves float32's normal range and runs 10-30x
        # slower on x86, for weights that count for nothing beside the largest (1)
        weights.sub_(top).clamp_min_(EXP_FLOOR).exp_()
        total = weights.sum(1, keepdim=True)
        weights.div_(total)
        return (top + total.log()).squeeze(1).double()

    p = torch.cat([mean, std.log()]).double().requires_grad_(True)
    opt = torch.optim.LBFGS([p], max_iter=300, line_search_fn="strong_wolfe", tolerance_change=1e-9)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        log_pop, log_mass = log_population(p)
        with torch.no_grad():
            per_image = softmax(log_pop)
            weighted = weights.double() if own else weights.sum(0).double()
        (n * log_mass - (weighted * log_pop).sum()).backward()  # the objective's gradient
        return n * log_mass.detach() - per_image.sum()

    opt.step(closure)
    p = torch.cat([p[:P].clamp(-100, 100), p[P:].clamp(-12, 5)]).detach().requires_grad_(True)
    log_pop, log_mass = log_population(p)
    (mass_grad,) = torch.autograd.grad(log_mass, p)
    p = p.detach()
    mu, sd = p[:P], p[P:].exp()
    z = (unit64 - mu) / sd
    per_draw = torch.cat([z / sd, z * z - 1], -1)  # d log_pop / d (mu, log sd), (..., draws, 2P)
    softmax(log_pop.detach())
    if own:
        scores = torch.einsum("nk,nkq->nq", weights.double(), per_draw) - mass_grad
    else:
        scores = (weights @ per_draw.float()).double() - mass_grad
    cov = torch.linalg.pinv(scores.T @ scores)
    return p[:P], p[P:], cov, 1.0 / weights.square().sum(1)


def likelihood_refinement(
    simulator: Simulator,
    emulator: TrainedEmulator,
    true_images: torch.Tensor,
    samples: np.ndarray,
    n_simulations: int,
    *,
    seed: int = 0,
    draws: int = DRAWS,
) -> Refinement:
    """The best match refined by the emulator's likelihood, if the fit can be trusted.

    Parameters
    ----------
    simulator : Simulator
        Makes ``n_simulations`` images from the fitted population (the predictive check's).
    emulator : TrainedEmulator
        The run's final emulator.
    true_images : torch.Tensor
        ``(n, C, H, W)`` true images.
    samples : numpy.ndarray
        ``(m, P)`` the generator's best-match samples, physical units.
    n_simulations : int
        Simulations to correct the fit with.
    seed : int, optional
        Seeds the draws and the simulations.
    draws : int, optional
        Parameter sets shared by all images in the fit (:func:`fit_population`).

    Returns
    -------
    Refinement
        ``samples`` is None when the fit was not trusted or the correction failed; the record
        says why.
    """
    centre, spread = samples.mean(0), samples.std(0, ddof=1)
    sharp, screen = images_are_sharp(emulator, true_images, samples, seed=seed, draws=draws)
    record: dict[str, Any] = {"generator": {"mean": centre.tolist(), "std": spread.tolist()},
                              "screen_effective_draws": screen, "adopted": False}  # fmt: skip
    if sharp:
        record.update(method="per image", simulated_from=FROM_BEST_MATCH)
        return _refine_per_image(
            simulator, emulator, true_images, samples, n_simulations, seed=seed, record=record
        )
    record.update(method="shared draws", simulated_from="the fitted population")
    fit, shared = fit_population(emulator, true_images, centre, spread, seed=seed, draws=draws)
    record["fit"] = _fit_record(fit)
    if not fit.trusted():
        record["reason"] = _too_sharp(f"{fit.effective_draws:.0f}", "")
        return Refinement(record=record)
    moved = _moved(samples, fit.mean, fit.std, emulator)
    params, images = _simulate_from(simulator, moved, n_simulations, seed=seed)
    again, _ = fit_population(emulator, images, fit.mean, fit.std, shared=shared)
    drawn = params.double().numpy()
    mean = fit.mean - (again.mean - drawn.mean(0))
    std = fit.std * drawn.std(0, ddof=1) / again.std
    record.update(correction=_fit_record(again), corrected={"mean": mean.tolist(), "std": std.tolist()})
    if not again.trusted() or not np.all(np.isfinite(std)) or np.any(std <= 0):
        record["reason"] = "the fit on the simulated images did not hold"
        return Refinement(simulated=images, record=record)
    record["adopted"] = True
    return Refinement(
        samples=_moved(samples, mean, std, emulator),
        mean_err=np.hypot(fit.mean_err, again.mean_err),
        std_err=np.hypot(fit.std_err, again.std_err),
        simulated=images,
        record=record,
    )


def _refine_per_image(
    simulator: Simulator,
    emulator: TrainedEmulator,
    true_images: torch.Tensor,
    samples: np.ndarray,
    n_simulations: int,
    *,
    seed: int,
    record: dict[str, Any],
) -> Refinement:
    """Sharp images: simulations of the generator's best match calibrate, parameter by parameter,
    first the parameter estimator (:func:`estimator_calibration`, where it is sharp enough),
    then for the rest :func:`fit_population_per_image` (where its correction is within
    :data:`MAX_CORRECTION`); the per-image fit is skipped when the estimator reads them all."""
    centre, spread = samples.mean(0), samples.std(0, ddof=1)
    params, images = _simulate_from(simulator, samples, n_simulations, seed=seed)
    names = [p["name"] for p in emulator.parameters]
    found = _Found(centre.copy(), spread.copy(), np.full(len(names), np.nan), np.full(len(names), np.nan))
    read = np.zeros(len(names), dtype=bool)  # NaN errors: a parameter left to the generator
    estimated = estimator_calibration(emulator, true_images, params, images)
    if estimated is not None:
        read = estimated.taken
        record.update(estimator=estimated.record(), estimator_parameters=_named(names, read))
        found.take(read, record["estimator"])
    keep = np.zeros_like(read)
    if not read.all():
        keep = _fit_per_image(emulator, true_images, (params, images), samples, seed=seed, record=record)
        keep &= ~read
        record["adopted_parameters"] = _named(names, keep)
        if keep.any():
            found.take(keep, record["corrected"])
    if not (keep | read).any():
        record.setdefault("reason", "neither the estimator nor the per-image fit could be trusted")
        return Refinement(simulated=images, record=record)
    record["adopted"] = True
    return Refinement(samples=_moved(samples, found.mean, found.std, emulator), mean_err=found.mean_err,
                      std_err=found.std_err, simulated=images, record=record)  # fmt: skip


@dataclass
class _Found:
    """The population taken so far, parameter by parameter (the generator's where nothing else)."""

    mean: np.ndarray
    std: np.ndarray
    mean_err: np.ndarray
    std_err: np.ndarray

    def take(self, which: np.ndarray, values: dict[str, Any]) -> None:
        """Take ``values``' mean, std and their errors for the parameters ``which``."""
        for key in ("mean", "std", "mean_err", "std_err"):
            setattr(self, key, np.where(which, np.asarray(values[key]), getattr(self, key)))


def _named(names: list[str], which: np.ndarray) -> list[str]:
    return [name for name, k in zip(names, which, strict=True) if k]


def _fit_per_image(
    emulator: TrainedEmulator,
    true_images: torch.Tensor,
    simulated: tuple[torch.Tensor, torch.Tensor],
    samples: np.ndarray,
    *,
    seed: int,
    record: dict[str, Any],
) -> np.ndarray:
    """:func:`fit_population_per_image` on the true images and on the ``simulated`` parameters
    and images; the corrected fit goes into ``record`` (``corrected``, with its errors), and the
    parameters whose correction is within :data:`MAX_CORRECTION` are returned (``(P,)`` bool)."""
    centre, spread = samples.mean(0), samples.std(0, ddof=1)
    fit = fit_population_per_image(emulator, true_images, centre, spread, seed=seed)
    record["fit"] = _fit_record(fit)
    if not fit.trusted():
        record["reason"] = (f"the per-image fit rests on {fit.effective_draws:.0f} effective draws per "
                            f"image, fewer than {MIN_LOCAL_EFFECTIVE_DRAWS}")  # fmt: skip
        return np.zeros(len(centre), dtype=bool)
    params, images = simulated
    again = fit_population_per_image(emulator, images, centre, spread, seed=seed + 1)
    drawn = params.double().numpy()
    drawn_mean, drawn_std = drawn.mean(0), drawn.std(0, ddof=1)
    mean = fit.mean - (again.mean - drawn_mean)
    std = fit.std * drawn_std / again.std
    bias = (again.mean - drawn_mean) / drawn_std  # the emulator's, on a population it did not see
    keep = again.trusted() & np.isfinite(std) & (std > 0) & (np.abs(bias) <= MAX_CORRECTION)
    corrected = {"mean": mean.tolist(), "std": std.tolist(),
                 "mean_err": np.hypot(fit.mean_err, again.mean_err).tolist(),
                 "std_err": np.hypot(fit.std_err, again.std_err).tolist()}  # fmt: skip
    record.update(correction=_fit_record(again), corrected=corrected, correction_in_spreads=bias.tolist())
    if not keep.any():
        too_far = f"its correction exceeds {MAX_CORRECTION} of the spread in every parameter"
        record["reason"] = too_far if again.trusted() else "the fit on the simulated images did not hold"
    return keep


@dataclass
class EstimatorCalibration:
    """A population read off images by the parameter estimator, corrected by simulations.

    Attributes
    ----------
    mean, std, mean_err, std_err : numpy.ndarray
        ``(P,)`` the population's mean and spread (physical units) and their standard errors.
    slope : numpy.ndarray
        ``(P,)`` the slope of the estimates on the true parameters over the simulations (1: no
        shrinkage).
    scatter : numpy.ndarray
        ``(P,)`` the estimates' scatter about that line, in units of the simulated spread.
    taken : numpy.ndarray
        ``(P,)`` bool: the estimator is sharp and unbiased enough to read the parameter
        (:data:`ESTIMATOR_MAX_SLOPE_OFF`, :data:`ESTIMATOR_MAX_SCATTER`).
    """

    mean: np.ndarray
    std: np.ndarray
    mean_err: np.ndarray
    std_err: np.ndarray
    slope: np.ndarray
    scatter: np.ndarray
    taken: np.ndarray

    def record(self) -> dict[str, Any]:
        """The calibration as JSON-ready lists."""
        return {key: getattr(self, key).tolist() for key in
                ("mean", "std", "mean_err", "std_err", "slope", "scatter")}  # fmt: skip


def estimator_calibration(
    emulator: TrainedEmulator, true_images: torch.Tensor, params: torch.Tensor, images: torch.Tensor
) -> EstimatorCalibration | None:
    """The population of ``true_images`` read by ``emulator``'s parameter estimator (regression calibration).

    On the simulations ``images`` of known ``params`` each parameter's estimates are fitted by
    a line ``a + b theta`` with a scatter ``r`` about it.  The true images' estimates then give
    the population: ``mean = (mean of estimates - a) / b`` and ``std**2 = (variance of estimates
    - r**2) / b**2``, i.e. the estimator's error taken out of the spread it adds.  This holds
    where the error does not depend on the parameters much; the check is a slope near 1 and a
    scatter well under the spread, which :attr:`EstimatorCalibration.taken` requires.

    Parameters
    ----------
    emulator : TrainedEmulator
        Its ``estimator`` reads parameters (unit scale) off normalised images.
    true_images : torch.Tensor
        ``(n, C, H, W)`` true images.
    params, images : torch.Tensor
        ``(m, P)`` physical parameters and ``(m, C, H, W)`` their simulations.

    Returns
    -------
    EstimatorCalibration or None
        None when the emulator has no estimator.
    """
    if emulator.estimator is None:
        return None
    truth = params.double().numpy()
    on_sims, on_true = _estimates(emulator, images), _estimates(emulator, true_images)
    centred = truth - truth.mean(0)
    spread = truth.std(0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # an estimator blind to a parameter: slope 0
        slope = (centred * (on_sims - on_sims.mean(0))).sum(0) / (centred**2).sum(0)
        residual = on_sims - on_sims.mean(0) - slope * centred
        r2 = residual.var(0, ddof=2)
        t_mean, t_var = on_true.mean(0), on_true.var(0, ddof=1)
        intercept = on_sims.mean(0) - slope * truth.mean(0)
        var = (t_var - r2) / slope**2
        std = np.sqrt(np.clip(var, 0.0, None))
        n, m = len(on_true), len(on_sims)
        mean_err = np.sqrt(t_var / n + r2 / m) / np.abs(slope)
        std_err = np.sqrt(2 * t_var**2 / (n - 1) + 2 * r2**2 / (m - 2)) / (2 * slope**2 * std)
        scatter = np.sqrt(r2) / spread
        mean = (t_mean - intercept) / slope
    sharp = (np.abs(slope - 1) <= ESTIMATOR_MAX_SLOPE_OFF) & (scatter <= ESTIMATOR_MAX_SCATTER) & (var > 0)
    taken = sharp & np.isfinite(mean) & np.isfinite(std_err)
    return EstimatorCalibration(mean, std, mean_err, std_err, slope, scatter, taken)


@torch.no_grad()
def _estimates(emulator: TrainedEmulator, images: torch.Tensor) -> np.ndarray:
    """``(n, P)`` the estimator's parameters for ``images``, physical units."""
    network, was_training = emulator.estimator, emulator.estimator.training
    network.eval()
    device = next(network.parameters(), torch.empty(0)).device
    found = [network(emulator.scale.normalise(images[rows].float()).to(device)).float().cpu()
             for rows in _image_chunks(len(images), math.prod(images.shape[1:]))]  # fmt: skip
    network.train(was_training)
    return emulator.to_physical(torch.cat(found)).double().numpy()


def _simulate_from(
    simulator: Simulator, samples: np.ndarray, n: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` parameter sets drawn from ``samples`` and the simulator's images of them."""
    gen = torch.Generator().manual_seed(seed + 32452843)
    params = torch.from_numpy(samples[torch.randint(0, len(samples), (n,), generator=gen).numpy()]).float()
    return params, simulate_in_chunks(simulator, params, generator=gen, where="the likelihood fit's check")


def _too_sharp(found: str, where: str) -> str:
    return (f"{found} effective draws per image{where}, fewer than {MIN_EFFECTIVE_DRAWS}: each image "
            "pins its parameters down too sharply")  # fmt: skip


def _moved(samples: np.ndarray, mean: np.ndarray, std: np.ndarray, emulator: TrainedEmulator) -> np.ndarray:
    """``samples`` shifted and scaled to ``mean`` and ``std`` per parameter, kept in the declared ranges."""
    centre, spread = samples.mean(0), samples.std(0, ddof=1)
    scale = np.divide(std, spread, out=np.ones_like(spread), where=spread > 0)
    moved = mean + (samples - centre) * scale
    low, high = (b.double().numpy() for b in emulator._bounds())
    return np.clip(moved, low, high).astype(samples.dtype)


def _fit_record(fit: PopulationFit) -> dict[str, Any]:
    return {"mean": fit.mean.tolist(), "std": fit.std.tolist(), "mean_err": fit.mean_err.tolist(),
            "std_err": fit.std_err.tolist(), "effective_draws": fit.effective_draws,
            "seconds": fit.seconds}  # fmt: skip
