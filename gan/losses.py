"""Adversarial losses on discriminator logits, and the regularisers that go with them.

Each loss is a pair: the discriminator's objective on (real, fake) logits and the
generator's on fake logits. All return a scalar mean over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("nonsaturating", "hinge", "lsgan", "wgan-gp")


def d_loss(name: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if name == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if name == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if name == "lsgan":
        return 0.5 * ((real - 1.0).pow(2).mean() + fake.pow(2).mean())
    if name == "wgan-gp":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


def g_loss(name: str, fake: torch.Tensor) -> torch.Tensor:
    if name == "nonsaturating":
        return F.softplus(-fake).mean()
    if name in ("hinge", "wgan-gp"):
        return -fake.mean()
    if name == "lsgan":
        return 0.5 * (fake - 1.0).pow(2).mean()
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


def gradient_penalty(
    D: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """WGAN-GP: (||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device=real.device)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = D(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def r1_penalty(D: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1: squared gradient norm of D on real images (StyleGAN2's lazy regulariser)."""
    x = real.detach().requires_grad_(True)
    out = D(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def grad_norm(params: list[nn.Parameter]) -> float:
    norms = [p.grad.detach().norm(2) for p in params if p.grad is not None]
    return float(torch.stack(norms).norm(2)) if norms else 0.0
