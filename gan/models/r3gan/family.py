"""R3GAN as a ganops family: the objective of brownvc/R3GAN's R3GAN/Trainer.py as phases.

D_main, then G_main, each on a real batch of its own with fresh latents, as the official
loop fetches two batches per iteration: D minimises RpGAN's softplus(D(fake) - D(real))
plus (gamma / 2) * (R1 + R2), R1 at the real images before augmentation and R2 at the
detached fakes, every step and in the same backward pass; G minimises softplus(D(real) -
D(fake)) on its own real batch, with D frozen. The loss is the registered `rpgan`
objective (gan/objectives.py), its gammas this config's `r1_gamma` and `r2_gamma`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from gan.models.family import Batch, DataInfo, GANFamily, Phase, Schedule, StepContext
from gan.models.r3gan.networks import PER_STAGE, Discriminator, Generator, Plan
from gan.models.r3gan.schedule import cosine
from gan.objectives import Objective, PenaltyInputs
from gan.train_config import EmaConfig, ModelConfig, PairingGammas
from gan.training.ema import half_life_beta

# Adam of the official presets (lr 2e-4 and beta2 0.9 are the start of their schedules)
DEFAULT_LR = 2e-4
DEFAULT_BETAS = (0.0, 0.9)


class R3GANConfig(PairingGammas, ModelConfig):
    """Defaults: the official CIFAR-10 preset (train.py --preset=CIFAR10): one D update per
    G update, R1 and R2 on every one. `d_steps` and `penalty_every` (lazy R1/R2, as BigGAN
    takes them) are ganops' levers for a short CPU run, off by default."""

    family: Literal["r3gan"] = "r3gan"
    z_dim: int = Field(64, gt=0, le=4096)
    class_dim: int = Field(64, gt=0, le=4096)  # G's class embedding, joined to z
    # per stage, from 4x4 up to the image (D takes them in reverse)
    widths: tuple[PositiveInt, ...] = (768, 768, 768, 768)
    cardinality: tuple[PositiveInt, ...] = (96, 96, 96, 96)  # groups of each 3x3 conv
    blocks: tuple[PositiveInt, ...] = (2, 2, 2, 2)
    expansion: int = Field(2, ge=1, le=16)  # a block's inner width, times its width
    conditional: bool = False  # class-conditional G and D when the data has labels
    # under bf16 autocast: the highest-resolution stages that run in bf16 (the rest fp32)
    bf16_stages: int = Field(3, ge=0, le=16)
    objectives: ClassVar[tuple[str, ...]] = ("rpgan",)
    loss: str = "rpgan"
    r1_gamma: float = Field(0.05, ge=0.0)  # R1 weight is gamma / 2 (official CIFAR-10: 0.05)
    r2_gamma: float = Field(0.05, ge=0.0)
    d_steps: int = Field(1, ge=1, le=20)  # D updates per G update, each on its own real batch
    # The schedules (gan/models/r3gan/schedule.py): from their start to their end along
    # one cosine over decay_kimg thousand images (steps x batch), then constant.
    decay_kimg: float = Field(20000.0, gt=0.0)
    lr_end: float = Field(5e-5, gt=0.0)  # from train.optim's g_lr/d_lr (2e-4)
    beta2_end: float = Field(0.99, ge=0.0, lt=1.0)  # from train.optim's beta2 (0.9)
    gamma_end: float = Field(0.1, ge=0.0)  # r1_gamma and r2_gamma times this at the end
    augment_p_end: float = Field(0.55, ge=0.0, lt=1.0)  # ADA's p from 0 (ada.mode: fixed)
    ema_kimg: float = Field(5000.0, ge=0.0)  # G_ema's half-life at the end; 0 at the start

    @model_validator(mode="after")
    def _one_entry_per_stage(self) -> R3GANConfig:
        lengths = {key: len(getattr(self, key)) for key in PER_STAGE}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                "widths, cardinality and blocks need one entry per stage each, "
                f"but have {', '.join(f'{k}: {n}' for k, n in lengths.items())}"
            )
        return self


def plan(cfg: R3GANConfig) -> Plan:
    return Plan(cfg.widths, cfg.cardinality, cfg.blocks, cfg.expansion, cfg.bf16_stages)


