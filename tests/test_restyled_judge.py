"""The judge of CycleGAN's content acceptance: the digits-restyled classifier, trained exactly as
params-cyclegan.yaml trains it, must read B-style renderings of *unseen* test-A digits (the
ground truth of A->B translation) correctly; its errors would cap `class_preserved_AtoB`."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan.config import load_params
from gan.data.builtin import RESTYLED_TEST_FRACTION, load_digits_uint8, prepare, restyle
from gan.data.preprocess import preprocess
from gan.metrics.classifier import load_classifier, predict_logits, train_classifier

ROOT = Path(__file__).resolve().parents[1]


def _ground_truth_of_test_a(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Domain-B renderings of the test-A source digits, resized as preprocess resizes."""
    images, labels = load_digits_uint8()
    a = list(range(0, len(images), 2))  # domain A: even source indices (gan/data/builtin.py)
    test = a[len(a) - round(len(a) * RESTYLED_TEST_FRACTION) :]
    size = (resolution, resolution)
    pixels = [
        np.asarray(Image.fromarray(restyle(images[i])).resize(size, Image.Resampling.LANCZOS))
        for i in test
    ]
    return torch.from_numpy(np.stack(pixels))[:, None], torch.from_numpy(labels[test])


def test_restyled_classifier_reads_unseen_ground_truth_restyles(tmp_path):
    params = load_params(ROOT / "params-cyclegan.yaml")
    params.prepare.out = str(tmp_path / "raw")
    params.preprocess.input, params.preprocess.output = params.prepare.out, str(tmp_path / "data")
    params.classifier.data, params.classifier.output = params.preprocess.output, str(tmp_path / "c")
    prepare(params.prepare)
    preprocess(params.preprocess)
    result = train_classifier(params.classifier)
    assert result["test_accuracy"] > 0.93

    images, labels = _ground_truth_of_test_a(params.preprocess.resolution)
    model = load_classifier(params.classifier.output).model
    accuracy = float((predict_logits(model, images).argmax(1) == labels).float().mean())
    assert accuracy >= 0.93, accuracy  # 0.872 before batch norm, shifts and dropout
