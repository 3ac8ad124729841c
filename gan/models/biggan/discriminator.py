"""The BigGAN discriminator: residual down-blocks, sum pooling, projection on the class."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from gan.models.biggan.arch import attention_index, discriminator_stages
from gan.models.biggan.blocks import DBlock, orthogonal_init
from gan.models.layers.attention import SelfAttention, sn_conv1x1
from gan.models.layers.spectral import DEFAULT_EPS, SNConv2d, SNEmbedding, SNLinear


class Discriminator(nn.Module):
    """``D(x, y)``: images ``[N, C, H, W]`` and class indices ``[N]`` -> logits ``[N]``.

    logit = linear(h) + <embed(y), h>, with h the ReLU'd last features summed over space.
    Blocks use the "wide" channel pattern (the first conv already has the output width);
    the first block has no leading ReLU. Every weight, the class embedding included, is
    spectrally normalised.
    """

    def __init__(
        self,
        *,
        resolution: int = 128,
        ch: int = 96,
        attention: int = 64,
        n_classes: int = 1000,
        img_channels: int = 3,
        sn_eps: float = DEFAULT_EPS,
        n_power_iterations: int = 1,
        widths: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        stages = discriminator_stages(resolution, ch, img_channels, widths)
        self.resolution, self.n_classes, self.img_channels = resolution, n_classes, img_channels
        sn = {"eps": sn_eps, "n_power_iterations": n_power_iterations}
        conv = functools.partial(SNConv2d, **sn)
        self.blocks = nn.ModuleList(
            DBlock(s.c_in, s.c_out, conv, downsample=s.resamples, preactivate=i > 0)
            for i, s in enumerate(stages)
        )
        at = attention_index(stages, attention, "discriminator")
        self.attention_after = at
        self.attention = (
            SelfAttention(stages[at].c_out, sn_conv1x1(**sn)) if at is not None else None
        )
        width = stages[-1].c_out
        self.linear = SNLinear(width, 1, **sn)
        self.embed = SNEmbedding(n_classes, width, **sn)
        orthogonal_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attention_after:
                h = self.attention(h)
        h = F.relu(h).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)

    def ortho_parameters(self) -> list[nn.Parameter]:
        """The official loop regularises every D parameter (only 2-D+ weights count)."""
        return list(self.parameters())
