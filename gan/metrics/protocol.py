"""What a metric was measured under, and which of that must match for a comparison.

Every key of protocol.json must be equal for two results to be compared, except:
- library versions (``torch``, ``torch_fidelity``): patch releases do not change the
  features of a fixed network, and refusing them would strand every champion on upgrade;
- ``metrics``: which metrics were computed; the registry checks that its primary metric
  is present on both sides.
Everything else (extractor and weights hash, sample count, reference split and its content
hash, seed, truncation, KID subset size, IS splits, PRC neighbourhood, generation batch
size, classifier weights hash, the classifier_confident threshold) changes the numbers,
so it must match.
"""

from __future__ import annotations

from typing import Any

NOT_COMPARED = frozenset({"torch", "torch_fidelity", "metrics"})


def comparable_protocol(protocol: dict[str, Any]) -> dict[str, Any]:
    """The protocol keys that must be equal for two results to be compared."""
    return {k: v for k, v in protocol.items() if k not in NOT_COMPARED}
