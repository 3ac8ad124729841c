"""Batches straight from the uint8 shards held in memory: no image decoding per step.

The loader's position and random stream are part of a checkpoint, so a resumed run sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import torch

from gan.data.augment import random_flip
from gan.data.shards import SplitData
from gan.errors import GanError
from gan.training.streams import Streams


class BatchLoader:
    """Endless shuffled batches of one split (or one domain of it), as floats in [-1, 1]."""

    def __init__(
        self,
        split: SplitData,
        batch_size: int,
        device: torch.device,
        streams: Streams,
        flip: bool = False,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        if len(split) == 0:
            raise GanError("training split is empty")
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size = min(batch_size, len(split))
        self.flip = flip
        self.memory_format = memory_format
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(streams.seed("data"))
        self.aug_generator = torch.Generator(device=device)
        self.aug_generator.manual_seed(streams.seed("flip"))
        self.perm = torch.randperm(len(split), generator=self.generator)
        self.pos = 0

    def next(self) -> dict[str, torch.Tensor]:
        if self.pos + self.batch_size > len(self.perm):
            self.perm = torch.randperm(len(self.perm), generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch_size].to(self.images.device)
        self.pos += self.batch_size
        x = self.images[idx].float().div_(127.5).sub_(1.0)
        if self.flip:
            x = random_flip(x, self.aug_generator)
        return {
            "images": x.contiguous(memory_format=self.memory_format),
            "labels": self.labels[idx],
        }

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "aug_generator": self.aug_generator.get_state(),
            "perm": self.perm.clone(),
            "pos": self.pos,
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.aug_generator.set_state(state["aug_generator"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"])
