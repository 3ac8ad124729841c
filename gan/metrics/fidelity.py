"""The registered metrics of an extractor's features, through torch-fidelity without its cache.

`torch_fidelity.calculate_metrics` would read and write pickles in its cache folder
(loaded with weights_only off), so we run its steps ourselves with the same functions
and the same arguments: build the registered extractor, extract features batch by batch,
then `fid_features_to_statistics` + `fid_statistics_to_metric`, `kid_features_to_metric`,
`isc_features_to_metric` and `prc_features_to_metric`. The numbers are those of
`calculate_metrics(..., cache=False)` for the same inputs (tests/test_no_pickle_loading.py
checks it). The reference side's features are cached by gan.metrics.feature_cache.

`compute_metrics` extracts the layers the selected metrics need (gan.metrics.registry:
``features`` is the layer torch-fidelity reads for FID, ``logits`` the one for IS) once
per side and calls each metric with them; FID, KID, IS and precision/recall are the
built-in metrics' functions at the end of this module.
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
from gan.metrics.registry import EXTRACTOR_NEEDS, MetricInputs, extractor_metric_names, get_metric
from gan.metrics.settings import (
    DEFAULT,
    ISC_SPLITS,
    PRC_NEIGHBORHOOD,
    MeasureSettings,
    kid_subset,
)

# a metric's need -> the torch-fidelity metric whose default layer serves it
NEED_ROLES = {"features": "fid", "logits": "isc"}


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


def _extractor(extractor: Extractor | str, name: str) -> Extractor:
    if isinstance(extractor, Extractor):
        return extractor
    return Extractor(name, getattr(FEATURE_EXTRACTORS_REGISTRY[name], "weights_sha256", None))


def compute_metrics(
    fake_uint8: torch.Tensor,
    real_uint8: torch.Tensor,
    extractor: Extractor | str,
    metrics: Sequence[str] | None = None,
    *,
    kid_subset_size: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    real_cache_name: str | None = None,
    fake_cache_name: str | None = None,
    cuda: bool = False,
    extractor_kwargs: dict[str, Any] | None = None,
    settings: MeasureSettings | None = None,
) -> dict[str, float]:
    """The figures of the registered `metrics` (None: every one measured with an extractor)
    of fake vs real uint8 NCHW images, under `settings` (what the metrics see; without
    them, settings of `seed`, `kid_subset_size` and `batch_size`).

    `extractor` is a resolved Extractor (see resolve_extractor) or a name registered with
    torch-fidelity. Each layer the metrics need is extracted once; the real side's
    features are cached (safetensors, verified on load) only when both `cache_dir` and
    `real_cache_name` are given; the first side's too with `fake_cache_name` (for a real
    split in that place, as the real-vs-real floor has).
    """
    name, kwargs = _registered(extractor, extractor_kwargs)
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise GanError(f"torch-fidelity: feature extractor {name!r} is not registered")
    names = extractor_metric_names() if metrics is None else list(metrics)
    chosen = [get_metric(m) for m in names]

    def layer(need: str) -> str | None:
        return _layer(name, NEED_ROLES[need])

    # an extractor without a layer a metric needs (our autoencoder has no logits: no IS)
    wanted = [m for m in chosen if m.per_extractor and all(map(layer, m.needs & EXTRACTOR_NEEDS))]
    if not wanted:
        return {}
    real_needs = {n for m in wanted if "reference" in m.needs for n in m.needs & EXTRACTOR_NEEDS}
    fake_needs = {n for m in wanted for n in m.needs & EXTRACTOR_NEEDS} | real_needs
    # the reference's layers do not depend on which of its metrics were asked for, so one
    # cache entry serves them all
    real_layers = sorted({layer(n) for n in real_needs})
    layers = sorted({layer(n) for n in fake_needs})
    settings = settings or MeasureSettings(
        {DEFAULT: _extractor(extractor, name)},
        len(fake_uint8),
        seed=seed,
        kid_subset_size=kid_subset_size,
        batch_size=batch_size,
    )
    batch_size = settings.batch_size
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
        real = features(real_uint8, real_cache_name, real_layers) if real_needs else {}
        inputs = MetricInputs(
            fake={n: fake[layer(n)] for n in fake_needs},
            real={n: real[layer(n)] for n in real_needs},
            settings=settings,
        )
        found: dict[str, float] = {}
        for metric in wanted:
            found |= metric(inputs)
    except ValueError as exc:  # torch-fidelity's own checks (vassert)
        raise GanError(f"torch-fidelity: {exc}") from None
    return found


# -- the built-in metrics (declared in gan.metrics.registry) ------------------------------
def fid_metric(inputs: MetricInputs) -> dict[str, float]:
    stats = [fid_features_to_statistics(side["features"]) for side in (inputs.fake, inputs.real)]
    return {"fid": fid_statistics_to_metric(*stats, False)["frechet_inception_distance"]}


def kid_metric(inputs: MetricInputs) -> dict[str, float]:
    fake, real = inputs.fake["features"], inputs.real["features"]
    subset = kid_subset(inputs.settings.kid_subset_size, len(fake), len(real))
    raw = kid_features_to_metric(
        fake, real, kid_subset_size=subset, rng_seed=inputs.settings.seed, verbose=False
    )
    return {
        "kid": raw["kernel_inception_distance_mean"],
        "kid_std": raw["kernel_inception_distance_std"],
    }


def isc_metric(inputs: MetricInputs) -> dict[str, float]:
    logits = inputs.fake["logits"]
    raw = isc_features_to_metric(logits, min(ISC_SPLITS, len(logits)), True, inputs.settings.seed)
    return {"is": raw["inception_score_mean"], "is_std": raw["inception_score_std"]}


def prc_metric(inputs: MetricInputs) -> dict[str, float]:
    for what, side in (("samples", inputs.fake), ("reference images", inputs.real)):
        if len(side["features"]) <= PRC_NEIGHBORHOOD:  # each side's k-th nearest neighbour
            raise GanError(
                f"precision and recall need more than {PRC_NEIGHBORHOOD} {what} (have "
                f"{len(side['features'])}); score more, or leave prc out of evaluate.metrics"
            )
    raw = prc_features_to_metric(
        inputs.fake["features"],
        inputs.real["features"],
        prc_neighborhood=PRC_NEIGHBORHOOD,
        save_cpu_ram=True,
        verbose=False,
    )
    return {"precision": raw["precision"], "recall": raw["recall"]}
