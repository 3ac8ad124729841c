"""Latents for BigGAN sampling: the truncation trick by resampling."""

from __future__ import annotations

import math

import torch


def truncated_normal(
    shape: tuple[int, ...] | torch.Size,
    threshold: float | None,
    generator: torch.Generator | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal values, each redrawn until ``|z| <= threshold``.

    ``threshold`` None or infinite gives the plain normal. The draws come from
    ``generator`` only (on its device unless ``device`` says otherwise), so a seeded
    generator gives the same latents every time.
    """
    if threshold is not None and not threshold > 0:
        raise ValueError(f"truncation threshold must be greater than 0, not {threshold}")
    if device is None and generator is not None:
        device = generator.device
    z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if threshold is None or math.isinf(threshold):
        return z
    outside = z.abs() > threshold
    while bool(outside.any()):
        fresh = torch.randn(int(outside.sum()), generator=generator, device=z.device, dtype=dtype)
        z[outside] = fresh
        outside = z.abs() > threshold
    return z
