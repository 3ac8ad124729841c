"""StyleGAN2's generator-side regularisation helpers: path-length penalty, style mixing.

R1 for the discriminator is ``gan.losses.r1_penalty``. Every random draw here comes from
a ``torch.Generator`` the caller owns (and checkpoints), so a resumed run repeats them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def _randn(shape: torch.Size, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Normal noise drawn on the generator's device, then moved next to ``like``."""
    return torch.randn(shape, generator=generator, device=generator.device).to(like)


class PathLengthPenalty(nn.Module):
    """Path-length regularisation (Karras et al. 2020).

    For images x = synthesis(ws) and y ~ N(0, I) / sqrt(H * W), the length per sample is
    ``sqrt(mean_k |d(sum x * y) / d ws[:, k]|^2)``; the penalty per sample is
    ``(length - a)^2`` where ``a`` is the running mean after this batch,
    ``a <- a + decay * (mean(lengths) - a)``. As in the official loss the penalty uses the
    updated mean with its graph (so it carries a ``decay`` share of the batch mean's
    gradient) and the buffer keeps the detached value. ``pl_mean`` is a buffer: it is in
    ``state_dict()`` and moves with ``.to(device)``.
    """

    def __init__(self, decay: float = 0.01) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("pl_mean", torch.zeros(()))

    def forward(
        self,
        synthesis: Callable[[torch.Tensor], torch.Tensor],
        ws: torch.Tensor,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (penalty [N], lengths [N]); updates ``pl_mean``. ws must reach synthesis
        with autograd on (mapping output, or a leaf that requires grad)."""
        if not ws.requires_grad:
            ws = ws.detach().requires_grad_(True)
        img = synthesis(ws)
        noise = _randn(img.shape, generator, img) / math.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grads.square().sum(dim=2).mean(dim=1).sqrt()
        mean = self.pl_mean.lerp(lengths.mean(), self.decay)
        self.pl_mean.copy_(mean.detach())
        return (lengths - mean).square(), lengths

    def extra_repr(self) -> str:
        return f"decay={self.decay}"


def mix_styles(
    mapping: Callable[..., torch.Tensor],
    ws: torch.Tensor,
    z: torch.Tensor,
    c: torch.Tensor | None,
    prob: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Style mixing regularisation, one cutoff per batch as in the official loss.

    Draws cutoff ~ U{1, ..., num_ws - 1} and u ~ U[0, 1); when u < prob, ws[:, cutoff:] is
    replaced by the mapping of fresh latents (same labels, w_avg not updated). Returns a
    new tensor; ws is unchanged. prob <= 0 returns ws without drawing anything.
    """
    num_ws = ws.shape[1]
    if prob <= 0 or num_ws < 2:
        return ws
    cutoff = int(torch.randint(1, num_ws, (), generator=generator, device=generator.device))
    if float(torch.rand((), generator=generator, device=generator.device)) >= prob:
        return ws
    other = mapping(_randn(z.shape, generator, z), c, update_w_avg=False)
    return torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)
