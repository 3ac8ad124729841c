"""Residual blocks of the BigGAN generator and discriminator, and their initialisation."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gan.models.layers.conditional_norm import ConditionalBatchNorm2d

ConvFactory = Callable[..., nn.Module]  # (c_in, c_out, kernel_size) -> conv module


class GBlock(nn.Module):
    """BN-ReLU-up-conv3x3-BN-ReLU-conv3x3 with class-conditional norms, plus an up-1x1 skip."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        cond_dim: int,
        conv: ConvFactory,
        linear: Callable[[int, int], nn.Module],
        bn_eps: float,
    ) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(c_in, cond_dim, linear, eps=bn_eps)
        self.conv1 = conv(c_in, c_out, 3)
        self.bn2 = ConditionalBatchNorm2d(c_out, cond_dim, linear, eps=bn_eps)
        self.conv2 = conv(c_out, c_out, 3)
        self.skip = conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DBlock(nn.Module):
    """(ReLU)-conv3x3-ReLU-conv3x3-(avgpool) with a 1x1 skip, channels widened at conv1.

    ``preactivate=False`` (the first block, which sees the image) skips the leading ReLU
    and pools the skip before its 1x1 conv; later blocks convolve and then pool.
    """

    def __init__(
        self, c_in: int, c_out: int, conv: ConvFactory, downsample: bool, preactivate: bool
    ) -> None:
        super().__init__()
        self.preactivate = preactivate
        self.downsample = downsample
        self.conv1 = conv(c_in, c_out, 3)
        self.conv2 = conv(c_out, c_out, 3)
        self.skip = conv(c_in, c_out, 1) if (c_in != c_out or downsample) else None

    def _pool(self, t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, 2) if self.downsample else t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivate else x
        h = self._pool(self.conv2(F.relu(self.conv1(h))))
        s = x
        if self.skip is not None:
            s = self._pool(self.skip(s)) if self.preactivate else self.skip(self._pool(s))
        return h + s


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights for every conv, linear and embedding (BigGAN's G_init='ortho')."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding):
            nn.init.orthogonal_(m.weight)
