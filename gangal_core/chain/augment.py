"""Differentiable augmentation and the R1 penalty: GAN training for small sets of real images.

A GAN's discriminator trained on a few thousand real images learns them by heart; its
verdict then stops carrying information the generator can use, and the generator drifts
or collapses.  Two remedies from the literature, both optional in ``gangal train``:

* **Augmentation of what the discriminator sees.**  gangal's transformations
  (:data:`AUGMENTATIONS`) come in two kinds, and the kind decides which images they touch:

  - **Symmetries of the data** (:data:`SYMMETRIES`), applied to the *real* images only:

    - ``flip``: mirror left-right and top-bottom, each with probability 1/2;
    - ``rot90``: rotate by 0, 90, 180 or 270 degrees, equally likely (square images).

    The sky has no preferred orientation, so a turned or mirrored galaxy is as real as the
    original: eight real images for one, and the discriminator learns that every
    orientation occurs.  They are *not* applied to generated images.  A transformation
    drawn uniformly from a group, applied to both sets, shows the discriminator only the
    symmetrised distributions, so the generator could draw every galaxy in one octant of
    position angles and go unpunished (the "leak" of Karras et al. 2020, "Training
    Generative Adversarial Networks with Limited Data").  Gangal measured exactly that: with
    flips and rotations on both sets, the angle's KS statistic against held-out galaxies
    grew to 0.58 over 110 epochs (``benchmarks/RESULTS.md``, issue 18).

  - **Differentiable augmentation** (DiffAugment; Zhao et al. 2020, "Differentiable
    Augmentation for Data-Efficient GAN Training"), applied to real *and* generated images,
    in the discriminator's step and in the generator's, so the generator's gradient passes
    through the transformation.  Galaxy cutouts are centred, so these are not symmetries
    of the data, and augmenting only the real images would teach the generator to draw
    shifted, holed galaxies:

    - ``translation``: shift by up to 1/8 of the side in each direction, the edge pixels
      repeated into the gap (for a galaxy cutout: more sky, not a grey or black frame);
    - ``cutout``: set a random square of half the side to 0 (mid-grey in ``[-1, 1]``), as
      DiffAugment does.

* **R1** (Mescheder, Geiger & Nowozin 2018, "Which Training Methods for GANs do actually
  Converge?"): ``gamma / 2 * E ||grad_x D(x)||^2`` on real images, which keeps the
  discriminator flat on the data and its gradients to the generator well-behaved.  It is
  evaluated lazily, every :data:`R1_EVERY` discriminator steps and scaled by as much (as
  in StyleGAN2), since the double backward pass costs about as much as a step.

Random draws come from a seeded CPU :class:`torch.Generator`, so a seed gives the same
augmentations on every device, and a checkpoint resumes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from gangal_core.errors import ConfigError
from gangal_core.training import r1_penalty  # the chain's trainers and tests import it from here

__all__ = ["AUGMENTATIONS", "R1_EVERY", "SYMMETRIES", "DifferentiableAugment", "parse_augment", "r1_penalty"]

#: The transformations :class:`DifferentiableAugment` knows, in the order it applies them.
AUGMENTATIONS = ("flip", "rot90", "translation", "cutout")
#: Those that are symmetries of the data: applied to real images only.
SYMMETRIES = ("flip", "rot90")
#: Discriminator steps between two evaluations of the lazy R1 penalty.
R1_EVERY = 16


def parse_augment(value: str | Sequence[str] | None, *, option: str = "--augment") -> tuple[str, ...]:
    """``"flip,rot90"`` (or a sequence, or ``"none"``) as a checked tuple of transformation names.

    Raises
    ------
    ConfigError
        A name that is not one of :data:`AUGMENTATIONS`, named with the known ones.
    """
    if value is None:
        return ()
    names = [str(v).strip() for v in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n and n != "none"]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(
            f"{option}: unknown augmentation {', '.join(repr(n) for n in unknown)}; "
            f"expected a comma-separated list of {', '.join(AUGMENTATIONS)} (or none)."
        )
    return tuple(n for n in AUGMENTATIONS if n in names)  # one order, whatever the spelling


class DifferentiableAugment:
    """Random transformations of what the discriminator sees, gradients passing through.

    Call it with ``real=True`` on real images (every transformation of the policy) and
    ``real=False`` on generated ones (the policy without the :data:`SYMMETRIES`).

    Parameters
    ----------
    policy : sequence of str
        Names from :data:`AUGMENTATIONS`; applied in that tuple's order.  Empty: identity.
    generator : torch.Generator
        CPU generator of the random draws (a trainer keeps it in its checkpoint).
    translation : float, optional
        The largest shift, as a fraction of the image side (default 1/8).
    cutout : float, optional
        The side of the cut-out square, as a fraction of the image side (default 1/2).
    """

    def __init__(
        self,
        policy: Sequence[str],
        *,
        generator: torch.Generator,
        translation: float = 0.125,
        cutout: float = 0.5,
    ) -> None:
        self.policy = parse_augment(tuple(policy))
        self.generator = generator
        self.translation, self.cutout_size = float(translation), float(cutout)

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, images: torch.Tensor, *, real: bool) -> torch.Tensor:
        """Transform ``(n, C, H, W)`` ``images``, each image its own draw.

        ``real``: whether they are real images, which the :data:`SYMMETRIES` apply to too.
        """
        for name in self.policy:
            if real or name not in SYMMETRIES:
                images = getattr(self, f"_{name}")(images)
        return images

    def _draw(self, n: int, high: int, device: torch.device) -> torch.Tensor:
        return torch.randint(0, high, (n,), generator=self.generator).to(device)

    def _flip(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        lr = self._draw(n, 2, x.device).bool().view(n, 1, 1, 1)
        tb = self._draw(n, 2, x.device).bool().view(n, 1, 1, 1)
        x = torch.where(lr, x.flip(-1), x)
        return torch.where(tb, x.flip(-2), x)

    def _rot90(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            raise ConfigError(f"--augment rot90: needs square images, found {tuple(x.shape[-2:])}.")
        n = x.shape[0]
        k = self._draw(n, 4, x.device)
        turned = torch.stack([torch.rot90(x, j, dims=(-2, -1)) for j in range(4)])
        return turned[k, torch.arange(n, device=x.device)]

    def _translation(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        s = max(1, round(self.translation * min(h, w)))
        dy = self._draw(n, 2 * s + 1, x.device) - s
        dx = self._draw(n, 2 * s + 1, x.device) - s
        padded = F.pad(x, (s, s, s, s), mode="replicate")
        rows = (torch.arange(h, device=x.device)[None, :] + s - dy[:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device)[None, :] + s - dx[:, None])[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, channel, rows, cols]

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        size_h, size_w = max(1, round(self.cutout_size * h)), max(1, round(self.cutout_size * w))
        # the square's centre anywhere in the image, so it may hang over an edge (as DiffAugment)
        cy = self._draw(n, h + (1 - size_h % 2), x.device)
        cx = self._draw(n, w + (1 - size_w % 2), x.device)
        ys = torch.arange(h, device=x.device)[None, :] - (cy[:, None] - size_h // 2)
        xs = torch.arange(w, device=x.device)[None, :] - (cx[:, None] - size_w // 2)
        inside = ((ys >= 0) & (ys < size_h))[:, :, None] & ((xs >= 0) & (xs < size_w))[:, None, :]
        return x * (~inside).to(x.dtype)[:, None]
