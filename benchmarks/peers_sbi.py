"""Peer benchmark: neural posterior estimation (``sbi``, NPE) on the problems gangal calibrates.

    for CASE in circle-table2 polynomial-table1 circle-lowsignal circle-misspecified; do
        python benchmarks/peers_sbi.py --case $CASE --out benchmarks/out/sbi-$CASE.json
    done

Options (defaults): ``--n-sims 20000 --n-true 2000 --posterior-samples 500 --seed 0 --threads 2``;
``--max-epochs N`` caps training (default: sbi's early stopping alone).  A tiny smoke run::

    python benchmarks/peers_sbi.py --case circle-table2 --out /tmp/sbi.json \
        --n-sims 500 --n-true 20 --posterior-samples 100 --threads 1 --max-epochs 2

Needs ``sbi`` (measured with 0.27.0, installed without touching torch:
``echo torch==2.13.0 > /tmp/pin.txt && pip install "sbi==0.27.0" -c /tmp/pin.txt``).

Cases
-----
``circle-table2``
    The circle simulator at its reference truth (the paper's Table II).
``polynomial-table1``
    The polynomial simulator at its reference truth (the paper's Table I).
``circle-lowsignal``
    The circle simulator with ranges ``n=0.2:0.8`` and ``b=0.05:0.6``, truth the reference
    truth but ``n ~ N(0.5, 0.05)``, ``b ~ N(0.25, 0.05)``.
``circle-misspecified``
    The circle simulator at its reference truth, the true images passed through
    :func:`misspecify` (a sky-background gradient the simulator cannot make); the prior and
    the simulations are unmodified.

The same true images in gangal
------------------------------
:func:`true_set` builds the true set exactly as ``gangal calibrate`` does: the simulator from
``get_registry().simulator(NAME)`` wrapped by ``with_ranges(sim, parse_ranges(RANGES, sim))``
(``gangal_core.commands._simulator``), the truth the simulator's ``reference_truth`` updated by
the ``--truth`` items and ordered by ``parameter_names()``, then
``make_true_set(sim, truth, n=N_TRUE, seed=SEED)`` (``gangal_core.commands._true_set``).  This
was checked by reading both functions and by comparing, bit for bit, the images and parameters
of :func:`true_set` with those of ``gangal_core.commands._true_set`` for a ``CalibrateConfig``
with the same options, for all four cases (n_true=20 with seed 0 and n_true=5000 with seed 3;
``circle-misspecified`` equal to ``circle-table2`` plus the gradient).  The gangal runs with the
same true sets are::

    gangal calibrate --simulator circle --n-true N --seed S
    gangal calibrate --simulator polynomial --n-true N --seed S
    gangal calibrate --simulator circle --range n=0.2:0.8 --range b=0.05:0.6 \
        --truth n=0.5,0.05 --truth b=0.25,0.05 --n-true N --seed S
    # circle-misspecified: save the images and give them as --true-data
    python -c "import numpy as np; from benchmarks.peers_sbi import true_set; \
        np.save('mis.npy', true_set('circle-misspecified', N, S)[1].numpy())"
    gangal calibrate --simulator circle --true-data mis.npy --seed S

(the last needs the repository root on ``PYTHONPATH``, or ``runpy.run_path`` on this file;
importing this module has no side effects and does not import ``sbi``).

What is measured
----------------
NPE (``sbi.inference.NPE``, i.e. NPE-C) with a prior ``BoxUniform`` over the simulator's
declared (possibly widened) ranges ``simulator.bounds()``; ``--n-sims`` prior draws simulated
with the gangal simulator in batches of 4096 (parameters and simulator noise from a
``torch.Generator`` seeded with ``SEED + 104729``, not the true set's stream ``SEED + 7919``);
a ``maf`` flow (``sbi.neural_nets.posterior_nn``, sbi's default z-scoring of parameters and
inputs: ``"independent"``) on sbi's ``CNNEmbedding`` of the image; sbi's default training
(Adam 5e-4, batch 200, 10% validation, early stopping after 20 epochs without improvement;
``--max-epochs N`` is sbi's ``max_num_epochs=N``, which runs N + 1 epochs).  Then
``--posterior-samples`` samples per true image, restricted to the prior's support as sbi's
default rejection does, drawn by ``posterior.sample_batched`` (see :func:`_sample_posteriors`
for why the rejection is done here, and the JSON's ``sampling`` for acceptance rates and
images left short), and two population estimates per parameter:
"posterior_means" (mean and ddof=1 std over images of the per-image posterior means) and
"pooled_samples" (mean and std of all samples pooled), each against the truth's mean and std
(``dmu_over_sigma = |mean - true_mean| / true_std``, ``sigma_ratio = std / true_std``).  Wall
seconds (``time.perf_counter``) for the true set, simulation, training and inference are kept
apart (``total`` covers all four).  The
global torch RNG (network initialisation, validation split, batches, sampling) is seeded with
``SEED``.  sbi's TensorBoard logging is switched off (it would write ``./sbi-logs``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

CASES = ("circle-table2", "polynomial-table1", "circle-lowsignal", "circle-misspecified")
# case -> (simulator, --range items, --truth overrides {name: (mean, std)}, misspecified)
_CASE_SPECS: dict[str, tuple[str, tuple[str, ...], dict[str, tuple[float, float]], bool]] = {
    "circle-table2": ("circle", (), {}, False),
    "polynomial-table1": ("polynomial", (), {}, False),
    "circle-lowsignal": ("circle", ("n=0.2:0.8", "b=0.05:0.6"), {"n": (0.5, 0.05), "b": (0.25, 0.05)}, False),
    "circle-misspecified": ("circle", (), {}, True),
}
GRADIENT_AMPLITUDE = 0.15  # brightness at the right edge; the ring peaks near b ~ 0.9, the noise is n ~ 0.15
SIMULATION_BATCH = 4096
SIMULATION_SEED_OFFSET = 104729  # make_true_set draws from seed + 7919
INFERENCE_CHUNK = 200  # true images per sample_batched call


def misspecify(images: Any, amplitude: float = GRADIENT_AMPLITUDE) -> Any:
    """Add a sky-background gradient, ``amplitude * x / width``, that no circle parameter can make.

    Parameters
    ----------
    images : torch.Tensor or numpy.ndarray
        ``(N, C, H, W)`` (or any shape ending in ``W``) images in the simulator's units, where
        the circle's ring peaks near its brightness ``b`` (about 0.9) and 1 is the maximum
        brightness.
    amplitude : float, optional
        The background at ``x = width`` (default 0.15: about a sixth of the ring's peak, and
        one noise standard deviation at the reference truth).

    Returns
    -------
    torch.Tensor or numpy.ndarray
        New images (the input is not changed), the same type, dtype and shape.  The gradient
        rises with ``x = col + 0.5``, the pixel-centre convention of gangal's simulators, from
        ``amplitude * 0.5 / width`` in the left column to ``amplitude * (width - 0.5) / width``
        in the right; it is constant down each column.
    """
    width = images.shape[-1]
    ramp = amplitude * (np.arange(width, dtype=np.float64) + 0.5) / width
    if isinstance(images, torch.Tensor):
        return images + torch.as_tensor(ramp, dtype=images.dtype, device=images.device)
    return images + ramp.astype(images.dtype)


def simulator_for(case: str) -> Any:
    """The case's gangal simulator, from the plugin registry with its ``--range`` overrides applied."""
    from gangal_core.plugins import get_registry
    from gangal_core.simulation.simulator import parse_ranges, with_ranges

    name, ranges, _, _ = _CASE_SPECS[_check_case(case)]
    sim = get_registry().simulator(name)
    return with_ranges(sim, parse_ranges(ranges, sim))


