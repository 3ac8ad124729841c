"""Data-parallel training over processes (one per GPU; gloo on the CPU for tests).

As in stylegan2-ada-pytorch, no DistributedDataParallel wrapper: GAN phases alternate G
and D, toggle requires_grad and take double-backward penalties, which the wrapper's hooks
handle badly. Instead every rank starts from the same initialisation, computes gradients on
its slice of the batch, and `average_gradients` all-reduces them before each optimiser
step, so parameters and optimiser states stay identical everywhere. Buffers (batch-norm
running statistics) are taken from rank 0 after every step, as the wrapper's
broadcast_buffers does, so the EMA generator, grids and checkpoints are rank-independent.

Starting the processes (spawned ranks, or joining torchrun's group) is gan.training.launch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from gan.errors import GanError


@dataclass(frozen=True)
class Ranks:
    """Where this process stands; `Ranks()` is the single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def device(self, device: torch.device) -> torch.device:
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    # -- collectives (no-ops for a single process) -----------------------------------------
    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_finite(self, value: torch.Tensor) -> bool:
        """True only if `value` is finite on every rank, so that all stop together."""
        ok = torch.tensor([int(bool(torch.isfinite(value).all()))], device=value.device)
        if self.active:
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item())

    def mean_scalars(self, row: dict[str, float], device: torch.device) -> dict[str, float]:
        if not self.active or not row:
            return row
        keys = sorted(row)
        t = torch.tensor([float(row[k]) for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist(), strict=True)}

    def gather(self, obj: Any) -> list[Any]:
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def average_gradients(params: Iterable[nn.Parameter], ranks: Ranks) -> None:
    """Replace each gradient by its mean over the ranks (one flattened all-reduce)."""
    if not ranks.active:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]
    )
    dist.all_reduce(flat)
    flat /= ranks.world_size
    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
        p.grad = g.view_as(p).clone()


def broadcast_buffers(nets: Iterable[nn.Module], ranks: Ranks) -> None:
    """Rank 0's buffers everywhere, in one flattened broadcast per dtype (BigGAN has
    hundreds of spectral-norm vectors; one call each would dominate a step)."""
    if not ranks.active:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for net in nets:
        for buf in net.buffers():
            by_dtype.setdefault(buf.dtype, []).append(buf)
    for bufs in by_dtype.values():
        flat = torch.cat([b.detach().flatten() for b in bufs])
        dist.broadcast(flat, src=0)
        for b, v in zip(bufs, flat.split([b.numel() for b in bufs]), strict=True):
            b.copy_(v.view_as(b))


def assert_in_sync(nets: dict[str, nn.Module], ranks: Ranks) -> None:
    """Every rank must hold the same weights; a mismatch is a bug, reported by name."""
    if not ranks.active:
        return
    for name, net in nets.items():
        for key, t in net.state_dict().items():
            if not t.is_floating_point():
                continue
            lo, hi = t.detach().clone(), t.detach().clone()
            dist.all_reduce(lo, op=dist.ReduceOp.MIN)
            dist.all_reduce(hi, op=dist.ReduceOp.MAX)
            if not torch.equal(lo, hi):
                raise GanError(f"ranks disagree on {name}.{key} after training (a sync bug)")


# -- process groups ----------------------------------------------------------------------------
def current() -> Ranks:
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Ranks()
