"""Conditional BatchNorm: per-sample gains and biases predicted from a conditioning vector.

The statistics are those of a plain ``nn.BatchNorm2d(affine=False)`` (so anything that
resets or re-estimates batch-norm statistics finds it); the affine part is
``(1 + gain(c)) * x_hat + bias(c)`` with two bias-free linear maps of the condition, so a
gain layer initialised near zero starts the scale near one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Linear = Callable[[int, int], nn.Module]


def _plain_linear(c_in: int, c_out: int) -> nn.Module:
    return nn.Linear(c_in, c_out, bias=False)


class ConditionalBatchNorm2d(nn.Module):
    def __init__(
        self,
        channels: int,
        cond_dim: int,
        linear: Linear | None = None,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ) -> None:
        super().__init__()
        make = linear or _plain_linear
        self.norm = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=False)
        self.gain = make(cond_dim, channels)
        self.bias = make(cond_dim, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale = 1.0 + self.gain(cond)
        shift = self.bias(cond)
        return self.norm(x) * scale[:, :, None, None] + shift[:, :, None, None]
