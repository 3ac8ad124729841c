"""Self-attention (non-local) block of SAGAN as its released code and BigGAN run it.

Queries come from every position; keys and values from a 2x2 max-pooled map, so the
attention matrix is [HW, HW/4]. Query and key projections have C/8 channels, the value
projection C/2, and a 1x1 output projection restores C. The result is added to the input
scaled by a learnable ``gamma`` that starts at 0, so a fresh block is the identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from gan.models.layers.spectral import DEFAULT_EPS, SNConv2d

Conv1x1 = Callable[[int, int], nn.Module]


def sn_conv1x1(eps: float = DEFAULT_EPS, n_power_iterations: int = 1) -> Conv1x1:
    """A factory of bias-free spectrally normalised 1x1 convolutions."""

    def make(c_in: int, c_out: int) -> nn.Module:
        return SNConv2d(c_in, c_out, 1, bias=False, eps=eps, n_power_iterations=n_power_iterations)

    return make


class SelfAttention(nn.Module):
    def __init__(self, channels: int, conv1x1: Conv1x1 | None = None) -> None:
        super().__init__()
        if channels % 8:
            raise ValueError(f"self-attention needs channels divisible by 8, not {channels}")
        make = conv1x1 or sn_conv1x1()
        self.channels = channels
        self.query = make(channels, channels // 8)
        self.key = make(channels, channels // 8)
        self.value = make(channels, channels // 2)
        self.out = make(channels // 2, channels)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2)  # [N, C/8, HW]
        k = nn.functional.max_pool2d(self.key(x), 2).flatten(2)  # [N, C/8, HW/4]
        v = nn.functional.max_pool2d(self.value(x), 2).flatten(2)  # [N, C/2, HW/4]
        weights = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # [N, HW, HW/4]
        attended = (v @ weights.transpose(1, 2)).reshape(n, c // 2, h, w)
        return x + self.gamma * self.out(attended)
