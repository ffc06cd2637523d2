"""The chained GAN's networks: the DCGAN (stage I) and the Refiner interface (stage II).

Fussell & Moews (2019) generate 64x64 galaxies with a DCGAN (section 2.2) and take them to
128x128 with a StackGAN Stage-II generator (section 2.3); they also give a 128x128 DCGAN
(section 3.3).  The DCGAN here follows the paper's framed specification, with the channel
scale ``W`` (their ``W`` in {32, 64, 128}; 128 is the framed spec) as an option so it trains
on a CPU.  Refiners are plugins: a :class:`Refiner` subclass registered with
``register_refiners``; the built-in one is ``stackgan``.

Two choices the paper leaves open or misprints, stated once here:

* The framed spec gives padding 3 to the generator's last layer; a 4x4, stride-2
  transposed convolution with padding 3 takes 32x32 to 60x60, not 64x64.  Padding 1 (the
  DCGAN of Radford et al. 2015) is the only value that gives 64x64, and is used.  The
  discriminator's first-layer padding 3 is kept (64 -> 34 -> 17 -> 8 -> 4 -> 1).
* The discriminator ends in a sigmoid; here it returns the logit and the sigmoid is
  applied inside the binary cross-entropy (``BCEWithLogitsLoss``), the same function
  without the loss of precision of ``log(sigmoid(x))`` for confident outputs.
  :meth:`DCGANDiscriminator.probability` gives the sigmoid.

Convolutions followed by batch normalisation have no bias (the normalisation's shift
replaces it); the others do.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = [
    "LATENT_SIZE",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "ExponentialMovingAverage",
    "Refiner",
    "init_weights",
    "validate_refiner_class",
]

#: Size of the generator's Gaussian input z (the paper's 100-dimensional noise).
LATENT_SIZE = 100
SPATIAL_DROPOUT = ("none", "generator", "discriminator", "both")


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation (Table 1): weights ~ N(0, 0.02), batch-norm scale ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _check_stage_options(resolution: int, width: int, channels: int) -> None:
    if resolution not in (64, 128):
        raise ValueError(f"resolution must be 64 or 128 (the paper's two DCGANs), found {resolution!r}")
    if width < 1 or channels < 1:
        raise ValueError(f"width and channels must be positive, found width={width}, channels={channels}")


class DCGANGenerator(nn.Module):
    """The DCGAN generator: 100-dimensional Gaussian noise to an image in ``[-1, 1]``.

    64x64 (section 2.2): 5 transposed convolutions, kernel 4, channels
    ``8W, 4W, 2W, W -> C``, strides ``1, 2, 2, 2, 2``; 128x128 (section 3.3): 6 layers,
    ``16W, 8W, 4W, 2W, W -> C``.  Batch normalisation after every layer but the first and
    last, ReLU after every layer but the last, tanh at the end.  ``W = 128`` is the paper's.

    Parameters
    ----------
    resolution : {64, 128}, optional
        Side of the generated images.
    width : int, optional
        Channel scale ``W`` (default 128, the paper's framed spec; 32 trains on a CPU).
    channels : int, optional
        Image channels (3 for RGB composites).
    spatial_dropout : bool, optional
        Spatial dropout (p = 0.5) between hidden layers (section 3.2.5; off by default, as
        the paper found it hurts the generator).
    """

    def __init__(
        self, *, resolution: int = 64, width: int = 128, channels: int = 3, spatial_dropout: bool = False
    ) -> None:
        super().__init__()
        _check_stage_options(resolution, width, channels)
        self.config = {"resolution": resolution, "width": width, "channels": channels,
                       "spatial_dropout": bool(spatial_dropout)}  # fmt: skip
        n_hidden = 4 if resolution == 64 else 5
        sizes = [LATENT_SIZE] + [width * 2 ** (n_hidden - 1 - i) for i in range(n_hidden)]
        layers: list[nn.Module] = []
        for i in range(n_hidden):
            first = i == 0
            layers.append(
                nn.ConvTranspose2d(
                    sizes[i], sizes[i + 1], 4, 1 if first else 2, 0 if first else 1, bias=first
                )
            )
            if not first:
                layers.append(nn.BatchNorm2d(sizes[i + 1]))
            layers.append(nn.ReLU(inplace=True))
            if spatial_dropout:
                layers.append(nn.Dropout2d(0.5))
        layers += [nn.ConvTranspose2d(sizes[-1], channels, 4, 2, 1, bias=True), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, 100)`` noise to ``(B, C, R, R)`` images in ``[-1, 1]``."""
        return self.main(z.reshape(z.shape[0], LATENT_SIZE, 1, 1))


class DCGANDiscriminator(nn.Module):
    """The DCGAN discriminator: an image to the logit of P(real).

    64x64 (section 2.2): 5 convolutions, kernel 4, channels ``W, 2W, 4W, 8W -> 1``, strides
    ``2, 2, 2, 2, 1``, paddings ``3, 1, 1, 1, 0``.  128x128 (section 3.3): 6 layers with the
    weaker ``W/4 ... 4W`` channels (32 to 512 at the paper's W = 128), and optional dropout
    before the last layer, switched on by :attr:`final_dropout` from a chosen epoch.
    Batch normalisation after every layer but the first and last; LeakyReLU (0.2).

    Parameters
    ----------
    resolution : {64, 128}, optional
        Side of the images judged.
    width : int, optional
        Channel scale ``W`` (default 128).
    channels : int, optional
        Image channels.
    spatial_dropout : bool, optional
        Spatial dropout (p = 0.5) between hidden layers (section 3.2.5).
    extra_layer : bool, optional
        For a refiner: the 64x64 discriminator's channels ``W ... 8W`` with one more
        stride-2 layer (``16W``) so it judges 128x128 images (section 2.3).
    """

    def __init__(
        self,
        *,
        resolution: int = 64,
        width: int = 128,
        channels: int = 3,
        spatial_dropout: bool = False,
        extra_layer: bool = False,
    ) -> None:
        super().__init__()
        _check_stage_options(resolution, width, channels)
        self.config = {"resolution": resolution, "width": width, "channels": channels,
                       "spatial_dropout": bool(spatial_dropout),
                       "extra_layer": bool(extra_layer)}  # fmt: skip
        if resolution == 64 or extra_layer:
            n_hidden = int(math.log2(resolution)) - 2  # 4 at 64, 5 at 128
            sizes = [channels] + [width * 2**i for i in range(n_hidden)]
        else:
            sizes = [channels] + [max(1, width // 4) * 2**i for i in range(5)]
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            first = i == 0
            layers.append(nn.Conv2d(sizes[i], sizes[i + 1], 4, 2, 3 if first else 1, bias=first))
            if not first:
                layers.append(nn.BatchNorm2d(sizes[i + 1]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if spatial_dropout:
                layers.append(nn.Dropout2d(0.5))
        self.main = nn.Sequential(*layers)
        #: Dropout before the last layer (section 3.3); ``final_dropout.p`` is 0 until switched on.
        self.final_dropout = nn.Dropout(0.0)
        self.last = nn.Conv2d(sizes[-1], 1, 4, 1, 0, bias=True)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, R, R)`` images to ``(B,)`` logits of P(real)."""
        return self.last(self.final_dropout(self.main(x))).reshape(x.shape[0])

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """P(real): the sigmoid of :meth:`forward`, the paper's output layer."""
        return torch.sigmoid(self.forward(x))


class ExponentialMovingAverage:
    """A generator copy whose weights follow an exponential moving average of the trained ones.

    Averaged weights give steadier samples than the last step's.  The decay warms up as
    ``min(decay, (1 + t) / (10 + t))`` so short runs are not dominated by the initial
    weights; batch-norm statistics are copied, not averaged.
    """

    def __init__(self, model: nn.Module, *, decay: float = 0.999) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0
        self._src = list(model.parameters())
        self._dst = list(self.model.parameters())
        self._src_buffers = list(model.buffers())
        self._dst_buffers = list(self.model.buffers())

    @torch.no_grad()
    def update(self) -> None:
        """Move the averaged weights towards the current ones."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._dst, self._src, 1.0 - decay)
        for d, s in zip(self._dst_buffers, self._src_buffers, strict=True):
            d.copy_(s)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


class Refiner(ABC):
    """A stage-II network that takes a stage's images to ``scale`` times their resolution.

    A plugin subclasses this and registers it with ``register(name, RefinerSubclass)`` in
    its ``register_refiners`` hook; gangal's generic trainer
    (:func:`gangal_core.chain.train_refiner`) trains it on pairs of real images at the
    low and high resolution, and ``gangal sample --chain dcgan,NAME`` chains it after the
    DCGAN.  The constructor takes keyword-only options and :meth:`config` returns them,
    so ``type(refiner)(**refiner.config())`` rebuilds it from a checkpoint's metadata.

    The generator takes images in ``[0, 1]`` and returns images in ``[-1, 1]``; the
    discriminator returns one logit of P(real) per image.

    Attributes
    ----------
    name : str
        Registry name.
    scale : int
        Ratio of output to input resolution.
    batch_size : int
        The batch size the refiner was designed for (the trainer's default).
    betas : tuple of float
        Adam's betas.
    """

    name: ClassVar[str] = ""
    scale: ClassVar[int] = 2
    batch_size: ClassVar[int] = 64
    betas: ClassVar[tuple[float, float]] = (0.5, 0.999)

    def __init__(self, *, channels: int = 3, width: int = 128, input_resolution: int = 64) -> None:
        if channels < 1 or width < 1 or input_resolution < 4:
            raise ValueError(
                f"{type(self).__name__}: channels, width and input_resolution must be positive "
                f"(input_resolution >= 4), found {channels}, {width}, {input_resolution}"
            )
        self.channels, self.width, self.input_resolution = int(channels), int(width), int(input_resolution)

    @property
    def output_resolution(self) -> int:
        return self.input_resolution * self.scale

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this refiner (JSON-serialisable)."""
        return {"channels": self.channels, "width": self.width, "input_resolution": self.input_resolution}

    @abstractmethod
    def build_generator(self) -> nn.Module:
        """A fresh generator: ``(B, C, r, r)`` in ``[0, 1]`` to ``(B, C, s*r, s*r)`` in ``[-1, 1]``."""

    @abstractmethod
    def build_discriminator(self) -> nn.Module:
        """A fresh discriminator: ``(B, C, scale*r, scale*r)`` to ``(B,)`` logits of P(real)."""

    @abstractmethod
    def generator_loss(
        self, fake_logits: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The generator's objective and its named parts for the progress bar.

        Parameters
        ----------
        fake_logits : Tensor
            The discriminator's logits for the generated images.
        fake, real : Tensor
            Generated and real high-resolution images, both in ``[-1, 1]``.
        """

    def learning_rate(self, epoch: int) -> float:
        """Adam's learning rate in ``epoch`` (counted from 0); default the DCGAN's 2e-4."""
        return 2e-4


def validate_refiner_class(obj: object) -> list[str]:
    """Problems with a registered refiner class (empty if it is usable)."""
    if not isinstance(obj, type) or not issubclass(obj, Refiner):
        return [f"{obj!r} is not a subclass of gangal_core.gan.Refiner"]
    problems = []
    if getattr(obj, "__abstractmethods__", None):
        problems.append("abstract methods not implemented: " + ", ".join(sorted(obj.__abstractmethods__)))
    if not isinstance(obj.scale, int) or obj.scale < 2:
        problems.append(f"scale must be an integer >= 2, found {obj.scale!r}")
    return problems


def channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
