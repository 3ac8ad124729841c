"""Style-modulated convolution (StyleGAN2): per-sample input scaling, optional demodulation.

Modulation scales the weight's input channels by a per-sample style s[n, i]; demodulation
rescales each output channel so the modulated kernel has unit L2 norm,
``d[n, o] = 1 / sqrt(sum_{i, kh, kw} (W[o, i, kh, kw] * s[n, i])^2 + eps)``.
Both are computed on activations instead of building a kernel per sample: scaling the
input by s, convolving with the shared W and scaling the output by d is the same linear
map, needs one ordinary convolution for the whole batch, and keeps every op twice
differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gan.models.layers.equalized import EqualizedLinear
from gan.models.layers.fir import DEFAULT_TAPS, fir_filter, resample_conv2d


def demodulation_coefficients(
    weight: torch.Tensor, styles: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """[N, out] reciprocal norms of the per-sample kernels W[o, i] * s[n, i]."""
    energy = weight.square().sum(dim=(2, 3))  # [out, in]
    return (styles.square() @ energy.t() + eps).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool = True,
    up: int = 1,
    resample_filter: torch.Tensor | None = None,
) -> torch.Tensor:
    """x [N, in, H, W], weight [out, in, k, k], styles [N, in] -> [N, out, up*H, up*W]."""
    n, in_channels = styles.shape
    if x.shape[1] != in_channels or weight.shape[1] != in_channels:
        raise ValueError(
            f"channel mismatch: x {tuple(x.shape)}, weight {tuple(weight.shape)}, styles {tuple(styles.shape)}"
        )
    weight = weight.to(x.dtype)
    styles = styles.to(x.dtype)
    x = x * styles.reshape(n, in_channels, 1, 1)
    x = resample_conv2d(x, weight, resample_filter, up=up)
    if demodulate:
        x = x * demodulation_coefficients(weight, styles).reshape(n, -1, 1, 1)
    return x


class ModulatedConv2d(nn.Module):
    """Weight [out, in, k, k] plus the affine map w -> style (equalised lr, bias init 1).

    With ``demodulate=False`` (StyleGAN2's toRGB) the style is scaled by 1/sqrt(in * k * k),
    the weight's equalised-lr gain; with demodulation that gain would cancel out.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        w_dim: int,
        *,
        demodulate: bool = True,
        up: int = 1,
        resample_taps: Sequence[float] = DEFAULT_TAPS,
    ) -> None:
        super().__init__()
        self.demodulate = demodulate
        self.up = up
        self.style_gain = 1.0 if demodulate else 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("resample_filter", fir_filter(resample_taps), persistent=False)

    def styles(self, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)
        return s * self.style_gain if self.style_gain != 1.0 else s

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return modulated_conv2d(
            x,
            self.weight,
            self.styles(w),
            demodulate=self.demodulate,
            up=self.up,
            resample_filter=self.resample_filter,
        )

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i} -> {o}, k={k}, up={self.up}, demodulate={self.demodulate}"
