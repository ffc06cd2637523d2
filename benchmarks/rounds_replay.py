"""Replay the generator stages of a calibration in rounds on its stored banks and emulators.

A calibration within a budget (``benchmarks/run_budget.sh``) keeps every bank under
``simulations/round-K`` and every emulator stage as ``checkpoint-pretrain-K``.  This script
copies such a run without its generator checkpoints and results, then runs the same
``gangal calibrate`` with ``--resume``: the emulators load from their checkpoints, each round's
bank loads from disk instead of being simulated again, and only the generator and
discriminator stages (about 40% of the run) train again.  A variant of those stages can then
be screened on several cases and seeds in a fraction of the time of full runs::

    python benchmarks/rounds_replay.py RUN OUT [--variant accumulate] [--variant glr=0.4]

With no variant the replay reproduces ``RUN/calibration.json`` (a check of the harness).  The
rounds' banks are those the original run simulated: a variant that moves the generator would
have drawn other parameters, so a replay screens; full runs decide.

Variants:

``accumulate``
    D's anchors in round K are those of every round so far, not round K's alone.
``glr=F``
    The generator's learning rate in the anchored rounds is F times the default.
``r1=G``
    D carries the R1 penalty of weight G on the true images in the anchored rounds.
``steps=F``
    The anchored rounds train G and D for F times their default iterations (the first,
    emulated stage unchanged); with ``glr=1/F`` the generator drifts as far over a round at
    1/F of the gradient noise's temperature (learning rate over batch size).
``affine``
    In the anchored rounds G may only map the parameters of the round's first generator G0
    by an affine map before its tanh (its last layer kept of the form ``A W0`` by projection
    after every step; its bias free, the layers before it frozen): the distribution may shift,
    scale and turn, but G's map from z cannot churn, so every anchor's parameters move
    together with the distribution.
``lastlayer``
    In the anchored rounds only G's last layer learns (the layers before it frozen): a
    middle way between the default and ``affine``.
``freshd``
    Every anchored round starts a fresh D from the refined emulator's estimator, as the first
    stage does, instead of continuing the last round's D (whose memory of the true images and
    the anchors grows round by round).
``bodylr=F``
    In the anchored rounds G's layers before the last move F times as far each step as Adam
    would move them (the last layer at its full rate): 0 is ``lastlayer``, 1 the default.
``dlr=F``
    D's encoder (all but its head) learns at F times its rate in the anchored rounds; 0
    freezes it, so that D is a linear judge of fixed features and cannot learn the anchors'
    noise by heart.
``group=N``
    D's minibatch-spread feature is taken over groups of N images (default 16) in the anchored
    rounds: a sharper signal on the spread.
``nearest=POOL``
    G's inputs are fresh draws, and each anchored image is carried from the stored simulation
    nearest to G(z) (in parameter space, each parameter over the round's anchors' spread)
    instead of from the simulation of G0(z): the emulator then carries each image over a
    short distance however far G's map from z to parameters has churned.  POOL is
    ``anchors`` (the round's G0(z) simulations), ``round`` (all of the round's simulations) or
    ``all`` (every simulation so far).
``prox=L``
    In the anchored rounds G's loss carries ``L`` times the mean squared move of each anchor's
    parameters from where the round's simulation of it was made (each parameter over the
    anchors' spread): the distribution may move, but G's map from z to parameters may not
    churn, so the emulator carries each stored image over a short distance.
``gain``
    The emulator's change of mean is scaled, in the carry, by its gain over the round's anchors:
    ``g = cov(T, mu_E) / var(mu_E)`` pooled over pixels, 1 for an emulator as strong as the
    simulator, ``1/s`` for one that draws the signal ``s`` times too faint.  The anchored image
    is ``T(G0(z)) + g (mu_E(G(z)) - mu_E(G0(z)))`` plus the residual's change of spread.
``meanonly``
    A diagnostic: the anchored image is ``T(G0(z)) + mu_E(G(z)) - mu_E(G0(z))``, the residual
    not scaled by the emulator's change of spread (so noise parameters learn nothing in the
    anchored rounds).  Tells whether the spread path is what moves a parameter.
``shuffle``
    G's inputs are fresh draws, and each anchored image takes the residual of a random anchor
    (drawn anew every step) instead of its own: G cannot learn the anchors' fixed noise.
``assign=POOL``
    G's inputs are fresh draws; each step pairs the minibatch's parameters G(z) one to one
    (an optimal assignment over each one's 4 nearest, in units of the anchors' spread) with
    stored simulations from POOL, ``round`` (the round's) or ``all`` (every simulation so
    far), and carries each from there: D is shown many more distinct simulator images near
    the generator than the round's anchors, so it can learn fewer of them by heart.
``ema=DECAY``
    The best match's snapshots are an exponential moving average of the generator's weights
    (``w <- DECAY w + (1 - DECAY) w_G`` every step, carried across stages) instead of the
    generator's weights at that step: a generator that oscillates is read at its centre, where a
    mixture of its snapshots is widened by the oscillation.
``trace=FILE``
    A diagnostic, with any other variant: every 25 steps of every stage, the generator's mean
    and spread of each parameter (physical units, 4,000 draws) are appended to FILE (JSON
    lines), to see when within a stage a spread moves.
``match=anchor``
    Each step pairs the minibatch's parameters G(z) one to one with the same rows' anchors so
    that the summed squared distance (each parameter over the anchors' spread) is least
    (an optimal assignment), and carries each anchor to the parameters it is paired with: the
    distribution D sees is the anchors' moved by G's change of distribution, however far G's
    map from z to parameters has churned, and no anchor is used twice in a step.
``match=fresh``
    As ``match=anchor``, but G's inputs are fresh draws, paired with a fresh draw of anchors:
    which stored residual a z is carried with changes from step to step, so G cannot learn,
    z by z, to move away from residuals D knows by heart.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from gangal_core.calibration import gan, rounds
from gangal_core.calibration.run import run_calibrate
from gangal_core.config import CalibrateConfig
from gangal_core.simulation.bank import SimulationBank, load_bank

KEEP = ("simulations", "checkpoint-pretrain-")


def copy_run(run: Path, out: Path) -> None:
    """``run``'s banks and emulator checkpoints, nothing else, into a fresh ``out``."""
    if out.exists():  # only an earlier replay is replaced: never a run or another folder
        if not (out / "replay.json").is_file():
            raise SystemExit(f"{out} exists and is not an earlier replay (no replay.json); pick another OUT.")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for item in run.iterdir():
        if item.name.startswith(KEEP):
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, out / item.name)


