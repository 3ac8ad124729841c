"""Gradient regularisers of D that objectives and families add to D's loss.

The adversarial losses themselves are objects in gan/objectives.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


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
    return zero_centred_penalty(x, D(x))


def zero_centred_penalty(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The squared norm of the gradient of D's `logits` at the images `x` they were computed
    from (x requires grad), averaged over the batch: R1 at reals, R2 at fakes (with both
    logits at hand, `PenaltyInputs` takes the two from one call)."""
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return squared_norm(grad)


def squared_norm(grad: torch.Tensor) -> torch.Tensor:
    """A batch of image gradients' squared norms, averaged over the batch (R1, R2)."""
    return grad.float().pow(2).flatten(1).sum(1).mean()


def grad_norm(params: list[nn.Parameter]) -> float:
    norms = [p.grad.detach().norm(2) for p in params if p.grad is not None]
    return float(torch.stack(norms).norm(2)) if norms else 0.0
