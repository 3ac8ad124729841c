"""The evaluate stage: FID, KID, IS and precision/recall of a run's exported generator.

Generated samples are compared with the test split through torch-fidelity, using the
extractor resolved by gan.metrics.extractors. Reference statistics are cached under
`evaluate.cache_dir` with a name holding the split's content hash and the extractor's
name and weights hash, so changed data or weights never reuse stale statistics. Our
classifier adds class-aware figures: classifier IS, class coverage and entropy, and for
conditional families the fraction of samples classified as the requested class.

Outputs (atomic): metrics.json (flat numbers), protocol.json (see gan.metrics.protocol),
samples.png (64 samples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch_fidelity
from torch.utils.data import Dataset
from tqdm import tqdm

from gan.config import EvaluateConfig
from gan.data.shards import load_split, read_manifest
from gan.device import pick_device
from gan.errors import GanError
from gan.export import load_export
from gan.grid import save_grid, to_uint8
from gan.io import write_json
from gan.metrics.classifier import WEIGHTS as CLASSIFIER_WEIGHTS
from gan.metrics.classifier import load_classifier, predict_logits
from gan.metrics.extractors import Extractor, resolve_extractor

REFERENCE_SPLIT = "test"
ISC_SPLITS = 10
PRC_NEIGHBORHOOD = 3
GRID_SAMPLES = 64
# torch-fidelity result keys -> ours
_KEYS = {
    "frechet_inception_distance": "fid",
    "kernel_inception_distance_mean": "kid",
    "kernel_inception_distance_std": "kid_std",
    "inception_score_mean": "is",
    "inception_score_std": "is_std",
    "precision": "precision",
    "recall": "recall",
}


class Uint8Images(Dataset):
    """uint8 [N, C, H, W] as torch-fidelity wants it: one 3-channel uint8 tensor per item."""

    def __init__(self, images: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError("images must be uint8 [N, 1 or 3, H, W]")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.images[i]
        return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


def reference_cache_name(split: str, content_hash: str, extractor: Extractor) -> str:
    """torch-fidelity cache entry of the reference: changes with the data and the weights."""
    weights = (extractor.weights_sha256 or "unhashed")[:12]
    name = extractor.name if weights in extractor.name else f"{extractor.name}-{weights}"
    return f"ganops-{split}-{content_hash[:16]}-{name}"


def compute_metrics(
    fake_uint8: torch.Tensor,
    real_uint8: torch.Tensor,
    extractor_name: str,
    metrics: Sequence[str] = ("fid", "kid", "isc", "prc"),
    *,
    kid_subset_size: int = 100,
    seed: int = 0,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    real_cache_name: str | None = None,
    cuda: bool = False,
    extractor_kwargs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """torch-fidelity metrics of fake vs real uint8 NCHW images, under our flat key names.

    `extractor_name` must be registered with torch-fidelity (see resolve_extractor). The
    real side is cached only when both `cache_dir` and `real_cache_name` are given.
    """
    if not any(m in metrics for m in ("fid", "kid", "isc", "prc")):
        return {}
    n_fake, n_real = len(fake_uint8), len(real_uint8)
    cached = cache_dir is not None and real_cache_name is not None
    kwargs: dict[str, Any] = {
        "input1": Uint8Images(fake_uint8),
        "input2": Uint8Images(real_uint8),
        "feature_extractor": extractor_name,
        "fid": "fid" in metrics,
        "kid": "kid" in metrics,
        "isc": "isc" in metrics,
        "prc": "prc" in metrics,
        "kid_subset_size": max(2, min(kid_subset_size, n_fake, n_real)),
        "isc_splits": min(ISC_SPLITS, n_fake),
        "prc_neighborhood": PRC_NEIGHBORHOOD,
        "rng_seed": seed,
        "batch_size": batch_size,
        "cuda": cuda,
        "cache": cached,
        "cache_root": str(cache_dir) if cached else None,
        "input2_cache_name": real_cache_name if cached else None,
        "save_cpu_ram": True,  # no DataLoader worker processes for in-memory tensors
        "verbose": False,
        **(extractor_kwargs or {}),
    }
    try:
        raw = torch_fidelity.calculate_metrics(**kwargs)
    except ValueError as exc:  # torch-fidelity's own checks (vassert)
        raise GanError(f"torch-fidelity: {exc}") from None
    return {ours: float(raw[theirs]) for theirs, ours in _KEYS.items() if theirs in raw}


def class_figures(logits: torch.Tensor, requested: torch.Tensor | None = None) -> dict[str, float]:
    """Classifier IS, class coverage and entropy, and (with `requested`) conditional accuracy.

    IS = exp(mean KL(p(y|x) || p(y))); coverage = fraction of classes predicted at least once;
    entropy = entropy of the predicted-class histogram over log(num_classes), 1 when uniform.
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
    }
    if requested is not None:
        out["conditional_accuracy"] = float((pred == requested.to(pred.device)).double().mean())
    return out


