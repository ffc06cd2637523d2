"""What a calibration found: the best-match samples, their standard errors, the JSON document.

The best match is a mixture of generator snapshots (:func:`snapshot_mixture`); each
snapshot's mean and spread vary with the optimisation, and :func:`autocorrelation_time`
tells how many of them are effectively independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .networks import ParameterGenerator

__all__ = [
    "CalibrationResult",
    "autocorrelation_time",
    "recovery",
    "snapshot_mixture",
    "summarise",
    "within_bar",
]


# --------------------------------------------------------------------------- training
@dataclass
class CalibrationResult:
    """What :func:`calibrate` found.

    Attributes
    ----------
    samples : numpy.ndarray
        ``(n_samples, P)`` best-match parameter samples from the generator, physical units.
    names : tuple of str
        Parameter names, the columns of ``samples``.
    generator : ParameterGenerator
        The generator at the end of training.
    losses : dict
        Loss history (``iterations`` and ``values``) for plotting.
    seconds : float
        Wall time of the training iterations.
    mean_err, std_err : numpy.ndarray or None
        ``(P,)`` standard errors of the best-match mean and spread of each parameter
        (:func:`snapshot_mixture`).
    """

    samples: np.ndarray
    names: tuple[str, ...]
    generator: ParameterGenerator
    losses: dict[str, Any]
    seconds: float
    mean_err: np.ndarray | None = None
    std_err: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        return self.samples.mean(0)

    @property
    def std(self) -> np.ndarray:
        return self.samples.std(0, ddof=1)


def autocorrelation_time(series: np.ndarray) -> np.ndarray:
    """Integrated autocorrelation time of each column of a ``(K, P)`` series, at least 1.

    ``tau = 1 + 2 * sum(rho_k)`` over the lags ``k`` before the first non-positive sample
    autocorrelation ``rho_k`` (the initial-positive truncation used for Markov chains; Geyer
    1992).  The variance of the series' mean is ``tau`` times its independent-sample value.
    A negative lag-1 correlation (an oscillation) gives 1: never fewer effective samples than
    there are snapshots' worth of evidence.
    """
    x = np.asarray(series, dtype=np.float64)
    k_max = x.shape[0] // 2
    dev = x - x.mean(0)
    c0 = (dev**2).mean(0)
    tau = np.ones(x.shape[1])
    for j in range(x.shape[1]):
        if c0[j] <= 0:
            continue
        for k in range(1, k_max):
            rho = float((dev[k:, j] * dev[:-k, j]).mean() / c0[j])
            if rho <= 0:
                break
            tau[j] += 2 * rho
    return tau


def snapshot_mixture(
    parts: list[np.ndarray],
    *,
    n_true: int,
    low: np.ndarray,
    high: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best-match samples from the generator snapshots, and standard errors of their mean and spread.

    Each snapshot's samples are moved to the common centre before they are pooled: the snapshots
    differ in location because the generator keeps oscillating around the equilibrium, and that
    oscillation is optimisation noise, not population spread (pooling them as they are inflates
    the spread by its variance, about 2% on the paper's cases: ``benchmarks/RESULTS.md``).
    Deviations are scaled by ``sqrt(n / (n - 1))`` so the within-snapshot variance stays unbiased.

    The standard errors add two independent parts in quadrature:

    * optimisation: the standard deviation of the ``K`` snapshots' means (spreads) over
      ``sqrt(K)``, times the square root of the series' integrated autocorrelation time
      (:func:`autocorrelation_time`), as for the mean of a Markov chain.  Snapshots in a row
      are treated as one correlated series, so the estimate keeps ``K - 1`` degrees of freedom
      where batch means over a few groups keep only a handful (and a noisy error estimate
      covers less than its nominal rate);
    * finite true set: ``s / sqrt(n_true)`` for the mean and ``s * sqrt((kurtosis - 1) / (4 n_true))``
      for the spread (``s / sqrt(2 n_true)`` for a Gaussian), the sampling error of a population
      estimated from ``n_true`` images.

    Parameters
    ----------
    parts : list of numpy.ndarray
        ``(n_k, P)`` samples of each snapshot, physical units, in the order they were taken.
    n_true : int
        Number of true images.
    low, high : numpy.ndarray
        The parameters' declared ranges; moved samples are kept inside them.

    Returns
    -------
    samples, mean_err, std_err : numpy.ndarray
        ``(sum n_k, P)`` samples and ``(P,)`` standard errors.  With fewer than two snapshots (or a
        snapshot of one sample) the samples are pooled as they are and the errors hold only the
        finite-true-set part.
    """
    parts = [np.asarray(p, dtype=np.float64) for p in parts]
    pooled = np.concatenate(parts)
    centre = pooled.mean(0)
    movable = len(parts) >= 2 and min(len(p) for p in parts) >= 2
    if movable:
        moved = [centre + (p - p.mean(0)) * np.sqrt(len(p) / (len(p) - 1)) for p in parts]
        samples = np.clip(np.concatenate(moved), low, high)
    else:
        samples = pooled
    s = samples.std(0, ddof=1)
    dev = samples - samples.mean(0)
    m2 = (dev**2).mean(0)
    kurtosis = np.divide((dev**4).mean(0), m2**2, out=np.full_like(m2, 3.0), where=m2 > 0)  # 3: Gaussian
    sampling_mean = s / np.sqrt(n_true)
    sampling_std = s * np.sqrt(np.maximum(kurtosis - 1.0, 0.0) / (4.0 * n_true))
    opt_mean = np.zeros_like(s)
    opt_std = np.zeros_like(s)
    if movable:
        k = len(parts)
        means = np.array([p.mean(0) for p in parts])
        stds = np.array([p.std(0, ddof=1) for p in parts])
        opt_mean = means.std(0, ddof=1) * np.sqrt(autocorrelation_time(means) / k)
        opt_std = stds.std(0, ddof=1) * np.sqrt(autocorrelation_time(stds) / k)
    return samples, np.hypot(opt_mean, sampling_mean), np.hypot(opt_std, sampling_std)


