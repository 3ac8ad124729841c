"""The champion/challenger rule: a pure function from metrics and protocols to a decision.

Metrics measured under different protocols are never compared
(docs/architecture.md, 'Metrics and protocols'); a candidate without a finite primary
metric is never promoted; every decision says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gan.metrics.protocol import comparable_protocol

PROMOTED, REJECTED = "promoted", "rejected"


@dataclass(frozen=True)
class Rule:
    """Which metric decides, in which direction, and by how much a candidate must win."""

    metric: str = "fid"
    mode: Literal["min", "max"] = "min"
    margin: float = 0.0


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str

    @property
    def decision(self) -> str:
        return PROMOTED if self.promoted else REJECTED


def metric_value(metrics: Mapping[str, Any], name: str) -> float | None:
    """The metric as a finite float, or None when it is missing, NaN, infinite or not a number."""
    v = metrics.get(name)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def protocol_differences(
    a: Mapping[str, Any], b: Mapping[str, Any], metric: str | None = None
) -> list[str]:
    """Human-readable ``key: a vs b`` for every comparable key on which a and b disagree
    (for `metric`: under what it was measured, its own extractor's entry included;
    gan.metrics.protocol)."""
    ca, cb = comparable_protocol(a, metric), comparable_protocol(b, metric)
    out = []
    for key in sorted(set(ca) | set(cb), key=str):
        va, vb = ca.get(key, "<missing>"), cb.get(key, "<missing>")
        if va != vb:
            out.append(f"{key}: {_short(va)} vs {_short(vb)}")
    return out


def decide(
    metrics: Mapping[str, Any],
    protocol: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    rule: Rule,
) -> Decision:
    """Promote or reject a candidate against the champion record (None: no champion yet).

    `champion` needs "version", "metrics" and "protocol". The reason always says why.
    """
    m = rule.metric
    value = metric_value(metrics, m)
    if value is None:
        raw = metrics.get(m, "missing")
        return Decision(
            False,
            f"{m} is {_short(raw)}, not a finite number; a candidate "
            "without a valid primary metric is never promoted",
        )
    if champion is None:
        return Decision(True, f"first valid candidate: {m} {value:.6g} becomes the champion")
    cv = f"v{champion['version']}"
    diffs = protocol_differences(protocol, champion.get("protocol") or {}, m)
    if diffs:
        return Decision(
            False,
            f"evaluation protocol differs from champion {cv}'s "
            f"({'; '.join(diffs)}); metrics measured differently are not compared",
        )
    best = metric_value(champion.get("metrics") or {}, m)
    if best is None:
        return Decision(
            False,
            f"champion {cv} has no valid {m} to compare against; "
            "roll back or change promote.primary_metric",
        )
    wins = value < best - rule.margin if rule.mode == "min" else value > best + rule.margin
    verb = "beats" if wins else "does not beat"
    better = "lower" if rule.mode == "min" else "higher"
    return Decision(
        wins,
        f"{m} {value:.6g} {verb} champion {cv}'s {best:.6g} by margin "
        f"{rule.margin:g} ({better} is better)",
    )


def _short(v: Any, width: int = 24) -> str:
    s = repr(v) if not isinstance(v, str) else v
    return s if len(s) <= width else s[: width - 3] + "..."
