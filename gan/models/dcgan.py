"""DCGAN (Radford et al. 2016) with a choice of adversarial loss, sized by resolution.

The generator upsamples a latent from 4x4 by transposed convolutions; the discriminator
mirrors it with strided convolutions. WGAN-GP uses a critic without batch norm. G and D
can have different widths (`g_width`, `d_width`; by default both `width`), and D's
convolutions can be spectrally normalised (`d_spectral`, as in SNGAN: Miyato et al. 2018),
which by default (`d_norm: auto`) also drops D's batch norm.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from gan.models.family import Batch, DataInfo, Fake, GANFamily, Phase, StepContext
from gan.models.layers.conditional_norm import ConditionalBatchNorm2d
from gan.models.layers.init import dcgan_init, norm_layer, stage_channels
from gan.models.layers.mbstd import MinibatchStdLayer
from gan.models.layers.spectral import SNConv2d, SNEmbedding, SNLinear
from gan.objectives import PenaltyInputs
from gan.train_config import ModelConfig, PairingGammas


class DCGANConfig(PairingGammas, ModelConfig):
    family: Literal["dcgan"] = "dcgan"
    z_dim: int = Field(64, gt=0, le=4096)
    width: int = Field(32, gt=0, le=4096)  # channels at the finest stage; doubles per coarser stage
    g_width: int | None = Field(None, gt=0, le=4096)  # None: width
    d_width: int | None = Field(None, gt=0, le=4096)  # None: width
    d_spectral: bool = False  # spectral norm on every D convolution
    # class-conditional: G gets the class, D a projection of it onto its last features
    # (Miyato & Koyama 2018). true needs labelled data; auto: when the data has classes
    conditional: bool | Literal["auto"] = False
    # how G takes the class: "concat" (a class_dim-wide embedding beside z) or "norm"
    # (class-conditional batch-norm gains and biases, as in BigGAN). Measured on the digits
    # (docs/dcgan.md): concat at 8 wide keeps z's variety and the class; as wide as z (64)
    # G ignores z (every 3 alike); norm mostly ignores the class
    conditioning: Literal["concat", "norm"] = "concat"
    class_dim: int = Field(8, gt=0, le=4096)
    # minibatch-stddev group size before D's last layer (ProGAN; 0: off): D sees how varied a
    # group of samples is, so a G that ignores z is caught
    d_mbstd: int = Field(0, ge=0, le=64)
    # AC-GAN (Odena et al. 2017), with `conditional`: D also classifies real images (cross
    # entropy times aux_weight) and G is pushed to make fakes D reads as their class
    aux_weight: float = Field(0.0, ge=0.0)
    loss: str = "nonsaturating"  # any registered objective (gan/objectives.py)
    gp_weight: float = Field(10.0, ge=0.0)  # wgan-gp
    n_critic: int = Field(1, gt=0, le=100)
    d_norm: Literal["auto", "batch", "layer", "none"] = "auto"

    @field_validator("n_critic")
    @classmethod
    def _n_critic(cls, v: int) -> int:
        if v > 20:
            raise ValueError("more than 20 critic steps per generator step is surely a mistake")
        return v

    @model_validator(mode="after")
    def _aux_needs_classes(self) -> DCGANConfig:
        if self.aux_weight > 0 and self.conditional is False:
            raise ValueError("aux_weight (AC-GAN) needs conditional: true or auto")
        return self


def _stages(resolution: int) -> int:
    if resolution < 16 or resolution > 256:
        raise ValueError(f"DCGAN supports resolutions 16 to 256, not {resolution}")
    return int(math.log2(resolution)) - 2  # 4x4 -> resolution


def d_norm_kind(cfg: DCGANConfig) -> str:
    """D's normalisation: `d_norm`, or for auto none beside spectral norm, layer norm for a
    critic with a gradient penalty such as WGAN-GP's (batch norm breaks the per-sample
    penalty) and batch otherwise."""
    if cfg.d_norm != "auto":
        return cfg.d_norm
    if cfg.d_spectral:
        return "none"
    return "layer" if DCGAN.build_objective(cfg).penalises_gradients else "batch"


def class_count(cfg: DCGANConfig, data: DataInfo) -> int:
    """How many classes the networks take: the data's with conditional true (which needs
    labels) or auto on labelled data, else 0."""
    if cfg.conditional is True and data.num_classes < 2:
        raise ValueError("conditional: true needs labelled data (class subfolders)")
    if cfg.conditional is False or data.num_classes < 2:
        return 0
    return data.num_classes


class Generator(nn.Module):
    """``G(z)``, or ``G(z, y)`` with ``n_classes``: the class sets every batch norm's gain
    and bias (``conditioning="norm"``), or its embedding (``z_dim`` wide) joins z at the
    input (``"concat"``)."""

    def __init__(
        self,
        z_dim: int,
        width: int,
        resolution: int,
        channels: int,
        n_classes: int = 0,
        conditioning: str = "concat",
        class_dim: int = 8,
    ) -> None:
        super().__init__()
        ch = stage_channels(width, _stages(resolution))
        self.z_dim, self.n_classes = z_dim, n_classes
        concat = bool(n_classes) and conditioning == "concat"
        self.embed = nn.Embedding(n_classes, class_dim) if concat else None
        self.class_norm = bool(n_classes) and not concat

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, n_classes) if self.class_norm else nn.BatchNorm2d(c)

        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim + (class_dim if concat else 0), ch[0], 4, 1, 0, bias=False),
            norm(ch[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(ch[:-1], ch[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), norm(c_out)]
            layers += [nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ch[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes and y is None:
            raise ValueError("a class-conditional generator needs the labels y")
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        x = z[:, :, None, None]
        if not self.class_norm:
            return self.net(x)
        onehot = nn.functional.one_hot(y, self.n_classes).to(z.dtype)
        for layer in self.net:
            x = layer(x, onehot) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


class Discriminator(nn.Module):
    """``D(x)``, or ``D(x, y)`` with ``n_classes``: the projection <embed(y), h> of the class
    onto the last features h (summed over the 4x4 map) adds to the logit."""

    def __init__(
        self,
        width: int,
        resolution: int,
        channels: int,
        norm: str,
        spectral: bool = False,
        n_classes: int = 0,
        mbstd: int = 0,
        aux_classes: int = 0,
    ) -> None:
        super().__init__()
        ch = stage_channels(width, _stages(resolution))[::-1]  # finest to coarsest
        conv = SNConv2d if spectral else nn.Conv2d
        layers: list[nn.Module] = [conv(channels, ch[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(ch[:-1], ch[1:], strict=True):
            layers += [
                conv(c_in, c_out, 4, 2, 1, bias=norm == "none"),
                norm_layer(norm, c_out),
            ]
            layers += [nn.LeakyReLU(0.2, True)]
        self.mbstd = MinibatchStdLayer(mbstd) if mbstd else None
        layers += [conv(ch[-1] + (1 if mbstd else 0), 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)
        self.embed = None
        if n_classes:
            self.embed = (SNEmbedding if spectral else nn.Embedding)(n_classes, ch[-1])
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        # AC-GAN's classifier head on the last features (summed over the 4x4 map)
        self.aux = (
            (SNLinear if spectral else nn.Linear)(ch[-1], aux_classes) if aux_classes else None
        )
        dcgan_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits(x, y)[0]

    def logits(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The real/fake logit, and with an AC-GAN head the class logits (else None)."""
        if self.embed is None and self.mbstd is None and self.aux is None:
            return self.net(x).flatten(), None
        h = self.net[:-1](x)
        logit = self.net[-1](h if self.mbstd is None else self.mbstd(h)).flatten()
        pooled = h.sum(dim=(2, 3))
        aux = self.aux(pooled) if self.aux is not None else None
        if self.embed is None:
            return logit, aux
        if y is None:
            raise ValueError("a class-conditional discriminator needs the labels y")
        return logit + (self.embed(y) * pooled).sum(dim=1), aux


