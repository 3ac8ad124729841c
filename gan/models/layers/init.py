"""Weight initialisation and normalisation choices shared by DCGAN and CycleGAN."""

from __future__ import annotations

from torch import nn


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights and N(1, 0.02) norm scales, as in the DCGAN paper."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif (
            isinstance(m, nn.BatchNorm2d | nn.GroupNorm | nn.InstanceNorm2d)
            and m.weight is not None
        ):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """batch | layer (GroupNorm with one group: safe for WGAN-GP critics) | instance | none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def stage_channels(width: int, stages: int, cap: int = 512) -> list[int]:
    """Channel counts from the coarsest stage to the finest: width * 2^k, capped."""
    return [min(cap, width * 2 ** (stages - 1 - i)) for i in range(stages)]
