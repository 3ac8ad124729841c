"""Adaptive discriminator augmentation (Karras et al. 2020, StyleGAN2-ADA), for every family.

Every image the discriminator sees, real and fake, goes through the same differentiable
pipeline, so the generator is never taught to produce augmented images. Each transform is
applied to each image on its own with probability p (times the transform's multiplier, 1
here), in the paper's order:

- geometric group: x-flip, 90-degree rotation, integer translation (up to 1/8 of the
  size), isotropic scale (log2 std 0.2), pre-rotation (any angle), anisotropic scale (log2
  std 0.2), post-rotation, fractional translation (std 1/8 of the size). The rotations each
  run with probability 1 - sqrt(1 - p), so that one of them runs with probability p. The
  transforms compose into one affine matrix per image, executed by one bilinear
  `F.grid_sample` with reflection padding: an approximation of the paper's execution, which
  upsamples 2x with a wavelet (sym6) low-pass filter around the resampling to avoid
  aliasing. Images no transform was drawn for are passed through exactly;
- colour group: brightness (std 0.2), contrast (log2 std 0.5), luma flip, hue rotation
  (any angle) and saturation (log2 std 1), as one 4x4 colour matrix per image. 1-channel
  images get brightness, contrast and luma flip (there: inversion); hue and saturation
  need 3 channels.

Every random number comes from the pipeline's own generator and the same numbers are drawn
whatever p is, so a resumed run draws what an uninterrupted one would.

Adaptive p: D main phases hand D's logits on real images to `observe_real` (through
GANFamily.observe_real). Their signs are summed on the device; every `interval` calls,
r_t = E[sign(D(real))] over them moves p by batch * interval / (kimg * 1000) up when r_t
exceeds the target (D is overfitting) and down otherwise, clamped to [0, 1). The update
happens on the device too: training never waits to read r_t or p; the trainer reads them
(`log_values`) on logging steps only. Under data parallelism `sync` (an in-place sum over
the ranks) makes r_t the mean over every rank's images, so all ranks keep the same p.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from gan.train_config import AdaConfig, AugmentConfig
from gan.data.augment import DiffAugment
from gan.training.streams import Streams

P_MAX = 1.0 - 2.0**-20  # p stays below 1, as a float32 number
XINT_MAX = 0.125  # integer translation: up to this fraction of the size
SCALE_STD = 0.2  # log2 std of isotropic scaling
ROTATE_MAX = 1.0  # rotations: up to this times pi
ANISO_STD = 0.2  # log2 std of anisotropic scaling
XFRAC_STD = 0.125  # std of fractional translation, a fraction of the size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2
HUE_MAX = 1.0  # times pi
SATURATION_STD = 1.0  # log2

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")  # hue, saturation: RGB

Sync = Callable[[torch.Tensor], object]  # sums a tensor over data-parallel ranks, in place


# -- homogeneous matrices, one per image ([n, 3, 3] in 2-D, [n, 4, 4] in colour space) ------
def _eye(n: int, size: int, device) -> torch.Tensor:
    return torch.eye(size, device=device).expand(n, size, size).clone()


def _scale2(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _eye(len(sx), 3, sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _shift2(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _eye(len(tx), 3, tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _rotate2(theta: torch.Tensor) -> torch.Tensor:
    m = _eye(len(theta), 3, theta.device)
    c, s = theta.cos(), theta.sin()
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


class AdaptiveAugment:
    """The ADA pipeline and its probability p (fixed, or adapted from D's real logits)."""

    def __init__(
        self,
        cfg: AdaConfig,
        batch_size: int,
        device: torch.device,
        seed: int,
        sync: Sync | None = None,
        multipliers: dict[str, float] | None = None,
    ) -> None:
        """`multipliers`: a transform's probability is p times its multiplier (1 when not
        given; the paper's pipelines use 1 or 0); names in GEOMETRIC and COLOUR."""
        if cfg.mode == "off":
            raise ValueError("AdaptiveAugment needs train.augment.ada.mode adaptive or fixed")
        self.adaptive = cfg.mode == "adaptive"
        self.geometric, self.color = "geometric" in cfg.groups, "color" in cfg.groups
        self.mult = {name: 1.0 for name in GEOMETRIC + COLOUR}
        unknown = set(multipliers or {}) - set(self.mult)
        if unknown:
            raise ValueError(f"no ADA transforms named {sorted(unknown)}")
        self.mult.update(multipliers or {})
        self.target, self.interval = cfg.target, cfg.interval
        self.speed = batch_size * cfg.interval / (cfg.kimg * 1000)  # largest move of p
        self.sync = sync
        self.device = device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.p = torch.tensor(cfg.p, device=device)
        self.rt = torch.tensor(float("nan"), device=device)  # r_t of the latest adjustment
        self.signs = torch.zeros(2, device=device)  # [sum of signs, count] since then
        self.observed = 0  # observe_real calls since the last adjustment

    # -- random draws: the same count whatever p is ----------------------------------------
    def _rand(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, device=self.device)

    def _randn(self, n: int) -> torch.Tensor:
        return torch.randn(n, generator=self.generator, device=self.device)

    def _chosen(self, n: int, name: str) -> torch.Tensor:
        """Which of n images transform `name` applies to, each with probability p * mult."""
        return self._rand(n) < self.p * self.mult[name]

    # -- the pipeline ----------------------------------------------------------------------
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.geometric:
            x = self._geometric(x)
        if self.color:
            x = self._colour(x)
        return x

    def _geometric(self, x: torch.Tensor) -> torch.Tensor:
        """One affine resampling per image; matrices map output to input pixels, in pixel
        units around the image centre."""
        n, _, h, w = x.shape
        applied = torch.zeros(n, dtype=torch.bool, device=self.device)
        inv = _eye(n, 3, self.device)

        def step(chosen: torch.Tensor, m: torch.Tensor) -> None:
            nonlocal inv, applied
            inv = inv @ torch.where(chosen[:, None, None], m, _eye(n, 3, self.device))
            applied = applied | chosen

        ones = torch.ones(n, device=self.device)
        flip = (self._rand(n) < 0.5).float()
        step(self._chosen(n, "xflip"), _scale2(1 - 2 * flip, ones))
        quarter = (self._rand(n) * 4).floor()
        step(self._chosen(n, "rotate90"), _rotate2(-math.pi / 2 * quarter))
        tx, ty = ((self._rand(n) * 2 - 1) * XINT_MAX for _ in range(2))
        step(self._chosen(n, "xint"), _shift2(-(tx * w).round(), -(ty * h).round()))
        s = torch.exp2(self._randn(n) * SCALE_STD)
        step(self._chosen(n, "scale"), _scale2(1 / s, 1 / s))
        # pre- or post-rotation: each with 1 - sqrt(1 - p), so that either runs with p
        p_rot = 1 - (1 - self.p * self.mult["rotate"]).clamp(0, 1).sqrt()
        theta = (self._rand(n) * 2 - 1) * math.pi * ROTATE_MAX
        step(self._rand(n) < p_rot, _rotate2(-theta))
        s = torch.exp2(self._randn(n) * ANISO_STD)
        step(self._chosen(n, "aniso"), _scale2(1 / s, s))
        theta = (self._rand(n) * 2 - 1) * math.pi * ROTATE_MAX
        step(self._rand(n) < p_rot, _rotate2(-theta))
        tx, ty = self._randn(n) * XFRAC_STD, self._randn(n) * XFRAC_STD
        step(self._chosen(n, "xfrac"), _shift2(-tx * w, -ty * h))

        # pixel units around the centre -> affine_grid's [-1, 1] (align_corners=False)
        to_unit = torch.diag(torch.tensor([2 / w, 2 / h, 1.0], device=self.device))
        from_unit = torch.diag(torch.tensor([w / 2, h / 2, 1.0], device=self.device))
        theta_unit = (to_unit @ inv @ from_unit)[:, :2, :]
        grid = F.affine_grid(theta_unit, list(x.shape), align_corners=False)
        warped = F.grid_sample(
            x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=False
        )
        return torch.where(applied[:, None, None, None], warped, x)

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if c not in (1, 3):
            raise ValueError(f"ADA's colour group needs 1 or 3 channels, not {c}")
        dev = self.device
        eye = _eye(n, 4, dev)
        m = eye
        v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev) / math.sqrt(3)  # the luma axis
        vv = torch.outer(v, v)

        def step(chosen: torch.Tensor, t: torch.Tensor) -> None:
            nonlocal m
            m = torch.where(chosen[:, None, None], t, eye) @ m

        b = self._randn(n) * BRIGHTNESS_STD
        shift = eye.clone()
        shift[:, :3, 3] = b[:, None]
        step(self._chosen(n, "brightness"), shift)
        k = torch.exp2(self._randn(n) * CONTRAST_STD)
        scale = eye.clone()
        scale[:, :3, :3] *= k[:, None, None]
        step(self._chosen(n, "contrast"), scale)
        flip = (self._rand(n) < 0.5).float()
        step(self._chosen(n, "lumaflip"), eye - 2 * vv * flip[:, None, None])
        if c == 3:
            theta = (self._rand(n) * 2 - 1) * math.pi * HUE_MAX
            step(self._chosen(n, "hue"), _rotate_about(v, theta))
            s = torch.exp2(self._randn(n) * SATURATION_STD)
            step(self._chosen(n, "saturation"), vv + (eye - vv) * s[:, None, None])
        m = m.to(x.dtype)
        flat = x.reshape(n, c, h * w)
        if c == 3:
            out = m[:, :3, :3] @ flat + m[:, :3, 3:]
        else:  # grey: the mean of the three colour rows acts on (x, x, x)
            row = m[:, :3, :].mean(1, keepdim=True)
            out = flat * row[:, :, :3].sum(2, keepdim=True) + row[:, :, 3:]
        return out.reshape(n, c, h, w)

    # -- adapting p ------------------------------------------------------------------------
    def observe_real(self, logits: torch.Tensor) -> None:
        """D's logits on this pass's real images (any shape, e.g. PatchGAN maps)."""
        if not self.adaptive:
            return
        signs = logits.detach().float().sign()
        self.signs[0] += signs.sum()
        self.signs[1] += signs.numel()
        self.observed += 1
        if self.observed >= self.interval:
            self._adjust()

    def _adjust(self) -> None:
        totals = self.signs.clone()
        if self.sync is not None:
            self.sync(totals)
        self.rt = totals[0] / totals[1].clamp(min=1)
        self.p = (self.p + torch.sign(self.rt - self.target) * self.speed).clamp(0, P_MAX)
        self.signs.zero_()
        self.observed = 0

    def log_values(self) -> dict[str, torch.Tensor]:
        values = {"augment_p": self.p}
        return values | ({"augment_rt": self.rt} if self.adaptive else {})

    # -- checkpoint state: the stream, p, and the signs gathered towards the next update ----
    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "p": self.p.detach().cpu().clone(),
            "rt": self.rt.detach().cpu().clone(),
            "signs": self.signs.detach().cpu().clone(),
            "observed": self.observed,
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.p = state["p"].to(self.device).clone()
        self.rt = state["rt"].to(self.device).clone()
        self.signs = state["signs"].to(self.device).clone()
        self.observed = int(state["observed"])


