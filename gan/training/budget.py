"""Refuse networks the machine cannot hold before building them.

The generator is built on PyTorch's meta device (shapes only, no memory) to count its
parameters; training holds about BYTES_PER_PARAM bytes per generator parameter (weights,
gradients, two Adam moments and an EMA copy of G, and a discriminator of similar size).
Activations come on top, so this only catches sizes that cannot possibly fit, which
would otherwise be killed by the OS mid-allocation with no message.
"""

from __future__ import annotations

import torch

from gan.config import TrainConfig
from gan.errors import GanError
from gan.models import get_family
from gan.models.family import DataInfo

BYTES_PER_PARAM = 40
GIB = 1 << 30


def available_bytes(device: torch.device) -> int | None:
    """Free memory on `device`, or None where it cannot be told."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def generator_parameters(cfg: TrainConfig, data: DataInfo) -> int | None:
    family = get_family(cfg.model.family)
    try:
        with torch.device("meta"):
            G = family.build_generator(cfg.model, data)
    except Exception:  # a family that cannot be built on the meta device is not estimated
        return None
    return sum(p.numel() for p in G.parameters())


def check_fits(cfg: TrainConfig, data: DataInfo, device: torch.device) -> None:
    n = generator_parameters(cfg, data)
    free = available_bytes(device)
    if n is None or free is None or n * BYTES_PER_PARAM <= free:
        return
    raise GanError(
        f"train.model: a generator of {n:,} parameters needs about "
        f"{n * BYTES_PER_PARAM / GIB:.1f} GiB to train but {free / GIB:.1f} GiB are free on "
        f"{device}; make the networks smaller (their width or latent size)"
    )
