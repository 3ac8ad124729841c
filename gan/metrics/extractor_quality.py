"""Is the dataset's own extractor good enough to judge a generator? One figure, one threshold.

An extractor that has not learnt the data maps blurry blobs and good images to the same
features: a 3-class classifier at 40% test accuracy once scored blobs FID 1.3 and precision
1.0, and the model was promoted. Both of our extractors therefore record a *skill*, the
share of the gap between a trivial answer and a perfect one that they close on the test
split (1: perfect, 0: no better than trivial):

- classifier: (test accuracy - chance) / (1 - chance), chance being the accuracy of always
  answering the test split's most common class (Cohen's kappa against that guess);
- autoencoder: 1 - reconstruction MSE / MSE of answering the mean train image for every
  test image (the share of the test pixels' variance the code explains, R^2).

WEAK_SKILL = 0.5: below it the extractor is wrong on more than half of what it could get
right. For 10 classes that is a test accuracy under 55%, for 3 classes under 67% (the 40%
classifier above has skill 0.1), for 2 under 75%; a rule like "twice chance" would ask
the impossible of 2 classes (100%) and too little of 10 (20%). Evaluate warns (one
message naming the extractor's file and its figures); promote refuses, unless
promote.allow_weak_extractor is set.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

WEAK_SKILL = 0.5
SKILL_KEY = "extractor_skill"  # the figure in evaluate's metrics.json


class WeakExtractorWarning(UserWarning):
    """The extractor's skill is below WEAK_SKILL: its FID/KID/precision/recall say little."""


def quality(skill: float, figures: dict[str, float], explained: str) -> dict[str, Any]:
    """The `quality` record an extractor's JSON carries (see the module docstring)."""
    return {
        "skill": float(skill),
        "threshold": WEAK_SKILL,
        "weak": bool(skill < WEAK_SKILL),
        "explained": explained,
        **{k: float(v) for k, v in figures.items()},
    }


def classifier_quality(accuracy: float, test_labels: torch.Tensor) -> dict[str, Any]:
    """Skill of a classifier with test `accuracy` on a test split labelled `test_labels`."""
    chance = float(torch.bincount(test_labels).max()) / max(1, len(test_labels))
    skill = (accuracy - chance) / (1.0 - chance) if chance < 1.0 else 0.0
    return quality(
        skill,
        {"test_accuracy": accuracy, "chance_accuracy": chance},
        f"test accuracy {accuracy:.3f} against chance {chance:.3f} (the most common class)",
    )


def autoencoder_quality(mse: float, baseline_mse: float) -> dict[str, Any]:
    """Skill of an autoencoder with test reconstruction `mse` against the mean-image baseline."""
    skill = 1.0 - mse / baseline_mse if baseline_mse > 0 else 0.0
    return quality(
        skill,
        {"reconstruction_mse": mse, "baseline_mse": baseline_mse},
        f"test reconstruction MSE {mse:.4f} against {baseline_mse:.4f} for the mean train image",
    )


def weak_message(path: str | Path, record: dict[str, Any]) -> str:
    return (
        f"{path}: this feature extractor is too weak to judge a generator: skill "
        f"{record['skill']:.3f} < {record['threshold']:g} ({record['explained']}). "
        "Its FID, KID and precision/recall say little (blurry blobs can score well); "
        "train it longer (classifier.epochs) or on more data, or use another extractor. "
        "promote refuses such a candidate unless promote.allow_weak_extractor: true."
    )


def warn_if_weak(path: str | Path, record: dict[str, Any] | None) -> None:
    """One loud warning when the extractor in `path` is weak; nothing when it is not."""
    if record is not None and record["skill"] < WEAK_SKILL:
        warnings.warn(weak_message(path, record), WeakExtractorWarning, stacklevel=2)
