"""Equalised-learning-rate layers (Karras et al.): weights stored N(0, 1), scaled at run time.

A layer's effective weight is ``stored * gain`` with ``gain = lr_multiplier / sqrt(fan_in)``
and the stored weight initialised as ``N(0, 1) / lr_multiplier``. The learning-rate
multiplier therefore lives inside the layer: one optimiser lr serves every parameter, and a
layer with ``lr_multiplier = 0.01`` (StyleGAN2's mapping network) moves a hundred times
more slowly in effective-weight terms. Biases are stored as ``bias_init / lr_multiplier``
and multiplied by ``lr_multiplier``, so their initial effective value is ``bias_init``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gan.models.layers.fir import DEFAULT_TAPS, fir_filter, resample_conv2d

LRELU_SLOPE = 0.2
ACTIVATION_GAINS = {"linear": 1.0, "lrelu": math.sqrt(2.0)}


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    activation: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add a per-channel bias (dim 1), activate, scale by the activation's gain times gain,
    then clamp to +-clamp (None: no clamp). ``lrelu`` is leaky ReLU with slope 0.2."""
    if activation not in ACTIVATION_GAINS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {list(ACTIVATION_GAINS)}"
        )
    if bias is not None:
        x = x + bias.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    total_gain = ACTIVATION_GAINS[activation] * gain
    if total_gain != 1.0:
        x = x * total_gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class EqualizedLinear(nn.Module):
    """A fully connected layer with equalised lr, an lr multiplier and a fused activation."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        activation: str = "linear",
    ) -> None:
        super().__init__()
        self.activation = activation
        self.lr_multiplier = lr_multiplier
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = (
            nn.Parameter(torch.full((out_features,), bias_init / lr_multiplier)) if bias else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.lr_multiplier
        if self.activation == "linear":
            return F.linear(x, w, b)
        return bias_act(F.linear(x, w), b, activation=self.activation)

    def extra_repr(self) -> str:
        out_f, in_f = self.weight.shape
        return f"{in_f} -> {out_f}, lr_multiplier={self.lr_multiplier}, {self.activation}"


class EqualizedConv2d(nn.Module):
    """A same-padded k x k convolution with equalised lr, optional FIR downsampling by 2,
    fused bias + activation and an optional output clamp (scaled by the call's gain)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: str = "lrelu",
        down: int = 1,
        conv_clamp: float | None = None,
        resample_taps: Sequence[float] = DEFAULT_TAPS,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATION_GAINS:
            raise ValueError(f"unknown activation {activation!r}")
        self.activation = activation
        self.down = down
        self.conv_clamp = conv_clamp
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("resample_filter", fir_filter(resample_taps), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        x = resample_conv2d(x, w, self.resample_filter, down=self.down)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias, activation=self.activation, gain=gain, clamp=clamp)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i} -> {o}, k={k}, down={self.down}, {self.activation}, clamp={self.conv_clamp}"
