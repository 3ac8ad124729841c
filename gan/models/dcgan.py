"""DCGAN (Radford et al. 2016) with a choice of adversarial loss, sized by resolution.

The generator upsamples a latent from 4x4 by transposed convolutions; the discriminator
mirrors it with strided convolutions. WGAN-GP uses a critic without batch norm.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from gan.config import ModelConfig
from gan.losses import d_loss, g_loss, gradient_penalty
from gan.models.family import Batch, DataInfo, GANFamily, Phase
from gan.models.layers.init import dcgan_init, norm_layer, stage_channels


class DCGANConfig(ModelConfig):
    family: Literal["dcgan"] = "dcgan"
    z_dim: int = Field(64, gt=0, le=4096)
    width: int = Field(32, gt=0, le=4096)  # channels at the finest stage; doubles per coarser stage
    loss: Literal["nonsaturating", "hinge", "lsgan", "wgan-gp"] = "nonsaturating"
    gp_weight: float = Field(10.0, ge=0.0)
    n_critic: int = Field(1, gt=0, le=100)
    d_norm: Literal["auto", "batch", "layer", "none"] = "auto"

    @field_validator("n_critic")
    @classmethod
    def _n_critic(cls, v: int) -> int:
        if v > 20:
            raise ValueError("more than 20 critic steps per generator step is surely a mistake")
        return v


def _stages(resolution: int) -> int:
    if resolution < 16 or resolution > 256:
        raise ValueError(f"DCGAN supports resolutions 16 to 256, not {resolution}")
    return int(math.log2(resolution)) - 2  # 4x4 -> resolution


class Generator(nn.Module):
    def __init__(self, z_dim: int, width: int, resolution: int, channels: int) -> None:
        super().__init__()
        ch = stage_channels(width, _stages(resolution))
        self.z_dim = z_dim
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, ch[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(ch[:-1], ch[1:], strict=True):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(ch[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, width: int, resolution: int, channels: int, norm: str) -> None:
        super().__init__()
        ch = stage_channels(width, _stages(resolution))[::-1]  # finest to coarsest
        layers: list[nn.Module] = [nn.Conv2d(channels, ch[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(ch[:-1], ch[1:], strict=True):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm == "none"),
                norm_layer(norm, c_out),
            ]
            layers += [nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ch[-1], 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class DCGAN(GANFamily):
    name = "dcgan"
    config_class = DCGANConfig

    def __init__(self, cfg: DCGANConfig, data, optim, device, augment) -> None:
        super().__init__(cfg, data, optim, device, augment)
        norm = (
            cfg.d_norm if cfg.d_norm != "auto" else ("layer" if cfg.loss == "wgan-gp" else "batch")
        )
        self.nets["G"] = self.build_generator(cfg, data)
        self.nets["D"] = Discriminator(cfg.width, data.resolution, data.channels, norm)

    @classmethod
    def build_generator(cls, cfg: DCGANConfig, data: DataInfo) -> nn.Module:
        return Generator(cfg.z_dim, cfg.width, data.resolution, data.channels)

    @classmethod
    def generate(cls, G, n, generator, labels=None, truncation=1.0) -> torch.Tensor:
        device = next(G.parameters()).device
        z = torch.randn(n, G.z_dim, generator=generator, device=generator.device).to(device)
        return G(z * truncation if truncation != 1.0 else z)

    def phases(self) -> list[Phase]:
        return [
            Phase("D_main", "D", self._d_main, repeats=self.cfg.n_critic),
            Phase("G_main", "G", self._g_main),
        ]

    def _fake(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.cfg.z_dim, generator=self.noise, device=self.device)
        return self.nets["G"](z)

    def _d(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets["D"](self.augment(x))

    def _d_main(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real = batch["images"]
        with torch.no_grad():
            fake = self._fake(real.shape[0])
        real_logits, fake_logits = self._d(real), self._d(fake)
        self.observe_real(real_logits)
        loss = d_loss(self.cfg.loss, real_logits, fake_logits)
        logs = {"D_real": real_logits.detach().mean(), "D_fake": fake_logits.detach().mean()}
        if self.cfg.loss == "wgan-gp" and self.cfg.gp_weight > 0:
            gp = gradient_penalty(self._d, real, fake, self.noise)
            loss = loss + self.cfg.gp_weight * gp
            logs["gp"] = gp.detach()
        return loss, logs

    def _g_main(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake = self._fake(batch["images"].shape[0])
        return g_loss(self.cfg.loss, self._d(fake)), {}
