"""The StackGAN Stage-II refiner (Fussell & Moews 2019, section 2.3; Zhang et al. 2016).

Takes 64x64 images in ``[0, 1]`` to 128x128 images in ``[-1, 1]``.  The generator is the
paper's framed "Stage-II generator": 16 convolution layers, the first 4x4 with stride 2
(64 -> 32, an information bottleneck), thirteen 3x3 layers at 32x32 with residual
connections, then nearest-neighbour x2 upsampling before each of the last two layers
(32 -> 64 -> 128) and a tanh.  It is trained with the dual objective of eq. 3-4,
``L_G = 0.001 L_D + 1 L_P``, where ``L_P`` is the mean squared difference of the
channel-summed real and generated images, at a learning rate of 2e-4 halved every 80
epochs, batch 64 (Table 1).  The discriminator is the 64x64 DCGAN discriminator with one
more stride-2 layer for 128x128 images.

The channel scale ``W`` (``width``; the paper's 128) sets the trunk's channels, ``4W``
those of the layer before the last, and ``W ... 16W`` the discriminator's.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gangal_core import DCGANDiscriminator, Refiner, hookimpl, init_weights

__all__ = ["StackGANGenerator", "StackGANRefiner", "register_refiners"]

#: Weights of the generative and pixel terms of the dual objective (eq. 3, after Ledig et al. 2017).
LAMBDA_D = 0.001
LAMBDA_P = 1.0


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class StackGANGenerator(nn.Module):
    """The Stage-II generator of the paper's framed spec (16 layers).

    Layer 1: 4x4 stride-2 convolution ``C -> W`` and ReLU.  Layers 2-13: six residual pairs
    (the input of layer ``2n`` is added to the output of layer ``2n + 1``).  Layer 14: its
    output plus layer 1's.  Upsample x2, layer 15 ``W -> 4W``; upsample x2, layer 16
    ``4W -> C`` and tanh.  Batch normalisation after layers 2-15, ReLU after layers 1-15,
    3x3 kernels and padding 1 after the first.

    Parameters
    ----------
    channels : int, optional
        Image channels.
    width : int, optional
        Trunk channels ``W`` (the paper's 128).
    """

    def __init__(self, *, channels: int = 3, width: int = 128) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Conv2d(channels, width, 4, 2, 1, bias=True), nn.ReLU(inplace=True))
        self.pairs = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(width, width), _conv_bn_relu(width, width)) for _ in range(6)
        )
        self.trunk_end = _conv_bn_relu(width, width)
        self.widen = _conv_bn_relu(width, 4 * width)
        self.last = nn.Conv2d(4 * width, channels, 3, 1, 1, bias=True)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, r, r)`` in ``[0, 1]`` to ``(B, C, 2r, 2r)`` in ``[-1, 1]``."""
        skip = h = self.first(x)
        for pair in self.pairs:
            h = pair(h) + h
        h = self.trunk_end(h) + skip
        h = self.widen(F.interpolate(h, scale_factor=2, mode="nearest"))
        return torch.tanh(self.last(F.interpolate(h, scale_factor=2, mode="nearest")))


class StackGANRefiner(Refiner):
    """StackGAN Stage-II: 64x64 to 128x128 with the dual (adversarial + pixel) objective.

    Parameters
    ----------
    channels : int, optional
        Image channels (3).
    width : int, optional
        Channel scale ``W`` (the paper's 128).
    input_resolution : int, optional
        Side of the input images (64).
    """

    name: ClassVar[str] = "stackgan"
    scale: ClassVar[int] = 2
    batch_size: ClassVar[int] = 64

    def build_generator(self) -> nn.Module:
        return StackGANGenerator(channels=self.channels, width=self.width)

    def build_discriminator(self) -> nn.Module:
        return DCGANDiscriminator(
            resolution=self.output_resolution, width=self.width, channels=self.channels, extra_layer=True
        )

    def generator_loss(
        self, fake_logits: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``0.001 L_D + 1 L_P``: L_D the non-saturating GAN loss, L_P eq. 4 on channel sums."""
        adversarial = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        pixel = F.mse_loss(fake.sum(dim=1), real.sum(dim=1))
        loss = LAMBDA_D * adversarial + LAMBDA_P * pixel
        return loss, {"L_D": float(adversarial.detach()), "L_P": float(pixel.detach())}

    def learning_rate(self, epoch: int) -> float:
        """2e-4 halved every 80 epochs (Table 1)."""
        return 2e-4 * 0.5 ** (int(epoch) // 80)


@hookimpl
def register_refiners(register):
    register("stackgan", StackGANRefiner)