def patch_banks() -> None:
    """Load a round's bank from its folder when it is there, instead of simulating it."""
    original = rounds.simulate_bank

    def stored(simulator, n, *, seed, params=None, folder=None):
        if folder is not None and Path(folder).is_dir():
            return load_bank(folder, simulator)
        return original(simulator, n, seed=seed, params=params, folder=folder)

    rounds.simulate_bank = stored


def patch_accumulate() -> None:
    """Round K's anchors: those of rounds 1..K together."""
    original = rounds._stored_anchors
    kept: list[gan.Anchors] = []

    def accumulated(anchors, bank):
        kept.append(original(anchors, bank))
        return gan.Anchors(
            *(torch.cat([getattr(a, f) for a in kept]) for f in ("noise", "parameters", "images"))
        )

    rounds._stored_anchors = accumulated


def patch_anchored_trainers(change) -> None:
    """Call ``change(trainer)`` on every trainer of an anchored round, once it is built."""
    for cls in gan.CALIBRATION.values():
        init = cls.__init__

        def changed(self, *args, _init=init, **kwargs):
            _init(self, *args, **kwargs)
            if kwargs.get("anchors") is not None:  # after the warm start, which restores Adam's rate
                change(self)

        cls.__init__ = changed


def patch_generator_rate(factor: float) -> None:
    """The generator's learning rate times ``factor`` in the anchored rounds."""

    def scale(trainer) -> None:
        for group in trainer.optimisers["generator"].param_groups:
            group["lr"] = trainer.learning_rate * factor

    patch_anchored_trainers(scale)


def patch_steps(factor: float) -> None:
    """The anchored rounds' iterations times ``factor``."""
    original = rounds.round_iterations

    def longer(iterations, n_rounds):
        stages = original(iterations, n_rounds)
        return stages[:1] + [max(1, round(factor * n)) for n in stages[1:]]

    rounds.round_iterations = longer


