"""Scoring a generator while it trains: FID and KID of a few hundred samples per snapshot.

`train.metrics_every` measures the run's EMA generator at snapshots (gan/training/
snapshots.py) through the one measurement core (gan.metrics.core) under the evaluate
section's settings and default extractor, against the test split of the data the run
trains on: the figure `gan evaluate` would give that generator on as many samples, up to
the latents, which come from the run's own `snapshots` stream. Translation families are
measured as evaluate measures them: the first n test images of each domain translated
against the other domain's test split, the mean of both directions. The reference's
features are computed once and cached (gan.metrics.feature_cache), so a snapshot pays
for its own samples only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan.config import EvaluateConfig
from gan.export import Exported
from gan.metrics.core import (
    generate_samples,
    is_translation,
    reference_content_hash,
    reference_split,
    score,
)
from gan.metrics.protocol import comparable_protocol
from gan.metrics.settings import FeatureCache, MeasureSettings, settings_from
from gan.metrics.translation import DIRECTIONS, translate_images
from gan.models.family import DataInfo

FIGURES = ("fid", "kid")  # what a snapshot measures (gan.metrics.registry)


@dataclass(frozen=True)
class SnapshotJudge:
    """What every snapshot of a run is measured against, loaded once."""

    settings: MeasureSettings  # the evaluate section's, with the snapshot's count and seed
    real: dict[str, torch.Tensor]  # the reference split's images by domain ("": one domain)
    cache: FeatureCache

    @property
    def protocol(self) -> dict[str, Any]:
        """The keys that must match for two snapshots' figures to be compared (as for any
        two results: gan.metrics.protocol)."""
        s, content_hash = self.settings, self.cache.content_hash
        if set(self.real) == {""}:
            record = s.protocol(content_hash, None, FIGURES, len(self.real[""]))
        else:
            counts = {d: min(s.num_samples, len(self.real[d])) for d in self.real}
            record = s.translation_protocol(content_hash, None, FIGURES, counts, None)
        return comparable_protocol(record)

    @torch.no_grad()
    def figures(self, family, G: nn.Module, data: DataInfo) -> dict[str, float]:
        """FID and KID of the generator `G` of `family` (an inference copy); with two
        domains, the mean over the directions."""
        s = self.settings
        if is_translation(family):
            fakes = {
                dst: translate_images(family, G, self.real[src][: s.num_samples], way, s.batch_size)
                for way, (src, dst) in DIRECTIONS.items()
            }
        else:
            exported = Exported(family, G, {}, data, family.is_conditional(family.cfg, data))
            n, seed, batch = s.num_samples, s.seed, s.batch_size
            fakes = {"": generate_samples(exported, n, seed, batch, s.truncation, False)[0]}
        split = s.reference_split
        found = [
            score(fake, self.real[d], s.extractor, FIGURES, s, self.cache, f"{split}{d}")
            for d, fake in fakes.items()
        ]
        return {f: sum(r[f] for r in found) / len(found) for f in FIGURES}


def load_judge(
    evaluate: EvaluateConfig, data: str | Path, samples: int, seed: int, family, cuda: bool
) -> SnapshotJudge:
    """The judge of a run on `data` (train.data): `samples` per snapshot, latents and KID
    subsets seeded `seed`; a missing extractor or a too small test split fails here,
    before the run trains."""
    settings = replace(settings_from(evaluate, samples, extras=False), seed=seed)
    content_hash = reference_content_hash(data)
    _, real = reference_split(data, settings.reference_split, is_translation(family))
    return SnapshotJudge(settings, real, FeatureCache(content_hash, evaluate.cache_dir, cuda))
