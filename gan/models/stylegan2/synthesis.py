"""The synthesis network ws -> image: a learned 4x4 constant grown by modulated convs,
with the "skip" output architecture (one toRGB per resolution, summed through FIR
upsampling)."""

from __future__ import annotations

import math

import torch
from torch import nn

from gan.models.layers.equalized import bias_act
from gan.models.layers.fir import fir_filter, upsample2d
from gan.models.layers.modulated import ModulatedConv2d

NOISE_MODES = ("random", "const", "none")


def check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution: min(channel_base // res, channel_max)."""
    return min(channel_base // res, channel_max)


def resolutions_up_to(img_resolution: int) -> list[int]:
    """4, 8, ..., img_resolution (a power of two >= 4)."""
    if img_resolution < 4 or img_resolution & (img_resolution - 1):
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
    return [2**k for k in range(2, int(math.log2(img_resolution)) + 1)]


class StyleLayer(nn.Module):
    """Modulated + demodulated 3x3 conv (optionally 2x up), noise, bias, lrelu, clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        *,
        up: int = 1,
        conv_clamp: float | None = None,
        use_noise: bool = True,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.conv_clamp = conv_clamp
        self.use_noise = use_noise
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=up)
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = self.conv(x, w)
        if self.use_noise and noise_mode == "random":
            n, res = x.shape[0], self.resolution
            x = (
                x
                + torch.randn(n, 1, res, res, device=x.device, dtype=x.dtype) * self.noise_strength
            )
        elif self.use_noise and noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        return bias_act(x, self.bias, activation="lrelu", clamp=self.conv_clamp)


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation, bias, linear, optional clamp."""

    def __init__(
        self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None = None
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return bias_act(self.conv(x, w), self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (const | conv0 up) -> conv1 -> toRGB added to the upsampled image.

    Consumes ``num_conv + 1`` ws; its toRGB w is the next block's first conv w (the
    synthesis network advances by ``num_conv`` per block), as in the official network.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        *,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.register_buffer("resample_filter", fir_filter(), persistent=False)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.const = None
            self.conv0 = StyleLayer(
                in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp
            )
        self.conv1 = StyleLayer(
            out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp
        )
        self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if self.conv0 is None else 2

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: str = "random",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = ws.unbind(dim=1)
        if self.conv0 is None:
            assert self.const is not None
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, w[0], noise_mode)
        x = self.conv1(x, w[self.num_conv - 1], noise_mode)
        rgb = self.torgb(x, w[self.num_conv])
        img = rgb if img is None else upsample2d(img, self.resample_filter) + rgb
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> images [N, img_channels, img_resolution, img_resolution]."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        *,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.blocks = nn.ModuleDict()
        in_channels = 0
        for res in resolutions_up_to(img_resolution):
            out_channels = channels_at(res, channel_base, channel_max)
            self.blocks[str(res)] = SynthesisBlock(
                in_channels, out_channels, w_dim, res, img_channels, conv_clamp=conv_clamp
            )
            in_channels = out_channels
        self.num_ws = sum(b.num_conv for b in self.blocks.values()) + 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        check_noise_mode(noise_mode)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.float()
        x = img = None
        first = 0
        for block in self.blocks.values():
            x, img = block(x, img, ws.narrow(1, first, block.num_conv + 1), noise_mode)
            first += block.num_conv
        assert img is not None
        return img
