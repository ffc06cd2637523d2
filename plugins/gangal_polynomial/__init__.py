"""The first-order polynomial simulator (Alonso-Monsalve & Whitehead 2020, case study 1).

A 28x28 image holds the straight segment ``y = m (x - x0) + c`` for
``x0 <= x <= x0 + xsteps``, drawn as a line of unit peak brightness with a Gaussian
cross-section.  See ``docs/simulators.md`` for the exact recipe.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from gangal_core import Parameter, Simulator, hookimpl, pixel_centres, render_separable

__all__ = ["PolynomialSimulator", "register_simulators"]

LINE_WIDTH = 0.5  # Gaussian sigma of the line's cross-section, in pixels


class PolynomialSimulator(Simulator):
    """Straight-line images, ``p = (m, x0, c, xsteps)``; deterministic.

    Notes
    -----
    Pixel ``(row, col)`` has centre ``(x, y)`` with ``x = col + 0.5`` and
    ``y = 27.5 - row`` (``y`` up).  With ``e(x) = m (x - x0) + c`` the line's height
    above column ``x``, the intensity is::

        I(x, y) = coverage(x) * exp(-(y - e(x))**2 / (2 w**2 (1 + m**2)))

    i.e. a Gaussian of width ``w = 0.5`` px across the line (perpendicular distance
    ``|y - e(x)| / sqrt(1 + m**2)``), and ``coverage(x)`` the fraction of the column
    ``[x - 0.5, x + 0.5]`` that lies inside ``[x0, x0 + xsteps]``, so the ends move
    smoothly with ``x0`` and ``xsteps``.
    """

    name = "polynomial"
    image_shape = (1, 28, 28)
    parameters = (
        Parameter("m", 0.3, 2.7, description="gradient of the line"),
        Parameter("x0", 8.0, 12.0, unit="px", description="x where the line starts"),
        Parameter("c", 0.1, 0.9, unit="px", description="height of the line above the bottom edge at x0"),
        Parameter("xsteps", 7.0, 11.0, unit="px", description="extent of the line along x"),
    )
    # The paper's Table I: true mean and standard deviation of each parameter.
    reference_truth: ClassVar[dict[str, tuple[float, float]]] = {
        "m": (1.5, 0.3),
        "x0": (10.0, 0.5),
        "c": (0.5, 0.1),
        "xsteps": (9.0, 0.5),
    }

    def simulate(self, params: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Draw one line per row of ``params`` (the generator is unused: no randomness)."""
        _, height, width = self.image_shape
        p = params.to(torch.float32)
        m, x0, c, xsteps = (p[:, i : i + 1] for i in range(4))  # each (B, 1)
        x, y = pixel_centres(height, width)
        line_height = m * (x - x0) + c  # (B, W)
        coverage = (torch.minimum(x + 0.5, x0 + xsteps) - torch.maximum(x - 0.5, x0)).clamp_(0.0, 1.0)
        s = 1.0 / (2.0 * LINE_WIDTH**2 * (1.0 + m * m))  # (B, 1)
        # -s (y - e)^2 + log(coverage) = [1, y, -s y^2] . [-s e^2 + log cov, 2 s e, 1]
        batch = p.shape[0]
        row_terms = torch.stack((torch.ones(batch, height), y.expand(batch, height), -s * y * y), dim=2)
        col_terms = torch.stack(
            (-s * line_height**2 + coverage.log(), 2.0 * s * line_height, torch.ones(batch, width)), dim=1
        )
        images = torch.empty(batch, 1, height, width)
        render_separable(row_terms, col_terms, out=images.view(batch, height, width))
        return images


@hookimpl
def register_simulators(register):
    register(PolynomialSimulator)
