"""Standard errors of the best match (generator snapshots) and the predictive check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gangal_core.calibration.predictive import (
    MIN_IMAGES,
    auc_with_error,
    predictive_check,
    simulate_best_match,
)
from gangal_core.calibration.result import autocorrelation_time, snapshot_mixture
from gangal_core.plugins import get_registry

WIDE = (np.full(2, -1e9), np.full(2, 1e9))


def _snapshots(rng, *, k=20, n=500, wobble=0.3, mu=(1.0, -2.0), sigma=(1.0, 0.5)):
    """Snapshots whose location wobbles around ``mu`` (optimisation noise) with spread ``sigma``."""
    mu, sigma = np.asarray(mu), np.asarray(sigma)
    return [
        mu + wobble * sigma * rng.standard_normal(2) + sigma * rng.standard_normal((n, 2)) for _ in range(k)
    ]


def test_moving_snapshots_to_one_centre_removes_their_wobble_from_the_spread() -> None:
    rng = np.random.default_rng(0)
    parts = _snapshots(rng, wobble=0.5)
    samples, _, _ = snapshot_mixture(parts, n_true=10**12, low=WIDE[0], high=WIDE[1])
    pooled = np.concatenate(parts)
    assert samples.shape == pooled.shape
    np.testing.assert_allclose(samples.mean(0), pooled.mean(0), atol=1e-12)
    # pooled as they are the spread is sqrt(1 + 0.5**2) = 1.12 sigma; moved, it is sigma
    assert np.all(pooled.std(0) / [1.0, 0.5] > 1.07)
    np.testing.assert_allclose(samples.std(0, ddof=1), [1.0, 0.5], rtol=0.03)


def test_standard_errors_cover_the_truth_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(1)
    hits_mean, hits_std = [], []
    for _ in range(400):
        samples, mean_err, std_err = snapshot_mixture(
            _snapshots(rng, n=200), n_true=10**12, low=WIDE[0], high=WIDE[1]
        )
        hits_mean.append(np.abs(samples.mean(0) - [1.0, -2.0]) < mean_err)
        hits_std.append(np.abs(samples.std(0, ddof=1) - [1.0, 0.5]) < std_err)
    # 20 independent snapshots: a t-distribution with 19 degrees of freedom covers 67% at one error
    # (binomial noise over 800 intervals: +-1.7 points)
    assert 0.62 < np.mean(hits_mean) < 0.74
    assert 0.62 < np.mean(hits_std) < 0.74


def _ar1(rng, k, rho, size):
    x = np.empty((k, size))
    x[0] = rng.standard_normal(size)
    for i in range(1, k):
        x[i] = rho * x[i - 1] + np.sqrt(1 - rho**2) * rng.standard_normal(size)
    return x


def test_autocorrelation_time_of_independent_correlated_and_oscillating_series() -> None:
    rng = np.random.default_rng(7)
    assert np.median(autocorrelation_time(_ar1(rng, 20, 0.0, 2000))) < 1.3
    # an AR(1) series with lag-1 correlation 0.5 has tau = (1 + 0.5) / (1 - 0.5) = 3; 20 points,
    # truncated at the first negative estimate, see about two thirds of it
    assert 1.7 < np.median(autocorrelation_time(_ar1(rng, 20, 0.5, 2000))) < 3.2
    alternating = np.tile([[1.0], [-1.0]], (10, 1))
    np.testing.assert_array_equal(autocorrelation_time(alternating), [1.0])
    np.testing.assert_array_equal(autocorrelation_time(np.ones((20, 1))), [1.0])  # constant: no error


def test_correlated_snapshots_widen_the_optimisation_error() -> None:
    rng = np.random.default_rng(8)
    sigma = np.array([1.0, 0.5])
    hits, naive, ratio = [], [], []
    for _ in range(300):
        wobble = 0.3 * sigma * _ar1(rng, 20, 0.5, 2)  # slowly drifting centre
        parts = [1.0 + w + sigma * rng.standard_normal((200, 2)) for w in wobble]
        samples, mean_err, _ = snapshot_mixture(parts, n_true=10**12, low=WIDE[0], high=WIDE[1])
        means = np.array([p.mean(0) for p in parts])
        independent = means.std(0, ddof=1) / np.sqrt(20)
        ratio.append(mean_err / independent)
        hits.append(np.abs(samples.mean(0) - 1.0) < mean_err)
        naive.append(np.abs(samples.mean(0) - 1.0) < independent)
    # the independent-snapshot error covers about 45% of 600 intervals; corrected, about 62%
    assert np.median(ratio) > 1.25
    assert np.mean(naive) < 0.52 and np.mean(hits) > 0.56


def test_a_small_true_set_sets_the_error_floor() -> None:
    rng = np.random.default_rng(2)
    samples, mean_err, std_err = snapshot_mixture(
        _snapshots(rng, wobble=0.0, n=5000), n_true=100, low=WIDE[0], high=WIDE[1]
    )
    # the wobble-free snapshots add little; a Gaussian true set of 100 gives s/10 and s/sqrt(200)
    s = samples.std(0, ddof=1)
    np.testing.assert_allclose(mean_err, s / 10, rtol=0.1)
    np.testing.assert_allclose(std_err, s / np.sqrt(200), rtol=0.15)


def test_one_snapshot_gives_only_the_finite_true_set_error() -> None:
    rng = np.random.default_rng(3)
    parts = _snapshots(rng, k=1)
    samples, mean_err, _ = snapshot_mixture(parts, n_true=400, low=WIDE[0], high=WIDE[1])
    np.testing.assert_array_equal(samples, parts[0])
    np.testing.assert_allclose(mean_err, samples.std(0, ddof=1) / 20)


def test_moved_samples_stay_inside_the_declared_ranges() -> None:
    rng = np.random.default_rng(4)
    parts = [np.clip(p, -1.0, 3.0) for p in _snapshots(rng, wobble=2.0)]
    samples, _, _ = snapshot_mixture(parts, n_true=100, low=np.array([-1.0, -1.0]), high=np.array([3.0, 3.0]))
    assert samples.min() >= -1.0 and samples.max() <= 3.0


# ---- the predictive check -------------------------------------------------------------------------
def test_auc_counts_pairs_and_ties() -> None:
    rng = np.random.default_rng(5)
    pos, neg = rng.integers(0, 6, 37).astype(float), rng.integers(0, 6, 23).astype(float)
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    auc, err = auc_with_error(pos, neg)
    assert auc == pytest.approx(pairs) and 0 < err < 0.1
    assert auc_with_error(np.array([2.0, 3.0]), np.array([0.0, 1.0]))[0] == 1.0


@pytest.fixture(scope="module")
def circle_sets():
    sim = get_registry().simulator("circle")
    gen = torch.Generator().manual_seed(0)
    lo, hi = sim.bounds()
    params = lo + (hi - lo) * torch.rand(1200, len(lo), generator=gen)
    a = sim.simulate(params[:600], generator=gen)
    b = sim.simulate(params[600:], generator=gen)
    return sim, params, a, b


def test_indistinguishable_sets_are_not_flagged(circle_sets) -> None:
    _, _, a, b = circle_sets
    state = torch.get_rng_state()
    check = predictive_check(a, b, seed=0)
    assert torch.equal(state, torch.get_rng_state())  # the global stream is left alone
    assert not check.flagged and abs(check.auc - 0.5) < 0.1
    assert check.n_train == check.n_test == 300


def test_a_background_the_simulator_lacks_is_flagged(circle_sets) -> None:
    _, _, a, b = circle_sets
    width = a.shape[-1]
    gradient = 0.15 * a.amax() * torch.linspace(0, 1, width)  # a sky gradient across the image
    check = predictive_check(a + gradient, b, seed=0)
    assert check.flagged and check.auc > 0.8


def test_best_match_images_come_from_the_samples(circle_sets) -> None:
    sim, params, _, _ = circle_sets
    images = simulate_best_match(sim, params[:10].numpy(), 25, seed=1)
    assert images.shape == (25, *sim.image_shape)
    again = simulate_best_match(sim, params[:10].numpy(), 25, seed=1)
    assert torch.equal(images, again)


def test_too_few_or_mismatched_images_are_named(circle_sets) -> None:
    _, _, a, b = circle_sets
    with pytest.raises(ValueError, match=f"at least {MIN_IMAGES}"):
        predictive_check(a[:10], b[:10])
    with pytest.raises(ValueError, match="same C, H, W"):
        predictive_check(a, b[:, :, :20])


def test_midranks_are_scipys_average_ranks() -> None:
    from scipy.stats import rankdata

    from gangal_core.calibration.predictive import _midranks

    rng = np.random.default_rng(3)
    for size, levels in ((1, 1), (7, 2), (300, 20), (500, 10**6)):
        values = rng.integers(0, levels, size).astype(float)  # ties, few levels to none
        assert np.array_equal(_midranks(values), rankdata(values))
