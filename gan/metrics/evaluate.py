"""The evaluate stage: the registered metrics (FID, KID, IS, precision/recall, ...) of a
run's exported generator.

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

Outputs, replaced together or not at all (gan.metrics.outputs): metrics.json (flat
numbers), protocol.json (see gan.metrics.protocol), samples.png (64 samples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gan.config import EvaluateConfig
from gan.data.shards import load_split, read_manifest
from gan.device import pick_device
from gan.errors import GanError
from gan.export import load_export
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
    score,
)
from gan.metrics.fidelity import compute_metrics, reference_cache_name
from gan.metrics.floors import real_floor
from gan.metrics.outputs import replaced_dir
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
    "reference_cache_name",
]


def _classifier_figures(
    cfg: EvaluateConfig, exported, fake, labels, content_hash, real, settings: MeasureSettings
) -> tuple[dict, str | None]:
    """The figures of the metrics that need the classifier, when there is one; ({}, None)
    when there is none. `real` (the reference split) gives the confident fraction's ceiling."""
    if not (Path(cfg.classifier) / CLASSIFIER_WEIGHTS).is_file():
        return {}, None
    trained = checked_classifier(cfg.classifier, content_hash, cfg.data)
    conditional = exported.conditional and labels is not None
    if conditional and trained.model.num_classes != exported.data.num_classes:
        conditional = False
    figures = classifier_metrics(
        trained.model, fake, real, settings, labels if conditional else None
    )
    figures["classifier_test_accuracy"] = float(trained.meta["test_accuracy"])
    return figures, trained.weights_sha256


def evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Run the evaluate stage on cfg.run_dir's export; returns {"metrics", "protocol"} as written."""
    m = measure(cfg, Path(cfg.run_dir) / "export")
    with replaced_dir(cfg.output) as out:  # the three files together, or the previous ones
        write_json(out / "metrics.json", m.metrics)
        write_json(out / "protocol.json", m.protocol)
        save_grid(m.grid, out / "samples.png", nrow=8, scale=max(1, 64 // m.grid.shape[-1]))
    return {"metrics": m.metrics, "protocol": m.protocol}


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


def measure(cfg: EvaluateConfig, export_dir: str | Path) -> Measurement:
    """Evaluate any exported generator (a run's, or a registry copy) under cfg's protocol.

    Nothing about the generator enters the protocol, so two generators measured with the
    same cfg, data and extractors are comparable; promotion uses this to re-measure a
    champion when the data or extractor changed since it was measured.
    """
    settings = settings_from(cfg, sample_count(cfg))  # a missing extractor fails first
    content_hash = reference_content_hash(cfg.data)
    reference = load_split(cfg.data, settings.reference_split)
    real = reference.images
    if len(real) < 2:
        raise GanError(
            f"{cfg.data}: the {settings.reference_split!r} split needs at least 2 images (preprocess.test_fraction)"
        )
    device = pick_device(cfg.device)
    cache = FeatureCache(content_hash, cfg.cache_dir, device.type == "cuda")
    exported = load_export(export_dir, device)
    if is_translation(exported.family):  # translation families: test A <-> test B
        return measure_translation(cfg, exported, settings, cache)
    n = settings.num_samples
    fake, labels = generate_samples(
        exported, n, settings.seed, settings.batch_size, settings.truncation
    )
    if fake.shape[1:] != real.shape[1:]:
        raise GanError(
            f"{export_dir}: generates {tuple(fake.shape[1:])} images but "
            f"evaluate.data {cfg.data} holds {tuple(real.shape[1:])}; evaluate against the data it was trained on"
        )

    figures, classifier_sha = _classifier_figures(
        cfg, exported, fake, labels, content_hash, real, settings
    )
    accuracy = figures.get("classifier_test_accuracy")
    metrics: dict[str, float] = {}
    for label, extractor in settings.extractors.items():  # each: its figures under its label
        found = score(fake, real, extractor, cfg.metrics, settings, cache, settings.reference_split)
        found.update(real_floor(cfg.data, real, extractor, cfg.metrics, settings, cache))
        skill_from = accuracy if label == DEFAULT else None  # evaluate.classifier's accuracy
        found.update(extractor_skill(extractor, skill_from, reference.labels))
        metrics.update({keyed(k, label): v for k, v in found.items()})
    if "kid" in metrics:
        metrics["kid_subset_size"] = kid_subset(settings.kid_subset_size, n, len(real))
    metrics.update(figures)
    if exported.conditional and labels is not None and "fid" in cfg.metrics:
        per_class = per_class_fid(
            fake, labels, real, reference.labels, settings.extractors[DEFAULT], settings, cache.cuda
        )
        metrics.update(per_class)
    protocol = settings.protocol(content_hash, classifier_sha, metrics, len(real))
    return Measurement(metrics, protocol, fake[:GRID_SAMPLES])
