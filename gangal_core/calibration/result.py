"""What a calibration found: the best-match samples, their standard errors, the JSON document.

The best match is a mixture of generator snapshots (:func:`snapshot_mixture`); each
snapshot's mean and spread vary with the optimisation, and :func:`autocorrelation_time`
tells how many of them are effectively independent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .networks import ParameterGenerator

if TYPE_CHECKING:
    from astropy.table import Table

    from .predictive import PredictiveCheck

__all__ = [
    "RECOVERY_BAR",
    "CalibrationResult",
    "RecoveryBar",
    "autocorrelation_time",
    "recovery",
    "snapshot_mixture",
    "summarise",
    "within_bar",
]


@dataclass(frozen=True)
class RecoveryBar:
    """When a calibration has recovered a known truth, parameter by parameter.

    Attributes
    ----------
    mean_tol : float
        Largest ``|mu_bm - mu_true| / sigma_true``.
    ratio : (float, float)
        Range of ``sigma_bm / sigma_true``.
    """

    mean_tol: float
    ratio: tuple[float, float]

    def mean_ok(self, dmu_over_sigma: float) -> bool:
        return dmu_over_sigma <= self.mean_tol

    def ratio_ok(self, sigma_ratio: float) -> bool:
        return self.ratio[0] <= sigma_ratio <= self.ratio[1]


#: The recovery bar of the closure tests (``benchmarks/RESULTS.md``, "Bar"): the mean within 0.15
#: true sigma, the spread within 0.75-1.35 of the true one.  :func:`within_bar` and the printed
#: table both use it.
RECOVERY_BAR = RecoveryBar(mean_tol=0.15, ratio=(0.75, 1.35))


# --------------------------------------------------------------------------- training
@dataclass
class CalibrationResult:
    """What a calibration found: the best-match distribution, and the run that found it.

    :func:`~gangal_core.calibration.calibrate` (the training) fills the first seven
    attributes; :func:`gangal_core.calibrate` (the whole of ``gangal calibrate``) fills the
    rest.  :meth:`to_dict` is ``calibration.json``; :meth:`to_table` the same numbers as an
    astropy table.

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
    simulator : str
        The calibrated simulator's name.
    units : tuple of str
        Each parameter's unit (:attr:`Parameter.unit <gangal_core.Parameter.unit>`), ``""`` if none.
    truth : dict or None
        ``{name: (mean, std)}`` of the true parameters, when known.
    predictive : PredictiveCheck or None
        The predictive check, when it ran.
    run_seconds : float or None
        Wall time of the whole run (``seconds`` in ``calibration.json``; the training's own
        ``seconds`` when None).
    timing : dict
        Wall time of each phase of the run.
    true_data : dict or None
        Where the true images came from and how many there were.
    emulator : TrainedEmulator or None
        The emulator the generator learnt through.
    emulator_source : str or None
        Where that emulator came from (a path), as ``calibration.json`` records it.
    options : dict or None
        The run's options, as ``calibration.json`` records them.
    simulation : dict or None
        What the simulator cost (``simulator_images``, ``simulator_seconds``, the ``budget``
        and how it was spent), as ``calibration.json`` records it.
    """

    samples: np.ndarray
    names: tuple[str, ...]
    generator: ParameterGenerator
    losses: dict[str, Any]
    seconds: float
    mean_err: np.ndarray | None = None
    std_err: np.ndarray | None = None
    simulator: str = ""
    units: tuple[str, ...] = ()
    truth: dict[str, tuple[float, float]] | None = None
    predictive: PredictiveCheck | None = None
    run_seconds: float | None = None
    timing: dict[str, float] = field(default_factory=dict)
    true_data: dict[str, Any] | None = None
    emulator: Any = None
    emulator_source: str | None = None
    options: dict[str, Any] | None = None
    simulation: dict[str, Any] | None = None

    @property
    def mean(self) -> np.ndarray:
        return self.samples.mean(0)

    @property
    def std(self) -> np.ndarray:
        return self.samples.std(0, ddof=1)

    def parameter_statistics(self) -> dict[str, dict[str, float]]:
        """Per parameter: best-match ``mean``, ``std``, their standard errors and the truth, when known."""
        params: dict[str, dict[str, float]] = {}
        mean, std = self.mean, self.std
        for j, name in enumerate(self.names):
            entry = {"mean": float(mean[j]), "std": float(std[j])}
            if self.mean_err is not None and self.std_err is not None:
                entry["mean_err"], entry["std_err"] = float(self.mean_err[j]), float(self.std_err[j])
            if self.truth is not None:
                entry["true_mean"], entry["true_std"] = (float(v) for v in self.truth[name])
            params[name] = entry
        return params

    @property
    def correlation(self) -> np.ndarray:
        """``(P, P)`` Pearson correlation matrix of the best-match samples (NaN where a spread is 0)."""
        samples = np.asarray(self.samples, dtype=np.float64)
        dev = samples - samples.mean(0)
        cov = dev.T @ dev
        scale = np.sqrt(np.diag(cov))
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = cov / np.outer(scale, scale)
        corr[~np.isfinite(corr)] = np.nan
        np.fill_diagonal(corr, np.where(scale > 0, 1.0, np.nan))
        return np.clip(corr, -1.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """The ``calibration.json`` document, exactly as it is written.

        Each parameter's entry holds its statistics (:meth:`parameter_statistics`) and its
        ``unit``; ``correlation`` holds the best-match correlation matrix, rows and columns in
        the order of ``correlation["parameters"]`` (``null`` where a parameter does not vary).
        """
        seconds = self.seconds if self.run_seconds is None else self.run_seconds
        units = self.units or ("",) * len(self.names)
        parameters = {
            name: {**entry, "unit": unit}
            for (name, entry), unit in zip(self.parameter_statistics().items(), units, strict=True)
        }
        matrix = [[None if np.isnan(c) else round(float(c), 4) for c in row] for row in self.correlation]
        doc: dict[str, Any] = {
            "simulator": self.simulator,
            "parameters": parameters,
            "correlation": {"parameters": list(self.names), "matrix": matrix},
            "n_samples": int(self.samples.shape[0]),
            "seconds": round(float(seconds), 2),
        }
        if self.timing:
            doc["timing_seconds"] = {k: round(v, 2) for k, v in self.timing.items()}
        if self.true_data is not None:
            doc["true_data"] = dict(self.true_data)
        if self.emulator_source is not None:
            doc["emulator"] = self.emulator_source
        if self.simulation is not None:
            doc.update(self.simulation)
        if self.options is not None:
            doc["options"] = dict(self.options)
        if self.predictive is not None:
            doc["predictive_auc"] = round(self.predictive.auc, 4)
            doc["predictive_check"] = self.predictive.as_dict()
        return doc

    def to_table(self) -> Table:
        """The best match as an astropy :class:`~astropy.table.Table`, in the paper's Table I/II layout.

        One column per parameter, in that parameter's unit, and one row per statistic (column
        ``statistic``): ``mean`` and ``std`` of the best match, then ``mean_err`` and
        ``std_err`` when known, then ``true_mean`` and ``true_std`` when the truth is known.
        Every row of a column is in one unit, which a row per parameter could not give.
        ``table.meta`` holds the simulator and the number of samples.
        """
        from astropy.table import Column, Table

        stats = self.parameter_statistics()
        rows = list(next(iter(stats.values()))) if stats else []
        units = self.units or ("",) * len(self.names)
        table = Table(meta={"simulator": self.simulator, "n_samples": int(self.samples.shape[0])})
        table["statistic"] = Column(rows, dtype=str)
        for name, unit in zip(self.names, units, strict=True):
            table[name] = Column([stats[name][row] for row in rows], unit=unit or None)
        return table

    def within_bar(self, bar: RecoveryBar = RECOVERY_BAR) -> bool:
        """Whether every parameter meets ``bar`` (needs the truth)."""
        return within_bar(self.to_dict(), mean_tol=bar.mean_tol, ratio=bar.ratio)


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
    """``result``'s document (:meth:`CalibrationResult.to_dict`) for this simulator, truth and wall time.

    Kept for callers of the training alone; :func:`gangal_core.calibrate` fills these in itself.
    """
    doc = dataclasses.replace(result, simulator=simulator, truth=truth, run_seconds=seconds).to_dict()
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
    doc: dict[str, Any],
    *,
    mean_tol: float = RECOVERY_BAR.mean_tol,
    ratio: tuple[float, float] = RECOVERY_BAR.ratio,
) -> bool:
    """Whether every parameter of a ``calibration.json`` document meets the recovery bar (needs the truth)."""
    bar = RecoveryBar(mean_tol=mean_tol, ratio=ratio)
    rec = recovery(doc)
    return bool(rec) and all(
        bar.mean_ok(r["dmu_over_sigma"]) and bar.ratio_ok(r["sigma_ratio"]) for r in rec.values()
    )
