"""What gan/onnx_export.py needs of a family: the latents `generate` draws and the network
part of `generate` as one graph (docs/architecture.md, 'Export'). A mixin of GANFamily, so
the family contract reads as training and sampling, and the export's part stays here."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from gan.errors import GanError


class ExportGraph:
    """The sampling network as a graph; a family that exports one overrides `latent_size`
    and `export_forward` (and `draw_z` where it truncates while drawing)."""

    name: ClassVar[str]
    task: ClassVar[str]

    @classmethod
    def latent_size(cls, G: nn.Module) -> tuple[int, int]:
        """(z_dim, classes) of a generator: its latent's width and the number of classes
        its network takes labels of (0: none)."""
        raise GanError(f"{cls.name} does not draw images from latents")

    @classmethod
    def draw(
        cls,
        n: int,
        z_dim: int,
        classes: int,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
        truncation: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What `generate` draws from `generator`, in its order, on the generator's device:
        z [n, z_dim] ~ N(0, 1), then (with `classes`) uniform labels where none are given
        (int64 [n]; None without classes)."""
        z = cls.draw_z(n, z_dim, generator, truncation)
        if not classes:
            return z, None
        if labels is None:
            labels = torch.randint(0, classes, (n,), generator=generator, device=generator.device)
        return z, labels.long()

    @classmethod
    def draw_z(
        cls, n: int, z_dim: int, generator: torch.Generator, truncation: float = 1.0
    ) -> torch.Tensor:
        """`draw`'s latents: N(0, 1) here, where truncation is the network's
        (`export_forward`); a family that truncates while drawing overrides this."""
        return torch.randn(n, z_dim, generator=generator, device=generator.device)

    @classmethod
    def export_forward(
        cls,
        G: nn.Module,
        z: torch.Tensor,
        labels: torch.Tensor | None,
        truncation: torch.Tensor,
    ) -> torch.Tensor:
        """The network part of `generate` on what `draw` drew, with `truncation` a 0-d
        tensor and no Python branch on a value, so that it exports as one ONNX graph with
        z, labels (None: the network's default class) and truncation as inputs."""
        raise GanError(f"{cls.name} has no sampling network to export; it {cls.task}s")
