"""How sharply a sharp image's parameters are read: by inverting the emulator, or by the estimator.

    python benchmarks/emulator_resolution.py RUN [ARCH ...]      ARCH: conv, coord, conv:width=64

On the polynomial (Table I) the per-image likelihood fit could not read the line's sub-pixel
offset ``c`` (issue 17, session 26).  For 1,000 images drawn from the run's truth, this reports,
per parameter in units of the true spread, the error of each image's maximum-likelihood
parameters under an emulator (the fit's own search: the best of 3,000 draws, then 120 Adam
steps), and the error's spread in units of the likelihood's curvature (``z std``: 1 when the
emulator's likelihood is honest):

- for each ``ARCH``, an emulator trained afresh for 1,600 minibatches on the run's first bank
  (``RUN/simulations/round-0``, the declared ranges; no estimator): ``conv`` the built-in one,
  ``conv:width=64`` twice its channels, ``coord`` the same with two coordinate channels
  (CoordConv, Liu et al. 2018) before each convolution;
- the run's final emulator (``RUN/emulator``, refined over the rounds), and its parameter
  estimator (the regression network pretrained beside it) on the same images.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import gangal_core.calibration.likelihood as L
import gangal_core.calibration.pretraining as PT
from gangal_core.calibration.emulator import load_emulator
from gangal_core.calibration.networks import ConvEmulator
from gangal_core.plugins import get_registry
from gangal_core.simulation.bank import load_bank


class CoordEmulator(ConvEmulator):
    """The built-in emulator with x and y coordinate channels fed to each convolution."""

    name = "coord"

    def __init__(self, image_shape, n_parameters, *, width=32, hidden=256):
        super().__init__(image_shape, n_parameters, width=width, hidden=hidden)
        c, w = self.image_shape[0], self.width
        self.up = nn.ModuleList([
            nn.ConvTranspose2d(w + 2, w // 2, 4, 2, 1),
            nn.ConvTranspose2d(w // 2 + 2, max(w // 4, 4), 4, 2, 1),
            nn.Conv2d(max(w // 4, 4) + 2, 2 * c, 3, padding=1),
        ])  # fmt: skip

    def for_inference(self):
        return self

    @staticmethod
    def _coords(x):
        b, _, h, w = x.shape
        yy = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
        xx = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([x, yy, xx], 1)

    def forward(self, u):
        c, h, w = self.image_shape
        x = self.mlp(u).view(-1, self.width, self.h0, self.w0)
        for i, layer in enumerate(self.up):
            x = layer(self._coords(x))
            if i < 2:
                x = F.leaky_relu(x, 0.2)
        y = x[..., :h, :w]
        return torch.tanh(y[:, :c]), F.softplus(y[:, c:]) + 1e-3


def read_by_emulator(emulator, images, params, mean, std):
    """Each image's maximum-likelihood parameters: errors in true spreads, and their z scores."""
    x = L._normalised(emulator, images)
    centre, spread = L._unit_population(emulator, mean.numpy(), std.numpy())
    screen = L._draw(centre, L.WIDEN * spread, L.SCREEN_DRAWS, seed=0)
    best = screen.unit[L._log_likelihood(emulator, images, screen.unit).argmax(1)]
    best = L._best_parameters(emulator, x, best, steps=L.LOCAL_STEPS)
    cov = L._laplace_covariance(emulator, best)
    err = (emulator.to_physical(best) - params) / std
    z = (best - emulator.to_unit(params)) / cov.diagonal(dim1=1, dim2=2).sqrt()
    return err, z.std(0)


def row(label, err, z=None):
    cells = [f"{e.mean():+.3f} / {e.pow(2).mean().sqrt():.3f}" for e in err.T]
    z_cells = " | ".join(f"{v:.2f}" for v in z) if z is not None else " | ".join("-" for _ in cells)
    return f"| {label} | " + " | ".join(cells) + f" | {z_cells} |"


def main(folder: Path, archs: list[str]) -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    doc = json.loads((folder / "calibration.json").read_text())
    simulator = get_registry().simulator(doc["simulator"])
    names = list(doc["parameters"])
    mean = torch.tensor([doc["parameters"][n]["true_mean"] for n in names])
    std = torch.tensor([doc["parameters"][n]["true_std"] for n in names])
    gen = torch.Generator().manual_seed(5)
    params = mean + std * torch.randn(1000, len(names), generator=gen)
    images = simulator.simulate(params, generator=gen)
    bank = load_bank(folder / "simulations" / "round-0", simulator)
    custom = PT.network_class
    PT.network_class = lambda reg, kind, arch: CoordEmulator if arch == "coord" else custom(reg, kind, arch)
    print(f"{folder}: 1,000 images from the truth; per parameter bias / rms of the error in true spreads, "
          "then the error's spread in units of the likelihood's curvature (z std)\n")  # fmt: skip
    print("| reader | " + " | ".join(names) + " | " + " | ".join(f"z {n}" for n in names) + " |")
    print("| --- |" + " --- |" * (2 * len(names)))
    for arch in archs:
        name, _, option = arch.partition(":")
        options = {k: int(v) for k, v in (o.split("=") for o in option.split(",") if o)}
        started = time.perf_counter()
        emulator = PT.pretrain(simulator, bank=bank, iterations=1600, seed=0, progress=False,
                               emulator_arch=name, emulator_options=options,
                               estimate_parameters=False)  # fmt: skip
        err, z = read_by_emulator(emulator, images, params, mean, std)
        print(row(f"emulator {arch}, first bank ({time.perf_counter() - started:.0f} s)", err, z), flush=True)
    final = load_emulator(folder / "emulator")
    err, z = read_by_emulator(final, images, params, mean, std)
    print(row("the run's final emulator", err, z))
    if final.estimator is not None:
        estimates = torch.from_numpy(L._estimates(final, images)).float()
        print(row("the run's parameter estimator", (estimates - params) / std))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:] or ["conv", "conv:width=64", "coord"])
