"""BigGAN as a ganops family: hinge loss, `d_steps` D steps per G step, orthogonal
regularisation of G, class-conditional sampling with the truncation trick.

As in ajbrock/BigGAN-PyTorch's train_fns: D sees real images with their labels and fakes
of uniformly drawn classes; G's step draws fresh latents and classes. The spectral-norm
power-iteration vectors are buffers, so checkpoints hold them and resume is exact; the
EMA generator copies them with the batch-norm statistics, and its export recomputes the
batch-norm statistics over `standing_stats` batches (see docs/biggan.md).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, PositiveInt
from torch import nn

from gan.models.biggan.discriminator import Discriminator
from gan.models.biggan.generator import Generator
from gan.models.biggan.preset import auto
from gan.models.biggan.regularisation import orthogonal_regularisation
from gan.models.biggan.sampling import resample_tails, truncated_normal
from gan.models.family import DataInfo, GANFamily, Phase, StepContext
from gan.objectives import PenaltyInputs
from gan.train_config import ModelConfig, PairingGammas

# The official launch scripts' Adam settings, used when params.yaml does not set train.optim.
DEFAULT_G_LR, DEFAULT_D_LR = 1e-4, 4e-4
DEFAULT_BETAS = (0.0, 0.999)


class BigGANConfig(PairingGammas, ModelConfig):
    family: Literal["biggan"] = "biggan"
    ch: int = Field(64, gt=0, le=256)  # width multiplier of G (and of D unless d_ch is set)
    d_ch: int | None = Field(None, gt=0, le=256)
    z_dim: int = Field(128, gt=0, le=1024)
    shared_dim: int = Field(128, gt=0, le=1024)
    hier: bool = True
    attention: int = Field(64, ge=0)  # resolution of G's attention block; 0: none
    d_attention: int | None = Field(None, ge=0)  # D's; None: the same as G's
    # channel plans as multiples of ch; None: the official plan for the resolution
    g_widths: tuple[PositiveInt, ...] | None = None  # the 4x4 input, then one per block
    d_widths: tuple[PositiveInt, ...] | None = None  # per block; all but the last halve
    objectives: ClassVar[tuple[str, ...]] = ("hinge", "nonsaturating", "rpgan")
    loss: str = "hinge"
    d_steps: int = Field(2, ge=1, le=20)  # D steps per G step
    adam_eps: float = Field(1e-6, gt=0.0, lt=1.0)
    ortho_weight: float = Field(1e-4, ge=0.0)  # orthogonal regularisation of G; 0: off
    sn_eps: float = Field(1e-6, gt=0.0)
    standing_stats: int = Field(16, ge=0, le=1000)  # batches for G_ema's BN statistics
    presets: ClassVar[tuple[str, ...]] = ("auto",)  # the official plan by resolution (preset.py)


def attention_for(res: int, attention: int) -> int:
    """0 (none) or the configured resolution; an attention resolution above the image's
    (e.g. the default 64 at 32 px) means none, as BigGAN's small-image configs have."""
    return attention if 0 < attention <= res // 2 else 0


