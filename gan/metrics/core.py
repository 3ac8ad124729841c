"""The one measurement core: what evaluate, translation evaluation and HPO trials share.

- `generate_samples`: n uint8 samples with the trainer's labels and `evaluate.truncation`,
  from fixed latents; `gan evaluate` and every HPO trial sample through it, so a trial's
  value is the figure `gan evaluate` reports for the trial's export;
- `score`: the registered metrics of images against one reference split under one
  extractor and the measurement settings (gan.metrics.settings), with the reference's
  features in the safe cache (gan.metrics.fidelity, gan.metrics.feature_cache);
- `extractor_skill`: how well our own extractor knows the data, warned about when weak;
- `confident_fraction`: the fraction of images the dataset's classifier assigns to a class
  with probability >= a threshold (``classifier_confident``), for evaluate and HPO alike.

What a measurement was taken under is written by MeasureSettings (gan.metrics.settings);
gan.metrics.protocol says which of it must match for two results to be compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gan.data.shards import SplitData, load_split, read_manifest
from gan.errors import GanError
from gan.grid import require_finite, to_uint8
from gan.metrics.classifier import TrainedClassifier, load_classifier
from gan.metrics.extractor_quality import SKILL_KEY, classifier_quality, warn_if_weak
from gan.metrics.extractors import CLASSIFIER_PREFIX, Extractor
from gan.metrics.fidelity import compute_metrics, reference_cache_name
from gan.metrics.settings import FeatureCache, MeasureSettings

GRID_SAMPLES = 64


@dataclass
class Measurement:
    """What one evaluation found: flat metrics, the protocol they hold under, a grid."""

    metrics: dict[str, float]
    protocol: dict[str, Any]
    grid: torch.Tensor  # uint8 NCHW


def is_translation(family) -> bool:
    """Translation families (CycleGAN) are measured on test A <-> test B, not on samples."""
    return family.task == "translate"


def reference_content_hash(data: str | Path) -> str:
    """The processed data's content hash, which keys every reference measurement."""
    content_hash = str(read_manifest(data).get("content_hash") or "")
    if not content_hash:
        raise GanError(f"{Path(data) / 'manifest.json'}: no content_hash (rerun `gan preprocess`)")
    return content_hash


def reference_split(
    data: str | Path, split: str, translation: bool = False
) -> tuple[SplitData, dict[str, torch.Tensor]]:
    """The `split` of `data` and its images by domain: "" for one, A and B for a translation
    family's; at least 2 each, as FID needs (evaluate, snapshots and HPO trials measure
    against them)."""
    part = load_split(data, split)
    if translation:
        real = {d: part.domain(i).images for i, d in enumerate("AB")}
    else:
        real = {"": part.images}
    for d, images in real.items():
        if len(images) < 2:
            where = f" of domain {d}" if d else ""
            raise GanError(
                f"{data}: the {split!r} split needs at least 2 images{where} "
                "(preprocess.test_fraction)"
            )
    return part, real


def finite_uint8(images: torch.Tensor, source: str) -> torch.Tensor:
    """A generator's [-1, 1] output as uint8, refusing NaN or inf: they would become black
    pixels, scored (FID in the hundreds) and ranked like any other images."""
    return to_uint8(require_finite(images, source, "not measured"))


@torch.no_grad()
def generate_samples(
    exported,
    n: int,
    seed: int,
    batch_size: int,
    truncation: float = 1.0,
    progress: bool = True,
    source: str = "generator",
):
    """n uint8 samples from a CPU generator seeded `seed` (same latents on every device).

    `exported` needs `.family`, `.generator` and `.data` (gan.export.Exported). Returns
    (images, labels); labels cycle i % num_classes when the data has classes, as the
    trainer's do, and are None otherwise. `source` names the generator in errors.
    """
    rng = torch.Generator().manual_seed(seed)
    k = exported.data.num_classes
    labels = torch.arange(n) % k if k > 0 else None
    device = next(exported.generator.parameters()).device
    chunks = []
    with tqdm(total=n, desc="generating", unit="img", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            y = labels[start : start + size].to(device) if labels is not None else None
            x = exported.family.generate(
                exported.generator, size, rng, labels=y, truncation=truncation
            )
            chunks.append(finite_uint8(x, source))
            bar.update(size)
    return torch.cat(chunks), labels


def score(
    fake: torch.Tensor,
    real: torch.Tensor,
    extractor: Extractor,
    metrics: Sequence[str],
    settings: MeasureSettings,
    cache: FeatureCache,
    split: str,
    fake_split: str | None = None,
) -> dict[str, float]:
    """`metrics` of fake against `real`, the reference split `split` of the data `cache`
    names, under `extractor` and `settings`; the reference features are cached, and so
    are fake's when it is a split of the same data too (`fake_split`, e.g. the floor's)."""
    name = reference_cache_name(split, cache.content_hash, extractor)
    fake_cache = (
        reference_cache_name(fake_split, cache.content_hash, extractor) if fake_split else None
    )
    return compute_metrics(
        fake,
        real,
        extractor,
        metrics,
        settings=settings,
        cache_dir=cache.directory,
        real_cache_name=name,
        fake_cache_name=fake_cache,
        cuda=cache.cuda,
    )


def checked_classifier(path: str | Path, content_hash: str, data: str | Path) -> TrainedClassifier:
    """The classifier in `path`, refused unless it was trained on the data of `content_hash`."""
    trained = load_classifier(path)
    trained_on = str(trained.meta.get("data_content_hash"))
    if trained_on != content_hash:
        raise GanError(
            f"{path}: the classifier was trained on data {trained_on[:12]}, but the data "
            f"{data} is {content_hash[:12]}; retrain it with `gan classifier`"
        )
    return trained


def extractor_skill(
    extractor: Extractor, test_accuracy: float | None = None, test_labels=None
) -> dict[str, float]:
    """``extractor_skill`` of our own extractors, with one loud warning when it is too weak
    to judge (gan.metrics.extractor_quality); a classifier from before skills were recorded
    gets it from `test_accuracy` on `test_labels`. {} for other extractors."""
    record = extractor.quality
    if record is None and extractor.name.startswith(CLASSIFIER_PREFIX) and test_accuracy:
        record = classifier_quality(test_accuracy, test_labels)
    if record is None:
        return {}
    warn_if_weak(extractor.source, record)
    return {SKILL_KEY: float(record["skill"])}


def confident_fraction(logits: torch.Tensor, threshold: float) -> float:
    """Fraction of rows of classifier `logits` whose top softmax probability is >= threshold."""
    if len(logits) == 0:
        return float("nan")
    top = logits.double().softmax(1).amax(1)
    return float((top >= threshold).double().mean())
