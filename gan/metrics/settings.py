"""How a measurement is taken: one frozen MeasureSettings, which protocol.json records.

The extractors (the default one under the label "", the others under their labels from
`evaluate.extra_extractors`), the sample count, seed, truncation, KID subset size,
reference split, generation batch size and the classifier_confident threshold travel
together from the evaluate section to every measurement (`gan evaluate`, translation
evaluation, HPO trials, the real-vs-real floor) and from there into protocol.json, whose
keys for the default extractor alone are those protocols have always had
(gan.metrics.protocol says which must match). Where features are cached and on which
device they are computed is a FeatureCache: neither changes what a figure means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch_fidelity

from gan.config import EvaluateConfig
from gan.metrics.extractors import Extractor, resolve_extractor
from gan.metrics.protocol import EXTRACTOR_FIELDS, OTHER_EXTRACTORS

REFERENCE_SPLIT = "test"
DEFAULT = ""  # the default extractor's label: its figures keep their plain names
ISC_SPLITS = 10
PRC_NEIGHBORHOOD = 3
DC_NEIGHBORHOOD = 5  # density and coverage's k (Naeem et al. 2020; gan.metrics.density_coverage)


def kid_subset(requested: int | None, n_fake: int, n_real: int) -> int:
    """KID's subset size: `requested` (None: as large as possible) capped by both sample
    counts, since torch-fidelity draws each subset without replacement from each side.
    Larger subsets lower the estimate's noise: with 100 of 359 reference digits, KID sat
    within 1.5 sigma of the real-vs-real floor."""
    largest = min(n_fake, n_real)
    return max(2, largest if requested is None else min(requested, largest))


# Evaluation generates in fp32 on every device, whatever the run trained in: generating
# the evaluation's few thousand samples takes well under a second on the CPU, so bf16
# would save nothing, and fp32 keeps one generator's figures the same on every machine.
GENERATION_PRECISION = "fp32"


@dataclass(frozen=True)
class FeatureCache:
    """The reference data's content hash (which keys its cached features), the folder they
    are cached in (None: not cached) and whether they are computed on CUDA."""

    content_hash: str
    directory: str | Path | None = None
    cuda: bool = False


@dataclass(frozen=True)
class MeasureSettings:
    """Everything that makes two measurements comparable, as protocol.json records it."""

    extractors: Mapping[str, Extractor]  # by label; DEFAULT first
    num_samples: int
    seed: int = 0
    truncation: float = 1.0
    kid_subset_size: int | None = None  # requested; None: the largest the counts allow
    reference_split: str = REFERENCE_SPLIT
    batch_size: int = 64
    confident_threshold: float = 0.8

    @property
    def extractor(self) -> Extractor:
        return self.extractors[DEFAULT]

    def with_samples(self, n: int) -> MeasureSettings:
        return replace(self, num_samples=n)

    def protocol(
        self, content_hash: str, classifier_sha: str | None, metrics: Mapping[str, Any], n_real: int
    ) -> dict[str, Any]:
        """protocol.json of generated samples measured against `n_real` reference images."""
        return self._record(
            content_hash,
            classifier_sha,
            metrics,
            num_samples=self.num_samples,
            reference_count=n_real,
            seed=self.seed,
            truncation=self.truncation,
            batch_size=self.batch_size,
            kid_subset_size=kid_subset(self.kid_subset_size, self.num_samples, n_real),
            confident_threshold=self.confident_threshold,
            isc_splits=min(ISC_SPLITS, self.num_samples),
            prc_neighborhood=PRC_NEIGHBORHOOD,
            dc_neighborhood=DC_NEIGHBORHOOD,
        )

    def translation_protocol(
        self,
        content_hash: str,
        classifier_sha: str | None,
        metrics: Mapping[str, Any],
        counts: Mapping[str, int],
        truth: str | None,
    ) -> dict[str, Any]:
        """protocol.json of a translation family: test A <-> test B, `counts` per domain."""
        return self._record(
            content_hash,
            classifier_sha,
            metrics,
            task="translation",
            num_samples=dict(counts),
            truth=truth,
            seed=self.seed,
            batch_size=self.batch_size,
            kid_subset_size=kid_subset(self.kid_subset_size, counts["A"], counts["B"]),
        )

    def _record(self, content_hash, classifier_sha, metrics, **fields: Any) -> dict[str, Any]:
        return {
            **self._extractor_fields(),
            "classifier_weights_sha256": classifier_sha,
            "reference_split": self.reference_split,
            "reference_content_hash": content_hash,
            "generation_precision": GENERATION_PRECISION,
            **fields,
            "metrics": sorted(metrics),
            "torch": torch.__version__,
            "torch_fidelity": torch_fidelity.__version__,
        }

    def _extractor_fields(self) -> dict[str, Any]:
        def fields(e: Extractor) -> dict[str, Any]:
            return dict(zip(EXTRACTOR_FIELDS, (e.name, e.weights_sha256), strict=True))

        others = {label: fields(e) for label, e in self.extractors.items() if label != DEFAULT}
        return {**fields(self.extractor), **({OTHER_EXTRACTORS: others} if others else {})}


def settings_from(cfg: EvaluateConfig, num_samples: int, extras: bool = True) -> MeasureSettings:
    """The evaluate section's settings, its extractors resolved (and registered); without
    `extras`, the default extractor alone (HPO trials measure with it only)."""
    extractors = {DEFAULT: resolve_extractor(cfg.extractor, cfg.classifier, cfg.inception_weights)}
    for label, spec in cfg.extra_extractors.items() if extras else ():
        extractors[label] = resolve_extractor(
            spec.extractor, spec.weights or cfg.classifier, spec.weights or cfg.inception_weights
        )
    return MeasureSettings(
        extractors,
        num_samples,
        seed=cfg.seed,
        truncation=cfg.truncation,
        kid_subset_size=cfg.kid_subset_size,
        batch_size=cfg.batch_size,
        confident_threshold=cfg.confident_threshold,
    )
