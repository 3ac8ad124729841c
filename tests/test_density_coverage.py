"""Density and coverage (Naeem et al. 2020): against a direct numpy computation, on answers
known by construction, and registered beside precision/recall on the same features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan.config import EvaluateConfig
from gan.errors import GanError
from gan.metrics import density_coverage as dc
from gan.metrics.evaluate import compute_metrics
from gan.metrics.extractors import register_classifier
from gan.metrics.protocol import comparable_protocol
from gan.metrics.registry import figure, get_metric, register_metric, unregister_metric

pytest_plugins = ["test_hpo_support"]  # classifier16


def numpy_density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """The paper's definitions, brute force: every distance, sorted."""
    real_real = np.sqrt(((real[:, None, :] - real[None, :, :]) ** 2).sum(-1))
    radii = np.sort(real_real, axis=1)[:, k]  # column 0 is the point itself
    real_fake = np.sqrt(((real[:, None, :] - fake[None, :, :]) ** 2).sum(-1))  # [N, M]
    inside = real_fake < radii[:, None]
    return inside.sum() / (k * len(fake)), inside.any(axis=1).mean()


def _features(seed: int, n: int, shift: float = 0.0, dim: int = 8) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


@pytest.mark.parametrize(
    ("n_real", "n_fake", "shift", "scale"),
    [(40, 30, 0.0, 1.0), (60, 25, 0.7, 1.0), (30, 80, 0.0, 0.3), (12, 200, 0.2, 2.0)],
)
def test_equals_a_direct_numpy_computation(n_real, n_fake, shift, scale):
    real, fake = _features(0, n_real), _features(1, n_fake, shift) * scale
    want_density, want_coverage = numpy_density_coverage(
        real.double().numpy(), fake.double().numpy()
    )
    got = dc.density_coverage(real, fake)
    assert got == {"density": want_density, "coverage": want_coverage}  # counts: exact
    assert 0 < got["coverage"] <= 1 and got["density"] > 0  # no case is empty


def test_blocks_change_nothing(monkeypatch):
    real, fake = _features(2, 50), _features(3, 70, 0.4)
    whole = dc.density_coverage(real, fake)
    monkeypatch.setattr(dc, "BLOCK_ELEMENTS", 7)  # a few rows at a time
    assert dc.density_coverage(real, fake) == whole


def test_answers_known_by_construction():
    real = _features(4, 50)
    # each real point holds itself and k - 1 neighbours strictly inside its own ball
    assert dc.density_coverage(real, real) == {"density": 1.0, "coverage": 1.0}
    far = dc.density_coverage(real, real + 1e3)
    assert far == {"density": 0.0, "coverage": 0.0}
    # every fake on one real point: that point's ball only (and the balls reaching it)
    one = dc.density_coverage(real, real[:1].repeat(10, 1))
    reaches = int((torch.cdist(real[:1], real)[0] < dc.neighbour_radii(real.double(), 5)).sum())
    assert one["coverage"] == reaches / 50
    assert one["density"] == pytest.approx(reaches / 5)
    # 50 samples on 5 modes cover less than 50 fresh draws of the same distribution
    collapsed = dc.density_coverage(real, real[:5].repeat(10, 1))
    fresh = dc.density_coverage(real, _features(5, 50))
    assert collapsed["coverage"] < fresh["coverage"]


def test_too_few_reference_images_is_a_clear_error():
    with pytest.raises(GanError, match="more than 5 reference images"):
        dc.density_coverage(_features(0, 5), _features(1, 10))


def test_registered_beside_precision_recall_and_measured_by_default():
    metric = get_metric("dc")
    assert metric.needs == {"features", "reference"}
    assert {f.name for f in metric.figures} == {"density", "coverage"}
    density, coverage = figure("density"), figure("coverage")
    assert density.higher_is_better and (density.low, density.high) == (0.0, math.inf)
    assert coverage.higher_is_better and (coverage.low, coverage.high) == (0.0, 1.0)
    assert figure("coverage@autoencoder") == coverage
    assert {"prc", "dc"} <= set(EvaluateConfig().metrics)


def test_from_the_features_fid_and_precision_recall_use(digits16, classifier16):
    """compute_metrics hands dc the layer FID and precision/recall read."""
    from gan.data.shards import load_split

    seen = {}

    def capture(inputs):
        seen.update(fake=inputs.fake["features"], real=inputs.real["features"])
        return {}

    register_metric("capture_features", needs={"features", "reference"}, compute=capture)
    try:
        real = load_split(digits16, "test").images
        fake = load_split(digits16, "train").images[:120].roll(1, dims=-1)
        ext = register_classifier(classifier16)
        found = compute_metrics(fake, real, ext, ["prc", "dc", "capture_features"])
    finally:
        unregister_metric("capture_features")
    assert seen["real"].shape == (len(real), 128)  # the classifier's penultimate layer
    want = dc.density_coverage(seen["real"], seen["fake"])
    assert {k: found[k] for k in want} == want
    assert 0 < found["coverage"] <= 1 and found["density"] > 0


def test_protocols_from_before_density_coverage_compare_at_k5():
    old = {"extractor": "x", "seed": 0, "prc_neighborhood": 3}
    assert comparable_protocol({**old, "dc_neighborhood": 5}) == comparable_protocol(old)
    assert comparable_protocol({**old, "dc_neighborhood": 3}) != comparable_protocol(old)
    folder = {**old, "dc_neighborhood": 5, "images": {"folder": "x", "count": 3}}
    assert comparable_protocol(folder) == comparable_protocol(old)
