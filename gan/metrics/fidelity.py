"""FID, KID, IS and precision/recall through torch-fidelity's own functions, without its cache.

`torch_fidelity.calculate_metrics` would read and write pickles in its cache folder
(loaded with weights_only off), so we run its steps ourselves with the same functions
and the same arguments: build the registered extractor, extract features batch by batch,
then `fid_features_to_statistics` + `fid_statistics_to_metric`, `kid_features_to_metric`,
`isc_features_to_metric` and `prc_features_to_metric`. The numbers are those of
`calculate_metrics(..., cache=False)` for the same inputs (tests/test_no_pickle_loading.py
checks it). The reference side's features are cached by gan.metrics.feature_cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from gan.errors import GanError
from gan.metrics.extractors import INCEPTION, Extractor
from gan.metrics.feature_cache import Features, cached_features, images_sha256

ALL_METRICS = ("fid", "kid", "isc", "prc")
BINARY = ("fid", "kid", "prc")  # the metrics that need the reference side
ISC_SPLITS = 10
PRC_NEIGHBORHOOD = 3
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


def kid_subset(requested: int | None, n_fake: int, n_real: int) -> int:
    """KID's subset size: `requested` (None: as large as possible) capped by both sample
    counts, since torch-fidelity draws each subset without replacement from each side.
    Larger subsets lower the estimate's noise: with 100 of 359 reference digits, KID sat
    within 1.5 sigma of the real-vs-real floor."""
    largest = min(n_fake, n_real)
    return max(2, largest if requested is None else min(requested, largest))


def reference_cache_name(split: str, content_hash: str, extractor: Extractor) -> str:
    """Readable prefix of the reference's cache file: changes with the data and the weights
    (the file name adds a digest of the full key, see gan.metrics.feature_cache)."""
    weights = (extractor.weights_sha256 or "unhashed")[:12]
    name = extractor.name if weights in extractor.name else f"{extractor.name}-{weights}"
    return f"ganops-{split}-{content_hash[:16]}-{name}"


def _registered(extractor: Extractor | str, kwargs: dict[str, Any] | None):
    """(torch-fidelity name, extractor kwargs) of an Extractor or an already-registered name."""
    if isinstance(extractor, Extractor):
        return extractor.fidelity_name, {**extractor.kwargs, **(kwargs or {})}
    if extractor == INCEPTION:  # torch-fidelity's own class downloads or unpickles its weights
        raise GanError(f"{INCEPTION}: resolve it with gan.metrics.extractors.resolve_extractor")
    return extractor, dict(kwargs or {})


def _layer(name: str, metric: str) -> str | None:
    return FEATURE_EXTRACTORS_REGISTRY[name].get_default_feature_layer_for_metric(metric)


def _features(net, images: torch.Tensor, batch_size: int, cuda: bool) -> Features:
    return get_featuresdict_from_dataset(
        Uint8Images(images), net, batch_size, cuda, save_cpu_ram=True, verbose=False
    )


def compute_metrics(
    fake_uint8: torch.Tensor,
    real_uint8: torch.Tensor,
    extractor: Extractor | str,
    metrics: Sequence[str] = ALL_METRICS,
    *,
    kid_subset_size: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    real_cache_name: str | None = None,
    fake_cache_name: str | None = None,
    cuda: bool = False,
    extractor_kwargs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """torch-fidelity metrics of fake vs real uint8 NCHW images, under our flat key names.

    `extractor` is a resolved Extractor (see resolve_extractor) or a name registered with
    torch-fidelity. The real side's features are cached (safetensors, verified on load)
    only when both `cache_dir` and `real_cache_name` are given; the first side's too with
    `fake_cache_name` (for a real split in that place, as the real-vs-real floor has).
    """
    name, kwargs = _registered(extractor, extractor_kwargs)
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise GanError(f"torch-fidelity: feature extractor {name!r} is not registered")
    # an extractor without a layer for a metric (our autoencoder has no logits: no IS)
    wanted = [m for m in ALL_METRICS if m in metrics and _layer(name, m) is not None]
    if not wanted:
        return {}
    binary = [m for m in wanted if m in BINARY]
    # the reference's layers do not depend on which binary metrics were asked for, so one
    # cache entry serves them all
    all_binary = {_layer(name, m) for m in BINARY} - {None}
    real_layers = sorted(all_binary) if binary else []
    layers = sorted({_layer(name, m) for m in wanted} | set(real_layers))
    n_fake, n_real = len(fake_uint8), len(real_uint8)
    try:
        net = create_feature_extractor(name, layers, cuda=cuda, verbose=False, **kwargs)

        def features(images: torch.Tensor, cache_name: str | None, wanted_layers) -> Features:
            if cache_dir is None or cache_name is None:
                return _features(net, images, batch_size, cuda)
            key = {
                "images_sha256": images_sha256(images),
                "extractor": name,
                "extractor_weights_sha256": getattr(net, "weights_sha256", None),
                "extractor_kwargs": kwargs,
                "layers": wanted_layers,
                "batch_size": batch_size,
                "device": "cuda" if cuda else "cpu",
            }
            compute = lambda: _features(net, images, batch_size, cuda)  # noqa: E731
            return cached_features(cache_dir, cache_name, key, wanted_layers, len(images), compute)

        fake = features(fake_uint8, fake_cache_name, layers)
        real: Features = features(real_uint8, real_cache_name, real_layers) if binary else {}
        raw: dict[str, Any] = {}
        if "isc" in wanted:
            raw |= isc_features_to_metric(
                fake[_layer(name, "isc")], min(ISC_SPLITS, n_fake), True, seed
            )
        if "fid" in wanted:
            layer = _layer(name, "fid")
            stats = [fid_features_to_statistics(f[layer]) for f in (fake, real)]
            raw |= fid_statistics_to_metric(*stats, False)
        if "kid" in wanted:
            layer = _layer(name, "kid")
            subset = kid_subset(kid_subset_size, n_fake, n_real)
            raw |= kid_features_to_metric(
                fake[layer], real[layer], kid_subset_size=subset, rng_seed=seed, verbose=False
            )
        if "prc" in wanted:
            layer = _layer(name, "prc")
            raw |= prc_features_to_metric(
                fake[layer],
                real[layer],
                prc_neighborhood=PRC_NEIGHBORHOOD,
                save_cpu_ram=True,
                verbose=False,
            )
    except ValueError as exc:  # torch-fidelity's own checks (vassert)
        raise GanError(f"torch-fidelity: {exc}") from None
    return {ours: float(raw[theirs]) for theirs, ours in _KEYS.items() if theirs in raw}
