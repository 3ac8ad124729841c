"""Data-parallel training over processes (one per GPU; gloo on the CPU for tests).

As in stylegan2-ada-pytorch, no DistributedDataParallel wrapper: GAN phases alternate G
and D, toggle requires_grad and take double-backward penalties, which the wrapper's hooks
handle badly. Instead every rank starts from the same initialisation, computes gradients on
its slice of the batch, and `average_gradients` all-reduces them before each optimiser
step, so parameters and optimiser states stay identical everywhere. Buffers (batch-norm
running statistics) are taken from rank 0 after every step, as the wrapper's
broadcast_buffers does, so the EMA generator, grids and checkpoints are rank-independent.

`gan train` with `train.world_size > 1` spawns the ranks itself; under `torchrun` it joins
the launcher's group instead (WORLD_SIZE/RANK/LOCAL_RANK in the environment).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from gan.config import dump_section
from gan.errors import GanError
from gan.io import read_json

RANK_SEED_STRIDE = 1_000  # rank r draws data, latents and augmentation from seed + r * this


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

    def seed(self, base: int) -> int:
        return base + self.rank * RANK_SEED_STRIDE

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
    if not ranks.active:
        return
    for net in nets:
        for buf in net.buffers():
            dist.broadcast(buf, src=0)


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


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def join_torchrun(world_size: int, device: torch.device) -> Ranks:
    env_world = int(os.environ["WORLD_SIZE"])
    if env_world != world_size:
        raise GanError(
            f"train.world_size is {world_size} but torchrun started {env_world} processes"
        )
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device), init_method="env://")
    return current()


def check_devices(world_size: int, device: torch.device) -> None:
    if device.type == "cuda" and torch.cuda.device_count() < world_size:
        raise GanError(
            f"train.world_size is {world_size} but only {torch.cuda.device_count()} CUDA "
            "devices are visible (one per rank)"
        )


def spawn(cfg, device: torch.device) -> dict[str, Any]:
    """Run `train(cfg)` in cfg.world_size fresh processes; returns rank 0's run summary."""
    import torch.multiprocessing as mp

    check_devices(cfg.world_size, device)
    with tempfile.TemporaryDirectory(prefix="gan-ddp-") as tmp:
        init = (Path(tmp) / "rendezvous").as_uri()
        try:
            mp.spawn(
                _worker,
                args=(dump_section(cfg), init, backend_for(device)),
                nprocs=cfg.world_size,
                join=True,
            )
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1].split(": ", 1)[-1]
            raise GanError(f"distributed training failed: {last}") from None
    return read_json(cfg.run_dir / "run.json")


def _worker(rank: int, cfg_dump: dict[str, Any], init: str, backend: str) -> None:
    from gan.config import TrainConfig
    from gan.training.loop import train

    cfg = TrainConfig.model_validate(cfg_dump)
    os.environ["LOCAL_RANK"] = str(rank)
    if cfg.threads is None:  # the ranks share the cores instead of each taking them all
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.world_size))
    dist.init_process_group(backend, init_method=init, rank=rank, world_size=cfg.world_size)
    try:
        train(cfg)
    finally:
        dist.destroy_process_group()
