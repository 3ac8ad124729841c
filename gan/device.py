"""Device choice and the speed features (bf16 autocast, channels_last)."""

from __future__ import annotations

import contextlib
import os
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
    cores = os.cpu_count() or 1
    if n > cores:  # OpenMP aborts or crashes far above the cores (1,000,000: a segfault)
        raise GanError(f"train.threads {n}: more than the {cores} CPU cores here (null: one each)")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_bf16_reason() -> str | None:
    """Why bf16 is the fast path on this CPU, or None where it is not.

    oneDNN's bf16 convolutions and matmuls run on AMX tiles (Intel Xeon from Sapphire
    Rapids on) several times faster than fp32; without matrix units they are emulated and
    far slower (docs/benchmarks.md has both machines' figures), so only AMX counts. Read
    from torch's CPU feature probe: no benchmark at start-up."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        amx = bool(probe and probe()) and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        return None
    return "CPU with AMX bf16 matrix units" if amx else None


@dataclass(frozen=True)
class Precision:
    """How the trainer runs its forward passes on a device, and why (run.json, the log
    and the evaluation protocol record `describe()`)."""

    device: torch.device
    bf16: bool
    channels_last: bool
    reason: str = "asked for"

    def autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def describe(self) -> str:
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"{'bf16 autocast' if self.bf16 else 'fp32'}, {layout} ({self.reason})"


def auto_bf16(device: torch.device) -> tuple[bool, str]:
    """`precision: auto`: bf16 autocast where the device has fast bf16 kernels."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, "CUDA device with bf16"
        return False, "CUDA device without bf16"
    if device.type == "cpu":
        reason = cpu_bf16_reason()
        return (True, reason) if reason else (False, "CPU without bf16 matrix units")
    return False, f"{device.type}: fp32"


def pick_precision(
    device: torch.device,
    precision: str = "auto",
    channels_last="auto",
    cpu_channels_last: bool | dict[bool, bool] = False,
    cpu_bf16: bool = True,
) -> Precision:
    """The run's precision and memory layout.

    `precision` auto: bf16 autocast where `auto_bf16` finds fast kernels, fp32 elsewhere;
    "bf16" / "fp32" force it. `channels_last` auto: on CUDA, and on the CPU where the
    family measured it faster (`cpu_channels_last`: one answer, or one per precision
    keyed by bf16 True/False): transposed and 3x3 convolutions ran faster in it there,
    instance norm and reflection padding slower. `cpu_bf16` False: the family keeps fp32
    on the CPU under auto (its quality did not hold in bf16)."""
    if precision == "auto":
        bf16, reason = auto_bf16(device)
        if bf16 and device.type == "cpu" and not cpu_bf16:
            bf16, reason = False, "this family trains in fp32 on the CPU (quality)"
    else:
        bf16, reason = precision == "bf16", f"train.precision: {precision}"
    if channels_last == "auto":
        on_cpu = cpu_channels_last
        if isinstance(on_cpu, dict):
            on_cpu = on_cpu[bf16]
        cl = device.type == "cuda" or (device.type == "cpu" and on_cpu)
    else:
        cl = bool(channels_last)
    return Precision(device=device, bf16=bf16, channels_last=cl, reason=reason)
