"""The convolutional pieces the dataset's own extractors share (classifier and autoencoder).

Both networks read images the same way (`to_input`: uint8 or [-1, 1] float, grey or RGB,
resized to INPUT_SIZE) and start with the same three conv blocks (`conv_body`: 32 -> 4 px),
so the two extractors see the same input and differ only in what they were trained for.
Both are saved the same way (`save_trained`: safetensors weights, a JSON of architecture,
data hash and quality, metrics.json) and loaded without running code (`load_trained`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from gan.config import ClassifierConfig
from gan.errors import GanError
from gan.folders import replaced_dir
from gan.io import read_json, sha256_file, write_json

INPUT_SIZE = 32  # every image is resized to this before the first convolution
WIDTHS = (16, 32, 64)  # channels of the three conv blocks
METRICS = "metrics.json"  # beside each extractor: its quality figures, for `dvc metrics`


class ConvNet(nn.Module):
    """What our extractors share: the input they read and the architecture they record
    (the constructor arguments named in `ARCH`, which rebuild the network on load)."""

    ARCH: tuple[str, ...] = ("in_channels", "feature_dim", "input_size")
    in_channels: int
    input_size: int

    def architecture(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.ARCH}

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or [-1, 1] float) NCHW with 1 or 3 channels -> the network's input."""
        return to_input(images, self.in_channels, self.input_size)


@dataclass
class Trained:
    """A network loaded from its folder, its JSON (`meta`) and its weights' sha256."""

    model: Any
    meta: dict[str, Any]
    weights_sha256: str


def conv_body(in_channels: int) -> nn.Sequential:
    """Three blocks of conv, batch norm, ReLU and 2x max pool: (C, 32, 32) -> (64, 4, 4)."""
    blocks: list[nn.Module] = []
    c = in_channels
    for width in WIDTHS:
        blocks += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        blocks.append(nn.MaxPool2d(2))
        c = width
    return nn.Sequential(*blocks)


def fit(
    model: nn.Module,
    n: int,
    cfg: ClassifierConfig,
    g: torch.Generator,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    desc: str,
) -> None:
    """Adam at cfg.lr for cfg.epochs over n items in seeded random batches of
    cfg.batch_size; `loss_of(indices)` gives a batch's loss. Shows a progress bar. With
    cfg.lr_decay cosine the rate falls to zero over the run: the last epochs settle instead
    of the final weights being wherever a fixed rate left them (seed-noisy)."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = cfg.epochs * -(-n // cfg.batch_size)
    cosine = cfg.lr_decay == "cosine"
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    with tqdm(total=steps, desc=desc, unit="step") as bar:
        for _ in range(cfg.epochs):
            model.train()
            for idx in torch.randperm(n, generator=g).split(cfg.batch_size):
                loss = loss_of(idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                bar.set_postfix(loss=f"{loss.item():.4f}")
                bar.update()


def to_input(images: torch.Tensor, in_channels: int, size: int) -> torch.Tensor:
    """uint8 (or [-1, 1] float) NCHW with 1 or 3 channels -> [-1, 1] float (in_channels, size)."""
    x = images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()
    if x.shape[1] != in_channels:
        x = x.mean(1, keepdim=True) if in_channels == 1 else x.expand(-1, in_channels, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x


def save_trained(
    out: str | Path, files: tuple[str, str], model: nn.Module, meta: dict[str, Any], metrics: dict
) -> dict[str, Any]:
    """Write weights (safetensors), `meta` + the weights' sha256 (JSON) and metrics.json as
    one folder that replaces `out` whole, so no other extractor's files stay beside them."""
    weights, config = files
    with replaced_dir(out) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / weights))
        meta = {**meta, "weights_sha256": sha256_file(tmp / weights)}
        write_json(tmp / config, meta)
        write_json(tmp / METRICS, metrics)
    return meta


def load_trained(
    path: str | Path,
    files: tuple[str, str],
    build: Callable[..., nn.Module],
    what: str,
    check: Callable[[dict[str, Any], Path], None] | None = None,
):
    """The model (in eval mode), meta and weights sha256 of a folder `save_trained` wrote; no code
    runs on load (safetensors). `check(meta, config path)` refuses a bad meta first, then
    `build(**meta["architecture"])` makes the network `what` names in errors."""
    path = Path(path)
    weights, config = (path / f for f in files)
    for f in (weights, config):
        if not f.is_file():
            raise GanError(f"{f}: {what} file not found (train it with `gan classifier`)")
    meta = read_json(config)
    if not isinstance(meta, dict):
        raise GanError(f"{config}: expected a JSON object (retrain it)")
    if check is not None:
        check(meta, config)
    if not isinstance(meta.get("architecture"), dict):
        raise GanError(f"{config}: architecture missing or not a mapping (retrain it)")
    try:
        model = build(**meta["architecture"])
        model.load_state_dict(load_file(str(weights)))
    except Exception as exc:
        raise GanError(f"{path}: cannot load the {what} ({type(exc).__name__}: {exc})") from None
    return Trained(model.eval().requires_grad_(False), meta, sha256_file(weights))