def _generator_body(trainer) -> list[torch.nn.Parameter]:
    """The weights of G's layers before the last (its map from z to features)."""
    return [p for module in trainer.generator.net[:-2] for p in module.parameters()]


def patch_affine() -> None:
    """G's last layer held to an affine map of the round's first G (see ``affine``)."""

    def restrict(trainer) -> None:
        last = trainer.generator.net[-2]
        for p in _generator_body(trainer):
            p.requires_grad_(False)
        w0 = last.weight.detach().clone()
        inv = torch.linalg.inv(w0 @ w0.T)  # W0 is P x hidden, of rank P
        update = trainer.update

        def projected(name, loss):
            update(name, loss)
            if name == "generator":
                with torch.no_grad():
                    last.weight.copy_(last.weight @ w0.T @ inv @ w0)  # W = A W0, A least squares

        trainer.update = projected

    patch_anchored_trainers(restrict)


def patch_last_layer() -> None:
    """Only G's last layer learns in the anchored rounds."""

    def freeze(trainer) -> None:
        for p in _generator_body(trainer):
            p.requires_grad_(False)

    patch_anchored_trainers(freeze)


def patch_body_rate(factor: float) -> None:
    """G's body steps ``factor`` times as far as Adam would in the anchored rounds."""

    def slow(trainer) -> None:
        body = _generator_body(trainer)
        update = trainer.update

        def damped(name, loss):
            before = [p.detach().clone() for p in body] if name == "generator" else None
            update(name, loss)
            if before is not None:
                with torch.no_grad():
                    for p, old in zip(body, before, strict=True):
                        p.copy_(old + factor * (p - old))

        trainer.update = damped

    patch_anchored_trainers(slow)


def patch_discriminator_rate(factor: float) -> None:
    """D's encoder learns at ``factor`` times its rate in the anchored rounds (its head as before)."""

    def scale(trainer) -> None:
        body = trainer.optimisers["discriminator"].param_groups[0]
        body["lr"] = (trainer.discriminator_learning_rate or trainer.learning_rate) * factor

    patch_anchored_trainers(scale)


def patch_shuffle() -> None:
    """Fresh inputs for G, and every anchored image the residual of a random anchor."""

    def images(trainer, u, mean, std):
        n, pool = trainer.batch.size, trainer.anchor_eps.shape[0]
        rows = torch.randint(0, pool, (n,), generator=trainer.random)[trainer.batch.rows]
        eps = trainer.anchor_eps[rows.to(trainer.device)]
        clipped = eps.clamp(-8, 8)
        return mean + std * clipped + (std * (eps - clipped)).detach()

    def noise(trainer, n):
        z = torch.randn(n, trainer.generator.noise_size, generator=trainer.random)
        return z[trainer.batch.rows].to(trainer.device)

    gan.DISCRIMINATOR_IMAGES["anchored"] = images
    gan.CalibrationTrainer.noise = noise


