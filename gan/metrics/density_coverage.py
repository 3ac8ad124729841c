"""Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
Generative Models"), from the same features as FID and precision/recall.

Precision and recall draw a ball around every real *and* fake sample, so a few outlying
fakes inflate the fake manifold and recall. Density and coverage use the real balls only:
each real feature X_i gets the radius r_i to its k-th nearest real neighbour (k = 5, the
paper's choice), and for M fakes Y_j

- density  = 1/(kM) * sum_j #{i : |Y_j - X_i| < r_i}: how many real neighbourhoods a fake
  falls in, 1 on average when fakes are distributed as the reals, above 1 where they crowd
  dense real regions (range [0, inf), higher is better);
- coverage = 1/N * #{i : some |Y_j - X_i| < r_i}: the share of real neighbourhoods that
  hold at least one fake (range [0, 1], higher is better).

The strict `<` and the k-th neighbour counted without the point itself are those of the
paper's code (clovaai/generative-evaluation-prdc). Distances are exact float64 pairwise
distances, computed in row blocks so that memory stays bounded for large sets.
"""

from __future__ import annotations

import torch

from gan.errors import GanError
from gan.metrics.registry import MetricInputs
from gan.metrics.settings import DC_NEIGHBORHOOD

BLOCK_ELEMENTS = 1 << 24  # distances held at once (128 MiB of float64)


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # not the matrix-product shortcut, whose cancellation errors blur the ball's edge
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def _blocks(rows: torch.Tensor, columns: int):
    step = max(1, BLOCK_ELEMENTS // max(columns, 1))
    for start in range(0, len(rows), step):
        yield rows[start : start + step]


def neighbour_radii(real: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of `real` to its k-th nearest other row."""
    # the (k+1)-th smallest distance in a row: its own 0 comes first
    return torch.cat(
        [_distances(b, real).kthvalue(k + 1, dim=1).values for b in _blocks(real, len(real))]
    )


def density_coverage(
    real: torch.Tensor, fake: torch.Tensor, k: int = DC_NEIGHBORHOOD
) -> dict[str, float]:
    """``density`` and ``coverage`` of `fake` features [M, D] against `real` features [N, D]."""
    if len(real) <= k:
        raise GanError(
            f"density and coverage need more than {k} reference images (have {len(real)}); "
            "leave dc out of evaluate.metrics or hold out a larger test split"
        )
    if len(fake) == 0:
        raise GanError("density and coverage need at least one sample")
    real, fake = real.double().flatten(1), fake.double().flatten(1)
    radii = neighbour_radii(real, k)
    inside = 0
    covered = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    for block in _blocks(fake, len(real)):
        hits = _distances(block, real) < radii  # [block, N]: fake j inside real ball i
        inside += int(hits.sum())
        covered |= hits.any(0)
    return {
        "density": inside / (k * len(fake)),
        "coverage": float(covered.double().mean()),
    }


def dc_metric(inputs: MetricInputs) -> dict[str, float]:
    """The registered ``dc`` metric (gan.metrics.registry)."""
    return density_coverage(inputs.real["features"], inputs.fake["features"])
