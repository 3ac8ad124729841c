"""A pool of past generated images for the discriminator (Shrivastava et al. 2017, CycleGAN).

Showing the discriminator a history of fakes, not only the newest ones, damps the
oscillation between generator and discriminator. The pool draws from its own seeded
torch.Generator, and its contents and random state are part of a checkpoint, so a resumed
run feeds the discriminator exactly what an uninterrupted run would have.
"""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    """Until `size` images are stored, each new image is stored and returned as it is.

    Once full, each new image is, with probability 1/2, swapped for a random stored one (the
    stored image is returned, the new one takes its place), and otherwise returned as it is.
    Size 0 turns the pool off.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, not {size}")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator(device="cpu")  # CPU: the same draws on every device
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """The batch the discriminator sees in place of `images` (a detached copy)."""
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) < 0.5:
                i = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[i].to(image.device, image.dtype))
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        images = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": images, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | None = None) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"image pool of size {state['size']} does not fit size {self.size}")
        images = state["images"]
        self.images = [x.to(device or x.device, copy=True) for x in images] if len(images) else []
        self.generator.set_state(state["generator"])
