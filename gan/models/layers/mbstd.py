"""Minibatch standard deviation (Karras et al. 2018, ProGAN): D sees how varied a group of
samples is, which a generator that ignores its noise cannot fake. Shared by StyleGAN2's
epilogue and DCGAN's `d_mbstd`."""

from __future__ import annotations

import torch
from torch import nn


def mbstd_groups(batch: int, group_size: int | None) -> int:
    """The group size used for a batch: min(group_size, batch) (None: the whole batch),
    lowered to the largest divisor of the batch when it does not divide it (the official
    layer would fail to reshape)."""
    g = batch if group_size is None else min(group_size, batch)
    while batch % g:
        g -= 1
    return g


class MinibatchStdLayer(nn.Module):
    """Appends ``num_channels`` feature maps: the stddev over a group of samples, averaged
    over each channel slice and over pixels. Group members are samples n, n + N/G, ...
    (strided, as the official layer groups them)."""

    def __init__(self, group_size: int | None = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = mbstd_groups(n, self.group_size)
        f = self.num_channels
        y = x.reshape(g, n // g, f, c // f, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # [n/g, F, c/F, H, W]
        y = y.mean(dim=(2, 3, 4))  # [n/g, F]
        y = y.reshape(1, n // g, f, 1, 1).expand(g, -1, -1, h, w).reshape(n, f, h, w)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
