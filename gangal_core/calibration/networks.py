"""The four networks of the model-assisted GAN, and the interfaces a plugin implements.

Alonso-Monsalve & Whitehead (2020), section III, use four networks:

- the **generator** G, an MLP from noise ``z`` to simulator parameters ``p``, tanh last layer
  (:class:`ParameterGenerator`; its tanh output is mapped onto each parameter's range);
- the **emulator** E, a CNN from parameters to an image, tanh last layer (:class:`Emulator`
  is the interface, :class:`ConvEmulator` the built-in architecture ``"conv"``);
- the **discriminator** D, a CNN with a sigmoid output, and
- the **Siamese** network S, two weight-sharing CNN encoders giving 128-length encodings whose
  L2 distance becomes the probability that two images are the same.

D and S are both built on a :class:`Critic`: a CNN that encodes images.
:class:`Discriminator` puts a realness head on one, :class:`Siamese` a distance head.
:class:`ConvCritic` is the built-in architecture ``"conv"``.

Networks work in *normalised* units: parameters in ``[-1, 1]`` (each parameter's declared range
mapped linearly) and images through an :class:`ImageScale` that puts the simulator's pixel values
in about ``[-0.9, 0.9]``.

A stochastic simulator gives a different image for the same parameters on every call.  So that
the emulator reproduces the simulator's output *distribution* and not only its mean, an
:class:`Emulator` returns a per-pixel mean (tanh-bounded) and a per-pixel standard deviation;
an emulated image is ``mean + std * eps`` with ``eps ~ N(0, 1)``.  For a deterministic
simulator the learned standard deviation falls to the emulator's own error.

A plugin supplies its own architecture for its images through the hooks
``register_emulators`` and ``register_critics``::

    from gangal_core import hookimpl
    from gangal_core.networks import Emulator

    class BigEmulator(Emulator):
        name = "big"
        def __init__(self, image_shape, n_parameters, *, width=64): ...
        def forward(self, u): ...   # -> (mean, std), each (batch, *image_shape)

    @hookimpl
    def register_emulators(register):
        register(BigEmulator)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ConvCritic",
    "ConvEmulator",
    "Critic",
    "Discriminator",
    "Emulator",
    "ImageScale",
    "ParameterEstimator",
    "ParameterGenerator",
    "Siamese",
    "validate_network_class",
]


@dataclass(frozen=True)
class ImageScale:
    """An affine map from a simulator's pixel values to the networks' units.

    ``normalised = (image - offset) / scale``.  :meth:`fit` chooses it so that the central
    99.8 % of pixel values of a sample of simulated images land in ``[-0.9, 0.9]``, inside
    the tanh range of the emulator's mean.
    """

    offset: float
    scale: float

    @classmethod
    def fit(cls, images: torch.Tensor) -> ImageScale:
        """Fit to a sample of simulated images."""
        flat = images.detach().reshape(-1).float()
        if flat.numel() > 2_000_000:  # torch.quantile refuses very large inputs; a subsample is plenty
            flat = flat[torch.linspace(0, flat.numel() - 1, 2_000_000).long()]
        lo, hi = torch.quantile(flat, torch.tensor([0.001, 0.999])).tolist()
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("simulated images contain non-finite values")
        if hi - lo < 1e-12:
            hi, lo = lo + 1.0, lo - 1.0  # a constant image: any scale will do
        return cls(offset=(hi + lo) / 2, scale=(hi - lo) / 2 / 0.9)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.offset) / self.scale

    def denormalise(self, images: torch.Tensor) -> torch.Tensor:
        return images * self.scale + self.offset


# --------------------------------------------------------------------------- interfaces
class Emulator(nn.Module, ABC):
    """A network that mimics a simulator: normalised parameters to an image distribution.

    Subclasses set ``name`` (the registry name, chosen with ``--emulator-arch``), accept
    ``(image_shape, n_parameters, **options)`` in ``__init__`` with JSON-serialisable,
    keyword-only options, and implement :meth:`forward`.  The options are saved with the
    weights, so ``type(emulator)(image_shape, n_parameters, **options)`` rebuilds it.
    """

    name: ClassVar[str]

    def __init__(self, image_shape: tuple[int, int, int], n_parameters: int, **options: Any) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.n_parameters = int(n_parameters)
        self.options = dict(options)

    @abstractmethod
    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel mean and standard deviation of the emulated images.

        Parameters
        ----------
        u : torch.Tensor
            ``(batch, n_parameters)`` parameters normalised to ``[-1, 1]``.

        Returns
        -------
        mean, std : torch.Tensor
            Each ``(batch, *image_shape)`` in normalised image units; ``mean`` in ``(-1, 1)``
            (tanh), ``std > 0``.
        """

    def for_inference(self) -> Emulator:
        """A copy laid out for fast inference (the default: this network itself)."""
        return self

    def sample(
        self, u: torch.Tensor, *, generator: torch.Generator | None = None, eps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Emulated images ``mean + std * eps`` (normalised units), differentiable in ``u``.

        ``eps`` defaults to fresh standard normal noise from ``generator``.
        """
        mean, std = self(u)
        if eps is None:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + std * eps


class Critic(nn.Module, ABC):
    """A CNN that encodes images into a fixed-length vector.

    gangal uses a critic in two roles: as the discriminator (:class:`Discriminator` adds a
    realness head) and as each twin of the Siamese network (:class:`Siamese` compares two
    encodings).  Subclasses set ``name`` (chosen with ``--critic-arch``), accept
    ``(image_shape, **options)`` with keyword-only JSON-serialisable options, set
    ``self.encoding_size`` and implement :meth:`forward`.
    """

    name: ClassVar[str]
    encoding_size: int

    def __init__(self, image_shape: tuple[int, int, int], **options: Any) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.options = dict(options)

    @abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, encoding_size)`` encodings of ``(batch, *image_shape)`` normalised images."""


def validate_network_class(obj: object, base: type) -> list[str]:
    """Problems that stop ``obj`` from being registered as an emulator or critic architecture."""
    if not (isinstance(obj, type) and issubclass(obj, base)):
        return [f"{obj!r} is not a subclass of gangal_core.networks.{base.__name__}"]
    name = getattr(obj, "name", None)
    problems = []
    if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
        problems.append(f"name must be a non-empty identifier-like string, got {name!r}")
    if getattr(obj, "__abstractmethods__", None):
        problems.append("forward() is not implemented")
    return problems


# --------------------------------------------------------------------------- built-ins
def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


class ConvEmulator(Emulator):
    """The built-in emulator: an MLP onto a coarse feature map, then two upsampling convolutions.

    The map has ``width`` channels at a quarter of the image size (rounded up); each
    transposed convolution doubles the size and halves the channels; a final 3x3 convolution
    gives the mean (tanh) and standard deviation (softplus) of each pixel, cropped to the
    image shape.  Any image size works.

    Parameters
    ----------
    image_shape : tuple of int
        ``(channels, height, width)``.
    n_parameters : int
        Number of simulator parameters.
    width : int, optional
        Channels of the coarse feature map (default 32).
    hidden : int, optional
        Width of the MLP's hidden layer (default 256).
    """

    name = "conv"

    def __init__(
        self, image_shape: tuple[int, int, int], n_parameters: int, *, width: int = 32, hidden: int = 256
    ) -> None:
        super().__init__(image_shape, n_parameters, width=width, hidden=hidden)
        c, h, w = self.image_shape
        self.h0, self.w0, self.width = math.ceil(h / 4), math.ceil(w / 4), int(width)
        self.mlp = nn.Sequential(
            nn.Linear(self.n_parameters, hidden),
            _leaky(),
            nn.Linear(hidden, width * self.h0 * self.w0),
            _leaky(),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1),
            _leaky(),
            nn.ConvTranspose2d(width // 2, max(width // 4, 4), 4, 2, 1),
            _leaky(),
            nn.Conv2d(max(width // 4, 4), 2 * c, 3, padding=1),
        )

    def for_inference(self) -> _FastConvEmulator:
        """An inference copy, faster on CPUs, equal to this network to ~1e-6.

        Each stride-2 transposed convolution becomes a 3x3 convolution giving the four
        output phases, then an interleave (sub-pixel form), all in channels-last layout,
        with activations in place (Table III in benchmarks/RESULTS.md).
        """
        return _FastConvEmulator(self)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, h, w = self.image_shape
        # channels-last: oneDNN's fast convolutions for few channels (1.4-1.8x for a training
        # step on our 2-core CPU; benchmarks/RESULTS.md, "Training speed")
        x = self.mlp(u).view(-1, self.width, self.h0, self.w0).contiguous(memory_format=torch.channels_last)
        y = self.up(x).contiguous()[..., :h, :w]
        return torch.tanh(y[:, :c]), F.softplus(y[:, c:]) + 1e-3


def _subpixel_weight(layer: nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3x3 convolution whose ``4 * C_out`` outputs are the output phases of ``layer``.

    For ``ConvTranspose2d(k=4, stride=2, padding=1)``, output row ``2i + a`` sums input rows
    ``i - 1, i`` (phase ``a = 0``, kernel rows 3, 1) or ``i, i + 1`` (``a = 1``, rows 2, 0);
    columns likewise.  Output channels are ordered ``(c_out, a, b)``.
    """
    weight = layer.weight.detach()  # (C_in, C_out, 4, 4)
    c_in, c_out = weight.shape[:2]
    taps = {0: {0: 3, 1: 1}, 1: {1: 2, 2: 0}}  # phase -> {3x3 index: kernel index}
    kernel = weight.new_zeros(c_out, 2, 2, c_in, 3, 3)
    for a, rows in taps.items():
        for b, cols in taps.items():
            for iy, ky in rows.items():
                for ix, kx in cols.items():
                    kernel[:, a, b, :, iy, ix] = weight[:, :, ky, kx].T
    kernel = kernel.reshape(4 * c_out, c_in, 3, 3).contiguous(memory_format=torch.channels_last)
    return kernel, layer.bias.detach().repeat_interleave(4)


def _interleave_phases(y: torch.Tensor) -> torch.Tensor:
    """``(B, 4C, H, W)`` phases (channels-last) -> ``(B, C, 2H, 2W)`` channels-last."""
    b, c4, h, w = y.shape
    c = c4 // 4
    t = y.permute(0, 2, 3, 1).reshape(b, h, w, c, 2, 2).permute(0, 1, 4, 2, 5, 3)
    return t.reshape(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)


class _FastConvEmulator(nn.Module):
    """Inference-only twin of a :class:`ConvEmulator` (no autograd; see ``for_inference``)."""

    def __init__(self, source: ConvEmulator) -> None:
        super().__init__()
        self.image_shape, self.width, self.h0, self.w0 = (
            source.image_shape,
            source.width,
            source.h0,
            source.w0,
        )
        self.mlp = [(m.weight.detach(), m.bias.detach()) for m in source.mlp if isinstance(m, nn.Linear)]
        self.steps = []
        for m in source.up:
            if isinstance(m, nn.ConvTranspose2d):
                if (m.kernel_size, m.stride, m.padding, m.output_padding) != ((4, 4), (2, 2), (1, 1), (0, 0)):
                    raise ValueError(f"no sub-pixel form for {m}")
                self.steps.append(("up", *_subpixel_weight(m)))
            elif isinstance(m, nn.Conv2d):
                weight = m.weight.detach().contiguous(memory_format=torch.channels_last)
                self.steps.append(("conv", weight, m.bias.detach(), m.padding))
            elif isinstance(m, nn.LeakyReLU):
                self.steps.append(("leaky", m.negative_slope))
            else:
                raise ValueError(f"unexpected layer {m}")
        self.eval()

    @torch.inference_mode()
    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, h, w = self.image_shape
        x = u
        for weight, bias in self.mlp:
            x = F.leaky_relu_(F.linear(x, weight, bias), 0.2)
        x = x.view(-1, self.width, self.h0, self.w0).contiguous(memory_format=torch.channels_last)
        pending = False  # phases computed but not yet interleaved
        for step in self.steps:
            if step[0] == "up":
                if pending:
                    x = _interleave_phases(x)
                x, pending = F.conv2d(x, step[1], step[2], padding=1), True
            elif step[0] == "leaky":
                x = F.leaky_relu_(x, step[1])  # elementwise: commutes with the interleave
            else:
                if pending:
                    x, pending = _interleave_phases(x), False
                x = F.conv2d(x, step[1], step[2], padding=step[3])
        if pending:
            x = _interleave_phases(x)
        y = x.contiguous()[..., :h, :w]
        return torch.tanh(y[:, :c]), F.softplus(y[:, c:]) + 1e-3


class ConvCritic(Critic):
    """The built-in critic: strided 4x4 convolutions down to about 7x7, then a linear encoding.

    Parameters
    ----------
    image_shape : tuple of int
        ``(channels, height, width)``.
    width : int, optional
        Channels of the first convolution, doubled by each further one (default 16).
    encoding_size : int, optional
        Length of the encoding (default 128, as in the paper's Siamese network).
    """

    name = "conv"

    def __init__(
        self, image_shape: tuple[int, int, int], *, width: int = 16, encoding_size: int = 128
    ) -> None:
        super().__init__(image_shape, width=width, encoding_size=encoding_size)
        c, h, w = self.image_shape
        layers: list[nn.Module] = []
        channels = c
        out = int(width)
        # halve the size until the smaller side is at most 8 (at least one layer)
        while True:
            layers += [nn.Conv2d(channels, out, 4, 2, 1), _leaky()]
            channels, h, w = out, h // 2, w // 2
            if min(h, w) <= 8 or len(layers) >= 12:
                break
            out = min(out * 2, 256)
        self.encoding_size = int(encoding_size)
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(channels * h * w, self.encoding_size), _leaky())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(self.conv(images))


# --------------------------------------------------------------------------- roles
class ParameterEstimator(nn.Module):
    """A critic with a linear head that estimates the normalised parameters of an image.

    Trained by regression on simulated images during pretraining, it gives the discriminator
    a head start: features that already measure the simulator's parameters.
    """

    def __init__(self, critic: Critic, n_parameters: int) -> None:
        super().__init__()
        self.critic = critic
        self.estimate = nn.Linear(critic.encoding_size, int(n_parameters))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.estimate(self.critic(images))


class Discriminator(nn.Module):
    """D: a critic's encoding plus a realness logit (the sigmoid is applied in the loss).

    Parameters
    ----------
    critic : Critic
        The image encoder.
    minibatch_std : {"features", "mean", "none"}, optional
        Let the head also see how spread the batch is: ``"features"`` appends the standard
        deviation over the batch of every feature, ``"mean"`` only their average (as in
        progressive GANs), ``"none"`` nothing.  Without it a GAN readily learns the right means
        but too narrow a spread (``benchmarks/RESULTS.md``).  D then judges a batch of images of
        one kind at a time, as the trainers call it.
    group_size : int, optional
        The spread is taken over groups of this many consecutive images (0: the whole batch);
        smaller groups give a noisier, gentler signal that keeps D from winning outright.
    log_spread : bool, optional
        Use the logarithm of each spread (default), so that a spread too narrow by a given
        factor gives the same signal whatever the scale of the feature.
    n_parameters : int, optional
        With ``n_parameters > 0`` the features include a linear estimate of the parameters
        (see :class:`ParameterEstimator`, from which :meth:`from_estimator` starts D).
    """

    MODES = ("features", "mean", "none")

    def __init__(
        self,
        critic: Critic,
        *,
        minibatch_std: str = "features",
        group_size: int = 16,
        log_spread: bool = True,
        n_parameters: int = 0,
    ) -> None:
        super().__init__()
        if minibatch_std not in self.MODES:
            raise ValueError(f"minibatch_std must be one of {self.MODES}, got {minibatch_std!r}")
        self.critic = critic
        self.minibatch_std = minibatch_std
        self.group_size = int(group_size)
        self.log_spread = bool(log_spread)
        self.estimate = nn.Linear(critic.encoding_size, n_parameters) if n_parameters else None
        k = critic.encoding_size + int(n_parameters)
        extra = {"features": k, "mean": 1, "none": 0}[minibatch_std]
        self.head = nn.Linear(k + extra, 1)

    @classmethod
    def from_estimator(cls, estimator: ParameterEstimator, **options: Any) -> Discriminator:
        """A discriminator whose encoder and parameter head start as a trained estimator's."""
        import copy

        d = cls(copy.deepcopy(estimator.critic), n_parameters=estimator.estimate.out_features, **options)
        d.estimate.load_state_dict(estimator.estimate.state_dict())
        return d

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.critic(images)
        if self.estimate is not None:
            h = torch.cat([h, self.estimate(h)], 1)
        if self.minibatch_std != "none":
            n, k = h.shape
            g = self.group_size if self.group_size and n % self.group_size == 0 else n
            if g > 1:
                spread = h.view(n // g, g, k).std(1)  # (groups, k)
                if self.log_spread:  # a ratio of spreads becomes a difference, whatever a feature's scale
                    spread = spread.add(1e-3).log()
            else:
                spread = torch.zeros(n, k, dtype=h.dtype, device=h.device)
            if self.minibatch_std == "mean":
                spread = spread.mean(1, keepdim=True)
            spread = spread.repeat_interleave(g, 0) if g > 1 else spread
            h = torch.cat([h, spread], 1)
        return self.head(h).squeeze(1)


class Siamese(nn.Module):
    """S: two weight-sharing encoders; the L2 distance of the encodings gives "same image".

    ``forward(a, b)`` returns the logit of the probability that ``a`` and ``b`` are the same
    image, ``alpha - beta * ||f(a) - f(b)||`` with learned ``alpha`` and ``beta > 0``.
    """

    def __init__(self, critic: Critic) -> None:
        super().__init__()
        self.critic = critic
        self.alpha = nn.Parameter(torch.tensor(2.0))
        self.log_beta = nn.Parameter(torch.tensor(0.0))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        both = self.critic(torch.cat([a, b]))  # one pass: the two twins share every weight
        fa, fb = both[: a.shape[0]], both[a.shape[0] :]
        distance = (fa - fb).square().sum(1).add(1e-8).sqrt()
        return self.alpha - self.log_beta.exp() * distance


class ParameterGenerator(nn.Module):
    """G: an MLP from noise ``z ~ N(0, I)`` to normalised parameters in ``(-1, 1)`` (tanh).

    Parameters
    ----------
    n_parameters : int
        Number of simulator parameters.
    noise_size : int, optional
        Length of ``z`` (default 8).
    hidden : int, optional
        Width of the two hidden layers (default 64).
    """

    def __init__(self, n_parameters: int, *, noise_size: int = 8, hidden: int = 64) -> None:
        super().__init__()
        self.n_parameters, self.noise_size = int(n_parameters), int(noise_size)
        self.net = nn.Sequential(
            nn.Linear(self.noise_size, hidden), _leaky(), nn.Linear(hidden, hidden), _leaky(),
            nn.Linear(hidden, self.n_parameters), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` normalised parameter vectors."""
        device = next(self.parameters()).device  # noise drawn on the CPU: the same on every device
        return self(torch.randn(n, self.noise_size, generator=generator).to(device))
