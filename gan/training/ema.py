"""Exponential moving average of generator weights, with a warm-up.

During warm-up the average simply copies the weights (early weights are noise and would
drag the average for thousands of steps); afterwards it decays at `decay` per step.
Buffers (batch-norm statistics) are copied, not averaged.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(step: int, decay: float, warmup_steps: int) -> float:
    return 0.0 if step < warmup_steps else decay


def half_life_beta(
    step: int, batch_size: int, half_life_images: float, rampup: float | None = None
) -> float:
    """stylegan2-ada's schedule: the average's half-life is `half_life_images` images,
    capped during ramp-up at `rampup` times the images seen so far (None: no ramp-up)."""
    images = half_life_images
    if rampup is not None:
        images = min(images, (step + 1) * batch_size * rampup)
    return 0.5 ** (batch_size / max(images, 1e-8))


@torch.no_grad()
def update_ema(ema: nn.Module, source: nn.Module, beta: float) -> None:
    """One fused (foreach) lerp over all parameters and one copy over all buffers, instead
    of a kernel launch per tensor (BigGAN and StyleGAN2 have hundreds)."""
    ema_params, params = list(ema.parameters()), [p.detach() for p in source.parameters()]
    if len(ema_params) != len(params):
        raise ValueError("EMA copy and source have different parameters")
    if ema_params:
        torch._foreach_lerp_(ema_params, params, 1.0 - beta)
    ema_bufs, bufs = list(ema.buffers()), list(source.buffers())
    if len(ema_bufs) != len(bufs):
        raise ValueError("EMA copy and source have different buffers")
    if ema_bufs:
        torch._foreach_copy_(ema_bufs, bufs)
