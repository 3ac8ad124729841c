"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation between domains A and B.

Two ResNet generators (A to B, B to A) and two 70x70 PatchGAN discriminators, as in the
paper and its official implementation. The objective is two phases: G (both generators,
one optimiser: adversarial + cycle consistency + identity) and D (both discriminators, one
optimiser, halved as in the paper, judging fakes drawn from an image pool of past fakes).
The exported network holds both generators, so one export translates either way.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from gan.data.unpaired import UnpairedLoader
from gan.errors import GanError
from gan.models.family import Batch, DataInfo, Fake, GANFamily, Phase, StepContext
from gan.models.image_pool import ImagePool
from gan.models.layers.init import dcgan_init
from gan.objectives import Objective
from gan.train_config import ModelConfig

DIRECTIONS = ("AtoB", "BtoA")
PREVIEW_IMAGES = 64  # fixed images per domain kept for the progress grid
PAPER_LOAD_SCALE = 286 / 256  # the paper loads 286 px and crops 256


class CycleGANConfig(ModelConfig):
    family: Literal["cyclegan"] = "cyclegan"
    ngf: int = Field(64, gt=0, le=4096)  # generator width after the first layer
    ndf: int = Field(64, gt=0, le=4096)  # discriminator width after the first layer
    n_blocks: int | Literal["auto"] = "auto"  # auto: 9 at >= 256 px, 6 below
    n_layers_d: int = Field(3, ge=1, le=6)  # 3: the 70x70 PatchGAN
    objectives: ClassVar[tuple[str, ...]] = ("lsgan", "nonsaturating", "hinge")
    loss: str = "lsgan"
    lambda_cycle: float = Field(10.0, ge=0.0)
    lambda_identity: float = Field(0.5, ge=0.0)  # a multiple of lambda_cycle
    pool_size: int = Field(50, ge=0, le=10_000)  # 0: no pool
    load_scale: float = Field(PAPER_LOAD_SCALE, ge=1.0, le=2.0)  # resize before random crop

    @field_validator("n_blocks")
    @classmethod
    def _n_blocks(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be 'auto' or at least 1")
        return v


def resolve_blocks(n_blocks: int | str, resolution: int) -> int:
    if n_blocks == "auto":
        return 9 if resolution >= 256 else 6
    return int(n_blocks)


# -- networks -----------------------------------------------------------------------------
def _norm(channels: int) -> nn.Module:
    # The official implementation: no affine parameters, no running statistics.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2 ngf), d(4 ngf), n_blocks x R(4 ngf), u(2 ngf), u(ngf), c7s1-channels, tanh."""

    def __init__(self, channels: int, ngf: int, n_blocks: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, ngf, 7),
            _norm(ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1), _norm(ngf * mult * 2)]
            layers += [nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1),
                _norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """C64 (no norm) - C128 - C256 - C512 (stride 1) - 1 channel: one logit per 70x70 patch."""

    def __init__(self, channels: int, ndf: int, n_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1), _norm(ndf * mult)]
            layers += [nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def check_sizes(resolution: int, n_layers_d: int) -> None:
    """Fail early, naming the param, where the networks cannot work at this resolution."""
    if resolution < 8 or resolution % 4:
        raise ValueError(
            f"cyclegan needs a resolution that is a multiple of 4, >= 8, not {resolution}"
        )
    # n_layers_d stride-2 convs, then a 4x4 stride-1 conv whose output is instance-normalised
    # (which needs more than one pixel), then the 4x4 logit conv.
    if resolution // 2**n_layers_d - 1 < 2:
        fits = [n for n in range(1, 7) if resolution // 2**n - 1 >= 2]
        raise ValueError(
            f"n_layers_d={n_layers_d} leaves no patches at {resolution} px; use at most {max(fits)}"
        )


# -- losses -------------------------------------------------------------------------------
# The official GANLoss: each side's terms without the paper's factor (LSGAN's 1/2), the patch
# mean of the logits against the real or fake target, and D's loss halved as in the paper
# (D learns slower than G).
def generator_adversarial(objective: Objective, fake_logits: torch.Tensor) -> torch.Tensor:
    return objective.g_side(fake_logits) * (1.0 / objective.paper_scale)


def discriminator_loss(objective: Objective, real_logits: torch.Tensor, fake_logits: torch.Tensor):
    return objective.d_loss(real_logits.float(), fake_logits.float()) * (
        0.5 / objective.paper_scale
    )


def cycle_loss(real: torch.Tensor, reconstructed: torch.Tensor, weight: float) -> torch.Tensor:
    """weight * L1(F(G(x)), x): translating there and back must give the input again."""
    return weight * (reconstructed - real).abs().mean()


def identity_loss(real: torch.Tensor, same: torch.Tensor, weight: float) -> torch.Tensor:
    """weight * L1(G(y), y): a target-domain image must pass through unchanged (keeps colour)."""
    return weight * (same - real).abs().mean()


# -- the family ---------------------------------------------------------------------------
class CycleGAN(GANFamily):
    name = "cyclegan"
    config_class = CycleGANConfig
    # The paper keeps no weight average: the live generators are exported.
    ema: ClassVar[dict[str, str]] = {}
    export_net = "G"
    task = "translate"
    # fp32: instance norm and reflection padding ran slower in channels_last; bf16's
    # convolutions gain more than they lose (docs/benchmarks.md, "Precision and layout")
    cpu_channels_last: ClassVar[dict[bool, bool]] = {True: True, False: False}

    def __init__(self, cfg: CycleGANConfig, data, optim, device, augment) -> None:
        super().__init__(cfg, data, optim, device, augment)
        if data.domains != 2:
            raise ValueError(
                "cyclegan needs unpaired data with domains A and B (a trainA/trainB folder "
                "layout), but the data has one domain"
            )
        check_sizes(data.resolution, cfg.n_layers_d)
        self.nets["G"] = self.build_generator(cfg, data)
        self.nets["D"] = nn.ModuleDict(
            {d: PatchDiscriminator(data.channels, cfg.ndf, cfg.n_layers_d) for d in ("A", "B")}
        )
        # Seeds from the global stream the trainer seeded for initialisation: deterministic.
        seeds = torch.randint(0, 2**62, (2,)).tolist()
        self.pools = {
            d: ImagePool(cfg.pool_size, seed) for d, seed in zip("AB", seeds, strict=True)
        }
        self._preview: dict[str, torch.Tensor] = {}

    @classmethod
    def build_generator(cls, cfg: CycleGANConfig, data: DataInfo) -> nn.Module:
        """Both generators: {"AtoB": G, "BtoA": F}; this is what is exported."""
        n_blocks = resolve_blocks(cfg.n_blocks, data.resolution)
        return nn.ModuleDict(
            {d: ResnetGenerator(data.channels, cfg.ngf, n_blocks) for d in DIRECTIONS}
        )

    @classmethod
    def generate(cls, G, n, generator, labels=None, truncation=1.0) -> torch.Tensor:
        raise GanError("cyclegan translates images instead of sampling them: use `gan translate`")

    @classmethod
    def translate(cls, module: nn.Module, images: torch.Tensor, direction: str) -> torch.Tensor:
        """Images in [-1, 1], NCHW, from one domain into the other."""
        if direction not in DIRECTIONS:
            raise GanError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        return module[direction](images)

    # -- data ---------------------------------------------------------------------------
    @classmethod
    def batch_sources(cls, split) -> dict[str, int]:
        """A batch of each domain is drawn from that domain's images."""
        names = split.manifest.get("domains") or []
        if not names:  # one-domain data: __init__ says it needs two
            return super().batch_sources(split)
        return {f"domain {n} of ": int((split.domains == d).sum()) for d, n in enumerate(names)}

    def batch_images(self, batch: Batch) -> int:
        return len(batch["A"]) + len(batch["B"])

    def make_loader(
        self, split, batch_size, device, streams, flip, memory_format
    ) -> UnpairedLoader:
        """Independent A and B batches; keeps a few fixed images of each for the preview."""
        for d, name in enumerate("AB"):
            images = split.domain(d).images
            keep = torch.linspace(0, len(images) - 1, min(len(images), PREVIEW_IMAGES))
            self._preview[name] = images[keep.round().long()].clone()
        return UnpairedLoader(
            split, batch_size, device, streams, flip, memory_format, load_scale=self.cfg.load_scale
        )

    def preview(self, G, n, generator, labels=None) -> torch.Tensor:
        """Rows of (real A, fake B, real B, fake A) from fixed training images."""
        if not self._preview:
            raise RuntimeError("preview needs make_loader to have been called")
        k = max(1, n // 4)
        real = {}
        for name, images in self._preview.items():
            idx = torch.linspace(0, len(images) - 1, k).round().long()
            real[name] = images[idx].to(self.device).float().div(127.5).sub(1.0)
        fake_b, fake_a = G["AtoB"](real["A"]), G["BtoA"](real["B"])
        return torch.stack([real["A"], fake_b, real["B"], fake_a], 1).flatten(0, 1)

    # -- objective ----------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """D judges the step's batch and the pool's fakes, as in the official
        optimize_parameters. The G phase's fakes already feed D through the pool, which
        is not the textbook reuse (D's step comes after G's), so train.reuse_fake does
        not apply."""
        return [
            Phase("G_main", "G", self._g_main),
            Phase("D_main", "D", self._d_main, fresh_batch=False),
        ]

    def _d(self, domain: str, x: torch.Tensor) -> torch.Tensor:
        return self.nets["D"][domain](self.augment(x))

    def _g_main(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        G, cfg = self.nets["G"], self.cfg
        a, b = ctx.batch["A"], ctx.batch["B"]
        fake_b, fake_a = G["AtoB"](a), G["BtoA"](b)
        adv_b = generator_adversarial(self.objective, self._d("B", fake_b))
        adv_a = generator_adversarial(self.objective, self._d("A", fake_a))
        cyc = cycle_loss(a, G["BtoA"](fake_b), cfg.lambda_cycle)
        cyc = cyc + cycle_loss(b, G["AtoB"](fake_a), cfg.lambda_cycle)
        loss = adv_a + adv_b + cyc
        logs = {"adv_A": adv_a.detach(), "adv_B": adv_b.detach(), "cycle": cyc.detach()}
        weight = cfg.lambda_cycle * cfg.lambda_identity
        if weight > 0:
            idt = identity_loss(b, G["AtoB"](b), weight) + identity_loss(a, G["BtoA"](a), weight)
            loss = loss + idt
            logs["identity"] = idt.detach()
        ctx.fakes["A"], ctx.fakes["B"] = Fake(fake_a.detach()), Fake(fake_b.detach())
        return loss, logs

    def _d_main(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch, fakes = ctx.batch, {d: ctx.take_fake(d) for d in ("A", "B")}
        if None in fakes.values():  # the D phase on its own: translate this batch instead
            with torch.no_grad():
                G = self.nets["G"]
                fakes = {"A": Fake(G["BtoA"](batch["B"])), "B": Fake(G["AtoB"](batch["A"]))}
        loss = torch.zeros((), device=self.device)
        logs, reals = {}, []
        for d in ("A", "B"):
            real_logits = self._d(d, batch[d])
            fake_logits = self._d(d, self.pools[d].query(fakes[d].images))
            loss = loss + discriminator_loss(self.objective, real_logits, fake_logits)
            logs[f"{d}_real"] = real_logits.detach().mean()
            logs[f"{d}_fake"] = fake_logits.detach().mean()
            reals.append(real_logits.flatten())
        self.observe_real(torch.cat(reals))  # one pass: both discriminators' patches
        return loss, logs

    def rank_streams(self, seed: int) -> None:
        for i, pool in enumerate(self.pools.values()):
            pool.generator.manual_seed(seed + i)

    # -- state beyond nets and optimisers -----------------------------------------------
    # The pools live with the random streams: each data-parallel rank keeps its own.
    def rng_state(self) -> dict:
        return {
            **super().rng_state(),
            **{f"pool_{d}": p.state_dict() for d, p in self.pools.items()},
        }

    def load_rng_state(self, state: dict) -> None:
        super().load_rng_state(state)
        for d, pool in self.pools.items():
            pool.load_state_dict(state[f"pool_{d}"], self.device)