def true_set(
    case: str, n_true: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, tuple[float, float]], Any]:
    """The case's true set, identical to the one ``gangal calibrate`` builds with the same options.

    Parameters
    ----------
    case : str
        One of :data:`CASES`.
    n_true : int
        Number of true images (gangal's ``--n-true``).
    seed : int
        gangal's ``--seed``.

    Returns
    -------
    params : torch.Tensor
        ``(n_true, P)`` true parameters.
    images : torch.Tensor
        ``(n_true, C, H, W)`` true images (passed through :func:`misspecify` for
        ``circle-misspecified``).
    truth : dict
        ``{name: (mean, std)}`` of the Gaussians the parameters were drawn from, in the
        simulator's parameter order.
    simulator : Simulator
        The simulator with the case's declared ranges (the prior's support).
    """
    from gangal_core.calibration.truth import make_true_set

    _, _, overrides, misspecified = _CASE_SPECS[_check_case(case)]
    sim = simulator_for(case)
    names = sim.parameter_names()
    truth = dict(sim.reference_truth or {})
    truth.update(overrides)
    truth = {n: truth[n] for n in names}
    params, images = make_true_set(sim, truth, n=n_true, seed=seed)
    if misspecified:
        images = misspecify(images)
    return params, images, truth, sim


def _check_case(case: str) -> str:
    if case not in _CASE_SPECS:
        raise ValueError(f"unknown case {case!r}; the cases are {', '.join(CASES)}")
    return case


