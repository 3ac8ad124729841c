"""Turning the EMA generator into the network that samples, grids and exports use."""

from __future__ import annotations

import copy

import torch
from torch import nn

STANDING_STATS_BATCH_SIZE = 64
STANDING_STATS_SEED = 2**31 - 7


def labels_for(num_classes: int):
    """The trainer's labels for n samples, `(n, device) -> i % num_classes`, as grids,
    snapshots and evaluation ask for them; None when the data has no classes."""
    if num_classes <= 0:
        return None
    return lambda n, device: torch.arange(n, device=device) % num_classes


@torch.no_grad()
def inference_copy(G_ema: nn.Module, family, labels_for=None) -> nn.Module:
    """A copy of the EMA generator with batch-norm "standing statistics".

    The EMA weights never ran forward, so the running statistics copied from the live
    generator do not match them; BigGAN recomputes them over many batches. The copy keeps
    training state untouched and uses its own seeded noise, so resuming stays exact.
    """
    G = copy.deepcopy(G_ema)
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        device = next(G.parameters()).device
        gen = torch.Generator(device=device).manual_seed(STANDING_STATS_SEED)
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
        G.train()
        for _ in range(family.standing_batches):
            n = STANDING_STATS_BATCH_SIZE
            labels = labels_for(n, device) if labels_for else None
            family.generate(G, n, gen, labels=labels)
        for m in norms:
            m.momentum = 0.1
    return G.eval().requires_grad_(False)
