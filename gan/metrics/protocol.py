"""What a metric was measured under, and which of that must match for a comparison.

protocol.json is written from the measurement settings (gan.metrics.settings). Every key
must be equal for two results to be compared, except:
- library versions (``torch``, ``torch_fidelity``): patch releases do not change the
  features of a fixed network, and refusing them would strand every champion on upgrade;
- ``metrics``: which metrics were computed; the registry checks that its primary metric
  is present on both sides;
- the extractors the compared figure was not measured with: ``extractor`` and
  ``extractor_weights_sha256`` name the default extractor, whose figures have plain names
  (``fid``); ``extractors`` holds the same two keys for each other extractor by its
  label, present only when there are others. A figure keyed ``fid@autoencoder`` is
  compared under the autoencoder's entry in place of the default's; a plain figure under
  the default's alone, so protocols written before there were other extractors compare
  as they did.
Everything else (the precision samples were generated in, fp32 where a protocol from
before it was recorded does not say; sample count, reference split and its content hash, seed, truncation,
KID subset size, IS splits, PRC neighbourhood, generation batch size, classifier weights
hash, the classifier_confident threshold) changes the numbers, so it must match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gan.metrics.registry import split_key

NOT_COMPARED = frozenset({"torch", "torch_fidelity", "metrics"})
OTHER_EXTRACTORS = "extractors"
EXTRACTOR_FIELDS = ("extractor", "extractor_weights_sha256")


def comparable_protocol(protocol: Mapping[str, Any], metric: str | None = None) -> dict[str, Any]:
    """The protocol keys that must be equal for two results to be compared; with `metric`
    (a metrics.json key), only the extractor that measured it counts."""
    out = {k: v for k, v in protocol.items() if k not in NOT_COMPARED}
    if out.get("generation_precision") == "fp32":  # protocols from before it was recorded
        del out["generation_precision"]  # say nothing and mean fp32
    if metric is None:
        return out
    out.pop(OTHER_EXTRACTORS, None)
    label = split_key(metric)[1]
    if label:
        own = (protocol.get(OTHER_EXTRACTORS) or {}).get(label) or {}
        out.update({k: own.get(k) for k in EXTRACTOR_FIELDS})
    return out