@torch.no_grad()
def generate_samples(exported, n: int, seed: int, batch_size: int, truncation: float = 1.0):
    """n uint8 samples from a CPU generator seeded `seed` (same latents on every device).

    Returns (images, labels); labels cycle i % num_classes when the data has classes, as
    the trainer's do, and are None otherwise.
    """
    rng = torch.Generator().manual_seed(seed)
    k = exported.data.num_classes
    labels = torch.arange(n) % k if k > 0 else None
    device = next(exported.generator.parameters()).device
    chunks = []
    with tqdm(total=n, desc="generating", unit="img") as bar:
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            y = labels[start : start + size].to(device) if labels is not None else None
            x = exported.family.generate(
                exported.generator, size, rng, labels=y, truncation=truncation
            )
            chunks.append(to_uint8(x))
            bar.update(size)
    return torch.cat(chunks), labels


def _classifier_figures(
    cfg: EvaluateConfig, exported, fake, labels, content_hash
) -> tuple[dict, str | None]:
    """Class-aware figures when a classifier exists; ({}, None) when there is none."""
    if not (Path(cfg.classifier) / CLASSIFIER_WEIGHTS).is_file():
        return {}, None
    trained = load_classifier(cfg.classifier)
    if trained.meta.get("data_content_hash") != content_hash:
        raise GanError(
            f"{cfg.classifier}: the classifier was trained on data {str(trained.meta.get('data_content_hash'))[:12]}, "
            f"but evaluate.data {cfg.data} is {content_hash[:12]}; retrain it with `gan classifier`"
        )
    conditional = getattr(exported.family, "conditional", False) and labels is not None
    if conditional and trained.model.num_classes != exported.data.num_classes:
        conditional = False
    figures = class_figures(predict_logits(trained.model, fake), labels if conditional else None)
    figures["classifier_test_accuracy"] = float(trained.meta["test_accuracy"])
    return figures, trained.weights_sha256


@dataclass
class Measurement:
    """What one evaluation found: flat metrics, the protocol they hold under, a grid."""

    metrics: dict[str, float]
    protocol: dict[str, Any]
    grid: torch.Tensor  # uint8 NCHW


def evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    """Run the evaluate stage on cfg.run_dir's export; returns {"metrics", "protocol"} as written."""
    m = measure(cfg, Path(cfg.run_dir) / "export")
    out = Path(cfg.output)
    write_json(out / "metrics.json", m.metrics)
    write_json(out / "protocol.json", m.protocol)
    save_grid(m.grid, out / "samples.png", nrow=8, scale=max(1, 64 // m.grid.shape[-1]))
    return {"metrics": m.metrics, "protocol": m.protocol}


def measure(cfg: EvaluateConfig, export_dir: str | Path) -> Measurement:
    """Evaluate any exported generator (a run's, or a registry copy) under cfg's protocol.

    Nothing about the generator enters the protocol, so two generators measured with the
    same cfg, data and extractor are comparable; promotion uses this to re-measure a
    champion when the data or extractor changed since it was measured.
    """
    extractor = resolve_extractor(cfg.extractor, cfg.classifier, cfg.inception_weights)
    manifest = read_manifest(cfg.data)
    content_hash = str(manifest.get("content_hash") or "")
    if not content_hash:
        raise GanError(
            f"{Path(cfg.data) / 'manifest.json'}: no content_hash (rerun `gan preprocess`)"
        )
    real = load_split(cfg.data, REFERENCE_SPLIT).images
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
    if hasattr(exported.family, "translate"):  # translation families: test A <-> test B
        from gan.metrics.translation import measure_translation

        return measure_translation(cfg, exported, extractor, content_hash, device.type == "cuda")
    fake, labels = generate_samples(exported, n, cfg.seed, cfg.batch_size, cfg.truncation)
    if fake.shape[1:] != real.shape[1:]:
        raise GanError(
            f"{export_dir}: generates {tuple(fake.shape[1:])} images but "
            f"evaluate.data {cfg.data} holds {tuple(real.shape[1:])}; evaluate against the data it was trained on"
        )

    kid_subset = max(2, min(cfg.kid_subset_size, n, len(real)))
    metrics = compute_metrics(
        fake,
        real,
        extractor.name,
        cfg.metrics,
        kid_subset_size=kid_subset,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        cache_dir=cfg.cache_dir,
        real_cache_name=reference_cache_name(REFERENCE_SPLIT, content_hash, extractor),
        cuda=device.type == "cuda",
        extractor_kwargs=extractor.kwargs,
    )
    figures, classifier_sha = _classifier_figures(cfg, exported, fake, labels, content_hash)
    metrics.update(figures)

    protocol = {
        "extractor": extractor.name,
        "extractor_weights_sha256": extractor.weights_sha256,
        "classifier_weights_sha256": classifier_sha,
        "num_samples": n,
        "reference_split": REFERENCE_SPLIT,
        "reference_content_hash": content_hash,
        "reference_count": len(real),
        "seed": cfg.seed,
        "truncation": cfg.truncation,
        "batch_size": cfg.batch_size,
        "kid_subset_size": kid_subset,
        "isc_splits": min(ISC_SPLITS, n),
        "prc_neighborhood": PRC_NEIGHBORHOOD,
        "metrics": sorted(metrics),
        "torch": torch.__version__,
        "torch_fidelity": torch_fidelity.__version__,
    }
    return Measurement(metrics, protocol, fake[:GRID_SAMPLES])
