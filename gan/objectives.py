"""Adversarial objectives, found by name in one registry (docs/architecture.md, "Objectives").

An objective is the pair of losses D and G minimise, given D's logits on a real and a fake
batch: D's side sees both, G's side sees the fake logits and, where the objective pairs
them (RpGAN), the real ones too. Terms that must look at D again on the images (WGAN-GP's
gradient penalty, RpGAN's R1/R2) come from `d_penalties`. Families call these; none picks
a loss by its name. Adding an objective is one class with `@register_objective`.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from gan.losses import gradient_penalty, r1_penalty, squared_norm

Critic = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PenaltyInputs:
    """What a penalty needs to judge again: D as a function of images (with the reals'
    classes; `fake_critic` with the fakes' where they differ), the step's real and
    (detached) fake images, and the stream its random draws come from.

    `real_logits`/`fake_logits`: D's logits on `real`/`fake` themselves, given where the
    family computed them from those very (fp32, grad-requiring) tensors; R1 and R2 then
    differentiate them instead of judging again (one D pass, and one augmentation draw,
    for the loss and its penalties, as R3GAN's trainer does)."""

    critic: Critic
    real: torch.Tensor
    fake: torch.Tensor
    generator: torch.Generator
    fake_critic: Critic | None = None
    real_logits: torch.Tensor | None = None
    fake_logits: torch.Tensor | None = None

    def judge_fake(self, x: torch.Tensor) -> torch.Tensor:
        return (self.fake_critic or self.critic)(x)

    def r1(self) -> torch.Tensor:
        """The squared gradient norm of D at the real images (R1)."""
        if self.real_logits is not None:
            return squared_norm(self._image_grads["real"])
        return r1_penalty(self.critic, self.real)

    def r2(self) -> torch.Tensor:
        """The squared gradient norm of D at the fake images (R2)."""
        if self.fake_logits is not None:
            return squared_norm(self._image_grads["fake"])
        return r1_penalty(self.judge_fake, self.fake)

    @functools.cached_property
    def _image_grads(self) -> dict[str, torch.Tensor]:
        """D's gradients at the images whose logits were given, from one backward call: R1
        and R2 walk D's graph once, not twice, and the loss's backward walks one
        double-backward graph. The values are those of a call each: neither logit depends
        on the other's images."""
        given = {
            k: (x, logits)
            for k, x, logits in (
                ("real", self.real, self.real_logits),
                ("fake", self.fake, self.fake_logits),
            )
            if logits is not None
        }
        total = sum(logits.sum() for _, logits in given.values())
        grads = torch.autograd.grad(total, [x for x, _ in given.values()], create_graph=True)
        return dict(zip(given, grads, strict=True))

    def in_fp32(self) -> PenaltyInputs:
        """The images as fp32 (a fake made under bf16 autocast is bf16): penalties run with
        autocast off, so D judges them in fp32 and the logits come out fp32."""
        critic, fake_critic = self.critic, self.fake_critic
        return dataclasses.replace(
            self,
            real=self.real.float(),
            fake=self.fake.float(),
            critic=lambda x: critic(x).float(),
            fake_critic=None if fake_critic is None else (lambda x: fake_critic(x).float()),
            real_logits=None if self.real_logits is None else self.real_logits.float(),
            fake_logits=None if self.fake_logits is None else self.fake_logits.float(),
        )


@dataclass(frozen=True)
class Objective(ABC):
    """Base of every objective. Options are dataclass fields, filled by `build_objective`
    from the family's config where it has a key of the same name."""

    name: ClassVar[str]
    # the factor the paper's form puts on each side's terms (LSGAN's 1/2); CycleGAN's
    # official GANLoss drops it and halves D instead
    paper_scale: ClassVar[float] = 1.0
    g_needs_real: ClassVar[bool] = False  # whether g_loss reads D's logits on real images

    @abstractmethod
    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """D's loss on its logits for a real and a fake batch."""

    @abstractmethod
    def g_loss(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        """G's loss on D's logits for its fakes (and for reals, where the loss pairs them)."""

    def d_penalties(self, inputs: PenaltyInputs) -> dict[str, tuple[torch.Tensor, float]]:
        """Extra terms of D's side: log name -> (value, weight); the loss adds weight * value."""
        return {}

    @property
    def penalises_gradients(self) -> bool:
        """Whether D's side has a per-sample gradient penalty (batch norm would mix the
        samples' gradients, so a family drops it from D where it can)."""
        return False

    # Families call the two sides below, not d_loss/g_loss: the sides compute in fp32 under
    # bf16 autocast (logits, losses and gradient penalties need the precision).
    def d_side(
        self,
        real_logits: torch.Tensor,
        fake_logits: torch.Tensor,
        inputs: PenaltyInputs | None = None,
        penalty_scale: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss with its penalties (times `penalty_scale`: k on the updates where lazy
        ones are due, 0 where they are skipped: none computed), and the values the log
        shows."""
        real_logits, fake_logits = real_logits.float(), fake_logits.float()
        loss = self.d_loss(real_logits, fake_logits)
        logs = {"D_real": real_logits.detach().mean(), "D_fake": fake_logits.detach().mean()}
        if inputs is None or penalty_scale == 0:
            return loss, logs
        with torch.autocast(real_logits.device.type, enabled=False):
            terms = self.d_penalties(inputs.in_fp32())
        for key, (value, weight) in terms.items():
            loss = loss + (weight * penalty_scale) * value
            logs[key] = value.detach()
        return loss, logs

    def g_side(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None):
        """G's loss, in fp32."""
        return self.g_loss(
            fake_logits.float(), None if real_logits is None else real_logits.float()
        )


OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Class decorator: make `cls` available as `train.model.loss: <cls.name>`."""
    if cls.name in OBJECTIVES and OBJECTIVES[cls.name] is not cls:
        raise ValueError(f"objective {cls.name!r} is already registered")
    if "__dataclass_fields__" not in vars(cls):  # its own options become fields
        cls = dataclass(frozen=True)(cls)
    OBJECTIVES[cls.name] = cls
    return cls


def check_objective(name: str, supported: tuple[str, ...] | None) -> str:
    """`name` if it is registered and among `supported` (None: every registered one)."""
    choices = tuple(OBJECTIVES) if supported is None else supported
    if name not in OBJECTIVES or name not in choices:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(choices)}")
    return name


def objectives_with(option: str) -> list[str]:
    """The registered objectives that have `option` among their options (fields)."""
    return [name for name, cls in OBJECTIVES.items() if option in _options(cls)]


def _options(cls: type[Objective]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def build_objective(name: str, **options: Any) -> Objective:
    """The objective `name`, with those of `options` that are its fields (a family passes
    every loss setting it has; each objective takes what it knows)."""
    cls = OBJECTIVES[check_objective(name, None)]
    fields = _options(cls)
    return cls(**{k: v for k, v in options.items() if k in fields})


@register_objective
class NonSaturating(Objective):
    """The original GAN loss with G's non-saturating form (Goodfellow et al. 2014)."""

    name = "nonsaturating"

    def d_loss(self, real, fake):
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def g_loss(self, fake, real=None):
        return F.softplus(-fake).mean()


@register_objective
class Hinge(Objective):
    """Hinge loss (Lim & Ye 2017; SAGAN, BigGAN)."""

    name = "hinge"

    def d_loss(self, real, fake):
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def g_loss(self, fake, real=None):
        return -fake.mean()


@register_objective
class LeastSquares(Objective):
    """LSGAN (Mao et al. 2017) with targets 1 (real) and 0 (fake), halved as in the paper."""

    name = "lsgan"
    paper_scale = 0.5

    def d_loss(self, real, fake):
        return 0.5 * ((real - 1.0).pow(2).mean() + fake.pow(2).mean())

    def g_loss(self, fake, real=None):
        return 0.5 * (fake - 1.0).pow(2).mean()


@register_objective
class WassersteinGP(Objective):
    """WGAN-GP (Gulrajani et al. 2017): the critic's difference of means, plus
    gp_weight * (||grad D(x_hat)|| - 1)^2 on interpolates of real and fake."""

    name = "wgan-gp"
    gp_weight: float = 10.0

    def d_loss(self, real, fake):
        return fake.mean() - real.mean()

    def g_loss(self, fake, real=None):
        return -fake.mean()

    @property
    def penalises_gradients(self) -> bool:
        return True

    def d_penalties(self, inputs):
        if self.gp_weight <= 0:
            return {}
        gp = gradient_penalty(inputs.critic, inputs.real, inputs.fake, inputs.generator)
        return {"gp": (gp, self.gp_weight)}


@register_objective
class RelativisticPairing(Objective):
    """RpGAN (Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024): each fake is judged
    against a real, softplus(D(fake) - D(real)) for D and the mirror for G, with
    (gamma / 2) * R1 on the reals and R2 on the fakes when their gammas are set."""

    name = "rpgan"
    g_needs_real = True
    r1_gamma: float = 0.0
    r2_gamma: float = 0.0

    def d_loss(self, real, fake):
        return F.softplus(fake - real).mean()

    def g_loss(self, fake, real=None):
        if real is None:
            raise ValueError("rpgan's generator loss needs D's logits on real images")
        return F.softplus(real - fake).mean()

    @property
    def penalises_gradients(self) -> bool:
        return self.r1_gamma > 0 or self.r2_gamma > 0

    def d_penalties(self, inputs):
        terms = {}
        if self.r1_gamma > 0:
            terms["r1"] = (inputs.r1(), self.r1_gamma / 2)
        if self.r2_gamma > 0:
            terms["r2"] = (inputs.r2(), self.r2_gamma / 2)
        return terms
