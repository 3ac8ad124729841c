"""StyleGAN2 generator: mapping network + synthesis network."""

from __future__ import annotations

import torch
from torch import nn

from gan.models.stylegan2.mapping import MappingNetwork
from gan.models.stylegan2.synthesis import SynthesisNetwork


class Generator(nn.Module):
    """G(z, c) -> images in roughly [-1, 1], [N, img_channels, img_resolution, img_resolution].

    ``mapping`` (lr multiplier inside its layers, ``w_avg`` buffer) and ``synthesis`` are
    public submodules; ``num_ws`` is the number of ws the synthesis network consumes.
    """

    def __init__(
        self,
        *,
        img_resolution: int,
        img_channels: int = 3,
        z_dim: int = 512,
        w_dim: int = 512,
        c_dim: int = 0,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        embed_features: int | None = None,
        w_avg_beta: float = 0.995,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        if img_channels < 1:
            raise ValueError(f"img_channels must be >= 1, got {img_channels}")
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim,
            img_resolution,
            img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            conv_clamp=conv_clamp,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim,
            c_dim,
            w_dim,
            self.num_ws,
            num_layers=mapping_layers,
            embed_features=embed_features,
            lr_multiplier=mapping_lr_multiplier,
            w_avg_beta=w_avg_beta,
        )

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_w_avg: bool = True,
    ) -> torch.Tensor:
        ws = self.mapping(
            z,
            c,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            update_w_avg=update_w_avg,
        )
        return self.synthesis(ws, noise_mode=noise_mode)