def _patch_pool(pool: str, choose, *, first_bank: bool = False) -> None:
    """Fresh inputs for G; each anchored image carried from the stored simulation ``choose`` picks.

    The pool is ``anchors`` (the round's G0(z) simulations), ``round`` (all the round's) or
    ``all`` (every round's, and the first bank's too with ``first_bank``).  ``choose(d)`` takes
    the squared distances of G's draws to the pool's rows (each parameter over the round's
    anchors' spread) and returns a row for each draw.
    """
    original, simulate = rounds._stored_anchors, rounds.simulate_bank
    seen: list[SimulationBank] = []

    def recorded(*args, **kwargs):
        seen.append(simulate(*args, **kwargs))
        return seen[-1]

    def stored(anchors, bank):
        kept = original(anchors, bank)
        if not first_bank:
            seen.append(bank)
        if pool == "anchors":
            params, images = kept.parameters, kept.images
        else:
            banks = seen if pool == "all" else seen[-1:]
            params = torch.cat([b.parameters for b in banks])
            images = torch.cat([b.images for b in banks])
        # the pool's rows, and the anchors' parameters to scale distances (their spread)
        return gan.Anchors(torch.zeros(len(params), kept.noise.shape[1]), params, images), kept.parameters

    def set_anchors(trainer, pair):
        pooled, scale_from = pair
        _set(trainer, pooled)
        with torch.no_grad():
            trainer.pool_scale = trainer.emulator.to_unit(scale_from.float()).std(dim=0).clamp_min(1e-6)
            trainer.pool_u0 = trainer.emulator.to_unit(pooled.parameters.float()) / trainer.pool_scale

    def noise(trainer, n):
        z = torch.randn(n, trainer.generator.noise_size, generator=trainer.random)
        if trainer.anchor_noise is not None:
            trainer.anchor_rows = None  # chosen from G(z) in images()
        return z[trainer.batch.rows].to(trainer.device)

    def images(trainer, u, mean, std):
        with torch.no_grad():
            rows = choose(torch.cdist(u.detach() / trainer.pool_scale, trainer.pool_u0).square())
        eps = trainer.anchor_eps[rows]
        clipped = eps.clamp(-8, 8)
        return mean + std * clipped + (std * (eps - clipped)).detach()

    _set = gan.CalibrationTrainer._set_anchors
    rounds._stored_anchors = stored
    if first_bank:
        rounds.simulate_bank = recorded
    gan.CalibrationTrainer._set_anchors = set_anchors
    gan.CalibrationTrainer.noise = noise
    gan.DISCRIMINATOR_IMAGES["anchored"] = images


def patch_nearest(pool: str) -> None:
    """Fresh inputs for G; each anchored image carried from the nearest stored simulation."""
    if pool not in ("anchors", "round", "all"):
        raise SystemExit(f"--variant nearest={pool}: expected anchors, round or all")
    _patch_pool(pool, lambda d: d.argmin(dim=1))


def patch_prox(weight: float) -> None:
    """G's loss plus ``weight`` times the anchors' mean squared move (over their spread)."""
    set_anchors, update = gan.CalibrationTrainer._set_anchors, gan.CalibrationTrainer.update

    def remember(trainer, anchors):
        set_anchors(trainer, anchors)
        with torch.no_grad():
            trainer.prox_u0 = trainer.emulator.to_unit(anchors.parameters.float()).to(trainer.device)
            trainer.prox_scale = trainer.prox_u0.std(dim=0).clamp_min(1e-6)

    def penalised(trainer, name, loss):
        if name == "generator" and getattr(trainer, "prox_u0", None) is not None:
            rows = trainer.anchor_rows
            u = trainer.generator(trainer.anchor_noise[rows])
            move = ((u - trainer.prox_u0[rows]) / trainer.prox_scale).square().sum(dim=1).mean()
            loss = loss + weight * move
        update(trainer, name, loss)

    gan.CalibrationTrainer._set_anchors = remember
    gan.CalibrationTrainer.update = penalised


def patch_assign(pool: str) -> None:
    """Fresh inputs for G; each anchored image carried from a distinct nearby pool simulation."""
    from scipy.optimize import linear_sum_assignment

    if pool not in ("round", "all"):
        raise SystemExit(f"--variant assign={pool}: expected round or all")

    def one_to_one(d: torch.Tensor) -> torch.Tensor:
        k = 4
        cand = torch.unique(d.topk(k, dim=1, largest=False).indices)
        while len(cand) < len(d):  # crowded: widen until every row can have its own
            k *= 2
            cand = torch.unique(d.topk(min(k, d.shape[1]), dim=1, largest=False).indices)
        _, cols = linear_sum_assignment(d[:, cand].cpu().numpy())
        return cand[torch.as_tensor(cols)]

    _patch_pool(pool, one_to_one, first_bank=True)


def patch_ema(decay: float) -> None:
    """Snapshots of an exponential moving average of G's weights."""
    step = gan.CalibrationTrainer.step
    average: dict[str, torch.Tensor] = {}

    def averaged(trainer, iteration):
        out = step(trainer, iteration)
        state = trainer.generator.state_dict()
        for name, value in state.items():
            if name not in average or not value.is_floating_point():
                average[name] = value.detach().clone()
            else:
                average[name].mul_(decay).add_(value.detach(), alpha=1 - decay)
        if iteration in trainer.snapshot_at:
            trainer.taken[-1] = {k: v.clone() for k, v in average.items()}
        return out

    gan.CalibrationTrainer.step = averaged


