"""The evaluate stage: the registered metrics (FID, KID, IS, precision/recall,
density/coverage, ...) of a run's exported generator, or of a folder of images made
elsewhere (`evaluate.images`, gan.metrics.image_folder). Both feed (images, labels or
None) into one scoring function, `score_samples`, so a folder is judged exactly as a run.

Generated samples (gan.metrics.core: the sampling HPO trials use too) are compared with
the test split through torch-fidelity, under the measurement settings of the evaluate
section (gan.metrics.settings) and each of its extractors (gan.metrics.extractors): the
default one's figures keep their plain names, those of `evaluate.extra_extractors` carry
their label (``fid@autoencoder``, gan.metrics.registry). Reference features are cached
under `evaluate.cache_dir` as verified safetensors keyed by the reference pixels' hash
and the extractor's name and weights hash (gan.metrics.feature_cache), so changed data or
weights never reuse stale features and no cached file can run code. Our classifier adds
class-aware figures (gan.metrics.classes): classifier IS, class coverage and entropy, the
fraction of samples it is confident about (``classifier_confident``: top class probability
>= `evaluate.confident_threshold`) and the same fraction on the real test split
(``classifier_confident_real``, the ceiling), and for conditional families the fraction of
samples classified as the requested class.

Beside them, so that a reader sees the scale: the KID subset size used (the largest both
sample counts allow unless `evaluate.kid_subset_size` is set), the real-vs-real floor of
FID and KID (gan.metrics.floors: the train split against the test split), and each
extractor's skill (gan.metrics.extractor_quality; a weak extractor is warned about here
and refused by promote).

Outputs, replaced together or not at all (gan.folders): metrics.json (flat
numbers), protocol.json (see gan.metrics.protocol; a folder's adds ``images``: its count,
source sizes and modes, and how many were converted), samples.png (the first 64).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gan.config import EvaluateConfig
from gan.data.shards import read_manifest
from gan.device import pick_device
from gan.errors import GanError
from gan.export import load_export
from gan.folders import replaced_dir
from gan.grid import save_grid
from gan.io import write_json
from gan.metrics.classes import class_figures, classifier_metrics
from gan.metrics.classifier import WEIGHTS as CLASSIFIER_WEIGHTS
from gan.metrics.core import (
    GRID_SAMPLES,
    Measurement,
    checked_classifier,
    extractor_skill,
    generate_samples,
    is_translation,
    reference_content_hash,
    reference_split,
    score,
)
from gan.metrics.fidelity import compute_metrics, reference_cache_name
from gan.metrics.floors import real_floor
from gan.metrics.image_folder import read_image_folder
from gan.metrics.registry import keyed
from gan.metrics.settings import (
    DEFAULT,
    FeatureCache,
    MeasureSettings,
    kid_subset,
    settings_from,
)
from gan.metrics.translation import measure_translation

__all__ = [  # also the names tests and callers import from here
    "Measurement",
    "class_figures",
    "compute_metrics",
    "evaluate",
    "generate_samples",
    "measure",
    "measure_folder",
    "reference_cache_name",
]


def _classifier_figures(
    cfg: EvaluateConfig, samples: Samples, reference: Reference, settings: MeasureSettings
) -> tuple[dict, str | None]:
    """The figures of the metrics that need the classifier, when there is one; ({}, None)
    when there is none. The reference split gives the confident fraction's ceiling; the
    samples' labels the conditional figures, when they index the classifier's classes."""
    if not (Path(cfg.classifier) / CLASSIFIER_WEIGHTS).is_file():
        return {}, None
    trained = checked_classifier(cfg.classifier, reference.content_hash, cfg.data)
    labels = samples.labels if trained.model.num_classes == samples.num_classes else None
    figures = classifier_metrics(trained.model, samples.images, reference.images, settings, labels)
    figures["classifier_test_accuracy"] = float(trained.meta["test_accuracy"])
    return figures, trained.weights_sha256


def evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Run the evaluate stage on cfg.run_dir's export, or on the folder `evaluate.images`;
    returns {"metrics", "protocol"} as written."""
    if cfg.images:
        refuse_to_replace_run_report(cfg.output)
        m = measure_folder(cfg, cfg.images)
    else:
        m = measure(cfg, Path(cfg.run_dir) / "export")
    with replaced_dir(cfg.output) as out:  # the three files together, or the previous ones
        write_json(out / "metrics.json", m.metrics)
        write_json(out / "protocol.json", m.protocol)
        save_grid(m.grid, out / "samples.png", nrow=8, scale=max(1, 64 // m.grid.shape[-1]))
    return {"metrics": m.metrics, "protocol": m.protocol}


def refuse_to_replace_run_report(output: str | Path) -> None:
    """A folder's scores never replace a generator's evaluation (the pipeline's DVC output
    reports/evaluate, by default): `gan evaluate --images DIR` without `--out` would."""
    previous = Path(output) / "protocol.json"
    if not previous.is_file():
        return
    try:
        held = json.loads(previous.read_text())
    except (OSError, ValueError):
        held = {}
    if isinstance(held, dict) and "images" not in held:
        raise GanError(
            f"evaluate.output {output} holds a generator's evaluation; "
            "give the folder's scores their own place with --out DIR"
        )


def per_class_fid(fake, labels, real, real_labels, extractor, settings, cuda) -> dict[str, float]:
    """FID of the samples asked for class k against the test images of class k, per class
    (`fid_class_<k>`) and averaged (`fid_class_mean`): a conditional model that draws
    good digits of the wrong class scores well on FID but not here. Classes with fewer
    than 2 test images are left out."""
    out: dict[str, float] = {}
    for k in sorted(set(labels.tolist())):
        mine, theirs = fake[labels == k], real[real_labels == k]
        if len(mine) < 2 or len(theirs) < 2:
            continue
        fid = compute_metrics(
            mine, theirs, extractor, ["fid"], batch_size=settings.batch_size, cuda=cuda
        )["fid"]
        out[f"fid_class_{k}"] = fid
    if out:
        out["fid_class_mean"] = sum(out.values()) / len(out)
    return out


def sample_count(cfg: EvaluateConfig) -> int:
    """evaluate.num_samples, else the size of the train split (at least 2)."""
    n = cfg.num_samples or int(read_manifest(cfg.data)["splits"].get("train", {}).get("count", 0))
    if n < 2:
        raise GanError(
            f"{cfg.data}: no train split to size the sample count; set evaluate.num_samples"
        )
    return n


@dataclass(frozen=True)
class Samples:
    """What is scored: uint8 NCHW images and the class each was asked for, out of
    `num_classes` (None: unlabelled, or a model that ignores labels)."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    num_classes: int = 0


@dataclass(frozen=True)
class Reference:
    """The reference split the samples are scored against, and the data's content hash."""

    content_hash: str
    images: torch.Tensor
    labels: torch.Tensor


def load_reference(cfg: EvaluateConfig, settings: MeasureSettings) -> Reference:
    content_hash = reference_content_hash(cfg.data)
    split, _ = reference_split(cfg.data, settings.reference_split)
    return Reference(content_hash, split.images, split.labels)


def _feature_cache(cfg: EvaluateConfig, content_hash: str) -> FeatureCache:
    return FeatureCache(content_hash, cfg.cache_dir, pick_device(cfg.device).type == "cuda")


def measure(cfg: EvaluateConfig, export_dir: str | Path) -> Measurement:
    """Evaluate any exported generator (a run's, or a registry copy) under cfg's protocol.

    Nothing about the generator enters the protocol, so two generators measured with the
    same cfg, data and extractors are comparable; promotion uses this to re-measure a
    champion when the data or extractor changed since it was measured.
    """
    settings = settings_from(cfg, sample_count(cfg))  # a missing extractor fails first
    reference = load_reference(cfg, settings)
    cache = _feature_cache(cfg, reference.content_hash)
    exported = load_export(export_dir, pick_device(cfg.device))
    if is_translation(exported.family):  # translation families: test A <-> test B
        return measure_translation(cfg, exported, settings, cache, str(export_dir))
    fake, labels = generate_samples(
        exported, settings.num_samples, settings.seed, settings.batch_size, settings.truncation,
        source=str(export_dir),
    )  # fmt: skip
    if fake.shape[1:] != reference.images.shape[1:]:
        raise GanError(
            f"{export_dir}: generates {tuple(fake.shape[1:])} images but "
            f"evaluate.data {cfg.data} holds {tuple(reference.images.shape[1:])}; evaluate against the data it was trained on"
        )
    asked = labels if exported.conditional else None  # others draw whatever class they like
    return score_samples(
        cfg, settings, reference, cache, Samples(fake, asked, exported.data.num_classes)
    )


def measure_folder(cfg: EvaluateConfig, folder: str | Path) -> Measurement:
    """Evaluate a folder of images under cfg's protocol, as many as it holds
    (gan.metrics.image_folder: converted as preprocess converts; class folders give labels).

    The protocol is a generator's with the folder's count as ``num_samples``, plus an
    ``images`` entry saying what the folder held and how it was converted."""
    usual = sample_count(cfg)
    settings = settings_from(cfg, usual)  # a missing extractor fails first
    manifest = read_manifest(cfg.data)
    if manifest.get("domains"):
        raise GanError(
            f"{cfg.data}: a translation dataset (domains {', '.join(manifest['domains'])}); "
            "a folder of images is scored against data of one domain"
        )
    reference = load_reference(cfg, settings)
    found = read_image_folder(folder, manifest)
    n = len(found.images)
    if n < 2:
        raise GanError(f"{folder}: holds 1 image; FID needs at least 2")
    if n < usual:
        warnings.warn(
            f"{folder}: {n} images, fewer than the {usual} samples a run is measured with; "
            "FID and KID's floor depend on the count, so compare only with results of as many",
            stacklevel=2,
        )
    settings = settings.with_samples(n)
    cache = _feature_cache(cfg, reference.content_hash)
    classes = len(manifest.get("classes") or [])
    m = score_samples(cfg, settings, reference, cache, Samples(found.images, found.labels, classes))
    m.protocol["images"] = found.record
    return m


def score_samples(
    cfg: EvaluateConfig,
    settings: MeasureSettings,
    reference: Reference,
    cache: FeatureCache,
    samples: Samples,
) -> Measurement:
    """Every figure of the samples against the reference under `settings`, whatever made
    them (a generator or a folder): each extractor's metrics with its real-vs-real floor
    and skill, the classifier's figures, and with labels the conditional ones and FID per
    class; with the protocol they hold under and the first samples' grid."""
    fake, real = samples.images, reference.images
    figures, classifier_sha = _classifier_figures(cfg, samples, reference, settings)
    accuracy = figures.get("classifier_test_accuracy")
    metrics: dict[str, float] = {}
    for label, extractor in settings.extractors.items():  # each: its figures under its label
        found = score(fake, real, extractor, cfg.metrics, settings, cache, settings.reference_split)
        found.update(real_floor(cfg.data, real, extractor, cfg.metrics, settings, cache))
        skill_from = accuracy if label == DEFAULT else None  # evaluate.classifier's accuracy
        found.update(extractor_skill(extractor, skill_from, reference.labels))
        metrics.update({keyed(k, label): v for k, v in found.items()})
    if "kid" in metrics:
        metrics["kid_subset_size"] = kid_subset(settings.kid_subset_size, len(fake), len(real))
    metrics.update(figures)
    if samples.labels is not None and "fid" in cfg.metrics:
        per_class = per_class_fid(
            fake,
            samples.labels,
            real,
            reference.labels,
            settings.extractors[DEFAULT],
            settings,
            cache.cuda,
        )
        metrics.update(per_class)
    protocol = settings.protocol(reference.content_hash, classifier_sha, metrics, len(real))
    return Measurement(metrics, protocol, fake[:GRID_SAMPLES])