def summarise(
    result: CalibrationResult,
    *,
    simulator: str,
    truth: dict[str, tuple[float, float]] | None,
    seconds: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``calibration.json`` document."""
    params: dict[str, dict[str, float]] = {}
    for j, name in enumerate(result.names):
        entry = {"mean": float(result.mean[j]), "std": float(result.std[j])}
        if result.mean_err is not None and result.std_err is not None:
            entry["mean_err"], entry["std_err"] = float(result.mean_err[j]), float(result.std_err[j])
        if truth is not None:
            entry["true_mean"], entry["true_std"] = (float(v) for v in truth[name])
        params[name] = entry
    doc = {
        "simulator": simulator,
        "parameters": params,
        "n_samples": int(result.samples.shape[0]),
        "seconds": round(float(seconds), 2),
    }
    if extra:
        doc.update(extra)
    return doc


def recovery(doc: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``|mu_bm - mu_true| / sigma_true`` and ``sigma_bm / sigma_true`` per parameter (truth known)."""
    out = {}
    for name, v in doc["parameters"].items():
        if "true_mean" in v and v["true_std"] > 0:
            out[name] = {
                "dmu_over_sigma": abs(v["mean"] - v["true_mean"]) / v["true_std"],
                "sigma_ratio": v["std"] / v["true_std"],
            }
    return out


def within_bar(
    doc: dict[str, Any], *, mean_tol: float = 0.15, ratio: tuple[float, float] = (0.75, 1.35)
) -> bool:
    """Whether every parameter meets the issue's recovery bar (needs the truth)."""
    rec = recovery(doc)
    return bool(rec) and all(
        r["dmu_over_sigma"] <= mean_tol and ratio[0] <= r["sigma_ratio"] <= ratio[1] for r in rec.values()
    )