def patch_trace(path: str) -> None:
    """Append G's mean and spread every 25 steps to ``path`` (JSON lines)."""
    step = gan.CalibrationTrainer.step
    stage = {"n": -1}

    def traced(trainer, iteration):
        out = step(trainer, iteration)
        if iteration == 0:
            stage["n"] += 1
        if iteration % 25 == 0:
            with torch.no_grad():
                u = trainer.generator.sample(4000, generator=torch.Generator().manual_seed(iteration))
                x = trainer.emulator.to_physical(u.cpu()).numpy()
            row = {"stage": stage["n"], "it": iteration, "mean": x.mean(0).tolist(), "std": x.std(0).tolist()}
            with open(path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
        return out

    gan.CalibrationTrainer.step = traced


def patch_match(inputs: str = "anchor") -> None:
    """Each anchored image carried from the anchor an optimal assignment pairs with G(z)."""
    from scipy.optimize import linear_sum_assignment

    if inputs not in ("anchor", "fresh"):
        raise SystemExit(f"--variant match={inputs}: expected anchor or fresh")

    set_anchors = gan.CalibrationTrainer._set_anchors

    def remember(trainer, anchors):
        set_anchors(trainer, anchors)
        with torch.no_grad():
            trainer.match_u0 = trainer.emulator.to_unit(anchors.parameters.float()).to(trainer.device)
            trainer.match_scale = trainer.match_u0.std(dim=0).clamp_min(1e-6)

    def images(trainer, u, mean, std):
        rows = trainer.anchor_rows
        with torch.no_grad():
            a = trainer.match_u0[rows] / trainer.match_scale
            cost = torch.cdist(u.detach() / trainer.match_scale, a).square()
            _, cols = linear_sum_assignment(cost.cpu().numpy())
        eps = trainer.anchor_eps[rows[torch.as_tensor(cols, device=rows.device)]]
        clipped = eps.clamp(-8, 8)
        return mean + std * clipped + (std * (eps - clipped)).detach()

    def noise(trainer, n):
        z = torch.randn(n, trainer.generator.noise_size, generator=trainer.random)
        if trainer.anchor_noise is not None:
            rows = torch.randint(0, trainer.anchor_noise.shape[0], (n,), generator=trainer.random)
            trainer.anchor_rows = rows[trainer.batch.rows].to(trainer.device)
        return z[trainer.batch.rows].to(trainer.device)

    gan.CalibrationTrainer._set_anchors = remember
    gan.DISCRIMINATOR_IMAGES["anchored"] = images
    if inputs == "fresh":
        gan.CalibrationTrainer.noise = noise


def _emulator_means(trainer, parameters: torch.Tensor) -> torch.Tensor:
    """The frozen emulator's mean images of physical ``parameters``, normalised as D sees them."""
    with torch.no_grad():
        u0 = trainer.emulator.to_unit(parameters.float()).to(trainer.device)
        return torch.cat([trainer.emulator_network(p)[0].float() for p in u0.split(1024)])


def patch_gain() -> None:
    """The carry's change of mean times the emulator's gain over the anchors (see the docstring)."""
    set_anchors = gan.CalibrationTrainer._set_anchors

    def remember(trainer, anchors):
        set_anchors(trainer, anchors)
        images = trainer.emulator.scale.normalise(anchors.images.float()).to(trainer.device)
        trainer.anchor_mean0 = _emulator_means(trainer, anchors.parameters)
        dt, dm = images - images.mean(0), trainer.anchor_mean0 - trainer.anchor_mean0.mean(0)
        trainer.anchor_gain = float((dt * dm).sum() / dm.square().sum())
        print(f"emulator gain over {len(images)} anchors: {trainer.anchor_gain:.3f}", flush=True)

    def images(trainer, u, mean, std):
        eps = trainer.anchor_eps[trainer.anchor_rows]
        clipped = eps.clamp(-8, 8)
        carried = mean + std * clipped + (std * (eps - clipped)).detach()
        return carried + (trainer.anchor_gain - 1) * (mean - trainer.anchor_mean0[trainer.anchor_rows])

    gan.CalibrationTrainer._set_anchors = remember
    gan.DISCRIMINATOR_IMAGES["anchored"] = images


def patch_meanonly() -> None:
    """The carry without its change of spread (a diagnostic, see the docstring)."""
    set_anchors = gan.CalibrationTrainer._set_anchors

    def remember(trainer, anchors):
        set_anchors(trainer, anchors)
        trainer.anchor_images = trainer.emulator.scale.normalise(anchors.images.float()).to(trainer.device)
        trainer.anchor_mean0 = _emulator_means(trainer, anchors.parameters)

    def images(trainer, u, mean, std):
        rows = trainer.anchor_rows
        return trainer.anchor_images[rows] + mean - trainer.anchor_mean0[rows]

    gan.CalibrationTrainer._set_anchors = remember
    gan.DISCRIMINATOR_IMAGES["anchored"] = images


def patch_group(size: int) -> None:
    """D's minibatch-spread groups of ``size`` images in the anchored rounds."""
    patch_anchored_trainers(lambda trainer: setattr(trainer.discriminator, "group_size", size))


def patch_r1(gamma: float) -> None:
    """D's R1 penalty of weight ``gamma`` on the true images in the anchored rounds."""
    patch_anchored_trainers(lambda trainer: setattr(trainer, "r1_gamma", gamma))


def patch_fresh_discriminator() -> None:
    """A fresh D at every anchored round, started from the refined emulator's estimator as in
    the first stage, with a fresh optimiser: no memory of the images of earlier rounds."""

    def fresh(trainer) -> None:
        old = trainer.discriminator
        D = trainer.new_discriminator(minibatch_std=old.minibatch_std, group_size=old.group_size)
        trainer.discriminator = trainer.models["discriminator"] = D.to(trainer.device)
        trainer.optimisers["discriminator"] = trainer.discriminator_optimiser()

    patch_anchored_trainers(fresh)


#: The variants by name: the type of their value (``None``: they take none) and their patch.
VARIANTS = {
    "accumulate": (None, patch_accumulate),
    "shuffle": (None, patch_shuffle),
    "match": (str, patch_match),
    "trace": (str, patch_trace),
    "ema": (float, patch_ema),
    "assign": (str, patch_assign),
    "nearest": (str, patch_nearest),
    "prox": (float, patch_prox),
    "gain": (None, patch_gain),
    "meanonly": (None, patch_meanonly),
    "glr": (float, patch_generator_rate),
    "steps": (float, patch_steps),
    "affine": (None, patch_affine),
    "lastlayer": (None, patch_last_layer),
    "bodylr": (float, patch_body_rate),
    "dlr": (float, patch_discriminator_rate),
    "r1": (float, patch_r1),
    "group": (int, patch_group),
    "freshd": (None, patch_fresh_discriminator),
}


def parse_variant(variant: str, parser: argparse.ArgumentParser):
    """``NAME`` or ``NAME=VALUE`` as (patch, value), or a usage error naming what is known."""
    name, _, text = variant.partition("=")
    if name not in VARIANTS:
        parser.error(f"--variant {variant!r}: unknown; expected one of {', '.join(VARIANTS)}")
    kind, patch = VARIANTS[name]
    if kind is None:
        if text:
            parser.error(f"--variant {variant!r}: {name} takes no value")
        return patch, None
    try:
        return patch, kind(text)
    except ValueError:
        parser.error(f"--variant {variant!r}: expected {name}={kind.__name__}, found {text!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--variant", action="append", default=[])
    args = parser.parse_args()
    record = args.run / "calibration.json"
    if not record.is_file() or not (args.run / "simulations").is_dir():
        parser.error(f"{args.run} is not a finished budget run: it needs calibration.json and simulations/")
    patches = [parse_variant(v, parser) for v in args.variant]  # every variant checked before any copying
    options = json.loads(record.read_text())["options"]
    copy_run(args.run, args.out)
    patch_banks()
    for patch, value in patches:
        if value is None:
            patch()
        else:
            patch(value)
    options.update(out=str(args.out), resume=True)
    cfg = CalibrateConfig(**{k: v for k, v in options.items() if k in CalibrateConfig.model_fields})
    doc = run_calibrate(cfg, progress=False)
    doc["replay"] = {"of": str(args.run), "variants": args.variant}
    (args.out / "replay.json").write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
