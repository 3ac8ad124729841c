"""StyleGAN2 discriminator, "resnet" architecture, with minibatch-stddev epilogue and
projection conditioning on a mapped label embedding."""

from __future__ import annotations

import math

import torch
from torch import nn

from gan.models.layers.equalized import EqualizedConv2d, EqualizedLinear
from gan.models.layers.mbstd import MinibatchStdLayer, mbstd_groups  # noqa: F401 (re-exported)
from gan.models.stylegan2.mapping import MappingNetwork
from gan.models.stylegan2.synthesis import channels_at, resolutions_up_to

RESIDUAL_GAIN = math.sqrt(0.5)


class DiscriminatorBlock(nn.Module):
    """(fromRGB at the top block) -> conv0 3x3 -> conv1 3x3 down, plus a 1x1 down skip;
    both branches scaled by sqrt(0.5) so the sum keeps the variance."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        img_channels: int,
        *,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.fromrgb = (
            EqualizedConv2d(img_channels, tmp_channels, 1, conv_clamp=conv_clamp)
            if in_channels == 0
            else None
        )
        self.conv0 = EqualizedConv2d(tmp_channels, tmp_channels, 3, conv_clamp=conv_clamp)
        self.conv1 = EqualizedConv2d(tmp_channels, out_channels, 3, down=2, conv_clamp=conv_clamp)
        self.skip = EqualizedConv2d(
            tmp_channels, out_channels, 1, bias=False, activation="linear", down=2
        )

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            y = self.fromrgb(img)
            x = y if x is None else x + y
        assert x is not None
        shortcut = self.skip(x, gain=RESIDUAL_GAIN)
        return shortcut + self.conv1(self.conv0(x), gain=RESIDUAL_GAIN)


class DiscriminatorEpilogue(nn.Module):
    """4x4: mbstd -> conv 3x3 -> FC -> output FC (1 logit, or cmap_dim for projection)."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        *,
        resolution: int = 4,
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = (
            MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels else None
        )
        self.conv = EqualizedConv2d(
            in_channels + mbstd_num_channels, in_channels, 3, conv_clamp=conv_clamp
        )
        self.fc = EqualizedLinear(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = EqualizedLinear(in_channels, cmap_dim or 1)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None = None) -> torch.Tensor:
        x = x.float()
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim:
            if cmap is None:
                raise ValueError("a conditional discriminator needs the mapped label")
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


class Discriminator(nn.Module):
    """D(img, c) -> logits [N, 1]. Blocks from img_resolution down to 8, epilogue at 4."""

    def __init__(
        self,
        *,
        img_resolution: int,
        img_channels: int = 3,
        c_dim: int = 0,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        cmap_dim: int | None = None,
        cmap_layers: int = 8,
        cmap_lr_multiplier: float = 0.01,
    ) -> None:
        super().__init__()
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.c_dim = c_dim
        resolutions = resolutions_up_to(img_resolution)
        if img_resolution < 8:
            raise ValueError(f"the discriminator needs img_resolution >= 8, got {img_resolution}")
        self.blocks = nn.ModuleDict()
        for res in reversed(resolutions[1:]):
            tmp = channels_at(res, channel_base, channel_max)
            self.blocks[str(res)] = DiscriminatorBlock(
                0 if res == img_resolution else tmp,
                tmp,
                channels_at(res // 2, channel_base, channel_max),
                img_channels,
                conv_clamp=conv_clamp,
            )
        channels4 = channels_at(4, channel_base, channel_max)
        cmap_dim = (channels4 if cmap_dim is None else cmap_dim) if c_dim else 0
        self.mapping = (
            MappingNetwork(
                0,
                c_dim,
                cmap_dim,
                None,
                num_layers=cmap_layers,
                lr_multiplier=cmap_lr_multiplier,
                w_avg_beta=None,
            )
            if c_dim
            else None
        )
        self.epilogue = DiscriminatorEpilogue(
            channels4,
            cmap_dim,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
            conv_clamp=conv_clamp,
        )

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(
                f"img must be [N, {', '.join(map(str, expected))}], got {tuple(img.shape)}"
            )
        x = None
        for block in self.blocks.values():
            x = block(x, img)
        assert x is not None
        cmap = None if self.mapping is None else self.mapping(None, c)
        return self.epilogue(x, cmap)
