"""Figures every capability writes: matplotlib set up off-screen, PNGs written atomically,
contact sheets of image sets."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_write_bytes

__all__ = ["contact_sheet", "save_contact_sheet"]


def save_figure(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def contact_sheet(
    images: np.ndarray | torch.Tensor, *, columns: int | None = None, gap: int = 2
) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in ``[0, 1]`` into one ``(rows*H, columns*W, 3)`` uint8 picture.

    One-channel images are shown grey; images with more than three channels show the first three.
    """
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    n, c, h, w = arr.shape
    if c == 1:
        arr = np.repeat(arr, 3, axis=1)
    arr = np.clip(arr[:, :3], 0.0, 1.0)
    columns = columns or max(1, int(np.ceil(np.sqrt(n))))
    rows = -(-n // columns)
    sheet = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 1.0, dtype=np.float32)
    for k in range(n):
        r, q = divmod(k, columns)
        sheet[r * (h + gap) : r * (h + gap) + h, q * (w + gap) : q * (w + gap) + w] = arr[k].transpose(
            1, 2, 0
        )
    return (sheet * 255.0 + 0.5).astype(np.uint8)


def save_contact_sheet(path: Path, images: np.ndarray | torch.Tensor, *, columns: int | None = None) -> None:
    """Write :func:`contact_sheet` of ``images`` as a PNG, atomically."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(contact_sheet(images, columns=columns)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
