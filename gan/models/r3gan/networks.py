"""R3GAN's generator and discriminator (R3GAN/Networks.py), stage by stage.

Widths, cardinalities and block counts are given per stage from 4x4 up, as G sees them;
D uses them in reverse. G: [z, class embedding] -> 4x4 basis -> blocks, then per stage
upsample and blocks -> 1x1 to the image (no tanh). D: 1x1 from the image -> per stage
blocks and downsample -> blocks at 4x4 -> depthwise 4x4 basis -> linear head; class
conditioning by projection onto a class embedding as wide as D's 4x4 stage. L in the
initialisation rule is the network's total block count.

`bf16_stages`: under bf16 autocast only that many of the highest-resolution stages run in
reduced precision, the rest (and the layers beside them) in fp32, as the official presets
(CIFAR-10: 3 of 4) do; without autocast every stage runs in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from gan.models.r3gan.blocks import (
    DiscriminativeBasis,
    Downsample,
    GenerativeBasis,
    ResidualBlock,
    Upsample,
    conv,
    full_precision,
    linear,
    widened,
)


class Stage(nn.Module):
    """One resolution: G's transition then its blocks, or D's blocks then its transition."""

    def __init__(self, transition: nn.Module, blocks: list[nn.Module], first: bool, fp32: bool):
        super().__init__()
        self.transition = transition
        self.blocks = nn.ModuleList(blocks)
        self.transition_first = first
        self.fp32 = fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with full_precision(x.device.type, self.fp32):
            x = widened(x, self.fp32)
            if self.transition_first:
                x = self.transition(x)
            for block in self.blocks:
                x = block(x)
            return x if self.transition_first else self.transition(x)


PER_STAGE = ("widths", "cardinality", "blocks")  # the plan's keys with one entry per stage


@dataclass(frozen=True)
class Plan:
    """The networks' shape: per stage from 4x4 up (G's order; D takes them in reverse) a
    width, the groups of its 3x3 convolutions and its block count; the blocks' expansion;
    how many of the highest-resolution stages run in bf16 under autocast."""

    widths: tuple[int, ...]
    cardinality: tuple[int, ...]
    blocks: tuple[int, ...]
    expansion: int = 2
    bf16_stages: int = 0

    def check(self, resolution: int) -> None:
        """One width, cardinality and block count per stage, 4x4 up to `resolution`."""
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(
                f"r3gan needs a power-of-two resolution of at least 4, not {resolution}"
            )
        stages = resolution.bit_length() - 2  # 4 px: 1 stage, 8 px: 2, ...
        for key in PER_STAGE:
            values = getattr(self, key)
            if len(values) != stages:
                raise ValueError(
                    f"{key} has {len(values)} entries but {resolution} px needs {stages} "
                    "(one per stage, 4x4 up)"
                )

    def reversed(self) -> Plan:
        return replace(
            self,
            widths=self.widths[::-1],
            cardinality=self.cardinality[::-1],
            blocks=self.blocks[::-1],
        )


def blocks_of(plan: Plan, stage: int) -> list[ResidualBlock]:
    """Stage `stage`'s residual blocks; L of the gain rule is the network's block count."""
    width, groups = plan.widths[stage], plan.cardinality[stage]
    depth = sum(plan.blocks)
    return [ResidualBlock(width, groups, plan.expansion, depth) for _ in range(plan.blocks[stage])]


class Generator(nn.Module):
    def __init__(
        self,
        img_resolution: int,
        img_channels: int,
        plan: Plan,
        z_dim: int = 64,
        c_dim: int = 0,
        class_dim: int = 64,
    ) -> None:
        super().__init__()
        plan.check(img_resolution)
        self.z_dim, self.c_dim, self.img_resolution = z_dim, c_dim, img_resolution
        widths, n = plan.widths, len(plan.widths)
        stages = []
        for i in range(n):
            into = (
                Upsample(widths[i - 1], widths[i])
                if i
                else GenerativeBasis(z_dim + (class_dim if c_dim else 0), widths[i])
            )
            fp32 = i < n - plan.bf16_stages
            stages.append(Stage(into, blocks_of(plan, i), first=True, fp32=fp32))
        self.embed = linear(c_dim, class_dim) if c_dim else None
        self.stages = nn.ModuleList(stages)
        self.to_image = conv(widths[-1], img_channels, 1)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Images from latents z [n, z_dim] and one-hot classes c [n, c_dim]."""
        first, last = self.stages[0], self.stages[-1]
        with full_precision(z.device.type, first.fp32):
            x = torch.cat([z, self.embed(c)], 1) if self.embed is not None else z
            x = first(x)
        for stage in self.stages[1:]:
            x = stage(x)
        with full_precision(x.device.type, last.fp32):
            return self.to_image(x)


class Discriminator(nn.Module):
    def __init__(self, img_resolution: int, img_channels: int, plan: Plan, c_dim: int = 0):
        """`plan` in G's order (4x4 first)."""
        super().__init__()
        plan.check(img_resolution)
        self.c_dim = c_dim
        plan = plan.reversed()
        widths, n = plan.widths, len(plan.widths)
        embed_dim = widths[-1]  # the projection is as wide as D's 4x4 stage (official)
        stages = []
        for i in range(n):
            out = (
                Downsample(widths[i], widths[i + 1])
                if i < n - 1
                else DiscriminativeBasis(widths[i], embed_dim if c_dim else 1)
            )
            fp32 = i >= plan.bf16_stages
            stages.append(Stage(out, blocks_of(plan, i), first=False, fp32=fp32))
        self.from_image = conv(img_channels, widths[0], 1)
        self.stages = nn.ModuleList(stages)
        # the official gain 1 / sqrt(embedding width) keeps the initial projection unit-scale
        self.embed = linear(c_dim, embed_dim, gain=embed_dim**-0.5) if c_dim else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """One logit per image [n] for images x and one-hot classes c [n, c_dim]."""
        first, last = self.stages[0], self.stages[-1]
        with full_precision(x.device.type, first.fp32):
            x = self.from_image(widened(x, first.fp32))
        for stage in self.stages:
            x = stage(x)
        with full_precision(x.device.type, last.fp32):
            if self.embed is not None:
                x = (x * self.embed(c)).sum(1, keepdim=True)
            return x.flatten()
