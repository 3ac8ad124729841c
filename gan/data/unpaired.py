"""Batches of unpaired two-domain data: an A batch and a B batch drawn independently.

Translation data has no pairs, so each domain is shuffled on its own stream. Augmentation
follows the CycleGAN paper's "load size, then random crop and flip": the stored images are
resized once to the load size (286/256 of the resolution by default) and every batch takes
a random crop back to the resolution, all on tensors. The position and random streams are
part of a checkpoint, like BatchLoader's, so a resumed run sees the same batches.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gan.data.augment import random_flip
from gan.data.shards import SplitData
from gan.errors import GanError
from gan.training.streams import Streams

DOMAINS = ("A", "B")
ORDER_STREAMS = {"A": "data", "B": "data_B"}  # each domain's batch order (gan/training/streams.py)


def load_size(resolution: int, scale: float) -> int:
    """The size images are resized to before cropping: 286 for 256 at the paper's scale."""
    return max(resolution, round(resolution * scale))


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of uint8 NCHW images (as the paper's loader), back to uint8."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    x = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def random_crop(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A `size` x `size` crop of each image at its own random offset."""
    n, _, h, w = x.shape
    if h == size and w == size:
        return x
    dev = x.device
    top = torch.randint(0, h - size + 1, (n,), generator=generator, device=dev)
    left = torch.randint(0, w - size + 1, (n,), generator=generator, device=dev)
    steps = torch.arange(size, device=dev)
    rows = (top[:, None] + steps)[:, :, None]  # [n, size, 1]
    cols = (left[:, None] + steps)[:, None, :]  # [n, 1, size]
    batch = torch.arange(n, device=dev)[:, None, None]
    return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


class _Stream:
    """Endless shuffled indices into one domain."""

    def __init__(self, n: int, seed: int) -> None:
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.generator)
        self.pos = 0

    def take(self, k: int) -> torch.Tensor:
        if self.pos + k > len(self.perm):
            self.perm = torch.randperm(len(self.perm), generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + k]
        self.pos += k
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"])


class UnpairedLoader:
    """Endless batches {"A", "B", "labels_A", "labels_B"}; images as floats in [-1, 1]."""

    def __init__(
        self,
        split: SplitData,
        batch_size: int,
        device: torch.device,
        streams: Streams,
        flip: bool = False,
        memory_format: torch.memory_format = torch.contiguous_format,
        load_scale: float = 1.0,
    ) -> None:
        parts = {name: split.domain(d) for d, name in enumerate(DOMAINS)}
        empty = [name for name, part in parts.items() if len(part) == 0]
        if empty:
            raise GanError(
                f"training split has no images of domain {' or '.join(empty)}: unpaired training "
                "needs both (a trainA/trainB folder layout)"
            )
        self.resolution = int(split.images.shape[-1])
        size = load_size(self.resolution, load_scale)
        self.images = {k: resize_uint8(p.images, size).to(device) for k, p in parts.items()}
        self.labels = {k: p.labels.to(device) for k, p in parts.items()}
        self.batch_size = min(batch_size, *(len(p) for p in parts.values()))
        self.flip = flip
        self.memory_format = memory_format
        self.streams = {
            k: _Stream(len(p), streams.seed(ORDER_STREAMS[k])) for k, p in parts.items()
        }
        self.aug_generator = torch.Generator(device=device)
        self.aug_generator.manual_seed(streams.seed("flip"))

    def _batch(self, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.streams[domain].take(self.batch_size).to(self.images[domain].device)
        x = random_crop(self.images[domain][idx], self.resolution, self.aug_generator)
        x = x.float().div_(127.5).sub_(1.0)
        if self.flip:
            x = random_flip(x, self.aug_generator)
        return x.contiguous(memory_format=self.memory_format), self.labels[domain][idx]

    def next(self) -> dict[str, torch.Tensor]:
        a, labels_a = self._batch("A")
        b, labels_b = self._batch("B")
        return {"A": a, "B": b, "labels_A": labels_a, "labels_B": labels_b}

    def state_dict(self) -> dict[str, Any]:
        return {
            "streams": {k: s.state_dict() for k, s in self.streams.items()},
            "aug_generator": self.aug_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, s in self.streams.items():
            s.load_state_dict(state["streams"][k])
        self.aug_generator.set_state(state["aug_generator"])
