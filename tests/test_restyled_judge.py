"""The judge of CycleGAN's content acceptance: the digits-restyled classifier, trained exactly as
params-cyclegan.yaml trains it, must read B-style renderings of *unseen* test-A digits (the
ground truth of A->B translation, as `prepare.truth` writes it) correctly; its errors would
cap `class_preserved_AtoB`."""

from pathlib import Path

from gan.config import load_params
from gan.data.builtin import prepare
from gan.data.preprocess import preprocess
from gan.data.shards import load_split
from gan.metrics.classifier import load_classifier, predict_logits, train_classifier
from gan.metrics.translation import load_truth

ROOT = Path(__file__).resolve().parents[1]


def test_restyled_classifier_reads_unseen_ground_truth_restyles(tmp_path):
    params = load_params(ROOT / "params-cyclegan.yaml")
    params.prepare.out, params.prepare.truth = str(tmp_path / "raw"), str(tmp_path / "truth")
    params.preprocess.input, params.preprocess.output = params.prepare.out, str(tmp_path / "data")
    params.classifier.data, params.classifier.output = params.preprocess.output, str(tmp_path / "c")
    prepare(params.prepare)
    preprocess(params.preprocess)
    result = train_classifier(params.classifier)
    assert result["test_accuracy"] > 0.93

    test_a = load_split(params.preprocess.output, "test").domain(0)
    images = load_truth(params.prepare.truth, test_a, params.preprocess.output)
    model = load_classifier(params.classifier.output).model
    accuracy = float((predict_logits(model, images).argmax(1) == test_a.labels).float().mean())
    assert accuracy >= 0.93, accuracy  # 0.872 before batch norm, shifts and dropout
