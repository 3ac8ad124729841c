"""The evaluate stage: FID, KID, IS and precision/recall of a run's exported generator.

Generated samples (gan.metrics.core: the sampling HPO trials use too) are compared with
the test split through torch-fidelity, using the extractor resolved by
gan.metrics.extractors. Reference features are cached under `evaluate.cache_dir` as
verified safetensors keyed by the reference pixels' hash and the extractor's name and
weights hash (gan.metrics.feature_cache), so changed data or weights never reuse stale
features and no cached file can run code. Our
classifier adds class-aware figures: classifier IS, class coverage and entropy, the
fraction of samples it is confident about (``classifier_confident``: top class probability
>= `evaluate.confident_threshold`) and the same fraction on the real test split
(``classifier_confident_real``, the ceiling), and for conditional families the fraction of
samples classified as the requested class.

Beside them, so that a reader sees the scale: the KID subset size used (the largest both
sample counts allow unless `evaluate.kid_subset_size` is set), the real-vs-real floor of
FID and KID (gan.metrics.floors: the train split against the test split), and the
extractor's skill (gan.metrics.extractor_quality; a weak extractor is warned about here
and refused by promote).

Outputs, replaced together or not at all (gan.metrics.outputs): metrics.json (flat
numbers), protocol.json (see gan.metrics.protocol), samples.png (64 samples).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from gan.config import EvaluateConfig
from gan.data.shards import load_split, read_manifest
from gan.device import pick_device
from gan.errors import GanError
from gan.export import load_export
from gan.grid import save_grid
from gan.io import write_json
from gan.metrics.classifier import WEIGHTS as CLASSIFIER_WEIGHTS
from gan.metrics.classifier import predict_logits
from gan.metrics.core import (
    GRID_SAMPLES,
    REFERENCE_SPLIT,
    Measurement,
    checked_classifier,
    confident_fraction,
    extractor_skill,
    generate_samples,
    is_translation,
    protocol_record,
    reference_content_hash,
    score,
)
from gan.metrics.extractors import resolve_extractor
from gan.metrics.fidelity import (
    ISC_SPLITS,
    PRC_NEIGHBORHOOD,
    compute_metrics,
    kid_subset,
    reference_cache_name,
)
from gan.metrics.floors import real_floor
from gan.metrics.outputs import replaced_dir
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


def class_figures(
    logits: torch.Tensor, requested: torch.Tensor | None = None, threshold: float = 0.8
) -> dict[str, float]:
    """Classifier IS, class coverage and entropy, the confident fraction, and (with
    `requested`) conditional accuracy.

    IS = exp(mean KL(p(y|x) || p(y))); coverage = fraction of classes predicted at least once;
    entropy = entropy of the predicted-class histogram over log(num_classes), 1 when uniform;
    confident = fraction of samples whose top class probability is >= `threshold`.
    """
    logits = logits.double()
    k = logits.shape[1]
    log_p = logits.log_softmax(1)
    log_marginal = log_p.exp().mean(0).log()
    kl = (log_p.exp() * (log_p - log_marginal)).sum(1).mean()
    pred = logits.argmax(1)
    hist = torch.bincount(pred, minlength=k).double() / len(pred)
    nz = hist[hist > 0]
    out = {
        "classifier_is": float(kl.exp()),
        "class_coverage": float((hist > 0).double().mean()),
        "class_entropy": float(-(nz * nz.log()).sum() / math.log(k)) if k > 1 else 1.0,
        "classifier_confident": confident_fraction(logits, threshold),
    }
    if requested is not None:
        out["conditional_accuracy"] = float((pred == requested.to(pred.device)).double().mean())
    return out


def _classifier_figures(
    cfg: EvaluateConfig, exported, fake, labels, content_hash, real
) -> tuple[dict, str | None]:
    """Class-aware figures when a classifier exists; ({}, None) when there is none.
    `real` (the reference split) gives the ceiling of the confident fraction."""
    if not (Path(cfg.classifier) / CLASSIFIER_WEIGHTS).is_file():
        return {}, None
    trained = checked_classifier(cfg.classifier, content_hash, cfg.data)
    conditional = exported.conditional and labels is not None
    if conditional and trained.model.num_classes != exported.data.num_classes:
        conditional = False
    figures = class_figures(
        predict_logits(trained.model, fake),
        labels if conditional else None,
        cfg.confident_threshold,
    )
    figures["classifier_confident_real"] = confident_fraction(
        predict_logits(trained.model, real), cfg.confident_threshold
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


def per_class_fid(fake, labels, real, real_labels, extractor, cfg, device) -> dict[str, float]:
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
            mine, theirs, extractor, ["fid"], batch_size=cfg.batch_size,
            cuda=device.type == "cuda",
        )["fid"]  # fmt: skip
        out[f"fid_class_{k}"] = fid
    if out:
        out["fid_class_mean"] = sum(out.values()) / len(out)
    return out


def measure(cfg: EvaluateConfig, export_dir: str | Path) -> Measurement:
    """Evaluate any exported generator (a run's, or a registry copy) under cfg's protocol.

    Nothing about the generator enters the protocol, so two generators measured with the
    same cfg, data and extractor are comparable; promotion uses this to re-measure a
    champion when the data or extractor changed since it was measured.
    """
    extractor = resolve_extractor(cfg.extractor, cfg.classifier, cfg.inception_weights)
    content_hash = reference_content_hash(cfg.data)
    manifest = read_manifest(cfg.data)
    reference = load_split(cfg.data, REFERENCE_SPLIT)
    real = reference.images
    if len(real) < 2:
        raise GanError(
            f"{cfg.data}: the {REFERENCE_SPLIT!r} split needs at least 2 images (preprocess.test_fraction)"
        )
    n = cfg.num_samples or int(manifest["splits"].get("train", {}).get("count", 0))
    if n < 2:
        raise GanError(
            f"{cfg.data}: no train split to size the sample count; set evaluate.num_samples"
        )

    device = pick_device(cfg.device)
    exported = load_export(export_dir, device)
    if is_translation(exported.family):  # translation families: test A <-> test B
        return measure_translation(cfg, exported, extractor, content_hash, device.type == "cuda")
    fake, labels = generate_samples(exported, n, cfg.seed, cfg.batch_size, cfg.truncation)
    if fake.shape[1:] != real.shape[1:]:
        raise GanError(
            f"{export_dir}: generates {tuple(fake.shape[1:])} images but "
            f"evaluate.data {cfg.data} holds {tuple(real.shape[1:])}; evaluate against the data it was trained on"
        )

    subset = kid_subset(cfg.kid_subset_size, n, len(real))
    common = {
        "content_hash": content_hash,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "kid_subset_size": subset,
        "cache_dir": cfg.cache_dir,
        "cuda": device.type == "cuda",
    }
    metrics = score(fake, real, extractor, cfg.metrics, split=REFERENCE_SPLIT, **common)
    if "kid" in metrics:
        metrics["kid_subset_size"] = subset
    floor = real_floor(
        cfg.data, real, extractor, cfg.metrics, n=n, reference_split=REFERENCE_SPLIT, **common
    )
    metrics.update(floor)
    figures, classifier_sha = _classifier_figures(cfg, exported, fake, labels, content_hash, real)
    metrics.update(figures)
    accuracy = figures.get("classifier_test_accuracy")
    metrics.update(extractor_skill(extractor, accuracy, reference.labels))
    if exported.conditional and labels is not None and "fid" in cfg.metrics:
        metrics.update(per_class_fid(fake, labels, real, reference.labels, extractor, cfg, device))
    protocol = protocol_record(
        extractor,
        content_hash,
        classifier_sha,
        metrics,
        num_samples=n,
        reference_count=len(real),
        seed=cfg.seed,
        truncation=cfg.truncation,
        batch_size=cfg.batch_size,
        kid_subset_size=subset,
        confident_threshold=cfg.confident_threshold,
        isc_splits=min(ISC_SPLITS, n),
        prc_neighborhood=PRC_NEIGHBORHOOD,
    )
    return Measurement(metrics, protocol, fake[:GRID_SAMPLES])
