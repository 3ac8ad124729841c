"""StyleGAN2 as a ganops family: the objective of stylegan2-ada's training/loss.py as phases.

G_main (non-saturating logistic loss, or WGAN), G_pl (path length, lazily every
`pl_every` steps on a batch shrunk by `pl_batch_shrink`), D_main, D_r1 (R1 on reals,
lazily every `r1_every` steps). Style mixing applies to every generated batch, as the
official `run_G` does. The trainer scales the lazy phases by their interval and adjusts
their optimisers' lr and betas by k/(k+1). The path-length running mean is persistent
state (checkpointed, shared by data-parallel ranks).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gan.errors import GanError
from gan.losses import r1_penalty
from gan.models.family import Batch, DataInfo, GANFamily, Phase, StepContext
from gan.models.stylegan2.discriminator import Discriminator
from gan.models.stylegan2.generator import Generator
from gan.models.stylegan2.preset import auto
from gan.models.stylegan2.regularizers import PathLengthPenalty, mix_styles
from gan.objectives import PenaltyInputs
from gan.train_config import EmaConfig, ModelConfig
from gan.training.ema import half_life_beta

# Adam settings of the official configs, used when params.yaml does not set train.optim.
DEFAULT_LR = 0.002
DEFAULT_BETAS = (0.0, 0.99)


class StyleGAN2Config(ModelConfig):
    family: Literal["stylegan2"] = "stylegan2"
    z_dim: int = Field(512, gt=0, le=4096)
    w_dim: int = Field(512, gt=0, le=4096)
    mapping_layers: int = Field(8, ge=1, le=16)
    mapping_lr_mult: float = Field(0.01, gt=0.0, le=1.0)
    channel_base: int = Field(32768, gt=0, le=2**20)
    channel_max: int = Field(512, gt=0, le=4096)
    conditional: bool = False  # class-conditional G and D when the data has labels
    mbstd_group_size: int = Field(4, ge=1)
    conv_clamp: float | None = Field(None, gt=0.0)
    objectives: ClassVar[tuple[str, ...]] = ("nonsaturating", "wgan-gp", "rpgan")
    loss: str = "nonsaturating"
    gp_weight: float = Field(10.0, ge=0.0)  # wgan-gp only
    r1_gamma: float = Field(10.0, ge=0.0)  # R1 weight is gamma / 2, as in the paper
    r1_every: int = Field(16, ge=1, le=1000)
    pl_weight: float = Field(2.0, ge=0.0)
    pl_every: int = Field(4, ge=1, le=1000)
    pl_batch_shrink: int = Field(2, ge=1)
    pl_decay: float = Field(0.01, gt=0.0, lt=1.0)
    style_mixing: float = Field(0.9, ge=0.0, le=1.0)
    ema_kimg: float = Field(10.0, gt=0.0)  # G_ema half-life in thousands of images
    ema_rampup: float | None = Field(0.05, gt=0.0)  # cap: this share of images seen; null: off
    presets: ClassVar[tuple[str, ...]] = ("auto",)  # stylegan2-ada's --cfg=auto (preset.py)


def check_resolution(resolution: int) -> None:
    if resolution < 16 or resolution > 1024 or resolution & (resolution - 1):
        raise ValueError(f"stylegan2 supports resolutions 16 to 1024, not {resolution}")


class StyleGAN2(GANFamily):
    name = "stylegan2"
    config_class = StyleGAN2Config
    cpu_channels_last = True  # 3x3 convolutions (docs/benchmarks.md, "Precision and layout")
    # The official Adam settings (the mapping network's 0.01 lr multiplier lives in its
    # equalised layers, so one lr serves every parameter).
    optim_defaults: ClassVar[dict[str, Any]] = {
        "g_lr": DEFAULT_LR, "d_lr": DEFAULT_LR, "g_betas": DEFAULT_BETAS, "d_betas": DEFAULT_BETAS
    }  # fmt: skip

    def __init__(self, cfg: StyleGAN2Config, data, optim, device, augment) -> None:
        super().__init__(cfg, data, optim, device, augment)
        check_resolution(data.resolution)
        if cfg.conditional and data.num_classes < 2:
            raise ValueError("conditional: true needs labelled data (class subfolders)")
        self.c_dim = data.num_classes if cfg.conditional else 0
        self.nets["G"] = self.build_generator(cfg, data)
        self.nets["D"] = Discriminator(
            img_resolution=data.resolution,
            img_channels=data.channels,
            c_dim=self.c_dim,
            channel_base=cfg.channel_base,
            channel_max=cfg.channel_max,
            conv_clamp=cfg.conv_clamp,
            mbstd_group_size=cfg.mbstd_group_size,
        )
        self.pl = PathLengthPenalty(cfg.pl_decay).to(device)

    @classmethod
    def preset(
        cls, name: str, cfg: StyleGAN2Config, data: DataInfo, batch: int | None, gpus: int
    ) -> dict[str, Any]:
        check_resolution(data.resolution)
        return auto(data, batch, gpus)  # "auto", the one name StyleGAN2Config.presets allows

    @classmethod
    def is_conditional(cls, cfg: StyleGAN2Config, data: DataInfo) -> bool:
        return cfg.conditional and data.num_classes > 1

    @classmethod
    def build_generator(cls, cfg: StyleGAN2Config, data: DataInfo) -> nn.Module:
        check_resolution(data.resolution)
        return Generator(
            img_resolution=data.resolution,
            img_channels=data.channels,
            z_dim=cfg.z_dim,
            w_dim=cfg.w_dim,
            c_dim=data.num_classes if cls.is_conditional(cfg, data) else 0,
            mapping_layers=cfg.mapping_layers,
            mapping_lr_multiplier=cfg.mapping_lr_mult,
            channel_base=cfg.channel_base,
            channel_max=cfg.channel_max,
            conv_clamp=cfg.conv_clamp,
        )

    # -- sampling ------------------------------------------------------------------------
    @classmethod
    def latent_size(cls, G) -> tuple[int, int]:
        return G.z_dim, G.c_dim

    @classmethod
    def latents(cls, G, n, generator, labels=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z and the labels as the one-hot c the networks take (random classes when none
        are given), on G's device."""
        device = next(G.parameters()).device
        z, y = cls.draw(n, G.z_dim, G.c_dim, generator, labels)
        c = F.one_hot(y, G.c_dim).float() if y is not None else None
        return z.to(device), (c.to(device) if c is not None else None)

    @classmethod
    def generate(cls, G, n, generator, labels=None, truncation=1.0) -> torch.Tensor:
        """Fixed (const) noise, so a seed always gives the same images; truncation is psi
        around the average w (psi 0: the average image of the class)."""
        z, c = cls.latents(G, n, generator, labels)
        return G(z, c, truncation_psi=truncation, noise_mode="const", update_w_avg=False)

    @classmethod
    def export_forward(cls, G, z, labels, truncation) -> torch.Tensor:
        """psi as a tensor: w_avg.lerp(w, psi) is w itself at psi 1, as generate's skip is."""
        c = F.one_hot(labels, G.c_dim).float() if labels is not None else None
        w = G.mapping(z, c, update_w_avg=False)
        return G.synthesis(G.mapping.w_avg.lerp(w, truncation), noise_mode="const")

    # -- objective -----------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """One real batch per step for every phase, as the official loop fetches one per
        iteration (the latents are fresh per phase). D's fakes come from G after its step,
        so they cannot be G_main's (train.reuse_fake does not apply)."""
        cfg = self.cfg
        phases = [Phase("G_main", "G", self._g_main)]
        if cfg.pl_weight > 0:
            phases.append(
                Phase("G_pl", "G", self._g_pl, every=cfg.pl_every, fp32=True, fresh_batch=False)
            )
        phases.append(Phase("D_main", "D", self._d_main, fresh_batch=False))
        if cfg.r1_gamma > 0:
            phases.append(
                Phase("D_r1", "D", self._d_r1, every=cfg.r1_every, fp32=True, fresh_batch=False)
            )
        return phases

    @classmethod
    def objective_options(cls, cfg: StyleGAN2Config) -> dict[str, Any]:
        """R1 is this family's own lazy phase (D_r1, `r1_gamma` every `r1_every` steps): the
        objective does not add it again."""
        return {k: v for k, v in super().objective_options(cfg).items() if k != "r1_gamma"}

    def ema_beta(self, step: int, batch_size: int, ema: EmaConfig) -> float:
        """stylegan2-ada's G_ema: a half-life of `ema_kimg` thousand images, ramped up."""
        return half_life_beta(step, batch_size, self.cfg.ema_kimg * 1000, self.cfg.ema_rampup)

    def _c(self, batch: Batch, n: int) -> torch.Tensor | None:
        if not self.c_dim:
            return None
        return F.one_hot(batch["labels"][:n].long(), self.c_dim).float()

    def _ws(self, n: int, c: torch.Tensor | None) -> torch.Tensor:
        G = self.nets["G"]
        z = torch.randn(n, self.cfg.z_dim, generator=self.noise, device=self.device)
        ws = G.mapping(z, c)
        return mix_styles(G.mapping, ws, z, c, self.cfg.style_mixing, self.noise)

    def _fake(self, n: int, c: torch.Tensor | None) -> torch.Tensor:
        return self.nets["G"].synthesis(self._ws(n, c))

    def _d(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return self.nets["D"](self.augment(x), c).flatten()

    def _g_main(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real = ctx.batch["images"]
        c = self._c(ctx.batch, real.shape[0])
        logits = self._d(self._fake(real.shape[0], c), c)
        loss = self.objective.g_side(logits, self.real_logits_for_g(lambda: self._d(real, c)))
        return loss, {"D_fake": logits.detach().mean()}

    def _g_pl(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = max(1, ctx.batch["images"].shape[0] // self.cfg.pl_batch_shrink)
        c = self._c(ctx.batch, n)
        penalty, lengths = self.pl(self.nets["G"].synthesis, self._ws(n, c), self.noise)
        loss = penalty.mean() * self.cfg.pl_weight
        return loss, {"pl_length": lengths.detach().mean(), "pl_mean": self.pl.pl_mean.clone()}

    def _d_main(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real = ctx.batch["images"]
        c = self._c(ctx.batch, real.shape[0])
        with torch.no_grad():
            fake = self._fake(real.shape[0], c)
        real_logits, fake_logits = self._d(real, c), self._d(fake, c)
        self.observe_real(real_logits)
        judge = PenaltyInputs(lambda x: self._d(x, c), real, fake, self.noise)
        return self.objective.d_side(real_logits, fake_logits, judge)

    def _d_r1(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real = ctx.batch["images"]
        c = self._c(ctx.batch, real.shape[0])
        r1 = r1_penalty(lambda x: self._d(x, c), real)
        return r1 * (self.cfg.r1_gamma / 2), {"r1": r1.detach()}

    # -- persistent state: the path-length running mean ----------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"pl_mean": self.pl.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pl.pl_mean.copy_(state["pl_mean"])

    # -- using a trained generator: style mixing and interpolation -----------------------
    @classmethod
    def default_crossover(cls, G: nn.Module) -> int:
        return max(1, G.num_ws // 2)

    @classmethod
    def mix_grid(
        cls, G, rows: list[int], cols: list[int], crossover: int, truncation: float = 1.0
    ) -> torch.Tensor:
        """Images [(1 + len(rows)) * (1 + len(cols)), C, H, W] as a grid: row seeds give the
        coarse styles (ws before `crossover`), column seeds the fine ones; the first row
        and column show the sources themselves (top-left blank)."""
        if not 0 < crossover < G.num_ws:
            raise GanError(f"--crossover must be between 1 and {G.num_ws - 1}, not {crossover}")
        ws = {s: cls.seed_ws(G, s, truncation) for s in {*rows, *cols}}  # random classes
        blank = torch.full_like(G.synthesis(ws[rows[0]], noise_mode="const"), -1.0)
        tiles = [blank] + [G.synthesis(ws[c], noise_mode="const") for c in cols]
        for r in rows:
            tiles.append(G.synthesis(ws[r], noise_mode="const"))
            for c in cols:
                mixed = torch.cat([ws[r][:, :crossover], ws[c][:, crossover:]], 1)
                tiles.append(G.synthesis(mixed, noise_mode="const"))
        return torch.cat(tiles)

    @classmethod
    def seed_ws(cls, G, seed: int, truncation: float = 1.0, label: int | None = None):
        gen = torch.Generator().manual_seed(seed)
        labels = None if label is None else torch.tensor([label])
        z, c = cls.latents(G, 1, gen, labels)
        return G.mapping(z, c, truncation_psi=truncation, update_w_avg=False)

    @classmethod
    def interpolate(
        cls, G, seeds: list[int], steps: int, truncation: float = 1.0, labels=None
    ) -> torch.Tensor:
        """Frames [(len(seeds) - 1) * steps + 1, C, H, W] walking linearly in w between
        the seeds' latents (w space is where StyleGAN2's paths are short and smooth); a
        conditional model keeps the class labels[0] (random without labels)."""
        label = int(labels[0]) if labels and G.c_dim else None
        ws = [cls.seed_ws(G, s, truncation, label) for s in seeds]
        frames = []
        for a, b in zip(ws[:-1], ws[1:], strict=True):
            for t in torch.linspace(0, 1, steps + 1)[:-1]:
                frames.append(G.synthesis(torch.lerp(a, b, float(t)), noise_mode="const"))
        frames.append(G.synthesis(ws[-1], noise_mode="const"))
        return torch.cat(frames)
