"""Augmentation: flips of the real images, and DiffAugment-style translation.

Translation is applied to every image the discriminator sees, real and fake, and is
differentiable, so the generator is not taught to reproduce the augmentation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_translate(
    x: torch.Tensor, ratio: float, generator: torch.Generator, fill: str = "zeros"
) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size, filling with zeros (mid-grey) or, with
    fill="edge", with the border pixels (the background of the image, whatever its colour)."""
    if ratio <= 0:
        return x
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = x.device
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), generator=generator, device=dev)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=generator, device=dev)
    gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
    if fill == "edge":  # out-of-range indices clamp to the nearest border pixel
        gy, gx = (gy[None] + ty).clamp(0, h - 1), (gx[None] + tx).clamp(0, w - 1)
        padded = x.permute(0, 2, 3, 1)
    else:  # indices into the image padded by one zero pixel: out-of-range lands on the pad
        gy, gx = (gy[None] + ty + 1).clamp(0, h + 1), (gx[None] + tx + 1).clamp(0, w + 1)
        padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    batch = torch.arange(n, device=dev)[:, None, None]
    out = padded[batch, gy, gx].permute(0, 3, 1, 2)
    # the input's layout (channels_last on a GPU run); `contiguous` has no preserve_format
    # and raised on every multi-channel batch
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )


class DiffAugment:
    """The callable a family applies to discriminator inputs; owns its random stream."""

    def __init__(self, translate: float, device: torch.device, seed: int) -> None:
        self.translate = translate
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return random_translate(x, self.translate, self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