class _NoTracker:
    """A do-nothing sbi tracker: sbi's default writes TensorBoard files under ``./sbi-logs``."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


def _simulate(sim: Any, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uniform draws over the declared ranges and their images, flattened to ``(n, C*H*W)``."""
    from gangal_core.simulation.simulator import call_simulator

    theta = sim.sample_uniform(n, generator=generator)
    x = torch.cat(
        [
            call_simulator(sim, theta[i : i + SIMULATION_BATCH], generator=generator, where="sbi simulations")
            for i in range(0, n, SIMULATION_BATCH)
        ]
    )
    return theta, x.reshape(n, -1)


def _sample_posteriors(
    posterior: Any, prior: Any, x: torch.Tensor, n_samples: int, *, max_factor: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n_samples`` posterior samples per row of ``x``, within the prior's support.

    sbi's own rejection (``sample_batched(..., reject_outside_prior=True)``) keeps drawing for
    every observation until the *worst* one has its samples, holding all of them in memory; one
    leaky posterior then costs hours.  Here each round draws ``n_samples`` proposals for every
    unfinished image with ``sample_batched(..., reject_outside_prior=False)``, keeps those inside
    the support (sbi's ``within_support``, the same test) and retires an image once it has
    ``n_samples`` accepted or ``max_factor * n_samples`` proposals.  The accepted samples are
    those sbi's rejection would give; only an image starved by the proposal cap ends short.

    Returns
    -------
    samples : torch.Tensor
        ``(N, n_samples, P)``; rows an image did not fill are NaN.
    counts : torch.Tensor
        ``(N,)`` accepted samples per image.
    acceptance : torch.Tensor
        ``(N,)`` fraction of each image's proposals inside the support.
    """
    import warnings

    from sbi.utils.sbiutils import within_support

    n = x.shape[0]
    dims = prior.event_shape[0]
    samples = torch.full((n, n_samples, dims), float("nan"))
    counts = torch.zeros(n, dtype=torch.long)
    proposed = torch.zeros(n, dtype=torch.long)
    inside_total = torch.zeros(n, dtype=torch.long)
    active = torch.arange(n)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*reject_outside_prior.*")
        while active.numel():
            for part in active.split(INFERENCE_CHUNK):
                drawn = posterior.sample_batched(
                    (n_samples,),
                    x=x[part],
                    reject_outside_prior=False,
                    max_sampling_batch_size=max(1, 100_000 // len(part)),  # unused here; stops a warning
                    show_progress_bars=False,
                )  # (n_samples, B, P)
                inside = within_support(prior, drawn.reshape(-1, dims)).reshape(n_samples, len(part))
                proposed[part] += n_samples
                inside_total[part] += inside.sum(dim=0)
                for k, i in enumerate(part.tolist()):
                    keep = drawn[inside[:, k], k][: n_samples - int(counts[i])]
                    samples[i, counts[i] : counts[i] + keep.shape[0]] = keep
                    counts[i] += keep.shape[0]
            active = active[(counts[active] < n_samples) & (proposed[active] < max_factor * n_samples)]
    acceptance = inside_total.double() / proposed.double()
    return samples, counts, acceptance


def _aggregate(values: np.ndarray, true_mean: float, true_std: float) -> dict[str, float]:
    mean, std = float(values.mean()), float(values.std(ddof=1))
    return {
        "mean": mean,
        "std": std,
        "dmu_over_sigma": abs(mean - true_mean) / true_std,
        "sigma_ratio": std / true_std,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate, train NPE, sample every true image's posterior; the JSON document."""
    import sbi
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn
    from sbi.neural_nets.embedding_nets import CNNEmbedding
    from sbi.utils import BoxUniform

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    _, true_images, truth, sim = true_set(args.case, args.n_true, args.seed)
    seconds: dict[str, float] = {"true_set": time.perf_counter() - started}
    names = sim.parameter_names()
    channels, height, width = sim.image_shape
    true_x = true_images.reshape(args.n_true, -1)
    low, high = sim.bounds()
    prior = BoxUniform(low=low, high=high)

    t = time.perf_counter()
    theta, x = _simulate(sim, args.n_sims, torch.Generator().manual_seed(args.seed + SIMULATION_SEED_OFFSET))
    seconds["simulate"] = time.perf_counter() - t

    t = time.perf_counter()
    torch.manual_seed(args.seed)
    embedding = CNNEmbedding(input_shape=(height, width), in_channels=channels)
    builder = posterior_nn(model=args.model, embedding_net=embedding)
    inference = NPE(prior=prior, density_estimator=builder, tracker=_NoTracker(), show_progress_bars=False)
    inference.append_simulations(theta, x)
    train_kwargs = {} if args.max_epochs is None else {"max_num_epochs": args.max_epochs}
    estimator = inference.train(**train_kwargs)
    posterior = inference.build_posterior(estimator)
    seconds["train"] = time.perf_counter() - t
    summary = inference.summary

    t = time.perf_counter()
    samples, counts, acceptance = _sample_posteriors(
        posterior, prior, true_x, args.posterior_samples, max_factor=args.max_proposal_factor
    )
    seconds["inference"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started

    got = counts > 0  # images with at least one accepted sample
    per_image_means = torch.nanmean(samples[got].double(), dim=1).numpy()  # (images, P)
    pooled = samples[~torch.isnan(samples[..., 0])].double().numpy()  # every accepted sample
    parameters = {}
    for j, name in enumerate(names):
        mu, sd = truth[name]
        parameters[name] = {
            "true_mean": mu,
            "true_std": sd,
            "posterior_means": _aggregate(per_image_means[:, j], mu, sd),
            "pooled_samples": _aggregate(pooled[:, j], mu, sd),
        }
    return {
        "case": args.case,
        "simulator": sim.name,
        "ranges": {n: [float(lo), float(hi)] for n, lo, hi in zip(names, low, high, strict=True)},
        "method": f"sbi NPE-C, {args.model} flow, CNNEmbedding",
        "sbi_version": sbi.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "n_sims": args.n_sims,
        "simulator_calls": args.n_sims,
        "n_true": args.n_true,
        "posterior_samples": args.posterior_samples,
        "seed": args.seed,
        "max_epochs": args.max_epochs,
        "epochs_trained": int(summary["epochs_trained"][-1]),
        "best_validation_loss": float(summary["best_validation_loss"][-1]),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "sampling": {
            "max_proposal_factor": args.max_proposal_factor,
            "acceptance_mean": float(acceptance.mean()),
            "acceptance_min": float(acceptance.min()),
            "acceptance_median": float(acceptance.median()),
            "images_short": int((counts < args.posterior_samples).sum()),
            "images_without_samples": int((~got).sum()),
            "samples_pooled": int(pooled.shape[0]),
        },
        "parameters": parameters,
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` atomically (``PATH.tmp`` then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def print_table(doc: dict[str, Any]) -> None:
    """The recovery table: per parameter, the truth and both population estimates."""
    s = doc["seconds"]
    print(
        f"{doc['case']}: sbi {doc['sbi_version']} NPE, {doc['n_sims']} simulations, "
        f"{doc['n_true']} true images, {doc['posterior_samples']} samples each, "
        f"{doc['epochs_trained']} epochs, {doc['torch_threads']} threads"
    )
    print(
        f"seconds: simulate {s['simulate']:.1f}  train {s['train']:.1f}  "
        f"inference {s['inference']:.1f}  total {s['total']:.1f}"
    )
    head = f"{'param':>7} {'true mu':>9} {'true sd':>8} | {'post-mean mu':>12} {'sd':>8} {'|dmu|/sd':>8} "
    head += f"{'sd ratio':>8} | {'pooled mu':>10} {'sd':>8} {'|dmu|/sd':>8} {'sd ratio':>8}"
    print(head)
    for name, p in doc["parameters"].items():
        a, b = p["posterior_means"], p["pooled_samples"]
        print(
            f"{name:>7} {p['true_mean']:9.4g} {p['true_std']:8.4g} | {a['mean']:12.4g} {a['std']:8.4g} "
            f"{a['dmu_over_sigma']:8.2f} {a['sigma_ratio']:8.2f} | {b['mean']:10.4g} {b['std']:8.4g} "
            f"{b['dmu_over_sigma']:8.2f} {b['sigma_ratio']:8.2f}"
        )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--case", required=True, choices=CASES)
    parser.add_argument("--out", required=True, type=Path, help="JSON file to write")
    parser.add_argument("--n-sims", type=_positive, default=20000, help="simulations to train on")
    parser.add_argument("--n-true", type=_positive, default=2000, help="true images")
    parser.add_argument("--posterior-samples", type=_positive, default=500, help="samples per true image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=_positive, default=2, help="torch.set_num_threads")
    parser.add_argument("--max-epochs", type=_positive, default=None, help="cap on training epochs")
    parser.add_argument("--model", default="maf", choices=("maf", "nsf"), help="the flow")
    parser.add_argument(
        "--max-proposal-factor",
        type=_positive,
        default=100,
        help="give up on an image's posterior after this many times --posterior-samples proposals",
    )
    args = parser.parse_args(argv)
    if args.n_true < 2:
        parser.error("--n-true must be at least 2 (a standard deviation over images)")
    doc = run(args)
    if not all(math.isfinite(v) for p in doc["parameters"].values() for v in _numbers(p)):
        print("warning: non-finite estimates")
    write_json(args.out, doc)
    print_table(doc)
    print(f"wrote {args.out}")


def _numbers(p: dict[str, Any]) -> list[float]:
    return [p["true_mean"], p["true_std"], *p["posterior_means"].values(), *p["pooled_samples"].values()]


if __name__ == "__main__":
    main()