class DCGAN(GANFamily):
    name = "dcgan"
    config_class = DCGANConfig
    cpu_channels_last = True  # transposed convolutions (docs/benchmarks.md, "Precision and layout")

    def __init__(self, cfg: DCGANConfig, data, optim, device, augment) -> None:
        super().__init__(cfg, data, optim, device, augment)
        self.nets["G"] = self.build_generator(cfg, data)
        self.nets["D"] = Discriminator(
            cfg.d_width or cfg.width,
            data.resolution,
            data.channels,
            d_norm_kind(cfg),
            spectral=cfg.d_spectral,
            n_classes=self.n_classes,
            mbstd=cfg.d_mbstd,
            aux_classes=self.n_classes if cfg.aux_weight > 0 else 0,
        )

    @property
    def n_classes(self) -> int:
        return class_count(self.cfg, self.data)

    @classmethod
    def is_conditional(cls, cfg: DCGANConfig, data: DataInfo) -> bool:
        return bool(class_count(cfg, data)) or super().is_conditional(cfg, data)

    @classmethod
    def build_generator(cls, cfg: DCGANConfig, data: DataInfo) -> nn.Module:
        n_classes = class_count(cfg, data)
        width = cfg.g_width or cfg.width
        return Generator(
            cfg.z_dim,
            width,
            data.resolution,
            data.channels,
            n_classes,
            cfg.conditioning,
            cfg.class_dim,
        )

    @classmethod
    def latent_size(cls, G) -> tuple[int, int]:
        return G.z_dim, G.n_classes

    @classmethod
    def generate(cls, G, n, generator, labels=None, truncation=1.0) -> torch.Tensor:
        """z scaled by `truncation`; a conditional G asked for no class gets uniform ones."""
        device = next(G.parameters()).device
        z, y = cls.draw(n, G.z_dim, G.n_classes, generator, labels)
        z = z.to(device)
        z = z * truncation if truncation != 1.0 else z
        return G(z) if y is None else G(z, y.to(device))

    @classmethod
    def export_forward(cls, G, z, labels, truncation) -> torch.Tensor:
        z = z * truncation
        return G(z) if labels is None else G(z, labels)

    def phases(self) -> list[Phase]:
        """D's (last) phase makes the fakes G's step then reuses, as the textbook loop does,
        when the trainer records G's graph there (train.reuse_fake); G looks at no real
        image of its own (an objective that pairs fakes with reals reads D's batch), so
        it draws no batch."""
        return [
            Phase("D_main", "D", self._d_main, repeats=self.cfg.n_critic, graph_for="G"),
            Phase("G_main", "G", self._g_main, fresh_batch=False),
        ]

    def _fake(self, n: int) -> Fake:
        z = torch.randn(n, self.cfg.z_dim, generator=self.noise, device=self.device)
        if not self.n_classes:
            return Fake(self.nets["G"](z), None, z)
        y = torch.randint(0, self.n_classes, (n,), generator=self.noise, device=self.device)
        return Fake(self.nets["G"](z, y), y, z)

    def _labels(self, batch: Batch) -> torch.Tensor | None:
        return batch["labels"] if self.n_classes else None

    def _d(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._d_and_class(x, y)[0]

    def _d_and_class(
        self, x: torch.Tensor, y: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.nets["D"].logits(self.augment(x), y)

    def _d_main(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real, labels = ctx.batch["images"], self._labels(ctx.batch)
        # with G's graph when the trainer keeps G under autograd here (Phase.graph_for)
        made = self._fake(real.shape[0])
        if made.images.requires_grad:
            ctx.fakes["G"] = made
        fake, y = made.images.detach(), made.labels
        (real_logits, real_class), fake_logits = self._d_and_class(real, labels), self._d(fake, y)
        self.observe_real(real_logits)
        judge = PenaltyInputs(
            lambda x: self._d(x, labels), real, fake, self.noise, lambda x: self._d(x, y)
        )
        weight = self.cfg.penalty_weight(ctx.step, ctx.repeat, self.cfg.n_critic)
        loss, logs = self.objective.d_side(real_logits, fake_logits, judge, penalty_scale=weight)
        if real_class is not None:
            aux = F.cross_entropy(real_class.float(), labels)
            loss = loss + self.cfg.aux_weight * aux
            logs["D_class"] = aux.detach()
        return loss, logs

    def _g_main(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # D's fakes with G's graph, or (reuse off, or G's phase on its own) new ones
        made = ctx.take_fake("G") or self._fake(ctx.batch["images"].shape[0])
        logits, fake_class = self._d_and_class(made.images, made.labels)
        real = self.real_logits_for_g(lambda: self._d(ctx.batch["images"], self._labels(ctx.batch)))
        loss = self.objective.g_side(logits, real)
        if fake_class is None:
            return loss, {}
        aux = F.cross_entropy(fake_class.float(), made.labels)
        return loss + self.cfg.aux_weight * aux, {"G_class": aux.detach()}