def _rotate_about(v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """4x4 rotations by `theta` about the unit axis v (Rodrigues), the last row/column fixed."""
    n = len(theta)
    x, y, z = v[0], v[1], v[2]
    k = torch.stack(
        [torch.stack([0 * x, -z, y]), torch.stack([z, 0 * x, -x]), torch.stack([-y, x, 0 * x])]
    )
    r = (
        torch.eye(3, device=v.device)
        + theta.sin()[:, None, None] * k
        + (1 - theta.cos())[:, None, None] * (k @ k)
    )
    m = _eye(n, 4, v.device)
    m[:, :3, :3] = r
    return m


class DiscriminatorAugment:
    """What families apply to every D input: DiffAugment translation, then ADA (either,
    both or none). With ADA off it is exactly the former DiffAugment, checkpoint included."""

    def __init__(
        self,
        cfg: AugmentConfig,
        batch_size: int,
        device: torch.device,
        streams: Streams,
        sync: Sync | None = None,
    ) -> None:
        self.translate = DiffAugment(cfg.translate, device, streams.seed("translate"))
        self.ada = None
        if cfg.ada.mode != "off":
            self.ada = AdaptiveAugment(cfg.ada, batch_size, device, streams.seed("ada"), sync)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.translate(x)
        return self.ada(x) if self.ada is not None else x

    def observe_real(self, logits: torch.Tensor) -> None:
        if self.ada is not None:
            self.ada.observe_real(logits)

    @property
    def p(self) -> torch.Tensor | None:
        return self.ada.p if self.ada is not None else None

    def follow_p(self, p: float) -> None:
        """A family's scheduled p (R3GAN's cosine, gan/models/family.py's Schedule): ADA in
        fixed mode takes it; adaptive ADA keeps adapting its own; off, there is none."""
        if self.ada is not None and not self.ada.adaptive:
            self.ada.p.fill_(p)

    def log_values(self) -> dict[str, torch.Tensor]:
        return self.ada.log_values() if self.ada is not None else {}

    def state_dict(self) -> dict:
        state = self.translate.state_dict()
        return state | ({"ada": self.ada.state_dict()} if self.ada is not None else {})

    def load_state_dict(self, state: dict) -> None:
        self.translate.load_state_dict(state)
        if self.ada is not None:
            self.ada.load_state_dict(state["ada"])
