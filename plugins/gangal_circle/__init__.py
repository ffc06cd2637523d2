"""The circle simulator (Alonso-Monsalve & Whitehead 2020, case study 2).

A 28x28 image holds a ring of radius ``r`` centred on ``(x0, y0)`` with brightness
``b``, plus white Gaussian noise of standard deviation ``n``; ``n`` and ``b`` are
fractions of the maximum brightness (1).  Stochastic: the noise is drawn from the
``torch.Generator`` passed in.  See ``docs/simulators.md`` for the exact recipe.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from gangal_core import Parameter, Simulator, hookimpl, pixel_centres, render_separable

__all__ = ["CircleSimulator", "register_simulators"]

RING_WIDTH = 0.5  # Gaussian sigma of the ring's cross-section, in pixels


class CircleSimulator(Simulator):
    """Noisy ring images, ``p = (x0, y0, r, n, b)``.

    Notes
    -----
    Pixel ``(row, col)`` has centre ``(x, y)`` with ``x = col + 0.5`` and
    ``y = 27.5 - row`` (``y`` up).  With ``rho^2 = (x - x0)^2 + (y - y0)^2``::

        I(x, y) = b * exp(-(rho^2 - r^2)^2 / (8 r^2 w^2)) + n * eps,   eps ~ N(0, 1)

    Near the ring ``rho^2 - r^2 ~ 2 r (rho - r)``, so the cross-section is a Gaussian
    of width ``w = 0.5`` px in the distance from the ring, whatever the radius.
    """

    name = "circle"
    image_shape = (1, 28, 28)
    parameters = (
        Parameter("x0", 14.8, 21.2, unit="px", description="x of the ring's centre"),
        Parameter("y0", 14.8, 21.2, unit="px", description="y of the ring's centre (y up)"),
        Parameter("r", 6.0, 10.0, unit="px", description="radius of the ring"),
        Parameter("n", 0.0, 0.35, description="white-noise standard deviation, fraction of max brightness"),
        Parameter("b", 0.7, 1.1, description="ring brightness, fraction of max brightness"),
    )
    # The paper's Table II: true mean and standard deviation of each parameter.
    reference_truth: ClassVar[dict[str, tuple[float, float]]] = {
        "x0": (18.0, 0.8),
        "y0": (18.0, 0.8),
        "r": (8.0, 0.5),
        "n": (0.15, 0.05),
        "b": (0.9, 0.05),
    }

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Draw one noisy ring per row of ``params``; noise comes from ``generator``."""
        _, height, width = self.image_shape
        p = params.to(torch.float32)
        x0, y0, r, n, b = (p[:, i : i + 1] for i in range(5))  # each (B, 1)
        if bool((r <= 0).any() | (n < 0).any() | (b < 0).any()):
            raise ValueError("circle: r must be > 0, and n and b >= 0")
        x, y = pixel_centres(height, width)
        k = 1.0 / (8.0 * r * r * RING_WIDTH**2)  # (B, 1)
        a = (x - x0) ** 2  # (B, W)
        d = (y - y0) ** 2 - r * r  # (B, H)
        # log b - k (a + d)^2 = [-k, -2 k d, log b - k d^2] . [a^2, a, 1]
        row_terms = torch.stack((-k.expand_as(d), -2.0 * k * d, b.log() - k * d * d), dim=2)
        col_terms = torch.stack((a * a, a, torch.ones_like(a)), dim=1)
        batch = p.shape[0]
        images = torch.empty(batch, 1, height, width)
        flat = images.view(batch, height, width)
        render_separable(row_terms, col_terms, out=flat)
        noise = torch.empty_like(flat).normal_(generator=generator)
        flat.addcmul_(noise, n.unsqueeze(2))
        return images


@hookimpl
def register_simulators(register):
    register(CircleSimulator)
