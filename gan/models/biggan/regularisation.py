"""BigGAN's orthogonal regularisation, as a differentiable loss on a list of parameters."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def orthogonal_regularisation(
    params: Iterable[torch.Tensor], strength: float = 1e-4
) -> torch.Tensor:
    """``strength * sum_W ||(W W^T) * (1 - I)||_F^2`` over the tensors with 2 or more axes.

    Each ``W`` is viewed as ``[out, -1]``; vectors (biases, norm scales, attention gamma)
    are skipped. Only the off-diagonal Gram entries are penalised, so the rows' norms are
    free (the paper's "modified" rule). The official code adds the gradient
    ``2 * strength * (W W^T * (1 - I)) W`` directly; this loss's gradient is twice that,
    so ``strength / 2`` here reproduces an official run's update.
    """
    total: torch.Tensor | None = None
    for p in params:
        if p.dim() < 2:
            continue
        w = p.reshape(p.shape[0], -1)
        # fp32 like every penalty: in bf16 the off-diagonal Gram entries drown in rounding
        with torch.autocast(w.device.type, enabled=False):
            gram = w.float() @ w.float().T
        off = gram - torch.diag_embed(torch.diagonal(gram))
        term = off.square().sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return strength * total
