"""Evaluation of translation families (CycleGAN): how well each direction lands in its domain.

- FID/KID of translated test-A against real test-B, and of translated test-B against real
  test-A (``fid_AtoB``, ``fid_BtoA``; ``fid``/``kid`` are their means, for promotion);
- cycle reconstruction error: mean |F(G(a)) - a| in [0, 1] pixel units, per domain;
- content preservation, where the data has classes and a classifier was trained on it:
  the fraction of translated test images whose predicted class is the source's label;
- distance to the ground truth, where `evaluate.truth` holds the exact translation of each
  test image under its relative path (the built-in pair writes one): mean |G(a) - truth|
  in [0, 1] units (``truth_l1_AtoB``, ``truth_l1_BtoA``).

The evaluate stage writes them as for any family: metrics.json, protocol.json and
samples.png, here a before/after grid (real A | fake B | real B | fake A) of test images.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gan.config import EvaluateConfig
from gan.data.images import decode_image
from gan.data.shards import SplitData, load_split
from gan.errors import GanError
from gan.metrics.classifier import WEIGHTS as CLASSIFIER_WEIGHTS
from gan.metrics.classifier import load_classifier, predict_logits
from gan.metrics.core import Measurement, extractor_skill, finite_uint8, score
from gan.metrics.registry import keyed
from gan.metrics.settings import FeatureCache, MeasureSettings

DIRECTIONS = {"AtoB": ("A", "B"), "BtoA": ("B", "A")}
GRID_PAIRS = 16  # before/after rows of the grid


@torch.no_grad()
def translate_images(
    family, module, images: torch.Tensor, direction: str, batch_size: int, source: str = "generator"
) -> torch.Tensor:
    """uint8 NCHW in, uint8 NCHW out, through one direction of the exported module (`source`
    names it in errors)."""
    device = next(module.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().div(127.5).sub(1.0)
        out.append(finite_uint8(family.translate(module, x, direction), source))
    return torch.cat(out) if out else images[:0]


def cycle_error(family, module, images: torch.Tensor, there: str, batch_size: int) -> float:
    """Mean absolute difference, in [0, 1] units, between images and their round trip."""
    back = "BtoA" if there == "AtoB" else "AtoB"
    fake = translate_images(family, module, images, there, batch_size)
    rec = translate_images(family, module, fake, back, batch_size)
    return float((rec.float() - images.float()).abs().mean() / 255.0)


def before_after(real_a, fake_b, real_b, fake_a, n: int = GRID_PAIRS) -> torch.Tensor:
    """Rows of (real A, fake B, real B, fake A) for n images spread evenly over each domain
    (test splits are often ordered by class, so the first n would show one or two classes)."""
    k = min(n, len(real_a), len(real_b))
    ia = torch.linspace(0, len(real_a) - 1, k).round().long()
    ib = torch.linspace(0, len(real_b) - 1, k).round().long()
    return torch.stack([real_a[ia], fake_b[ia], real_b[ib], fake_a[ib]], 1).flatten(0, 1)


def measure_translation(
    cfg: EvaluateConfig,
    exported,
    settings: MeasureSettings,
    cache: FeatureCache,
    source: str = "generator",
) -> Measurement:
    """Metrics, protocol and a before/after grid for a translation family (task "translate");
    `source` names the export in errors."""
    split = settings.reference_split
    test = load_split(cfg.data, split)
    real = {d: test.domain(i) for i, d in enumerate("AB")}
    for d, part in real.items():
        if len(part) < 2:
            raise GanError(
                f"{cfg.data}: the {split!r} split needs at least 2 images of domain {d} "
                "(a testA/testB folder, or preprocess.test_fraction)"
            )
    family, module = exported.family, exported.generator
    fake = {
        d: translate_images(
            family, module, real[src].images, direction, settings.batch_size, source
        )
        for direction, (src, d) in DIRECTIONS.items()
    }
    metrics: dict[str, float] = {}
    requested = [m for m in cfg.metrics if m in ("fid", "kid")]
    for label, extractor in settings.extractors.items():  # each: its figures under its label
        found: dict[str, float] = {}
        for direction, (_, d) in DIRECTIONS.items():
            result = score(
                fake[d], real[d].images, extractor, requested, settings, cache, f"{split}{d}"
            )
            found.update({f"{k}_{direction}": v for k, v in result.items()})
        for m in ("fid", "kid"):
            if f"{m}_AtoB" in found:
                found[m] = (found[f"{m}_AtoB"] + found[f"{m}_BtoA"]) / 2
        found.update(extractor_skill(extractor))  # warned about, and refused by promote, if weak
        metrics.update({keyed(k, label): v for k, v in found.items()})
    for direction, (src, _) in DIRECTIONS.items():
        err = cycle_error(family, module, real[src].images, direction, settings.batch_size)
        metrics[f"cycle_l1_{src}"] = err
    classifier_sha = _class_preservation(cfg, real, fake, cache.content_hash, metrics)
    if cfg.truth:
        for direction, (src, d) in DIRECTIONS.items():
            truth = load_truth(cfg.truth, real[src], cfg.data)
            metrics[f"truth_l1_{direction}"] = float(
                (fake[d].float() - truth.float()).abs().mean() / 255.0
            )

    counts = {d: len(real[d]) for d in "AB"}
    protocol = settings.translation_protocol(
        cache.content_hash, classifier_sha, metrics, counts, cfg.truth
    )
    grid = before_after(real["A"].images, fake["B"], real["B"].images, fake["A"])
    return Measurement(metrics, protocol, grid)


def load_truth(folder: str, part: SplitData, data: str) -> torch.Tensor:
    """The exact translations of `part`'s images, decoded and resized as preprocess does."""
    if len(part.files) != len(part):
        raise GanError(
            f"{Path(data) / 'manifest.json'}: no source file names (rerun `gan preprocess`), "
            "so evaluate.truth cannot be matched to the test images"
        )
    _, channels, resolution, _ = part.images.shape
    out = []
    for rel in part.files:
        path = Path(folder) / rel
        if not path.is_file():
            raise GanError(f"{path}: evaluate.truth has no ground truth for test image {rel}")
        decoded = decode_image(path, resolution, channels, min_size=1)
        if decoded.image is None:
            raise GanError(f"{path}: unusable ground-truth image ({decoded.reason})")
        out.append(decoded.image)
    return torch.stack(out)


def _class_preservation(cfg, real, fake, content_hash, metrics) -> str | None:
    """Fraction of translations classified as their source's label; needs labels + classifier."""
    if not (Path(cfg.classifier) / CLASSIFIER_WEIGHTS).is_file():
        return None
    if any(bool((part.labels < 0).any()) for part in real.values()):
        return None
    trained = load_classifier(cfg.classifier)
    if trained.meta.get("data_content_hash") != content_hash:
        raise GanError(
            f"{cfg.classifier}: the classifier was trained on other data than evaluate.data "
            f"{cfg.data}; retrain it with `gan classifier`"
        )
    for direction, (src, d) in DIRECTIONS.items():
        pred = predict_logits(trained.model, fake[d]).argmax(1)
        metrics[f"class_preserved_{direction}"] = float((pred == real[src].labels).float().mean())
    metrics["class_preserved"] = (
        metrics["class_preserved_AtoB"] + metrics["class_preserved_BtoA"]
    ) / 2
    metrics["classifier_test_accuracy"] = float(trained.meta["test_accuracy"])
    return trained.weights_sha256
