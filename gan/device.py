"""Device choice and the speed features (bf16 autocast, channels_last)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from gan.errors import GanError


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for "auto"; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GanError("device: cuda was asked for but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise GanError("device: mps was asked for but MPS is not available")
    return torch.device(name)


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """torch's intra-op threads for the block, then back. Processes that share a few cores
    (parallel trials, a pipeline next to a test run) each taking all of them ran 2-10x
    slower than with one thread each on the 2-core reference machine."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Precision:
    """How the trainer runs its forward passes on a device."""

    device: torch.device
    bf16: bool
    channels_last: bool

    def autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def pick_precision(
    device: torch.device, precision: str = "auto", channels_last="auto", cpu_channels_last=False
) -> Precision:
    """bf16 defaults on for CUDA only ("bf16" forces autocast elsewhere too); channels_last
    on CUDA, and on the CPU where `cpu_channels_last` (the family's measured choice:
    transposed and 3x3 convolutions run faster in it there, instance norm and reflection
    padding slower)."""
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    else:
        bf16 = precision == "bf16"
    if channels_last == "auto":
        cl = device.type == "cuda" or (device.type == "cpu" and cpu_channels_last)
    else:
        cl = bool(channels_last)
    return Precision(device=device, bf16=bf16, channels_last=cl)
