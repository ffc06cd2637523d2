"""Fast rendering helpers shared by image simulators.

The paper's simulators draw smooth curves onto small pixel grids.  Drawing a curve
pixel by pixel costs several passes over the whole batch; gangal writes each curve's
log-intensity as a sum of three separable terms, ``L[b, row, col] = sum_k F[b, row, k] *
G[b, k, col]``, so a whole batch is one batched matrix product plus one ``exp``: two
passes over memory, the least an image can cost.
"""

from __future__ import annotations

import math

import torch

__all__ = ["pixel_centres", "render_separable"]

LOG2_E = 1.0 / math.log(2.0)


def pixel_centres(
    height: int, width: int, *, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Physical coordinates of pixel centres: ``x`` of each column, ``y`` of each row.

    The image covers ``[0, width] x [0, height]`` with unit pixels; ``x`` grows to the
    right and ``y`` grows *upwards*, so row 0 (the top row of the array) has
    ``y = height - 0.5``.
    """
    x = torch.arange(width, dtype=dtype) + 0.5
    y = height - 0.5 - torch.arange(height, dtype=dtype)
    return x, y


def render_separable(
    row_terms: torch.Tensor, col_terms: torch.Tensor, *, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``exp(row_terms @ col_terms)`` for a batch, written into ``out`` when given.

    Parameters
    ----------
    row_terms : torch.Tensor
        ``(B, H, K)``: per image and row, the factors ``F``.
    col_terms : torch.Tensor
        ``(B, K, W)``: per image and column, the factors ``G``.
    out : torch.Tensor, optional
        ``(B, H, W)`` float32 buffer to fill (a view of a ``(B, 1, H, W)`` batch works).
    """
    # exp(x) = 2 ** (x log2 e); torch's exp takes a slow path for x < -87 (8-20x slower on
    # the pixels far from the curve, i.e. most of them), exp2 does not.
    out = torch.bmm(row_terms * LOG2_E, col_terms, out=out)
    return out.exp2_()