class BigGAN(GANFamily):
    name = "biggan"
    config_class = BigGANConfig
    optim_defaults: ClassVar[dict[str, Any]] = {
        "g_lr": DEFAULT_G_LR, "d_lr": DEFAULT_D_LR, "g_betas": DEFAULT_BETAS, "d_betas": DEFAULT_BETAS
    }  # fmt: skip
    conditional = True
    cpu_channels_last = True  # 3x3 convolutions (docs/benchmarks.md, "Precision and layout")
    # bf16 trained to FID 33.5 and 27.3 where fp32 reached 21.0 and 23.1 (two seeds each, no
    # faster): fp32 on the CPU until that is understood (docs/benchmarks.md)
    cpu_bf16 = False

    def __init__(self, cfg: BigGANConfig, data, optim, device, augment) -> None:
        super().__init__(cfg, data, optim, device, augment)
        if data.num_classes < 2:
            raise ValueError(
                "biggan is class-conditional and needs labelled data (class subfolders), "
                "but the data has no classes"
            )
        self.nets["G"] = self.build_generator(cfg, data)
        d_att = cfg.attention if cfg.d_attention is None else cfg.d_attention
        self.nets["D"] = Discriminator(
            resolution=data.resolution,
            ch=cfg.d_ch or cfg.ch,
            attention=attention_for(data.resolution, d_att),
            n_classes=data.num_classes,
            img_channels=data.channels,
            sn_eps=cfg.sn_eps,
            widths=cfg.d_widths,
        )
        self.standing_batches = cfg.standing_stats

    @classmethod
    def preset(
        cls, name: str, cfg: BigGANConfig, data: DataInfo, batch: int | None, gpus: int
    ) -> dict[str, Any]:
        return auto(data, cfg.hier)  # "auto", the one name BigGANConfig.presets allows

    @classmethod
    def build_generator(cls, cfg: BigGANConfig, data: DataInfo) -> nn.Module:
        return Generator(
            resolution=data.resolution,
            ch=cfg.ch,
            z_dim=cfg.z_dim,
            shared_dim=cfg.shared_dim,
            hier=cfg.hier,
            attention=attention_for(data.resolution, cfg.attention),
            n_classes=max(data.num_classes, 1),
            img_channels=data.channels,
            sn_eps=cfg.sn_eps,
            widths=cfg.g_widths,
        )

    # -- sampling ------------------------------------------------------------------------
    @classmethod
    def latent_size(cls, G) -> tuple[int, int]:
        return G.z_dim, G.n_classes  # one class (0) where the data has none

    @classmethod
    def draw_z(cls, n, z_dim, generator, truncation=1.0) -> torch.Tensor:
        """z of n samples; truncation t != 1 redraws every value beyond |t| (1: none)."""
        threshold = None if truncation == 1.0 else truncation
        return truncated_normal((n, z_dim), threshold, generator)

    @classmethod
    def latents(cls, G, n: int, generator: torch.Generator, truncation: float = 1.0):
        z = cls.draw_z(n, G.z_dim, generator, truncation)
        return z.to(next(G.parameters()).device)

    @classmethod
    def generate(cls, G, n, generator, labels=None, truncation=1.0) -> torch.Tensor:
        device = next(G.parameters()).device
        z, y = cls.draw(n, G.z_dim, G.n_classes, generator, labels, truncation)
        return G(z.to(device), y.to(device))

    @classmethod
    def export_forward(cls, G, z, labels, truncation) -> torch.Tensor:
        """Truncation in the graph (`resample_tails`) keeps what `draw_z` drew, which lies
        within it, and replaces a plain normal z's tails as draw_z's redraws would."""
        if labels is None:  # no labelled data: the one class
            labels = torch.zeros_like(z[:, 0], dtype=torch.long)
        return G(resample_tails(z, truncation), labels)

    @classmethod
    def interpolate(cls, G, seeds, steps, truncation=1.0, labels=None) -> torch.Tensor:
        """With labels: one fixed z (the first seed) walking between the classes'
        embeddings; without: the latents of the seeds walked at class labels[0] or 0."""
        if labels is not None and len(labels) >= 2:
            z = cls.latents(G, 1, torch.Generator().manual_seed(seeds[0]), truncation)
            ends = [G.shared(torch.tensor([int(k)], device=z.device)) for k in labels]
            pairs, make = zip(ends[:-1], ends[1:], strict=True), lambda e: G.synthesize(z, e)
        else:
            k = torch.tensor([int(labels[0]) if labels else 0], device=next(G.parameters()).device)
            emb = G.shared(k)
            ends = [cls.latents(G, 1, torch.Generator().manual_seed(s), truncation) for s in seeds]
            pairs, make = zip(ends[:-1], ends[1:], strict=True), lambda z: G.synthesize(z, emb)
        frames = []
        for a, b in pairs:
            for t in torch.linspace(0, 1, steps + 1)[:-1]:
                frames.append(make(torch.lerp(a, b, float(t))))
        frames.append(make(ends[-1]))
        return torch.cat(frames)

    # -- objective -----------------------------------------------------------------------
    def adam_eps(self) -> float:
        return self.cfg.adam_eps

    def phases(self) -> list[Phase]:
        """G's step looks at no real image, so it draws no batch. It draws fresh latents
        and classes as the official train_fns do, rather than reusing the last D step's
        fakes (train.reuse_fake does not apply: that would also skip a power iteration of
        G's spectral norms)."""
        return [
            Phase("D_main", "D", self._d_main, repeats=self.cfg.d_steps),
            Phase("G_main", "G", self._g_main, fresh_batch=False),
        ]

    def _fake(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        G = self.nets["G"]
        z = torch.randn(n, self.cfg.z_dim, generator=self.noise, device=self.device)
        y = torch.randint(0, self.data.num_classes, (n,), generator=self.noise, device=self.device)
        return G(z, y), y

    def _d(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.nets["D"](self.augment(x), y)

    def _d_main(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Where R1/R2 are due (`penalty_every`), the images require grad before D sees them,
        so the penalties differentiate the loss's own logits: no D pass (nor power
        iteration of its spectral norms) beyond the loss's two."""
        real, labels = ctx.batch["images"], ctx.batch["labels"]
        with torch.no_grad():
            fake, y = self._fake(real.shape[0])
        weight = self.cfg.penalty_weight(ctx.step, ctx.repeat, self.cfg.d_steps)
        penalised = weight > 0 and self.objective.penalises_gradients
        if penalised:
            real = real.detach().float().requires_grad_(True)
            fake = fake.detach().float().requires_grad_(True)
        real_logits, fake_logits = self._d(real, labels), self._d(fake, y)
        self.observe_real(real_logits)
        judge = PenaltyInputs(
            lambda x: self._d(x, labels),
            real,
            fake,
            self.noise,
            lambda x: self._d(x, y),
            real_logits if penalised else None,
            fake_logits if penalised else None,
        )
        return self.objective.d_side(real_logits, fake_logits, judge, penalty_scale=weight)

    def _g_main(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real, labels = ctx.batch["images"], ctx.batch["labels"]
        fake, y = self._fake(real.shape[0])
        paired = self.real_logits_for_g(lambda: self._d(real, labels))
        loss = self.objective.g_side(self._d(fake, y), paired)
        logs = {}
        if self.cfg.ortho_weight > 0:
            # the official rule adds 2 * w * (W W^T (1 - I)) W to the gradient: w / 2 here
            ortho = orthogonal_regularisation(
                self.nets["G"].ortho_parameters(), self.cfg.ortho_weight / 2
            )
            loss = loss + ortho
            logs["ortho"] = ortho.detach()
        return loss, logs
