"""Starting data-parallel processes: spawning the ranks ourselves, or joining torchrun's.

`gan train` with `train.world_size > 1` spawns the ranks itself; under `torchrun` it joins
the launcher's group instead (WORLD_SIZE/RANK/LOCAL_RANK in the environment). The code a
rank runs is passed in (`entry`), so this module does not import the training loop.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from gan.config import TrainConfig, dump_as_given
from gan.errors import GanError
from gan.io import read_json
from gan.lock import acquire, release
from gan.training.distributed import Ranks, current

# What a spawned rank runs: the training entry point, called with its TrainConfig.
Entry = Callable[[TrainConfig], Any]


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


def spawn(cfg: TrainConfig, device: torch.device, entry: Entry) -> dict[str, Any]:
    """Run `entry(cfg)` in cfg.world_size fresh processes; returns rank 0's run summary."""
    import torch.multiprocessing as mp

    check_devices(cfg.world_size, device)
    with tempfile.TemporaryDirectory(prefix="gan-ddp-") as tmp:
        init = (Path(tmp) / "rendezvous").as_uri()
        try:
            mp.spawn(
                rank_main,
                args=(entry, dump_as_given(cfg), init, backend_for(device)),
                nprocs=cfg.world_size,
                join=True,
            )
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1].split(": ", 1)[-1]
            raise GanError(f"distributed training failed: {last}") from None
    return read_json(cfg.run_dir / "run.json")


def rank_main(rank: int, entry: Entry, cfg_dump: dict[str, Any], init: str, backend: str) -> None:
    """A spawned process: join the group, run the entry point, leave the group."""
    cfg = TrainConfig.model_validate(cfg_dump)
    os.environ["LOCAL_RANK"] = str(rank)
    if cfg.threads is None:  # the ranks share the cores instead of each taking them all
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.world_size))
    dist.init_process_group(backend, init_method=init, rank=rank, world_size=cfg.world_size)
    try:
        entry(cfg)
    finally:
        dist.destroy_process_group()


@contextmanager
def run_lock(cfg: TrainConfig, ranks: Ranks, owner: bool) -> Iterator[None]:
    """One training per run folder (gan/lock.py), held by the process that owns the run: a
    single process, or torchrun's rank 0 (every rank learns whether it got it). A rank that
    `spawn` started takes none: its launcher holds the lock."""
    fd, error, failed = None, None, None
    if owner and ranks.main:
        try:
            fd = acquire(cfg.run_dir, "gan train")
        except GanError as exc:  # every rank must hear of it, or the others wait
            error, failed = str(exc), exc
    if owner and ranks.active:
        error = ranks.gather(error)[0]
    if failed is not None:
        raise failed  # as raised: a DiskError stops an HPO worker
    if error:
        raise GanError(error)
    try:
        yield
    finally:
        if fd is not None:
            release(fd)
