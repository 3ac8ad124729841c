"""The real-vs-real floor: what FID and KID read when both sides are real images.

A FID of 3 means nothing until a reader knows that two halves of the real data already
score 2.7 under the same extractor; with small samples the floor is far from 0. The floor
is the real train split against the reference (test) split, with the same extractor, the
same KID subset size and, as far as the train split allows, the same sample count as the
generated side (a seeded subset when the train split is larger). Both sides' features are
cached (gan.metrics.feature_cache), so after the first run it costs the two small
statistics and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gan.data.shards import load_split
from gan.metrics.core import score
from gan.metrics.extractors import Extractor
from gan.metrics.settings import FeatureCache, MeasureSettings

FLOOR_SPLIT = "train"
FLOOR_METRICS = ("fid", "kid")


def floor_images(data: str | Path, n: int, seed: int) -> torch.Tensor:
    """n images of the train split (all of them when it has at most n), chosen by `seed`."""
    images = load_split(data, FLOOR_SPLIT).images
    if len(images) <= n:
        return images
    keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return images[keep.sort().values]


def real_floor(
    data: str | Path,
    real: torch.Tensor,
    extractor: Extractor,
    metrics: list[str],
    settings: MeasureSettings,
    cache: FeatureCache,
) -> dict[str, float]:
    """``fid_real_floor``, ``kid_real_floor`` (+ ``_std``) and ``real_floor_samples``: the
    `metrics` among FID and KID of the train split's images (as many as
    `settings.num_samples`) against `real`, the reference split; {} when the train split
    has fewer than 2 images or neither metric is asked for."""
    wanted = [m for m in FLOOR_METRICS if m in metrics]
    train = floor_images(data, settings.num_samples, settings.seed) if wanted else torch.empty(0)
    if len(train) < 2:
        return {}
    split = settings.reference_split
    found = score(train, real, extractor, wanted, settings, cache, split, fake_split=FLOOR_SPLIT)
    out = {f"{k}_real_floor": v for k, v in found.items() if k in FLOOR_METRICS}
    if "kid_std" in found:
        out["kid_real_floor_std"] = found["kid_std"]
    return {**out, "real_floor_samples": len(train)}
