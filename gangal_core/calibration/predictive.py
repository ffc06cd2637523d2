"""The predictive check: can a small classifier tell the true images from simulations at the best match?

After a calibration, images are simulated from the best-match parameter samples and a small
convolutional classifier is trained to separate them from the true images.  Its area under the
ROC curve on held-out images (``predictive_auc``) is 0.5 when the two sets are indistinguishable
and 1.0 when they are told apart perfectly.  A clearly higher value means the best match does not
reproduce the true images: the simulator cannot describe them (misspecification: a background,
a PSF, an artefact the simulator lacks), or the calibration has not converged.  Recovered
parameters alone cannot show either.

The test is a classifier two-sample test (Lopez-Paz & Oquab 2017, "Revisiting classifier
two-sample tests"); the AUC's standard error is Hanley & McNeil's (1982).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "FLAG_MARGIN",
    "MIN_IMAGES",
    "PREDICTIVE_IMAGES",
    "PredictiveCheck",
    "auc_with_error",
    "check_best_match",
    "predictive_check",
    "simulate_best_match",
    "skip_reason",
]

#: The AUC is flagged when it exceeds 0.5 by more than this and by more than three standard errors.
FLAG_MARGIN = 0.1

#: Fewest images of each kind the check needs (half of them train, half test).
MIN_IMAGES = 40

#: Images of each kind in a calibration's check (the true set is cut to this many at most).
PREDICTIVE_IMAGES = 4000


@dataclass(frozen=True)
class PredictiveCheck:
    """The result of :func:`predictive_check`.

    Attributes
    ----------
    auc : float
        Held-out area under the ROC curve of the classifier (0.5 = indistinguishable).
    auc_err : float
        Its standard error (Hanley & McNeil).
    n_train, n_test : int
        Images of each kind used to train and to test the classifier.
    flagged : bool
        Whether ``auc`` is clearly above 0.5: by more than :data:`FLAG_MARGIN` and more than three
        standard errors.
    """

    auc: float
    auc_err: float
    n_train: int
    n_test: int
    flagged: bool

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["auc"], out["auc_err"] = round(self.auc, 4), round(self.auc_err, 4)
        out["method"] = "held-out AUC of a small CNN: true images vs simulations at the best match"
        return out


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their mean rank (``scipy.stats.rankdata``'s ``"average"``, without
    importing scipy.stats: a second of every calibration's start-up)."""
    _, where, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[where.reshape(-1)]


def auc_with_error(scores_pos: np.ndarray, scores_neg: np.ndarray) -> tuple[float, float]:
    """Area under the ROC curve (Mann-Whitney, ties counted half) and its Hanley-McNeil standard error.

    Parameters
    ----------
    scores_pos, scores_neg : numpy.ndarray
        Classifier scores of the positive (true) and negative (simulated) images.
    """
    n1, n2 = len(scores_pos), len(scores_neg)
    ranks = _midranks(np.concatenate([scores_pos, scores_neg]))
    auc = float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n2))
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n2 - 1) * (q2 - auc**2)) / (n1 * n2)
    return auc, float(np.sqrt(max(var, 0.0)))


