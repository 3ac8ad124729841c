"""R3GAN's layers (R3GAN/Networks.py, FusedOperators.py, Resamplers.py) in plain PyTorch.

No normalisation anywhere: the residual blocks stay stable because of their initialisation
(Fixup-like): each block's first two convolutions are drawn from N(0, g / sqrt(fan_in))
with g = sqrt(2 / (1 + 0.2^2)) * L^(-1/4) (L: the blocks in the network) and its last one
is zero, so every block starts as the identity. Convolutions have no bias; the biases
live in the activations (LeakyReLU(0.2) after a learned per-channel bias, gain 1).
Resampling is the [1, 3, 3, 1] FIR filter of StyleGAN2 (gan/models/layers/fir.py), which
R3GAN builds as its [1, 2, 1] filter convolved with [1, 1].
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from gan.models.layers.fir import DEFAULT_TAPS, downsample2d, fir_filter, upsample2d

LRELU_SLOPE = 0.2
# The gain that keeps a LeakyReLU(0.2) layer's output variance (He et al.'s rule)
ACTIVATION_GAIN = math.sqrt(2 / (1 + LRELU_SLOPE**2))
LAYERS_PER_BLOCK = 3


def msr_init(layer: nn.Conv2d | nn.Linear, gain: float = 1.0) -> nn.Conv2d | nn.Linear:
    """N(0, gain / sqrt(fan_in)) weights (fan_in: inputs per output, per group), as
    R3GAN's MSRInitializer; gain 0 gives a zero layer."""
    weight = layer.weight
    fan_in = weight.shape[1] * weight[0][0].numel()
    with torch.no_grad():
        weight.normal_(0, gain / math.sqrt(fan_in))
    return layer


def conv(
    in_channels: int, out_channels: int, kernel: int, groups: int = 1, gain: float = 1.0
) -> nn.Conv2d:
    """A same-padded convolution without bias, initialised by `msr_init`."""
    layer = nn.Conv2d(
        in_channels, out_channels, kernel, padding=(kernel - 1) // 2, groups=groups, bias=False
    )
    return msr_init(layer, gain)


def linear(in_features: int, out_features: int, gain: float = 1.0) -> nn.Linear:
    return msr_init(nn.Linear(in_features, out_features, bias=False), gain)


def full_precision(device_type: str, enabled: bool):
    """Autocast off inside a stage that runs in fp32 (the official code runs only its
    highest-resolution stages in reduced precision); nothing otherwise."""
    if enabled and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return nullcontext()


def widened(x: torch.Tensor, enabled: bool) -> torch.Tensor:
    """x in fp32 where it comes out of a reduced-precision layer into an fp32 stage."""
    return x.float() if enabled and x.dtype in (torch.bfloat16, torch.float16) else x


class BiasedActivation(nn.Module):
    """x + bias (per channel), then LeakyReLU(0.2), with gain 1 (the gain is in the
    next convolution's initialisation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return F.leaky_relu(x + self.bias.to(x.dtype).view(shape), LRELU_SLOPE)


class ResidualBlock(nn.Module):
    """x + conv3(act(grouped conv2(act(conv1(x))))): 1x1 to `expansion` x the width, a
    grouped k x k with `cardinality` groups, 1x1 back; `blocks` is L of the gain rule."""

    def __init__(
        self, channels: int, cardinality: int, expansion: int, blocks: int, kernel: int = 3
    ) -> None:
        super().__init__()
        wide = channels * expansion
        if wide % cardinality:
            raise ValueError(
                f"cardinality {cardinality} must divide the expanded width {wide} "
                f"(width {channels} x expansion {expansion})"
            )
        gain = ACTIVATION_GAIN * blocks ** (-1 / (2 * LAYERS_PER_BLOCK - 2))
        self.conv1 = conv(channels, wide, 1, gain=gain)
        self.act1 = BiasedActivation(wide)
        self.conv2 = conv(wide, wide, kernel, groups=cardinality, gain=gain)
        self.act2 = BiasedActivation(wide)
        self.conv3 = conv(wide, channels, 1, gain=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act1(self.conv1(x)))
        return x + self.conv3(self.act2(y))


class Upsample(nn.Module):
    """A 1x1 convolution where the width changes (at the lower resolution), then 2x
    FIR upsampling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = conv(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.register_buffer("resample_filter", fir_filter(DEFAULT_TAPS), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x) if self.conv is not None else x
        return upsample2d(x, self.resample_filter)


class Downsample(nn.Module):
    """2x FIR downsampling, then a 1x1 convolution where the width changes (at the lower
    resolution)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.register_buffer("resample_filter", fir_filter(DEFAULT_TAPS), persistent=False)
        self.conv = conv(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = downsample2d(x, self.resample_filter)
        return self.conv(x) if self.conv is not None else x


class GenerativeBasis(nn.Module):
    """G's 4x4 start: a learned N(0, 1) constant per channel, scaled per sample by a
    linear map of the latent (z joined with the class embedding)."""

    def __init__(self, in_features: int, channels: int) -> None:
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, 4, 4))
        self.linear = linear(in_features, channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.basis.unsqueeze(0) * self.linear(z)[:, :, None, None]


class DiscriminativeBasis(nn.Module):
    """D's 4x4 end: a depthwise 4x4 convolution to one value per channel, then a linear
    map to the logit (or to the class embedding's width for the projection)."""

    def __init__(self, channels: int, out_features: int) -> None:
        super().__init__()
        self.basis = msr_init(nn.Conv2d(channels, channels, 4, groups=channels, bias=False))
        self.linear = linear(channels, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the depthwise 4x4 convolution of a 4x4 map, as a weighted sum: the same numbers
        # without a grouped convolution's per-channel double backward
        pooled = (x * self.basis.weight.to(x.dtype).transpose(0, 1)).sum((2, 3))
        return self.linear(pooled)
