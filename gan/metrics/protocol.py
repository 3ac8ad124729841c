"""What a metric was measured under, and which of that must match for a comparison.

protocol.json is written from the measurement settings (gan.metrics.settings). Every key
must be equal for two results to be compared, except:
- library versions (``torch``, ``torch_fidelity``): patch releases do not change the
  features of a fixed network, and refusing them would strand every champion on upgrade;
- ``metrics``: which metrics were computed; the registry checks that its primary metric
  is present on both sides;
- ``images``: where a folder's samples came from and how they were converted (`gan
  evaluate --images`): like the generator of a run, the samples are what is measured,
  not how;
- the extractors the compared figure was not measured with: ``extractor`` and
  ``extractor_weights_sha256`` name the default extractor, whose figures have plain names
  (``fid``); ``extractors`` holds the same two keys for each other extractor by its
  label, present only when there are others. A figure keyed ``fid@autoencoder`` is
  compared under the autoencoder's entry in place of the default's; a plain figure under
  the default's alone, so protocols written before there were other extractors compare
  as they did.
Everything else (the precision samples were generated in, fp32 where a protocol from
before it was recorded does not say; sample count, reference split and its content hash, seed, truncation,
KID subset size, IS splits, PRC and density/coverage neighbourhoods, generation batch
size, classifier weights hash, the classifier_confident threshold) changes the numbers, so
it must match; a key protocols gained later counts as absent at the value its absence meant
(IMPLIED_WHEN_ABSENT).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gan.metrics.registry import split_key

NOT_COMPARED = frozenset({"torch", "torch_fidelity", "metrics", "images"})
# Keys protocols gained later, and what a protocol written before them means by saying
# nothing: samples generated in fp32; density/coverage (absent then) at Naeem et al.'s
# k = 5. Literals, not the settings' constants: what an old protocol meant never changes.
IMPLIED_WHEN_ABSENT = {"generation_precision": "fp32", "dc_neighborhood": 5}
OTHER_EXTRACTORS = "extractors"
EXTRACTOR_FIELDS = ("extractor", "extractor_weights_sha256")


def comparable_protocol(protocol: Mapping[str, Any], metric: str | None = None) -> dict[str, Any]:
    """The protocol keys that must be equal for two results to be compared; with `metric`
    (a metrics.json key), only the extractor that measured it counts."""
    out = {k: v for k, v in protocol.items() if k not in NOT_COMPARED}
    for key, implied in IMPLIED_WHEN_ABSENT.items():
        if key in out and out[key] == implied:
            del out[key]
    if metric is None:
        return out
    out.pop(OTHER_EXTRACTORS, None)
    label = split_key(metric)[1]
    if label:
        own = (protocol.get(OTHER_EXTRACTORS) or {}).get(label) or {}
        out.update({k: own.get(k) for k in EXTRACTOR_FIELDS})
    return out