class _TwoSampleNet(torch.nn.Module):
    """Two convolutions, pooling to 4x4, a linear read-out: small enough to train in seconds."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.head = torch.nn.Linear(32 * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.leaky_relu(self.conv1(x), 0.2), 2)
        x = F.adaptive_avg_pool2d(F.leaky_relu(self.conv2(x), 0.2), 4)
        return self.head(x.flatten(1)).squeeze(1)


def predictive_check(
    true_images: torch.Tensor,
    simulated_images: torch.Tensor,
    *,
    epochs: int = 8,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    seed: int = 0,
) -> PredictiveCheck:
    """Train a small CNN to tell true from simulated images; its held-out AUC.

    Parameters
    ----------
    true_images, simulated_images : torch.Tensor
        ``(n, C, H, W)`` images in the same units.  The larger set is cut to the size of the
        smaller; each is split in halves, one to train and one to test.
    epochs : int, optional
        Passes over the training halves (default 8).
    batch_size : int, optional
        Images of each kind per step (default 128).
    learning_rate : float, optional
        Adam's learning rate (default 2e-3).
    seed : int, optional
        Seeds the split, the classifier's weights and its minibatches; the global random state
        is left as it was.

    Returns
    -------
    PredictiveCheck

    Raises
    ------
    ValueError
        If either set has fewer than :data:`MIN_IMAGES` images or their shapes differ.
    """
    if true_images.shape[1:] != simulated_images.shape[1:] or true_images.ndim != 4:
        raise ValueError(
            f"predictive check: true images {tuple(true_images.shape)} and simulated images "
            f"{tuple(simulated_images.shape)} must both be (n, C, H, W) with the same C, H, W."
        )
    n = min(true_images.shape[0], simulated_images.shape[0])
    if n < MIN_IMAGES:
        raise ValueError(f"predictive check: needs at least {MIN_IMAGES} images of each kind, found {n}.")
    gen = torch.Generator().manual_seed(seed + 104729)
    real = true_images[torch.randperm(true_images.shape[0], generator=gen)[:n]].float()
    fake = simulated_images[torch.randperm(simulated_images.shape[0], generator=gen)[:n]].float()
    n_train = n // 2
    train = torch.cat([real[:n_train], fake[:n_train]])
    labels = torch.cat([torch.ones(n_train), torch.zeros(n_train)])
    centre, scale = train.mean(), train.std().clamp_min(1e-8)
    train = (train - centre) / scale
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 15485863)
        net = _TwoSampleNet(train.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    step = min(2 * batch_size, train.shape[0])
    net.train()
    for _ in range(epochs):
        order = torch.randperm(train.shape[0], generator=gen)
        for i in range(0, train.shape[0] - step + 1, step):
            idx = order[i : i + step]
            loss = F.binary_cross_entropy_with_logits(net(train[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    with torch.inference_mode():
        scores_real = torch.cat([net((x - centre) / scale) for x in real[n_train:].split(1024)])
        scores_fake = torch.cat([net((x - centre) / scale) for x in fake[n_train:].split(1024)])
    auc, err = auc_with_error(scores_real.numpy(), scores_fake.numpy())
    flagged = auc - 0.5 > max(FLAG_MARGIN, 3 * err)
    return PredictiveCheck(auc=auc, auc_err=err, n_train=n_train, n_test=n - n_train, flagged=flagged)


def simulate_best_match(simulator: Any, samples: np.ndarray, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` images simulated at best-match samples drawn without replacement (with, if fewer).

    Parameters
    ----------
    simulator : Simulator
        The calibrated simulator.
    samples : numpy.ndarray
        ``(m, P)`` best-match samples, physical units.
    n : int
        Images to simulate.
    seed : int, optional
        Seeds the choice of samples and the simulator's noise.
    """
    from gangal_core.simulation.simulator import simulate_in_chunks

    gen = torch.Generator().manual_seed(seed + 32452843)
    m = samples.shape[0]
    pick = torch.randperm(m, generator=gen)[:n] if n <= m else torch.randint(0, m, (n,), generator=gen)
    params = torch.from_numpy(np.ascontiguousarray(samples[pick.numpy()])).float()
    return simulate_in_chunks(simulator, params, generator=gen, where="the predictive check")


def skip_reason(n_true: int) -> str | None:
    """Why a calibration with ``n_true`` true images gets no predictive check, or None if it does."""
    n = min(int(n_true), PREDICTIVE_IMAGES)
    if n < MIN_IMAGES:
        return f"Predictive check skipped: it needs at least {MIN_IMAGES} true images, found {n}."
    return None


def check_best_match(
    simulator: Any, samples: np.ndarray, true_images: torch.Tensor, *, seed: int = 0, limit: int | None = None
) -> PredictiveCheck | None:
    """A calibration's predictive check: up to :data:`PREDICTIVE_IMAGES` true images against as many
    simulated at the best match; None when there are too few true images (:func:`skip_reason`).

    ``limit`` caps the simulations (a budget's share for the check).
    """
    if skip_reason(min(true_images.shape[0], limit or PREDICTIVE_IMAGES)) is not None:
        return None
    n = min(int(true_images.shape[0]), PREDICTIVE_IMAGES, limit or PREDICTIVE_IMAGES)
    simulated = simulate_best_match(simulator, samples, n, seed=seed)
    return predictive_check(true_images, simulated, seed=seed)
