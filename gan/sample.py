"""`gan sample`: a grid of images from the champion, a registry version or an export dir."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from gan.errors import GanError
from gan.export import load_export
from gan.grid import save_grid
from gan.registry.resolve import resolve_model


def _labels(
    labels: Sequence[int] | torch.Tensor | None, n: int, num_classes: int
) -> torch.Tensor | None:
    """Labels repeated cyclically to n, so `--labels 0 1 2` fills a grid class by class."""
    if labels is None:
        return None
    y = torch.as_tensor(labels, dtype=torch.long).flatten()
    if num_classes == 0:
        raise GanError("labels were given but this generator is unconditional")
    if len(y) == 0 or int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise GanError(f"labels must be class indices in 0..{num_classes - 1}")
    return y.repeat(math.ceil(n / len(y)))[:n]


def sample(
    model: str,
    n: int,
    out: str | Path,
    seed: int = 0,
    truncation: float = 1.0,
    registry: str | Path = "registry",
    labels: Sequence[int] | torch.Tensor | None = None,
) -> Path:
    """Generate `n` images with a fixed seed and write them as one PNG grid at `out`."""
    if n <= 0:
        raise GanError(f"-n must be greater than 0, not {n}")
    if truncation <= 0:
        raise GanError(f"truncation must be greater than 0, not {truncation}")
    exported = load_export(resolve_model(model, registry))
    y = _labels(labels, n, exported.data.num_classes)
    rng = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        images = exported.family.generate(
            exported.generator, n, generator=rng, labels=y, truncation=truncation
        )
    return save_grid(images, out, nrow=math.ceil(math.sqrt(n)))