class R3GAN(GANFamily):
    name = "r3gan"
    config_class = R3GANConfig
    # On the CPU (Intel Xeon with AMX, the digits preset, batch 32, one thread): fp32 1.02 s
    # a step contiguous and 1.02 channels_last, bf16 autocast 1.43 and 1.51 (grouped 3x3
    # convolutions and R1/R2's double backward every step); so fp32, contiguous there
    cpu_bf16 = False
    cpu_channels_last = False
    optim_defaults: ClassVar[dict[str, Any]] = {
        "g_lr": DEFAULT_LR, "d_lr": DEFAULT_LR, "g_betas": DEFAULT_BETAS, "d_betas": DEFAULT_BETAS
    }  # fmt: skip

    def __init__(self, cfg: R3GANConfig, data, optim, device, augment) -> None:
        super().__init__(cfg, data, optim, device, augment)
        if cfg.conditional and data.num_classes < 2:
            raise ValueError("conditional: true needs labelled data (class subfolders)")
        self.c_dim = data.num_classes if cfg.conditional else 0
        self.nets["G"] = self.build_generator(cfg, data)
        self.nets["D"] = Discriminator(data.resolution, data.channels, plan(cfg), self.c_dim)
        # where the schedules start: the Adam settings the optimisers are built with
        self.adam_start = {name: (s.lr, s.betas) for name, s in self.optimizers().items()}

    @classmethod
    def is_conditional(cls, cfg: R3GANConfig, data: DataInfo) -> bool:
        return cfg.conditional and data.num_classes > 1

    @classmethod
    def build_generator(cls, cfg: R3GANConfig, data: DataInfo) -> nn.Module:
        return Generator(
            data.resolution,
            data.channels,
            plan(cfg),
            z_dim=cfg.z_dim,
            c_dim=data.num_classes if cls.is_conditional(cfg, data) else 0,
            class_dim=cfg.class_dim,
        )

    # -- sampling ------------------------------------------------------------------------
    @classmethod
    def latent_size(cls, G) -> tuple[int, int]:
        return G.z_dim, G.c_dim

    @classmethod
    def generate(cls, G, n, generator, labels=None, truncation=1.0) -> torch.Tensor:
        """z ~ N(0, 1) scaled by `truncation` (R3GAN has no truncation trick of its own;
        this is DCGAN's); a conditional G draws uniform classes when none are given."""
        device = next(G.parameters()).device
        z, y = cls.draw(n, G.z_dim, G.c_dim, generator, labels)
        z = (z * truncation if truncation != 1.0 else z).to(device)
        if y is None:
            return G(z)
        return G(z, F.one_hot(y.to(device), G.c_dim).float())

    @classmethod
    def export_forward(cls, G, z, labels, truncation) -> torch.Tensor:
        z = z * truncation
        return G(z) if labels is None else G(z, F.one_hot(labels, G.c_dim).float())

    # -- objective -----------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """D first, then G, each drawing its own real batch (the official iteration)."""
        return [
            Phase("D_main", "D", self._d_main, repeats=self.cfg.d_steps),
            Phase("G_main", "G", self._g_main),
        ]

    def _c(self, batch: Batch) -> torch.Tensor | None:
        """The real batch's classes, one-hot: D judges them and G's fakes are made of them."""
        return F.one_hot(batch["labels"].long(), self.c_dim).float() if self.c_dim else None

    def _fake(self, n: int, c: torch.Tensor | None) -> torch.Tensor:
        z = torch.randn(n, self.cfg.z_dim, generator=self.noise, device=self.device)
        return self.nets["G"](z, c)

    def _d(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return self.nets["D"](self.augment(x), c)

    def _d_main(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One D pass on the reals and the detached fakes serves the loss and R1/R2 (their
        gradients at the images, before augmentation), as the official trainer's. An
        update `penalty_every` skips leaves the images without grad: a plain D step."""
        weight = self.cfg.penalty_weight(ctx.step, ctx.repeat, self.cfg.d_steps)
        real = ctx.batch["images"].detach().requires_grad_(weight > 0)
        c = self._c(ctx.batch)
        with torch.no_grad():
            fake = self._fake(real.shape[0], c).float()  # fp32 leaf: R2 differentiates at it
        fake.requires_grad_(weight > 0)
        n = real.shape[0]  # one D pass on both halves: D mixes no samples (no norm, no mbstd)
        logits = self._d(torch.cat([real, fake]), None if c is None else torch.cat([c, c]))
        real_logits, fake_logits = logits[:n], logits[n:]
        self.observe_real(real_logits)
        judge = PenaltyInputs(
            lambda x: self._d(x, c), real, fake, self.noise, None, real_logits, fake_logits
        )
        return self.objective_at(ctx).d_side(real_logits, fake_logits, judge, penalty_scale=weight)

    def _g_main(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real = ctx.batch["images"]
        c = self._c(ctx.batch)
        logits = self._d(self._fake(real.shape[0], c), c)
        loss = self.objective.g_side(logits, self.real_logits_for_g(lambda: self._d(real, c)))
        return loss, {"D_fake": logits.detach().mean()}

    # -- schedules (the official presets') ----------------------------------------------
    def along(self, step: int, batch_size: int, start: float, end: float) -> float:
        """A value's schedule at `step`: `start` to `end` along the cosine, then `end`."""
        return cosine(step * batch_size, start, end, self.cfg.decay_kimg * 1000)

    def schedule(self, step: int, batch_size: int) -> Schedule:
        """lr to `lr_end`, Adam's beta2 to `beta2_end` (beta1 as built: 0), the gammas to
        `gamma_end` times theirs, ADA's p from 0 to `augment_p_end`, and G_ema's half-life
        (logged as ema_kimg), all on one cosine."""
        cfg = self.cfg

        def along(start: float, end: float) -> float:
            return self.along(step, batch_size, start, end)

        return Schedule(
            lr_scale={k: along(1.0, cfg.lr_end / lr) for k, (lr, _) in self.adam_start.items()},
            betas={k: (b[0], along(b[1], cfg.beta2_end)) for k, (_, b) in self.adam_start.items()},
            augment_p=along(0.0, cfg.augment_p_end),
            values={
                "r1_gamma": along(cfg.r1_gamma, cfg.r1_gamma * cfg.gamma_end),
                "r2_gamma": along(cfg.r2_gamma, cfg.r2_gamma * cfg.gamma_end),
                "ema_kimg": along(0.0, cfg.ema_kimg),
            },
        )

    def ema_beta(self, step: int, batch_size: int, ema: EmaConfig) -> float:
        """The official G_ema: a half-life of images that grows from 0 to `ema_kimg`
        thousand along the schedules' cosine (0 copies G while it changes fastest)."""
        half_life = self.along(step, batch_size, 0.0, self.cfg.ema_kimg * 1000)
        return half_life_beta(step, batch_size, half_life)

    def objective_at(self, ctx: StepContext) -> Objective:
        """The objective with the step's scheduled gammas (the config's when the phase runs
        without the trainer's schedule)."""
        values = ctx.schedule.values
        return dataclasses.replace(
            self.objective,
            r1_gamma=values.get("r1_gamma", self.cfg.r1_gamma),
            r2_gamma=values.get("r2_gamma", self.cfg.r2_gamma),
        )
