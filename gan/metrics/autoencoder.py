"""A small convolutional autoencoder: the offline feature extractor for data without labels.

Without classes there is nothing to classify, but an encoder trained to reconstruct the
train split still learns what its images are made of. Its code (the `feature_dim` layer
between the classifier's three conv blocks and a mirrored decoder) gives the features for
FID/KID/precision-recall. It has no logits, so IS and the classifier's figures (confident
fraction, class coverage, conditional accuracy) are absent, not estimated.

Its quality (gan.metrics.extractor_quality) is the share of the test split's pixel
variance it reconstructs, against answering the mean train image every time.

Files in the output directory (replaced together, gan.metrics.convnet.save_trained):
  autoencoder.safetensors  weights (loaded without executing code)
  autoencoder.json         architecture, data content hash, training settings, quality
  metrics.json             {"reconstruction_mse", "baseline_mse", "skill"}
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan.config import ClassifierConfig
from gan.data.augment import random_translate
from gan.data.shards import SplitData
from gan.errors import GanError
from gan.metrics.convnet import (
    INPUT_SIZE,
    WIDTHS,
    ConvNet,
    Trained,
    conv_body,
    fit,
    load_trained,
    save_trained,
)
from gan.metrics.extractor_quality import autoencoder_quality

WEIGHTS = "autoencoder.safetensors"
CONFIG = "autoencoder.json"


class Autoencoder(ConvNet):
    """Encoder: the classifier's conv blocks (32 -> 4 px) and a linear code of `feature_dim`;
    decoder: linear back to 4 px, three transposed convolutions to 32 px, tanh."""

    def __init__(self, in_channels: int, feature_dim: int, input_size: int = INPUT_SIZE):
        super().__init__()
        self.in_channels, self.feature_dim, self.input_size = in_channels, feature_dim, input_size
        side, c = input_size // 8, WIDTHS[-1]
        self.body = conv_body(in_channels)
        self.code = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, feature_dim))
        layers: list[nn.Module] = [nn.Linear(feature_dim, c * side * side), nn.ReLU()]
        layers.append(nn.Unflatten(1, (c, side, side)))
        for width in (*reversed(WIDTHS[:-1]), None):
            out = width or in_channels
            layers.append(nn.ConvTranspose2d(c, out, 4, stride=2, padding=1))
            layers += [nn.BatchNorm2d(out), nn.ReLU()] if width else [nn.Tanh()]
            c = out
        self.decoder = nn.Sequential(*layers)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.code(self.body(self.prepare(images)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The reconstruction, in the network's input space ([-1, 1], input_size px)."""
        return self.decoder(self.features(images))


TrainedAutoencoder = Trained  # .model: an Autoencoder, .meta: autoencoder.json


@torch.no_grad()
def reconstruction_mse(model: Autoencoder, images: torch.Tensor, batch_size: int = 256) -> float:
    """Mean squared error of the reconstruction, in the network's input space."""
    model.eval()
    total = 0.0
    for i in range(0, len(images), batch_size):
        x = model.prepare(images[i : i + batch_size])
        total += float(F.mse_loss(model.decoder(model.code(model.body(x))), x, reduction="sum"))
    return total / (len(images) * model.in_channels * model.input_size**2)


def _fit(model: Autoencoder, x: torch.Tensor, cfg: ClassifierConfig, g: torch.Generator) -> None:
    """Reconstruct randomly shifted train images (the shift keeps the code about content)."""
    inputs = model.prepare(x)

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        batch = random_translate(inputs[idx], cfg.translate, g, fill="edge")
        return F.mse_loss(model(batch), batch)

    fit(model, len(x), cfg, g, loss_of, "autoencoder")


def train_autoencoder(cfg: ClassifierConfig, train: SplitData, test: SplitData) -> dict[str, Any]:
    """Train on the train split's images (labels unused), measure the test reconstruction
    against the mean-image baseline, write the three files; returns metrics."""
    start = time.perf_counter()
    for name, split in (("train", train), ("test", test)):
        if len(split) == 0:
            raise GanError(f"{cfg.data}: split {name!r} is empty (the autoencoder needs both)")
    x = train.images
    g = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):  # seeded, the caller's stream left as it was
        torch.manual_seed(cfg.seed)
        model = Autoencoder(int(x.shape[1]), cfg.feature_dim)
        _fit(model, x, cfg, g)

    mse = reconstruction_mse(model, test.images)
    mean_image = model.prepare(x).mean(0, keepdim=True)
    baseline = float(
        F.mse_loss(model.prepare(test.images), mean_image.expand(len(test), -1, -1, -1))
    )
    judged = autoencoder_quality(mse, baseline)
    meta = {
        "kind": "autoencoder",
        "architecture": model.architecture(),
        "data": str(cfg.data),
        "data_content_hash": train.manifest.get("content_hash"),
        "train": {
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "translate": cfg.translate,
            "seed": cfg.seed,
        },
        "quality": judged,
    }
    metrics = {"reconstruction_mse": mse, "baseline_mse": baseline, "skill": judged["skill"]}
    save_trained(cfg.output, (WEIGHTS, CONFIG), model, meta, metrics)
    return {**metrics, "seconds": round(time.perf_counter() - start, 1), "output": str(cfg.output)}


def load_autoencoder(path: str | Path) -> TrainedAutoencoder:
    """Rebuild the autoencoder from its directory (safetensors: no code runs on load)."""
    return load_trained(path, (WEIGHTS, CONFIG), Autoencoder, "autoencoder")
